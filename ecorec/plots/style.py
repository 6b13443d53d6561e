"""Shared figure set-up: a headless backend and one look for every figure."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from ecorec.types import Algorithm, BenchVariant, ParallelMode  # noqa: E402
from ecorec.utils import atomic_path  # noqa: E402

#: One color per system/algorithm, stable across figures.
COLORS = {
    Algorithm.ECOREC: "#1b9e77",
    Algorithm.ELREC: "#d95f02",
    Algorithm.FBTT: "#7570b3",
    "ttrec": "#7570b3",  # a system name of config.yaml (TT-Rec = fbtt under mp)
    ParallelMode.TORCHREC: "#e7298a",
    "torchrec_tt": "#e6ab02",  # a system name of config.yaml (TorchRec DMP over TT tables)
    Algorithm.NONE: "#666666",
    BenchVariant.NN_EMBEDDING_BAG: "#666666",
    BenchVariant.FBGEMM_TBE: "#a6761d",
}


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.4) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig: plt.Figure, path: str | os.PathLike[str], also_pdf: bool = True) -> None:
    """Save ``fig`` to ``path`` (PNG, 150 dpi) and, if ``also_pdf``, beside it as PDF; atomically. The saved
    area is the figure's tight bounding box, so a legend outside the axes (:func:`legend_below`) is kept."""
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=150, format=target.suffix.lstrip(".") or "png", bbox_inches="tight")
    if also_pdf and target.suffix != ".pdf":
        with atomic_path(target.with_suffix(".pdf")) as tmp:
            fig.savefig(tmp, format="pdf", bbox_inches="tight")
    plt.close(fig)


def legend_below(fig: plt.Figure, ax: plt.Axes, ncol: int = 4) -> None:
    """One legend for the whole figure from ``ax``'s entries, centred below the axes (never over data)."""
    fig.tight_layout()
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize=8, frameon=False
    )
