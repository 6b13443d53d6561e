"""The placement figure: does a placer decide something the greedy baselines do not?

Three panels, one row of placers (about 1600 x 550 px):

1. **small tasks**: each placer's measured cost over the task's **measured optimum** (every distinct placement
   measured), mean over the exhaustive tasks with each task as a dot;
2. **large tasks**: each placer's measured cost over the task's **best greedy** placement, mean +- std over
   the test tasks it placed (failures under the cap annotated);
3. the **cost network**'s predicted against measured plan costs of every exhaustive placement (MAPE, mean
   signed error, Spearman per task in the title).

Beside the bars of panels 1 and 2, a grey band of +- the measurement's repeat-to-repeat relative IQR around 1
(the noise panel of :mod:`ecorec.bench.placement.summary`): a difference inside it is not a decision.

Inputs: the evaluation table, the exhaustive placements and the summary of
:mod:`ecorec.bench.placement.study` / :mod:`ecorec.bench.placement.summary`. Output: a PNG (+ PDF) and a CSV
of the bars (one row per placer).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import polars as pl

from ecorec.plots.style import new_figure, save_figure

_LEARNED_COLOR, _GREEDY_COLOR, _OTHER_COLOR = "#1b9e77", "#4c72b0", "#999999"
_LEARNED = ("dreamshard", "neuroshard", "neuroshard_cw")
_GREEDY = ("size_greedy", "dim_greedy", "lookup_greedy", "size_lookup_greedy", "greedy")


def devices_network(summary: Mapping[str, Any]) -> str:
    """The network the devices were measured on: the emulated cluster's label (profile, nodes, link rates)
    from the summary's settings, else ``loopback``."""
    cluster = (summary.get("settings") or {}).get("cluster") or {}
    return str(cluster.get("network", "loopback"))


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def headroom_mean(summary: Mapping[str, Any]) -> float | None:
    """Mean over the exhaustive tasks of the best greedy's cost over the optimum, minus one."""
    values = [e.get("best_greedy_headroom") for e in (summary.get("exhaustive") or {}).values()]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def placement_bars(summary: Mapping[str, Any]) -> pl.DataFrame:
    """The figure's bars as a table: one row per placer."""
    rows = []
    noise = _finite(summary.get("measurement_relative_iqr_mean"))
    headroom = headroom_mean(summary)
    for placer, s in summary["placers"].items():
        rows.append(
            {
                "placer": placer,
                "tasks": s["tasks"],
                "failed": s["failed"],
                "relative_to_optimum_mean": s.get("relative_to_optimum_mean"),
                "relative_to_optimum_max": s.get("relative_to_optimum_max"),
                "optimum_tasks": s.get("optimum_tasks", 0),
                "relative_to_best_greedy_mean": s["relative_to_best_greedy_mean"],
                "relative_to_best_greedy_std": s["relative_to_best_greedy_std"],
                "relative_tasks": s["relative_tasks"],
                "mean_plan_cost_ms": s["mean_plan_cost_ms"],
                "best_greedy": summary["best_greedy"],
                "best_greedy_headroom_mean": headroom,
                "measurement_relative_iqr": noise,
                "network": devices_network(summary),
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def _color(placer: str) -> str:
    return _LEARNED_COLOR if placer in _LEARNED else _GREEDY_COLOR if placer in _GREEDY else _OTHER_COLOR


def _noise_band(ax: Any, noise: float | None) -> None:
    ax.axvline(1.0, color="black", linewidth=0.8)
    if noise:
        ax.axvspan(1.0 - noise, 1.0 + noise, color="#bbbbbb", alpha=0.5, linewidth=0, label="measurement IQR")


def plot_placement(
    evaluation: pl.DataFrame,
    summary: Mapping[str, Any],
    png: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    title: str = "",
    exhaustive: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Draw the figure (PNG + PDF beside it) and write the CSV of the bars; returns the bars."""
    from ecorec.utils import atomic_path

    bars = placement_bars(summary)
    fig, (small, large, model) = new_figure(ncols=3, width=3.7, height=3.8)
    names = bars["placer"].to_list()
    y = list(range(len(names)))
    noise = _finite(summary.get("measurement_relative_iqr_mean"))
    colors = [_color(n) for n in names]
    # 1. small tasks: cost over the measured optimum
    _noise_band(small, noise)
    means = [m if m is not None else math.nan for m in bars["relative_to_optimum_mean"].to_list()]
    small.barh(y, [m - 1.0 if math.isfinite(m) else 0.0 for m in means], left=1.0, color=colors, height=0.6)
    for task in (summary.get("exhaustive") or {}).values():
        for placer, ratio in task.get("relative_to_optimum", {}).items():
            if placer in names:
                small.plot(ratio, names.index(placer), "o", color="black", markersize=2.5)
    small.set_yticks(y, names, fontsize=8)
    small.invert_yaxis()
    small.set_xlabel("measured cost / optimum")
    small.set_title(
        f"small tasks ({len(summary.get('exhaustive') or {})}, every placement measured)", fontsize=9
    )
    # 2. large tasks: cost over the best greedy
    _noise_band(large, noise)
    means = [m if m is not None else math.nan for m in bars["relative_to_best_greedy_mean"].to_list()]
    stds = [s if s is not None else 0.0 for s in bars["relative_to_best_greedy_std"].to_list()]
    large.barh(
        y,
        [m - 1.0 if math.isfinite(m) else 0.0 for m in means],
        left=1.0,
        xerr=stds,
        color=colors,
        height=0.6,
        capsize=2,
    )
    for i, (failed, tasks) in enumerate(zip(bars["failed"], bars["tasks"], strict=True)):
        if failed:
            large.annotate(
                f"{failed}/{tasks} failed",
                (0.99, i),
                xycoords=("axes fraction", "data"),
                fontsize=7,
                color="red",
                va="center",
                ha="right",
            )
    large.set_yticks(y, [""] * len(y))
    large.invert_yaxis()
    large.set_xlabel("measured cost / the task's best greedy")
    large.set_title(f"large tasks ({bars['relative_tasks'].max() or 0}): mean ± std", fontsize=9)
    if noise:
        large.legend(loc="lower right", fontsize=7, frameon=False)
    # 3. the cost network on the exhaustive placements
    error = (summary.get("cost_model_error") or {}).get("exhaustive", {})
    if exhaustive is not None and exhaustive.height and "predicted_cost" in exhaustive.columns:
        shown = exhaustive.filter(pl.col("predicted_cost").is_not_null())
        if shown.height:
            measured, predicted = shown["plan_cost"].to_list(), shown["predicted_cost"].to_list()
            model.scatter(measured, predicted, s=5, alpha=0.5, color="#4c72b0")
            low, high = min(measured + predicted), max(measured + predicted)
            model.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle="--")
    model.set_title(
        f"cost network, exhaustive placements: MAPE {error.get('plan_mape', math.nan):.3f},\n"
        f"mean signed error {error.get('plan_mean_signed_error', math.nan):+.3f}, "
        f"Spearman {error.get('plan_spearman', math.nan):.2f}",
        fontsize=8,
    )
    model.set_xlabel("measured plan cost (ms)")
    model.set_ylabel("predicted (ms)")
    network = devices_network(summary)
    noise_text = f"repeat-to-repeat IQR {noise:.1%}" if noise is not None else "no noise panel"
    fig.suptitle(f"{title}; devices on {network}; {noise_text}" if title else network, fontsize=9)
    save_figure(fig, png)
    with atomic_path(csv) as tmp:
        bars.write_csv(tmp)
    return bars
