"""The paper's figures 10, 11, 12, 16 and table 1, from the rows of :mod:`ecorec.plots.records`.

Each ``plot_*`` function writes the figure (PNG, and a PDF beside it) and the CSV of exactly the numbers it
plots (values and error bars), atomically, and returns those rows. The order of ``systems`` / ``variants``
given is the order of bars and legend entries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ecorec.plots.style import COLORS, legend_below, new_figure, save_figure
from ecorec.types import BenchVariant
from ecorec.utils import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Lines under a figure's title computed from its plotted rows (the paper's claim, the regime).
Annotate = Callable[[list[dict[str, Any]]], str]

#: Legend names of the systems of the end-to-end and scaling figures (config `systems:` keys).
SYSTEM_LABELS = {
    "ecorec": "EcoRec (twp, reorder, slope)",
    "elrec": "EL-Rec (dp)",
    "ttrec": "TT-Rec (mp, round-robin)",
    "torchrec": "TorchRec (uncompressed)",
    "torchrec_tt": "TorchRec + TT sharder (ecorec)",
    "dp": "data parallel",
    "mp": "model parallel",
    "bwp": "batch-wise pipeline",
    "twp": "table-wise pipeline",
    "twp_reorder": "+ reordering",
}
#: Legend names of figure 16's bars: the ablation steps, cumulative.
ABLATION_LABELS = {
    "mp": "model parallel",
    "bwp": "batch-wise pipeline",
    "twp": "table-wise pipeline",
    "twp_reorder": "+ reordering",
    "ecorec": "+ reordering + slope",
}
#: Legend names of the kernel variants of figure 11 and table 1.
VARIANT_LABELS = {
    BenchVariant.ECOREC: "EcoRec",
    BenchVariant.ELREC: "EL-Rec",
    BenchVariant.FBTT: "FBTT (TT-Rec)",
    BenchVariant.NN_EMBEDDING_BAG: "uncompressed (nn.EmbeddingBag)",
    BenchVariant.FBGEMM_TBE: "uncompressed (fbgemm TBE)",
    BenchVariant.ECOREC_CUDA: "EcoRec (CUDA kernels)",
}
_SYSTEM_COLORS = {"mp": "#999999", "bwp": "#a6cee3", "twp": "#1f78b4", "twp_reorder": "#b2df8a"}


def _color(key: str, fallback_index: int) -> str:
    if key in COLORS:
        return COLORS[key]
    if key in _SYSTEM_COLORS:
        return _SYSTEM_COLORS[key]
    return f"C{fallback_index % 10}"


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """The plotted numbers, one row per point/bar, atomically."""
    with atomic_path(path) as tmp:
        pl.DataFrame(list(rows), infer_schema_length=None).write_csv(tmp)


def _select(points: Sequence[Mapping[str, Any]], systems: Sequence[str], **where: Any) -> list[Mapping]:
    """The points of ``systems`` (in that order) matching ``where``; each system exactly once."""
    out = []
    for system in systems:
        found = [p for p in points if p["system"] == system and all(p[k] == v for k, v in where.items())]
        if len(found) != 1:
            raise ValueError(f"expected one run of system {system!r} with {where}, found {len(found)}")
        out.append(found[0])
    return out


def _grouped_bars(ax, groups, systems, values, errors, labels) -> None:
    """Bars of ``values[g][s]`` grouped by ``groups`` (x), one color per system, error bars ``errors``."""
    x = np.arange(len(groups))
    width = 0.8 / max(len(systems), 1)
    for i, system in enumerate(systems):
        ax.bar(
            x + (i - (len(systems) - 1) / 2) * width,
            [values[g][i] for g in range(len(groups))],
            width,
            yerr=None if errors is None else [errors[g][i] for g in range(len(groups))],
            capsize=3,
            color=_color(system, i),
            label=labels.get(system, system),
        )
    ax.set_xticks(x, [str(g) for g in groups])


def _time_per_iter_bars(
    ax: Axes,
    tables: Sequence[int],
    systems: Sequence[str],
    grid: Sequence[Sequence[Mapping[str, Any]]],
    labels: Mapping[str, str],
) -> None:
    """Grouped bars of time per iteration (+- std) per table count; ``grid[g]``: the rows of ``tables[g]``,
    one per system in order."""
    _grouped_bars(
        ax,
        tables,
        systems,
        [[r["time_per_iter_ms"] for r in g] for g in grid],
        [[r["time_per_iter_ms_std"] for r in g] for g in grid],
        labels,
    )
    ax.set(xlabel="tables", ylabel="time per iteration (ms)")


def _finish(
    fig: Figure,
    rows: list[dict[str, Any]],
    png: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    *,
    title: str,
    title_ax: Axes | None = None,
    legend_ax: Axes | None = None,
    ncol: int = 4,
    annotate: Annotate | None = None,
) -> list[dict[str, Any]]:
    """The end of every ``plot_*``: ``title`` over the figure (or over ``title_ax``), with the lines of
    ``annotate(rows)`` under it (the paper's claim and the regime), the legend of ``legend_ax``'s entries
    below (none without it), the figure at ``png`` (+ PDF) and ``rows`` at ``csv``; returns ``rows``."""
    if annotate is not None:
        note = annotate(rows)
        title = f"{title}\n{note}" if title and note else (title or note)
    if title:
        if title_ax is None:
            fig.suptitle(title, fontsize=9)
        else:
            title_ax.set_title(title, fontsize=9)
    if legend_ax is not None:
        legend_below(fig, legend_ax, ncol=ncol)
    save_figure(fig, png)
    write_csv(rows, csv)
    return rows


def plot_end_to_end(
    points: Sequence[Mapping[str, Any]],
    systems: Sequence[str],
    tables: Sequence[int],
    png: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    *,
    title: str = "",
    annotate: Annotate | None = None,
) -> list[dict[str, Any]]:
    """Figure 10: time per iteration (window mean +- std) and peak memory (max over ranks) per system, for
    each table count; two panels of grouped bars."""
    rows = []
    for t in tables:
        for p in _select(points, systems, tables=t):
            rows.append({k: p[k] for k in _END_TO_END_COLUMNS})
    fig, (left, right) = new_figure(ncols=2, width=5.2, height=3.6)
    grid = [[r for r in rows if r["tables"] == t] for t in tables]
    _time_per_iter_bars(left, tables, systems, grid, SYSTEM_LABELS)
    _grouped_bars(
        right, tables, systems, [[r["peak_memory_mib"] for r in g] for g in grid], None, SYSTEM_LABELS
    )
    right.set(xlabel="tables", ylabel="peak step memory per rank (MiB)")
    return _finish(
        fig, rows, png, csv, title=title, legend_ax=left, ncol=min(len(systems), 4), annotate=annotate
    )


_END_TO_END_COLUMNS = (
    "system",
    "mode",
    "algorithm",
    "tables",
    "world_size",
    "local_batch_size",
    "global_batch_size",
    "time_per_iter_ms",
    "time_per_iter_ms_std",
    "num_windows",
    "step_ms_median",
    "step_ms_p10",
    "step_ms_p90",
    "throughput_samples_per_s",
    "throughput_samples_per_s_std",
    "peak_memory_mib",
    "peak_memory_kind",
    "state_memory_mib",
    "rss_memory_mib",
    "val_auroc",
    "cluster_emulated",
    "cluster_nodes",
    "cluster_link_gbit",
    "cluster_profile",
    "cluster_dilation",
    "cluster_dilation_tt",
    "cluster_dilation_gemm",
    "cluster_tt_weight",
    "cluster_target_world",
    "cluster_fanout",
    "comm_exposed_share",
    "comm_total_share",
    "target_time_per_iter_ms",
    "target_samples_per_s",
)


def plot_scaling(
    points: Sequence[Mapping[str, Any]],
    systems: Sequence[str],
    worlds: Sequence[int],
    png: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    *,
    title: str = "",
    annotate: Annotate | None = None,
) -> list[dict[str, Any]]:
    """Figure 12 (weak scaling, fixed local batch): global throughput and time per iteration vs world size."""
    rows = []
    for system in systems:
        for w in worlds:
            (p,) = _select(points, [system], world_size=w)
            rows.append({k: p[k] for k in _END_TO_END_COLUMNS})
    # on the emulated cluster each world has its own dilation (ranks share this machine's cores): plot the
    # target's equivalent (this machine's time x the dilation) so that the points compare like for like
    target = all(math.isfinite(r.get("target_samples_per_s", math.nan)) for r in rows)
    fig, (left, right) = new_figure(ncols=2, width=5.2, height=3.6)
    for i, system in enumerate(systems):
        mine = [r for r in rows if r["system"] == system]
        style = {
            "color": _color(system, i),
            "marker": "o",
            "capsize": 3,
            "label": SYSTEM_LABELS.get(system, system),
        }
        scale = [r["target_samples_per_s"] / r["throughput_samples_per_s"] if target else 1.0 for r in mine]
        left.errorbar(
            worlds,
            [r["throughput_samples_per_s"] * k for r, k in zip(mine, scale)],
            yerr=[r["throughput_samples_per_s_std"] * k for r, k in zip(mine, scale)],
            **style,
        )
        right.errorbar(
            worlds,
            [r["time_per_iter_ms"] / k for r, k in zip(mine, scale)],
            yerr=[r["time_per_iter_ms_std"] / k for r, k in zip(mine, scale)],
            **style,
        )
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(worlds), [str(w) for w in worlds])
        ax.set_xlabel("ranks (world size)")
    what = "target-equivalent " if target else ""
    left.set_ylabel(f"{what}throughput (samples/s, global)")
    right.set_ylabel(f"{what}time per iteration (ms)")
    return _finish(
        fig, rows, png, csv, title=title, legend_ax=left, ncol=min(len(systems), 4), annotate=annotate
    )


def plot_ablation(
    points: Sequence[Mapping[str, Any]],
    systems: Sequence[str],
    tables: Sequence[int],
    png: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    *,
    title: str = "",
    annotate: Annotate | None = None,
) -> list[dict[str, Any]]:
    """Figure 16: time per iteration of the pipeline strategies, cumulative steps left to right, per table
    count; the label of each bar also gives its speed-up over the first system."""
    rows = []
    for t in tables:
        chosen = _select(points, systems, tables=t)
        base = chosen[0]["time_per_iter_ms"]
        for p in chosen:
            row = {k: p[k] for k in _END_TO_END_COLUMNS}
            row["speedup_vs_first"] = base / p["time_per_iter_ms"]
            rows.append(row)
    fig, (ax,) = new_figure(ncols=1, width=6.0, height=3.6)
    grid = [[r for r in rows if r["tables"] == t] for t in tables]
    _time_per_iter_bars(ax, tables, systems, grid, ABLATION_LABELS)
    return _finish(fig, rows, png, csv, title=title, title_ax=ax, legend_ax=ax, ncol=2, annotate=annotate)


def plot_kernels(
    totals: Sequence[Mapping[str, Any]],
    variants: Sequence[str],
    png: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    *,
    title: str = "",
    annotate: Annotate | None = None,
) -> list[dict[str, Any]]:
    """Figure 11: forward and forward+backward time summed over the tables vs batch size (log-log), median of
    the repeats with p10-p90 error bars, one line per variant."""
    rows = [
        dict(r) for v in variants for r in sorted(totals, key=lambda r: r["batch_size"]) if r["variant"] == v
    ]
    missing = [v for v in variants if not any(r["variant"] == v for r in rows)]
    if missing:
        raise ValueError(f"no benchmark records of variant(s) {missing}")
    fig, axes = new_figure(ncols=2, width=5.0, height=3.6)
    for ax, key, name in zip(axes, ("forward_ms", "forward_backward_ms"), ("forward", "forward + backward")):
        for i, variant in enumerate(variants):
            mine = [r for r in rows if r["variant"] == variant]
            median = np.array([r[f"{key}_median"] for r in mine])
            err = np.array(
                [
                    [m - r[f"{key}_p10"] for m, r in zip(median, mine)],
                    [r[f"{key}_p90"] - m for m, r in zip(median, mine)],
                ]
            )
            ax.errorbar(
                [r["batch_size"] for r in mine],
                median,
                yerr=err,
                marker="o",
                capsize=3,
                color=_color(variant, i),
                label=VARIANT_LABELS.get(variant, variant),
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set(xlabel="batch size", ylabel=f"{name} time, all tables (ms)")
        batch_sizes = sorted({r["batch_size"] for r in rows})
        ax.set_xticks(batch_sizes, [f"{b // 1024}K" if b >= 1024 else str(b) for b in batch_sizes])
    return _finish(
        fig, rows, png, csv, title=title, legend_ax=axes[0], ncol=min(len(variants), 4), annotate=annotate
    )


def plot_memory_table(
    rows: Sequence[Mapping[str, Any]],
    variants: Sequence[str],
    png: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    *,
    title: str = "",
    annotate: Annotate | None = None,
) -> list[dict[str, Any]]:
    """Table 1 as an image and a CSV: per batch size and variant, nnz, parameter bytes, forward peak and
    forward+backward peak in GiB, and whether the row was measured or computed."""
    ordered = [
        dict(r)
        for b in sorted({r["batch_size"] for r in rows})
        for v in variants
        for r in rows
        if r["batch_size"] == b and r["variant"] == v
    ]
    gib = 2.0**30
    cells = [
        [
            VARIANT_LABELS.get(r["variant"], r["variant"]),
            f"{r['batch_size']:,}",
            f"{r['nnz']:,.0f}",
            _gib(r["param_bytes"] / gib),
            _gib(r["peak_forward_bytes"] / gib),
            _gib(r["peak_forward_backward_bytes"] / gib),
            r["source"].split(" (")[0],  # "measured" / "computed"; the CSV says how it was measured
        ]
        for r in ordered
    ]
    fig, (ax,) = new_figure(ncols=1, width=10.0, height=0.6 + 0.3 * (len(cells) + 1))
    ax.axis("off")
    table = ax.table(
        cellText=cells,
        colLabels=["model", "B", "nnz", "param (GiB)", "fwd peak (GiB)", "fwd+bwd peak (GiB)", "source"],
        loc="center",
        cellLoc="right",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(7)))
    table.scale(1.0, 1.3)
    return _finish(fig, ordered, png, csv, title=title, title_ax=ax, annotate=annotate)


def _gib(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.4f}" if value < 1 else f"{value:.3f}"
