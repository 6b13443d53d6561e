"""The reuse histogram of a dataset against the target locality statistics."""

from __future__ import annotations

import os

import numpy as np

from ecorec.data.locality_stats import LocalityStatsBlock, total_variation
from ecorec.plots.style import new_figure, save_figure


def bucket_labels(edges: tuple[int, ...]) -> list[str]:
    labels = [f"({lo},{hi}]" if hi - lo > 1 else f"{hi}" for lo, hi in zip(edges, edges[1:])]
    return [*labels, f">{edges[-1]}"]


def plot_reuse_histogram(
    ours: LocalityStatsBlock,
    target: LocalityStatsBlock,
    path: str | os.PathLike[str],
    *,
    ours_label: str = "dataset",
    target_label: str = "target",
) -> dict[str, float]:
    """Two panels: the share of distinct rows (left) and of indices (right) per access-count bucket, ours vs
    the target; returns the total variation distances shown in the titles."""
    if tuple(ours.edges) != tuple(target.edges):
        raise ValueError(f"bucket edges differ: {ours.edges} vs {target.edges}")
    labels = bucket_labels(tuple(ours.edges))
    x = np.arange(len(labels))
    fig, (left, right) = new_figure(ncols=2, width=6.0, height=3.6)
    tv = {}
    for ax, key, title in (
        (left, "col_size_hist", "distinct rows"),
        (right, "index_ratio", "indices"),
    ):
        a, b = np.asarray(getattr(ours, key)), np.asarray(getattr(target, key))
        tv[key] = total_variation(a, b)
        ax.bar(x - 0.2, a, width=0.4, label=f"{ours_label} (batch {ours.batch_size})")
        ax.bar(x + 0.2, b, width=0.4, label=f"{target_label} (batch {target.batch_size})")
        ax.set_xticks(x, labels, rotation=60, fontsize=7)
        ax.set_xlabel("accesses of a distinct row in one batch")
        ax.set_ylabel(f"share of {title}")
        ax.set_title(f"share of {title}: TV = {tv[key]:.3f}", fontsize=9)
        ax.legend(fontsize=7)
    save_figure(fig, path)
    return tv
