"""The HET-GMP figure (rule ``hetgmp_figure``): partitioners x store_rate x bound, from run records only.

``hetgmp_rows(records, headers)`` reduces each run's ``record.json`` (``metrics.hetgmp``, timing, AUROC) and
its partition's header to one row; ``plot_hetgmp(rows, png, csv)`` draws three metrics (remote rows per step
relative to the random partition at the same store_rate and bound, samples/s, validation AUROC), one column
per bound, bars per partitioner grouped by store_rate, and writes the CSV of exactly the plotted numbers.
"""

from __future__ import annotations

import csv as csv_module
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ecorec.plots.records import train_point
from ecorec.plots.style import legend_below, save_figure
from ecorec.utils import atomic_write

__all__ = ["hetgmp_rows", "plot_hetgmp"]

PARTITIONERS = ("random", "hetgmp", "metis", "hypergraph")
COLUMNS = (
    "partitioner",
    "store_rate",
    "bound",
    "remote_rows_per_step",
    "remote_rows_vs_random",
    "remote_bytes_per_step",
    "predicted_remote_rows_per_step",
    "samples_per_s",
    "samples_per_s_std",
    "val_auroc",
    "max_staleness",
    "mirror_bytes_per_rank",
    "partition_seconds",
    "comm_exposed_share",
    "comm_total_share",
)


def hetgmp_rows(
    records: Sequence[Mapping[str, Any]], headers: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per run; ``headers``: partitioner -> its partition header (``partition_seconds``)."""
    rows = []
    for record in records:
        h = record["metrics"].get("hetgmp")
        if h is None:
            raise ValueError(f"{record.get('source', '<record>')}: not a hetgmp run (no metrics.hetgmp)")
        cfg = record["config"]["hetgmp"]
        point = train_point(record)
        method = h["partition"]
        rows.append(
            {
                "partitioner": method,
                "store_rate": float(cfg["store_rate"]),
                "bound": int(cfg["bound"]),
                "remote_rows_per_step": h["remote_rows_per_step_mean"],
                "remote_bytes_per_step": h["remote_bytes_per_step_mean"],
                "predicted_remote_rows_per_step": float(np.mean(h["predicted_remote_rows_per_step"])),
                "samples_per_s": point["throughput_samples_per_s"],
                "samples_per_s_std": point["throughput_samples_per_s_std"],
                "val_auroc": point["val_auroc"],
                "max_staleness": h["max_staleness"],
                "mirror_bytes_per_rank": float(np.mean(h["mirror_bytes"])),
                "partition_seconds": float(headers.get(method, {}).get("partition_seconds", math.nan)),
                "comm_exposed_share": point["comm_exposed_share"],
                "comm_total_share": point["comm_total_share"],
            }
        )
    base = {
        (r["store_rate"], r["bound"]): r["remote_rows_per_step"] for r in rows if r["partitioner"] == "random"
    }
    for r in rows:
        ref = base.get((r["store_rate"], r["bound"]))
        r["remote_rows_vs_random"] = r["remote_rows_per_step"] / ref if ref else math.nan
    order = {p: i for i, p in enumerate(PARTITIONERS)}
    rows.sort(key=lambda r: (r["bound"], r["store_rate"], order.get(r["partitioner"], 99)))
    return rows


def plot_hetgmp(
    rows: Sequence[Mapping[str, Any]],
    png: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    title: str = "",
) -> list[dict[str, Any]]:
    """Draw the figure and write the CSV (atomically); returns the rows."""
    bounds = sorted({r["bound"] for r in rows})
    rates = sorted({r["store_rate"] for r in rows})
    methods = [p for p in PARTITIONERS if any(r["partitioner"] == p for r in rows)]
    metrics = (
        ("remote_rows_vs_random", "remote rows / step\n(relative to random)"),
        ("samples_per_s", "samples / s"),
        ("val_auroc", "validation AUROC"),
    )
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(
        len(metrics), len(bounds), figsize=(4.2 * len(bounds), 2.8 * len(metrics)), squeeze=False
    )
    width = 0.8 / max(1, len(rates))
    for j, bound in enumerate(bounds):
        for i, (key, label) in enumerate(metrics):
            ax = grid[i][j]
            for k, rate in enumerate(rates):
                values = [
                    next(
                        (
                            r[key]
                            for r in rows
                            if r["partitioner"] == m and r["bound"] == bound and r["store_rate"] == rate
                        ),
                        math.nan,
                    )
                    for m in methods
                ]
                ax.bar(
                    np.arange(len(methods)) + (k - (len(rates) - 1) / 2) * width,
                    values,
                    width,
                    label=f"store_rate {rate:g}",
                )
            ax.set_xticks(np.arange(len(methods)), methods, fontsize=8)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == 0:
                ax.set_title(f"bound {bound}", fontsize=9)
            if key == "val_auroc":
                finite = [r[key] for r in rows if math.isfinite(r[key])]
                if finite:
                    ax.set_ylim(max(0.0, min(finite) - 0.02), min(1.0, max(finite) + 0.02))
    if title:
        fig.suptitle(title, fontsize=9)
    legend_below(fig, grid[-1][0], ncol=len(rates))
    save_figure(fig, png)
    with atomic_write(csv, newline="") as handle:
        writer = csv_module.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return [dict(r) for r in rows]
