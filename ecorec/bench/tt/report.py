"""The benchmark's printed report: a table of the records, the all-tables sums
(:func:`ecorec.records.sum_over_tables`) and the paper's ratios."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ecorec.records import sum_over_tables


def _peak_mib(metrics: dict[str, Any]) -> float:
    """The forward+backward peak memory in MiB (NaN where it was not measured)."""
    peak = metrics.get("peak_forward_backward_bytes")
    return peak / 2**20 if peak is not None else float("nan")


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A readable table of the records."""
    header = (
        f"{'B':>6} {'table':<8} {'variant':<18} {'fwd ms':>8} {'fwd+bwd ms':>10} {'p90':>8} {'peak MiB':>9} "
        f"{'params MiB':>10} {'compr.':>8} {'U':>8} {'G':>8} {'GFLOP/s':>8} {'eff.':>6} "
        f"{'GB/s':>8} {'bw.':>5}"
    )
    lines = [header, "-" * len(header)]
    for record in records:
        m = record["metrics"]
        lines.append(
            f"{m['batch_size']:>6} {m.get('table') or '-':<8} {m['variant']:<18} "
            f"{m['forward_ms_median']:>8.2f} "
            f"{m['forward_backward_ms_median']:>10.2f} {m['forward_backward_ms_p90']:>8.2f} "
            f"{_peak_mib(m):>9.2f} {m['param_bytes'] / 2**20:>10.2f} "
            f"{m['compression_ratio']:>8.1f} {m['num_uniques']:>8.0f} {m['num_groups']:>8.0f} "
            f"{m.get('achieved_gflops', float('nan')):>8.2f} "
            f"{m.get('efficiency_vs_bmm', float('nan')):>6.2f} "
            f"{m['achieved_gbps']:>8.2f} {m['bandwidth_fraction']:>5.2f}"
        )
    return "\n".join(lines)


def format_all_tables(summaries: Sequence[dict[str, Any]]) -> str:
    """A table of :func:`sum_over_tables`: times summed over tables, peak memory the largest table's."""
    header = (
        f"{'B':>6} {'tables':>6} {'variant':<18} {'fwd ms':>9} {'fwd+bwd ms':>10} {'p10':>9} {'p90':>9} "
        f"{'mean':>9} {'max peak MiB':>12} {'params MiB':>10}"
    )
    lines = ["all tables (per-repeat times summed over tables, then median over repeats)", header]
    lines.append("-" * len(header))
    for m in summaries:
        lines.append(
            f"{m['batch_size']:>6} {m['num_tables']:>6} {m['variant']:<18} {m['forward_ms_median']:>9.2f} "
            f"{m['forward_backward_ms_median']:>10.2f} {m['forward_backward_ms_p10']:>9.2f} "
            f"{m['forward_backward_ms_p90']:>9.2f} {m['forward_backward_ms_mean']:>9.2f} "
            f"{_peak_mib(m):>12.2f} {m['param_bytes'] / 2**20:>10.2f}"
        )
    return "\n".join(lines)


def format_ratios(records: Sequence[dict[str, Any]]) -> str:
    """The paper's claims, measured: ecorec's fwd+bwd speed-up over fbtt and elrec (targets >= 3x and
    >= 1.3x) and its peak transient memory relative to fbtt's (target <= 1/4 at batch 16384), each ecorec
    variant against the baselines run with the same product strategy; ``ecorec_cuda`` also against the torch
    ``ecorec`` of the same micro-batching and ``nn_embedding_bag``. With several tables, over all tables
    (:func:`sum_over_tables`); with one, per record."""
    if len({record["metrics"].get("table") for record in records}) > 1:
        rows_in = sum_over_tables(records)
    else:
        rows_in = [record["metrics"] for record in records]
    lines = []
    by_batch: dict[int, dict[str, dict[str, Any]]] = {}
    for m in rows_in:
        by_batch.setdefault(m["batch_size"], {})[m["variant"]] = m
    for batch_size, rows in by_batch.items():
        for name, m in rows.items():
            if not name.startswith("ecorec"):
                continue
            suffix = name[name.index("/") :] if "/" in name else ""
            baselines = ["fbtt" + suffix, "elrec" + suffix]
            if name.startswith("ecorec_cuda"):  # the kernels against the same algorithm in torch
                baselines = [name.replace("ecorec_cuda", "ecorec", 1), *baselines, "nn_embedding_bag"]
            parts = []
            for baseline in baselines:
                other = rows.get(baseline)
                if other is not None:
                    speedup = other["forward_backward_ms_median"] / m["forward_backward_ms_median"]
                    forward = other["forward_ms_median"] / m["forward_ms_median"]
                    parts.append(f"{speedup:.2f}x faster fwd+bwd ({forward:.2f}x fwd) than {baseline}")
            fbtt = rows.get("fbtt" + suffix)
            if (
                fbtt is not None
                and m.get("peak_forward_backward_bytes")
                and fbtt.get("peak_forward_backward_bytes")
            ):
                ratio = m["peak_forward_backward_bytes"] / fbtt["peak_forward_backward_bytes"]
                parts.append(f"peak transient memory {ratio:.3f} of {'fbtt' + suffix}'s")
            scope = f" (all {m['num_tables']} tables)" if m.get("table") == "all" else ""
            lines.append(f"B={batch_size}{scope} {name}: " + "; ".join(parts))
    return "\n".join(lines)
