"""Reducing result records to the numbers a figure plots.

The records are :mod:`ecorec.records`' typed ``RunRecord`` (a training run's ``record.json``) and
``BenchRecord`` (one line of a kernel benchmark's JSON lines), read by :func:`ecorec.records.read_records`
(re-exported here); hand-made dicts of the same layout work too. Every function here is pure: records in,
plain rows (``dict``) out, so the figures and their CSVs are made from the records only. The kernel totals
are :func:`ecorec.records.sum_over_tables`, the same aggregation as the benchmark's report and the planner's
calibration.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from ecorec.records import BenchRecord, read_records, sum_over_tables
from ecorec.records import percentile as _percentile

Record = Mapping[str, Any]

__all__ = [
    "environment_summary",
    "kernel_totals",
    "memory_rows",
    "measured_shares",
    "read_records",
    "train_point",
    "uncompressed_memory",
]


# ------------------------------------------------------------------------------------------ training runs


def measured_shares(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """``{"exposed", "total", "step_s", "link_gbit"}`` of a run record's ``metrics``: ``exposed`` = time
    blocked in collectives / step time; ``total`` = the communication's time (the busiest rank's off-node
    bytes at the emulated link rate) / (compute + that), compute being the step minus the exposed time: the
    share communication would take without overlap, comparable across modes and with the modelled share
    (``ecorec.cluster.regime``). ``None`` where the record has no metered communication or emulated link."""
    timing, comm, cluster = metrics.get("timing") or {}, metrics.get("comm"), metrics.get("cluster") or {}
    step = timing.get("median_s")
    link = cluster.get("link_gbit") if cluster.get("emulated", True) else None
    out: dict[str, float | None] = {"step_s": step, "link_gbit": link, "exposed": None, "total": None}
    if not comm or not step:
        return out
    out["exposed"] = comm.get("exposed_share")
    if link:
        ranks_per_node = max(1, int(comm.get("ranks_per_node") or 1))
        # the busiest rank's off-node bytes through its share of its node's link
        seconds = comm["bytes_off_node"] * 8 / (float(link) * 1e9 / ranks_per_node)
        compute = max(0.0, step - (out["exposed"] or 0.0) * step)
        out["total"] = seconds / (compute + seconds) if compute + seconds > 0 else None
    return out


def train_point(record: Record) -> dict[str, Any]:
    """One training run as the numbers figures 10, 12 and 16 plot.

    Time per iteration: each timing window's mean step time (``seconds / num_steps``); the point is their mean
    and the error bar their standard deviation over the windows (>= 3 in the default config), so each point
    has error bars from repeated measurements. The median, p10 and p90 of the single timed steps are kept too.
    Peak memory is the largest over ranks of the allocator's peak of a training step (``step_memory_bytes``:
    embedding + optimizer state + the step's activations; ``max_memory_allocated`` on CUDA), with the
    process's max RSS (``peak_memory_bytes``) as a secondary column; records without ``step_memory_bytes``
    plot max RSS. ``cluster_*``: the emulated cluster's settings (``metrics.cluster``), empty when none.
    """
    config, metrics = record["config"], record["metrics"]
    timing = metrics.get("timing", {})
    where = record.get("source", "<record>")
    windows = timing.get("windows") or []
    if not windows:
        raise ValueError(f"{where}: no timing windows in metrics.timing (a run without timed steps)")
    window_ms = [1e3 * w["seconds"] / w["num_steps"] for w in windows]
    warmup = int(timing.get("warmup_steps", 0))
    steps_ms = [1e3 * s for s in timing.get("per_step_s", [])[warmup:]]
    world = int(metrics.get("world_size", config["parallel"]["world_size"]))
    global_batch = int(metrics.get("global_batch_size", config["train"]["global_batch_size"]))
    mean_ms = statistics.fmean(window_ms)
    rss = metrics.get("peak_memory_bytes", {})
    step_memory = metrics.get("step_memory_bytes") or {}
    memory = step_memory or rss
    cluster = metrics.get("cluster") or {}
    dilation = cluster.get("dilation") or {}
    auroc = metrics.get("final_auroc") or {}
    shares = measured_shares(metrics)
    factor = dilation.get("factor")
    return {
        "system": config["run"]["name"],
        "mode": metrics.get("mode", config["parallel"].get("mode")),
        "algorithm": config["embeddings"]["algorithm"],
        "tables": int(metrics.get("num_tables", config["dataset"].get("num_tables", 0))),
        "world_size": world,
        "local_batch_size": global_batch // world,
        "global_batch_size": global_batch,
        "time_per_iter_ms": mean_ms,
        "time_per_iter_ms_std": statistics.stdev(window_ms) if len(window_ms) > 1 else 0.0,
        "num_windows": len(window_ms),
        "step_ms_median": statistics.median(steps_ms) if steps_ms else math.nan,
        "step_ms_p10": _percentile(steps_ms, 0.1),
        "step_ms_p90": _percentile(steps_ms, 0.9),
        "throughput_samples_per_s": global_batch / (mean_ms * 1e-3),
        "throughput_samples_per_s_std": statistics.stdev([global_batch / (t * 1e-3) for t in window_ms])
        if len(window_ms) > 1
        else 0.0,
        "peak_memory_mib": memory.get("max", math.nan) / 2**20,
        "peak_memory_kind": memory.get("method", memory.get("kind", "")),
        "state_memory_mib": max(step_memory.get("state_per_rank") or [math.nan]) / 2**20,
        "rss_memory_mib": rss.get("max", math.nan) / 2**20,
        "cluster_emulated": cluster.get("emulated", ""),
        "cluster_nodes": cluster.get("nodes", ""),
        "cluster_link_gbit": cluster.get("link_gbit", ""),
        "cluster_profile": cluster.get("profile", ""),
        "cluster_dilation": dilation.get("factor", ""),
        "cluster_dilation_tt": dilation.get("tt_factor", ""),
        "cluster_dilation_gemm": dilation.get("gemm_factor", ""),
        "cluster_tt_weight": dilation.get("tt_weight", ""),
        "cluster_target_world": dilation.get("target_world", ""),
        "cluster_fanout": dilation.get("fanout", ""),
        "comm_exposed_share": math.nan if shares["exposed"] is None else shares["exposed"],
        "comm_total_share": math.nan if shares["total"] is None else shares["total"],
        # this machine's time x the dilation: the target's time per iteration the run stands for
        "target_time_per_iter_ms": mean_ms * factor if factor else math.nan,
        "target_samples_per_s": global_batch / (mean_ms * 1e-3 * factor) if factor else math.nan,
        "val_auroc": math.nan if auroc.get("val") is None else auroc["val"],  # null: undefined
        "device": record.get("environment", {}).get("device", ""),
    }


# ---------------------------------------------------------------------------------------- kernel benchmark


#: The columns of figure 11's rows (and CSV), in order.
KERNEL_COLUMNS = (
    "variant",
    "batch_size",
    "num_tables",
    "forward_ms_median",
    "forward_ms_p10",
    "forward_ms_p90",
    "repeats",
    "forward_backward_ms_median",
    "forward_backward_ms_p10",
    "forward_backward_ms_p90",
    "nnz",
)


def kernel_totals(records: Iterable[BenchRecord | Record]) -> list[dict[str, Any]]:
    """Figure 11: per (batch size, variant), forward and forward+backward time summed over the tables
    (:func:`ecorec.records.sum_over_tables`: repeat ``i`` of every table summed, then the median of these
    sums with p10 and p90 as the error bar). Rows sorted by variant, then batch size; a variant measured on
    fewer tables than the others is left out (its sum would not be an all-tables time)."""
    return [{key: row[key] for key in KERNEL_COLUMNS} for row in sum_over_tables(records)]


def uncompressed_memory(
    num_embeddings: int, embedding_dim: int, batch_size: int, nnz: float, element_bytes: int = 4
) -> dict[str, float]:
    """Computed memory of an uncompressed ``nn.EmbeddingBag(sparse=True)`` table (bytes).

    Parameters ``N * D``; forward peak adds the pooled output ``B * D``; the training step's peak adds the
    output's gradient ``B * D`` and the sparse weight gradient (``nnz`` rows of ``D`` values and ``nnz`` int64
    indices). Against the paper's measured PyTorch rows of table 1 (N = 1e8, D = 32, B = 10000, nnz = 464,214:
    11.922 / 11.930 / 11.986 GiB) this gives 11.921 / 11.922 / 11.982 GiB.
    """
    params = num_embeddings * embedding_dim * element_bytes
    output = batch_size * embedding_dim * element_bytes
    sparse_grad = nnz * (embedding_dim * element_bytes + 8)
    return {
        "param_bytes": float(params),
        "peak_forward_bytes": float(params + output),
        "peak_forward_backward_bytes": float(params + 2 * output + sparse_grad),
    }


def memory_rows(
    records: Iterable[Record], *, uncompressed_variant: str = "nn_embedding_bag"
) -> list[dict[str, Any]]:
    """Table 1: per (batch size, variant), parameter bytes and the forward and forward+backward peaks.

    Peaks are parameters (and optimizer state) plus the measured transient peak of one forward / one training
    step, as the paper's ``max_memory_allocated`` readings. Where the uncompressed variant was not run (too
    large to allocate), its row is computed with :func:`uncompressed_memory` and marked ``"computed"``.
    """
    rows: list[dict[str, Any]] = []
    by_batch: dict[int, list[Mapping[str, Any]]] = {}
    for record in records:
        by_batch.setdefault(int(record["metrics"]["batch_size"]), []).append(record)
    for batch_size, members in sorted(by_batch.items()):
        for record in members:
            m = record["metrics"]
            if "peak_forward_bytes" not in m:
                raise ValueError(f"{m['variant']} at batch {batch_size}: no peak memory in the record")
            resident = float(m["param_bytes"]) + float(m.get("optimizer_state_bytes", 0))
            rows.append(
                {
                    "variant": m["variant"],
                    "batch_size": batch_size,
                    "num_embeddings": int(m.get("num_embeddings", record["config"]["num_embeddings"])),
                    "nnz": float(m["nnz"]),
                    "param_bytes": float(m["param_bytes"]),
                    "peak_forward_bytes": resident + float(m["peak_forward_bytes"]),
                    "peak_forward_backward_bytes": resident + float(m["peak_forward_backward_bytes"]),
                    "source": f"measured ({m.get('memory_method', '')})".replace(" ()", ""),
                }
            )
        if not any(r["variant"] == uncompressed_variant and r["batch_size"] == batch_size for r in rows):
            config, m = members[0]["config"], members[0]["metrics"]
            num_embeddings = int(m.get("num_embeddings", config["num_embeddings"]))
            computed = uncompressed_memory(num_embeddings, int(config["embedding_dim"]), batch_size, m["nnz"])
            rows.append(
                {
                    "variant": uncompressed_variant,
                    "batch_size": batch_size,
                    "num_embeddings": num_embeddings,
                    "nnz": float(m["nnz"]),
                    **computed,
                    "source": "computed",
                }
            )
    return rows


def environment_summary(records: Iterable[Record]) -> str:
    """One line naming the machines of ``records`` (device, CPU count, torch), for captions and titles."""
    seen: list[str] = []
    for record in records:
        env = record.get("environment", {})
        line = (
            f"{env.get('device_name', env.get('device', '?'))} ({env.get('device', '?')}, "
            f"{env.get('cpu_count', '?')} CPUs), torch {env.get('torch', '?')}"
        )
        if line not in seen:
            seen.append(line)
    return "; ".join(seen)


def cluster_summary(records: Iterable[Record]) -> str:
    """One line on the emulated cluster of training ``records`` (``metrics.cluster``), for titles: nodes,
    profile, dilation factor and link rates; ``NOT EMULATED`` (plain loopback) where a run fell back; empty
    when no record was run on the emulated cluster."""
    seen: list[str] = []
    for record in records:
        cluster = record.get("metrics", {}).get("cluster")
        if not cluster:
            continue
        if not cluster.get("emulated"):
            line = "NOT EMULATED (plain loopback: no CAP_NET_ADMIN)"
        else:
            d = cluster.get("dilation") or {}
            rate = f"{cluster['link_gbit']:.3g} Gbit/s" if cluster.get("link_gbit") else "unshaped"
            line = f"emulated {cluster.get('ranks_per_node', '?')} ranks/node, link {rate}"
            if d:
                line += f" ({d.get('profile')}, dilation {d.get('factor', float('nan')):.3g})"
        if line not in seen:
            seen.append(line)
    return "; ".join(seen)
