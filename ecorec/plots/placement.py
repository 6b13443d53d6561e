"""The placement figure: measured plan cost of every placer relative to the best greedy baseline, and the cost
network's predicted against measured plan costs on the test placements.

Input: the evaluation table of :func:`ecorec.bench.placement_study.evaluate_placers` (one row per test task
and placer) and its :func:`~ecorec.bench.placement_study.summarize` summary. Output: a PNG (+ PDF) and a CSV
of the bars (placer, tasks, failed, mean/std of the per-task ratio, mean measured ms).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import polars as pl

from ecorec.plots.style import new_figure, save_figure


def devices_network(summary: Mapping[str, Any]) -> str:
    """The network the devices were measured on: the emulated cluster's label (profile, nodes, link rates)
    from the summary's settings, else ``loopback``."""
    cluster = (summary.get("settings") or {}).get("cluster") or {}
    return str(cluster.get("network", "loopback"))


def placement_bars(summary: Mapping[str, Any]) -> pl.DataFrame:
    """The figure's left panel as a table: one row per placer."""
    rows = []
    for placer, s in summary["placers"].items():
        rows.append(
            {
                "placer": placer,
                "tasks": s["tasks"],
                "failed": s["failed"],
                "relative_to_best_greedy_mean": s["relative_to_best_greedy_mean"],
                "relative_to_best_greedy_std": s["relative_to_best_greedy_std"],
                "relative_tasks": s["relative_tasks"],
                "mean_plan_cost_ms": s["mean_plan_cost_ms"],
                "best_greedy": summary["best_greedy"],
                "network": devices_network(summary),
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def plot_placement(
    evaluation: pl.DataFrame,
    summary: Mapping[str, Any],
    png: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    title: str = "",
) -> pl.DataFrame:
    """Draw the figure (PNG + PDF beside it) and write the CSV of the bars; returns the bars."""
    from ecorec.utils import atomic_path

    bars = placement_bars(summary)
    fig, (left, right) = new_figure(ncols=2, width=11.0, height=4.0)
    names = bars["placer"].to_list()
    means = [m if m is not None else 0.0 for m in bars["relative_to_best_greedy_mean"].to_list()]
    stds = [s if s is not None else 0.0 for s in bars["relative_to_best_greedy_std"].to_list()]
    positions = list(range(len(names)))
    left.bar(positions, means, yerr=stds, capsize=3, color="#4c72b0")
    left.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    for x, (mean, failed, tasks) in enumerate(zip(means, bars["failed"], bars["tasks"], strict=True)):
        if failed:
            left.annotate(
                f"{failed}/{tasks} failed", (x, mean), ha="center", va="bottom", fontsize=7, color="red"
            )
    left.set_xticks(positions, names, rotation=45, ha="right")
    left.set_ylabel(f"measured plan cost / {summary['best_greedy']}")
    left.set_title("test tasks: mean ± std over tasks")
    ok = evaluation.filter((pl.col("status") == "ok") & pl.col("predicted_cost").is_not_null())
    error = summary.get("cost_model_error_on_test", {})
    if ok.height:
        measured, predicted = ok["plan_cost"].to_list(), ok["predicted_cost"].to_list()
        right.scatter(measured, predicted, s=12, alpha=0.7)
        low, high = min(measured + predicted), max(measured + predicted)
        right.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle="--")
        right.set_title(
            f"cost network on test placements: MAPE {error.get('plan_mape', float('nan')):.2f}, "
            f"Spearman {error.get('plan_spearman', float('nan')):.2f}",
            fontsize=9,
        )
    right.set_xlabel("measured plan cost (ms)")
    right.set_ylabel("predicted plan cost (ms)")
    title = f"{title}, devices on {devices_network(summary)}" if title else devices_network(summary)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, png)
    with atomic_path(csv) as tmp:
        bars.write_csv(tmp)
    return bars
