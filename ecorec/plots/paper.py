"""The paper's figures from their result files: one entry point per figure, used by rules/figures.smk.

``make_figure(name, inputs, png, csv, settings)`` reads the records of ``inputs`` (training runs' record.json
or kernel benchmarks' JSON lines), reduces them with :mod:`ecorec.plots.records` and draws them with
:mod:`ecorec.plots.figures`; ``settings`` is the figure's config section (it fixes the order of systems and
variants). The title names the machine, from the records' environment.
"""

from __future__ import annotations

import functools
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from ecorec.plots.claims import claim_of
from ecorec.plots.figures import plot_ablation, plot_end_to_end, plot_kernels, plot_memory_table, plot_scaling
from ecorec.plots.records import (
    cluster_summary,
    environment_summary,
    kernel_totals,
    memory_rows,
    read_records,
    train_point,
)

Path = str | os.PathLike[str]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _training_title(records: Sequence[Mapping[str, Any]], what: str) -> str:
    cluster = cluster_summary(records)
    return f"{what} - {environment_summary(records)}" + (f"\n{cluster}" if cluster else "")


#: The training figures: plot function, the grid key of the x axis, and the title's layout words.
_TRAINING = {
    "fig10": (plot_end_to_end, "tables", "{world} ranks, local batch {batch}"),
    "fig12": (plot_scaling, "worlds", "{tables} tables, local batch {batch}"),
    "fig16": (plot_ablation, "tables", "{world} ranks, local batch {batch}"),
}


def _wrap(text: str, width: int = 120) -> str:
    return "\n".join(textwrap.wrap(text, width)) if text else ""


def comm_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """The measured communication share of each system's largest point (exposed / total), for titles."""
    parts = []
    for system in dict.fromkeys(r["system"] for r in rows):
        mine = [r for r in rows if r["system"] == system]
        point = max(mine, key=lambda r: (r["tables"], r["world_size"]))
        exposed, total = point.get("comm_exposed_share", math.nan), point.get("comm_total_share", math.nan)
        if math.isfinite(exposed) or math.isfinite(total):
            parts.append(f"{system} {_pct(exposed)}/{_pct(total)}")
    return "communication, exposed/total share of a step: " + ", ".join(parts) if parts else ""


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%" if math.isfinite(value) else "n/a"


def _annotate(name: str, settings: Mapping[str, Any], note: str) -> Any:
    def annotate(rows: list[dict[str, Any]]) -> str:
        lines = [claim_of(name, rows, settings).line()]
        if name in _TRAINING:
            lines.append(comm_line(rows))
        lines += note.splitlines()
        return "\n".join(_wrap(line) for line in lines if line)

    return annotate


def training_figure(
    name: str, inputs: Sequence[Path], png: Path, csv: Path, settings: Mapping[str, Any], note: str = ""
) -> list[dict[str, Any]]:
    """Figures 10, 12 and 16: one point per run record (:func:`train_point`), per system and grid value."""
    plot, axis, layout = _TRAINING[name]
    records = read_records(inputs)
    points = [train_point(r) for r in records]
    title = _training_title(records, layout.format(**settings))
    return plot(
        points,
        settings["systems"],
        _as_list(settings[axis]),
        png,
        csv,
        title=title,
        annotate=_annotate(name, settings, note),
    )


def _bench_variants(records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> list[str]:
    """The configured variants in config order, with ecorec's micro-batched ones (``ecorec_m4``) after it,
    keeping only those with records (a baseline skipped by the benchmark is left out)."""
    present = {r["metrics"]["variant"] for r in records}
    order: list[str] = []
    for variant in settings["variants"]:
        order += [variant] + sorted(v for v in present if v.startswith(f"{variant}_m"))
    return [v for v in order if v in present]


def figure11(
    inputs: Sequence[Path], png: Path, csv: Path, settings: Mapping[str, Any], note: str = ""
) -> list[dict[str, Any]]:
    records = read_records(inputs)
    tables = sorted({str(r["metrics"].get("table")) for r in records})
    title = f"{len(tables)} largest tables, D={settings['embedding_dim']}, ranks {settings['tt_ranks']} - "
    title += environment_summary(records)
    variants = _bench_variants(records, settings)
    annotate = _annotate("fig11", settings, note)
    return plot_kernels(kernel_totals(records), variants, png, csv, title=title, annotate=annotate)


def table1(
    inputs: Sequence[Path], png: Path, csv: Path, settings: Mapping[str, Any], note: str = ""
) -> list[dict[str, Any]]:
    records = read_records(inputs)
    rows = memory_rows(records)
    variants = _bench_variants(records, settings)
    variants += [
        v for v in ("nn_embedding_bag",) if v not in variants and any(r["variant"] == v for r in rows)
    ]
    title = f"N = {settings['num_embeddings']:,} rows, D = {settings['embedding_dim']}, ranks "
    title += f"{settings['tt_ranks']} - {environment_summary(records)}"
    annotate = _annotate("table1", settings, note)
    return plot_memory_table(rows, variants, png, csv, title=title, annotate=annotate)


FIGURES = {
    **{name: functools.partial(training_figure, name) for name in _TRAINING},
    "fig11": figure11,
    "table1": table1,
}


def make_figure(
    name: str, inputs: Sequence[Path], png: Path, csv: Path, settings: Mapping[str, Any], note: str = ""
) -> list[dict[str, Any]]:
    """Draw figure ``name`` (a key of :data:`FIGURES`) from ``inputs``; returns the rows of ``csv``. Under the
    title: the paper's claim and whether it holds here (:mod:`ecorec.plots.claims`), the measured
    communication share (training figures) and ``note`` (the modelled regime, from the workflow)."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    return FIGURES[name](inputs, png, csv, settings, note)
