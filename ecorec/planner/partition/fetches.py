"""Exact remote-row counts of a partition on a concrete batch schedule (the oracle of the measured counts)."""

from __future__ import annotations

import numpy as np

from ecorec.data.partitioned import rank_step_samples
from ecorec.planner.partition.graph import SampleRowGraph

__all__ = ["count_remote_fetches", "rank_step_samples"]


def count_remote_fetches(
    graph: SampleRowGraph,
    data: np.ndarray,
    owner: np.ndarray,
    *,
    world_size: int,
    batch_size: int,
    steps: int,
    seed: int = 0,
    shuffle: bool = False,
    mirrors: list[np.ndarray] | None = None,
) -> np.ndarray:
    """``[steps, P]`` int64: distinct rows rank ``r``'s step-``t`` batch references that it neither owns nor
    mirrors. Without mirrors (``store_rate = 0``) these are exactly the rows whose values the ``hetgmp`` mode
    fetches at that step. Batches follow ``rank_step_samples`` over ``data``'s per-rank sample lists.
    """
    P = world_size
    out = np.zeros((steps, P), dtype=np.int64)
    for r in range(P):
        mine = np.flatnonzero(data == r)
        local = owner == r
        if mirrors is not None and len(mirrors[r]):
            local = local.copy()
            local[mirrors[r]] = True
        for t in range(steps):
            ids = rank_step_samples(mine, batch_size, t, rank=r, seed=seed, shuffle=shuffle)
            rows = np.unique(
                np.concatenate([graph.indices[graph.indptr[s] : graph.indptr[s + 1]] for s in ids])
            )
            out[t, r] = int((~local[rows]).sum())
    return out
