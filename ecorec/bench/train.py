"""``python -m ecorec.bench train``: the distributed modes side by side on the same data and model.

Each variant is one real training run (``python -m ecorec.train`` under torchrun, ``--world`` ranks, gloo on
CPU): dp, mp, bwp, twp (K stages, plan order), twp+reorder, twp+reorder+slope (EcoRec) with TT tables, and
torchrec (DMP over uncompressed tables). From each run record: global samples/s (G / median iteration time,
and the mean and standard deviation over the timing windows), iteration time median/p90, peak memory per rank
and its max.

Output: one JSON line per variant (stdout and ``--output``) and a table; the goal it reports against is
twp+reorder+slope >= 1.3x mp samples/s. With ``--repeats N`` the variants run N times, interleaved, so slow
phases of a shared machine hit every variant alike.

On the emulated cluster (``--cluster``: ``--nodes N --ranks-per-node P``, needs root): every variant runs once
per link setting, through ``python -m ecorec.cluster run``: ``unshaped`` (the same namespaces and veths, no
tbf: the compute-only reference), each ``--link-gbit`` rate, and the dilated rate of ``--profile`` (with
``--config``, or a ``--dilation-file``). Per link setting the summary gives the ratio to mp, the share of an
mp step spent communicating and each variant's exposed communication time, both measured as the step time on
the shaped link minus the step time unshaped (the same compute; what the link adds is what was not
hidden), and the modelled bytes of mp's two all-to-alls per rank and step with their time at the link
rate (:func:`_modelled_mp_comm`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ecorec.records import RunRecord
from ecorec.types import Algorithm
from ecorec.utils import atomic_write, environment_record

__all__ = ["VARIANTS", "main"]

VARIANTS: dict[str, dict[str, Any]] = {
    "dp": {"mode": "dp"},
    "mp": {"mode": "mp", "sharding": "greedy"},
    "bwp": {"mode": "bwp", "sharding": "greedy", "num_micro_batches": 4},
    "twp": {"mode": "twp", "sharding": "greedy", "reorder": False, "skew_degree": 0.0},
    "twp+reorder": {"mode": "twp", "sharding": "greedy", "reorder": True, "skew_degree": 0.0},
    "twp+reorder+slope": {"mode": "twp", "sharding": "greedy", "reorder": True, "skew_degree": 0.5},
    "torchrec": {"mode": "torchrec"},
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ecorec.bench train", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", help="Parquet dataset folder (default: generate a synthetic one)")
    p.add_argument("--tables", type=int, default=24, help="synthetic tables")
    p.add_argument("--rows-min", type=int, default=2_000)
    p.add_argument("--rows-max", type=int, default=400_000)
    p.add_argument("--mean-pooling", type=float, default=4.0)
    p.add_argument("--world", type=int, default=2, help="ranks (torchrun --nproc-per-node)")
    p.add_argument("--local-batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--warmup", type=int, default=4, help="steps left out of the timing")
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--algorithm", default="ecorec", choices=[a.value for a in Algorithm.tt()])
    p.add_argument("--tt-ranks", type=int, nargs="+", default=[16, 16])
    p.add_argument("--tt-min-rows", type=int, default=1000)
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--num-micro-keys", type=int, default=4)
    p.add_argument("--num-micro-uidx", type=int, default=1)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="keep run folders here (default: a temporary folder)")
    p.add_argument("--output", help="also write the JSON lines to this file (atomically)")
    c = p.add_argument_group("emulated cluster (python -m ecorec.cluster; needs root)")
    c.add_argument("--cluster", action="store_true", help="run on emulated nodes (world = nodes x ranks)")
    c.add_argument("--nodes", type=int, default=2)
    c.add_argument("--ranks-per-node", type=int, default=1)
    c.add_argument("--link-gbit", type=float, nargs="*", default=[], help="fixed link rates to run")
    c.add_argument("--profile", help="also run the dilated rate of this profile (needs --config)")
    c.add_argument("--config", help="YAML with the 'cluster:' section (profiles)")
    c.add_argument("--dilation-file", help="a dilation JSON (python -m ecorec.cluster dilation --output)")
    c.add_argument("--no-unshaped", action="store_true", help="skip the unshaped reference")
    return p


def _synthetic(path: Path, args: argparse.Namespace) -> None:
    from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

    samples = args.local_batch * args.world * (args.steps + 2)
    generate_synthetic_dataset(
        path,
        SyntheticConfig(
            num_tables=args.tables,
            num_samples=samples,
            rows_min=args.rows_min,
            rows_max=args.rows_max,
            mean_pooling=args.mean_pooling,
            num_dense=13,
            seed=args.seed,
        ),
        row_group_size=min(4096, args.local_batch * args.world),
        splits=None,
    )


def _run_config(args: argparse.Namespace, variant: str, dataset: Path, out: Path) -> dict[str, Any]:
    parallel = {
        **VARIANTS[variant],
        "world_size": args.world,
        "num_micro_keys": args.num_micro_keys,
        "num_micro_uidx": args.num_micro_uidx if args.algorithm == "ecorec" else 1,
    }
    if parallel["mode"] != "twp":
        parallel.pop("num_micro_keys")
        parallel.pop("num_micro_uidx")
    torchrec = parallel["mode"] == "torchrec"
    D = args.embedding_dim
    return {
        "run": {"seed": args.seed, "device": "cpu", "output_dir": str(out), "name": variant},
        "dataset": {"path": str(dataset), "prefetch": 2},
        "model": {
            "kind": "dlrm",
            "embedding_dim": D,
            "interaction": "cat",
            "dense_arch": [64, D],
            "over_arch": [128, 64, 1],
        },
        "embeddings": {
            "algorithm": Algorithm.NONE.value if torchrec else args.algorithm,
            "tt_ranks": list(args.tt_ranks),
            "tt_min_rows": args.tt_min_rows,
            "optimizer": "sgd",
            "lr": 0.05,
            "update": "fused",
        },
        "dense_optimizer": {"kind": "sgd", "lr": 0.05},
        "parallel": parallel,
        "train": {
            "global_batch_size": args.local_batch * args.world,
            "steps": args.steps,
            "eval_splits": [],
            "timing_warmup_steps": args.warmup,
            "timing_windows": args.windows,
            "log_every": 0,
        },
    }


def _launch(config: Path, world: int, cluster: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Prepare, then run the training: torchrun on loopback, or ``python -m ecorec.cluster run <cluster>``."""
    cmd = [sys.executable, "-m", "ecorec.train", "--config", str(config), "--prepare"]
    prep = subprocess.run(cmd, capture_output=True, text=True)
    if prep.returncode != 0:
        return prep
    if cluster is not None:
        cmd = [sys.executable, "-m", "ecorec.cluster", "run", *cluster, "--", "-m", "ecorec.train"]
        return subprocess.run([*cmd, "--config", str(config)], capture_output=True, text=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={world}",
        "-m",
        "ecorec.train",
        "--config",
        str(config),
    ]
    return subprocess.run(cmd, capture_output=True, text=True)


def _row(variant: str, repeat: int, record: RunRecord, link: str = "loopback") -> dict[str, Any]:
    m = record["metrics"]
    t = m["timing"]
    memory = m["peak_memory_bytes"]
    cluster = m.get("cluster") or {}
    return {
        "benchmark": "train",
        "variant": variant,
        "link": link,
        "link_gbit": cluster.get("link_gbit"),
        "cluster": cluster or None,
        "mode": m["mode"],
        "repeat": repeat,
        "world_size": m["world_size"],
        "global_batch_size": m["global_batch_size"],
        "samples_per_s": t["samples_per_s"],
        "window_samples_per_s_mean": t["window_samples_per_s_mean"],
        "window_samples_per_s_std": t["window_samples_per_s_std"],
        "iteration_median_ms": t["median_s"] * 1e3,
        "iteration_p90_ms": t["p90_s"] * 1e3,
        "peak_memory_mib_per_rank": [b / 2**20 for b in memory["per_rank"]],
        "peak_memory_mib_max": memory["max"] / 2**20,
        "memory_kind": memory["kind"],
        "tt_tables": m["num_tt_tables"],
        "tables": m["num_tables"],
        "final_loss": m["loss_curve"][-1],
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"{'link':<14} {'variant':<20} {'samples/s':>10} {'windows mean±std':>20} {'median ms':>10} "
    head += f"{'p90 ms':>8} {'peak MiB/rank':>20} {'vs mp':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        mp = [x["samples_per_s"] for x in rows if x["variant"] == "mp" and x["link"] == r["link"]]
        base = sum(mp) / len(mp) if mp else None
        ratio = f"{r['samples_per_s'] / base:.2f}x" if base else "-"
        mem = "/".join(f"{v:.0f}" for v in r["peak_memory_mib_per_rank"])
        window = f"{r['window_samples_per_s_mean']:.0f}±{r['window_samples_per_s_std']:.0f}"
        lines.append(
            f"{r['link']:<14} {r['variant']:<20} {r['samples_per_s']:>10.0f} {window:>20} "
            f"{r['iteration_median_ms']:>10.1f} "
            f"{r['iteration_p90_ms']:>8.1f} {mem:>20} {ratio:>6}"
        )
    return "\n".join(lines)


def _links(args: argparse.Namespace, work: Path) -> list[tuple[str, list[str] | None]]:
    """``(label, python -m ecorec.cluster run arguments)`` of every link setting (``None``: loopback)."""
    if not args.cluster:
        return [("loopback", None)]
    base = ["--nodes", str(args.nodes), "--ranks-per-node", str(args.ranks_per_node)]
    links: list[tuple[str, list[str] | None]] = [] if args.no_unshaped else [("unshaped", base)]
    links += [(f"{x:g}Gbit", [*base, "--link-gbit", str(x)]) for x in args.link_gbit]
    dilation = args.dilation_file
    if args.profile and not dilation:
        if not args.config:
            raise SystemExit("bench train: --profile needs --config (the YAML with cluster.profiles)")
        dilation = str(work / "dilation.json")
        cmd = [sys.executable, "-m", "ecorec.cluster", "dilation", "--config", args.config, "--profile",
               args.profile, "--ranks-per-node", str(args.ranks_per_node), "--output", dilation]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    if dilation:
        d = json.loads(Path(dilation).read_text())
        links.append((f"{d['profile']}@{d['link_gbit']:.3g}Gbit", [*base, "--dilation-file", dilation]))
    return links


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cluster:
        args.world = args.nodes * args.ranks_per_node
    with tempfile.TemporaryDirectory(prefix="ecorec-bench-train-") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dataset = Path(args.dataset) if args.dataset else work / "dataset"
        if not args.dataset and not (dataset / "metadata.json").is_file():
            print(f"generating a synthetic dataset ({args.tables} tables) in {dataset}", file=sys.stderr)
            _synthetic(dataset, args)
        rows: list[dict[str, Any]] = []
        links = _links(args, work)
        for repeat in range(args.repeats):
            for link, cluster in links:
                for variant in args.variants:
                    name = f"{variant}-{link}-{repeat}".replace("+", "_").replace("@", "_")
                    out = work / name
                    config = work / f"{name}.yaml"
                    config.write_text(
                        yaml.safe_dump(_run_config(args, variant, dataset, out), sort_keys=False)
                    )
                    print(f"running {variant} on {link} (repeat {repeat})", file=sys.stderr)
                    proc = _launch(config, args.world, cluster)
                    if proc.returncode != 0:
                        print(proc.stdout[-2000:] + proc.stderr[-4000:], file=sys.stderr)
                        print(f"{variant}: the run failed (exit {proc.returncode})", file=sys.stderr)
                        return 1
                    record_path = out / "record.json"
                    record = RunRecord.from_json(record_path.read_text(), str(record_path))
                    row = _row(variant, repeat, record, link)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    env = environment_record(world_size=args.world)
    summary = _summary(rows, args)
    print(_table(rows))
    for line in summary["lines"]:
        print(line)
    print(summary["goal"])
    if args.output:
        with atomic_write(args.output) as handle:
            for row in rows:
                handle.write(json.dumps({**row, "config": vars(args)}) + "\n")
            handle.write(json.dumps({"benchmark": "train", "summary": summary, "environment": env}) + "\n")
    return 0


def _mean(rows: list[dict[str, Any]], variant: str, link: str, key: str) -> float | None:
    values = [r[key] for r in rows if r["variant"] == variant and r["link"] == link]
    return sum(values) / len(values) if values else None


def _modelled_mp_comm(row: dict[str, Any], args: argparse.Namespace) -> tuple[int, float | None]:
    """Bytes one rank sends over its node's link per step in mp's two all-to-alls (pooled embeddings forward,
    their gradients backward; tables spread evenly), and their time in ms at the row's link rate when all
    ranks of a node share the link: ``2 * P * b * D * F * (R - P) / R * 4`` bytes per node."""
    R, P = row["world_size"], (args.ranks_per_node if args.cluster else row["world_size"])
    b = row["global_batch_size"] // R
    per_rank = int(2 * b * args.embedding_dim * row["tables"] * (R - P) / R * 4)
    gbit = row.get("link_gbit")
    return per_rank, (per_rank * P * 8 / (gbit * 1e9) * 1e3 if gbit else None)


def _summary(rows: list[dict[str, Any]], args: argparse.Namespace | None = None) -> dict[str, Any]:
    """Per link: samples/s ratio to mp, exposed communication (step on the link minus unshaped), mp's share of
    a step in communication, modelled mp bytes; the goal and the figure-16 ordering."""
    links = list(dict.fromkeys(r["link"] for r in rows))
    per_link: dict[str, Any] = {}
    lines = []
    for link in links:
        mp = _mean(rows, "mp", link, "samples_per_s")
        entry: dict[str, Any] = {"variants": {}}
        for variant in dict.fromkeys(r["variant"] for r in rows if r["link"] == link):
            step = _mean(rows, variant, link, "iteration_median_ms")
            sps = _mean(rows, variant, link, "samples_per_s")
            ref = _mean(rows, variant, "unshaped", "iteration_median_ms") if link != "unshaped" else None
            exposed = step - ref if step is not None and ref is not None else None
            entry["variants"][variant] = {
                "samples_per_s": sps,
                "vs_mp": sps / mp if sps and mp else None,
                "iteration_median_ms": step,
                "exposed_comm_ms": exposed,
                "exposed_comm_share": exposed / step if exposed is not None and step else None,
            }
        mp_row = next((r for r in rows if r["variant"] == "mp" and r["link"] == link), None)
        if mp_row is not None and args is not None:
            nbytes, ms = _modelled_mp_comm(mp_row, args)
            entry["mp_modelled_bytes_per_rank"], entry["mp_modelled_comm_ms"] = nbytes, ms
        v = entry["variants"]
        entry["mp_comm_share"] = v.get("mp", {}).get("exposed_comm_share")
        order = ["bwp", "twp", "twp+reorder", "twp+reorder+slope"]
        speeds = [v[name]["samples_per_s"] for name in order if name in v]
        entry["fig16_order_holds"] = (
            all(a < b for a, b in zip(speeds, speeds[1:])) if len(speeds) == len(order) else None
        )
        ratio = v.get("twp+reorder+slope", {}).get("vs_mp")
        entry["twp_over_mp"] = ratio
        per_link[link] = entry
        share = entry["mp_comm_share"]
        lines.append(
            f"{link}: twp+reorder+slope/mp {ratio:.2f}x" if ratio is not None else f"{link}: twp/mp n/a"
        )
        if share is not None:
            lines[-1] += f", mp step in communication {share:.0%}"
        if entry.get("mp_modelled_comm_ms") is not None:
            lines[-1] += f" (modelled {entry['mp_modelled_comm_ms']:.1f} ms of mp all-to-all per step)"
        twp = v.get("twp+reorder+slope", {})
        if twp.get("exposed_comm_ms") is not None:
            lines[-1] += (
                f", twp+reorder+slope exposed comm {twp['exposed_comm_ms']:.1f} of "
                f"{twp['iteration_median_ms']:.1f} ms"
            )
        if entry["fig16_order_holds"] is not None:
            lines[-1] += (
                f", bwp<twp<+reorder<+slope {'holds' if entry['fig16_order_holds'] else 'does not hold'}"
            )
    shaped = {k: e for k, e in per_link.items() if k not in ("unshaped", "loopback")}
    judged = {k: e for k, e in shaped.items() if (e["mp_comm_share"] or 0) >= 0.3 and e["twp_over_mp"]}
    main_ratio = next((e["twp_over_mp"] for e in per_link.values() if e["twp_over_mp"]), None)
    if judged:
        met = all(e["twp_over_mp"] >= 1.3 for e in judged.values())
        goal = (
            "goal twp+reorder+slope >= 1.3x mp where mp's communication share >= 30%: "
            + ", ".join(f"{k} {e['twp_over_mp']:.2f}x" for k, e in judged.items())
            + f" ({'met' if met else 'missed'})"
        )
    elif main_ratio is not None:
        verdict = "met" if main_ratio >= 1.3 else "missed"
        goal = f"goal twp+reorder+slope >= 1.3x mp: {main_ratio:.2f}x ({verdict})"
    else:
        goal = "goal twp+reorder+slope >= 1.3x mp: not measured (needs both variants)"
    return {
        "twp_over_mp": main_ratio,
        "goal": goal,
        "links": per_link,
        "lines": lines,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }
