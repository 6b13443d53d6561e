"""HET-GMP's alternating data / embedding refinement (``partition.cc``), made deterministic.

The original scores every sample (then every row) in parallel with unsynchronised counters, so its result
depends on thread timing. Here a round visits samples (then rows) sequentially in id order, each scored
against the counters as every earlier move left them (numba-compiled loops), so the same seed gives the same
partition on every machine. Scoring a whole block of items against frozen counters instead (vectorised
numpy) was tried and fails: items that look alike all move to the same rank at once, and the partition
oscillates.

Scores (``k`` a candidate rank, counters exclude the item itself):

- sample ``s``: ``alpha * |D_k| - sum_{e in s} [S(c_ke + 1) - S(c_ke)] * mat[k, owner(e)]``,
  ``alpha = -100 / (N/P)``;
- row ``e``: ``beta * |E_k| - sum_j mat[j, k] * S(c_je) - 0.01 * W_k * S(deg_e)``, ``beta = -100 / (E/P)``,
  ``W_k`` the expected remote requests rank ``k`` serves per step (kept up to date as rows move).

Balance: the linear penalties above are the original's soft balance; ``hard_cap`` (a factor >= 1) also
forbids moves into a rank that already holds ``hard_cap * N/P`` samples (``hard_cap * E/P`` rows). An item
moves only when its best score beats staying strictly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numba
import numpy as np

from ecorec.planner.partition.graph import SampleRowGraph
from ecorec.planner.partition.objective import count_matrix, fetch_matrix

__all__ = ["RefineState", "refine"]

_LOG = logging.getLogger(__name__)


@dataclass
class RefineState:
    """The partition being refined: ``data [N]``, ``owner [E]`` (int64 ranks) and ``cnt [P, E]`` (int32)."""

    data: np.ndarray
    owner: np.ndarray
    cnt: np.ndarray


def _caps(total: int, P: int, hard_cap: float | None) -> int:
    """The hard cap in items (-1: none)."""
    if hard_cap is None:
        return -1
    if hard_cap < 1.0:
        raise ValueError(f"hard_cap must be >= 1 (a multiple of the balanced size), got {hard_cap}")
    return int(np.ceil(hard_cap * total / P))


@numba.njit(cache=True)
def _refine_data(indptr, indices, data, owner, cnt, S, mat, alpha, cap):  # type: ignore[no-untyped-def]
    """One pass over the samples in id order; moves ``data`` and ``cnt`` in place; returns the moves."""
    P = cnt.shape[0]
    N = indptr.size - 1
    sizes = np.zeros(P, dtype=np.int64)
    for s in range(N):
        sizes[data[s]] += 1
    score = np.empty(P)
    moved = 0
    for s in range(N):
        cur = data[s]
        for k in range(P):
            score[k] = alpha * (sizes[k] - (1 if k == cur else 0))
        for j in range(indptr[s], indptr[s + 1]):
            e = indices[j]
            o = owner[e]
            for k in range(P):
                c = cnt[k, e] - (1 if k == cur else 0)
                score[k] -= (S[c + 1] - S[c]) * mat[k, o]
        best = cur
        for k in range(P):
            if score[k] > score[best] and (cap < 0 or sizes[k] < cap):
                best = k
        if best != cur:
            for j in range(indptr[s], indptr[s + 1]):
                cnt[cur, indices[j]] -= 1
                cnt[best, indices[j]] += 1
            sizes[cur] -= 1
            sizes[best] += 1
            data[s] = best
            moved += 1
    return moved


@numba.njit(cache=True)
def _refine_embed(owner, cnt, degrees, S, mat, beta, cap, scale):  # type: ignore[no-untyped-def]
    """One pass over the referenced rows in id order; moves ``owner`` in place; returns the moves."""
    P, E = cnt.shape
    sizes = np.zeros(P, dtype=np.int64)
    W = np.zeros(P)
    for e in range(E):
        sizes[owner[e]] += 1
        for i in range(P):
            if i != owner[e]:
                W[owner[e]] += scale * S[cnt[i, e]]
    Sc = np.empty(P)
    score = np.empty(P)
    moved = 0
    for e in range(E):
        if degrees[e] == 0:
            continue
        cur = owner[e]
        total = 0.0
        for j in range(P):
            Sc[j] = S[cnt[j, e]]
            total += Sc[j]
        load = 0.01 * S[degrees[e]]
        for k in range(P):
            fetch = 0.0
            for j in range(P):
                fetch += mat[j, k] * Sc[j]
            score[k] = beta * (sizes[k] - (1 if k == cur else 0)) - fetch - load * W[k]
        best = cur
        for k in range(P):
            if score[k] > score[best] and (cap < 0 or sizes[k] < cap):
                best = k
        if best != cur:
            W[cur] -= scale * (total - Sc[cur])
            W[best] += scale * (total - Sc[best])
            sizes[cur] -= 1
            sizes[best] += 1
            owner[e] = best
            moved += 1
    return moved


def refine(
    graph: SampleRowGraph,
    data: np.ndarray,
    owner: np.ndarray,
    *,
    world_size: int,
    S: np.ndarray,
    mat: np.ndarray,
    batch_size: int,
    rerun: int,
    hard_cap: float | None = None,
) -> tuple[RefineState, list[float]]:
    """Run ``rerun`` rounds of (refine data, refine rows) from the initial ``data [N]`` / ``owner [E]``.

    Returns the final state and the weighted objective ``sum_ij cost[i, j] * mat[i, j]`` before the first
    round and after each round.
    """
    if rerun < 0:
        raise ValueError(f"rerun must be >= 0, got {rerun}")
    P, N, E = world_size, graph.num_samples, graph.num_rows
    st = RefineState(
        data.astype(np.int64).copy(),
        owner.astype(np.int64).copy(),
        count_matrix(graph.indptr, graph.indices, data, P, E),
    )
    degrees = graph.degrees()
    scale = batch_size * P / max(1, N)
    alpha = -100.0 / max(1.0, N / P)
    beta = -100.0 / max(1.0, E / P)
    data_cap, row_cap = _caps(N, P, hard_cap), _caps(E, P, hard_cap)

    def objective() -> float:
        return float((fetch_matrix(st.cnt, st.owner, S, N, batch_size) * mat).sum())

    history = [objective()]
    for r in range(rerun):
        md = _refine_data(graph.indptr, graph.indices, st.data, st.owner, st.cnt, S, mat, alpha, data_cap)
        me = _refine_embed(st.owner, st.cnt, degrees, S, mat, beta, row_cap, scale)
        history.append(objective())
        _LOG.info("round %d: %d samples and %d rows moved, objective %.4g", r, md, me, history[-1])
    return st, history
