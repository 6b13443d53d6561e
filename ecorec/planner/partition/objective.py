"""HET-GMP's cost model of a sample/row partition: the soft count, the communication-weight matrix, the
predicted cross-rank fetches per step, and the per-rank priority of non-owned rows.

Shapes: ``P`` ranks, ``N`` samples, ``E`` global rows, ``B`` per-rank batch size.

- ``comm_weights(P, g)``: ``mat[i, j]`` = 0 if ``i == j``, 0.1 if ``i // g == j // g`` (same node), else 1.
- ``soft_count_table(N, P, B, c_max)``: ``S[c]`` for ``c = 0..c_max``. With ``M = N // P`` samples per rank,
  ``S(c) = (M/B) * (1 - (1 - c/M)^B)`` is the expected number of the ``M/B`` iterations per epoch in which a
  rank holding ``c`` samples that reference a row must fetch it. For ``c >= M`` the original returns 1 (an
  artefact of its array initialisation, a discontinuity at ``M``); we saturate at ``M/B`` instead, the limit
  of the formula, which keeps ``S`` monotone.
- ``fetch_matrix``: ``cost[i, j] = (B*P/N) * sum_{e owned by j} S(c_{i,e})``, the expected number of rows rank
  ``i`` pulls from ``j`` per step; its off-diagonal row sums are the predicted fetches per step.
"""

from __future__ import annotations

import numpy as np

__all__ = ["comm_weights", "count_matrix", "fetch_matrix", "priority_lists", "soft_count_table"]


def comm_weights(world_size: int, gpus_per_node: int) -> np.ndarray:
    """``[P, P]`` float64 intra-/inter-node weight matrix (0 on the diagonal, 0.1 same node, 1 across)."""
    if world_size < 1 or gpus_per_node < 1:
        raise ValueError(f"world_size and gpus_per_node must be >= 1, got {world_size}, {gpus_per_node}")
    node = np.arange(world_size) // gpus_per_node
    mat = np.where(node[:, None] == node[None, :], 0.1, 1.0)
    np.fill_diagonal(mat, 0.0)
    return mat


def soft_count_table(num_samples: int, world_size: int, batch_size: int, c_max: int) -> np.ndarray:
    """``[c_max + 1]`` float64: ``S(c)`` for ``c = 0..c_max`` (saturating at ``M/B``, see the module doc)."""
    M = max(1, num_samples // world_size)
    B = max(1, batch_size)
    c = np.arange(c_max + 1, dtype=np.float64)
    frac = np.minimum(c / M, 1.0)
    return (M / B) * (1.0 - (1.0 - frac) ** B)


def count_matrix(
    indptr: np.ndarray, indices: np.ndarray, data_part: np.ndarray, P: int, E: int
) -> np.ndarray:
    """``[P, E]`` int32: ``cnt[p, e]`` = samples of partition ``p`` that reference row ``e``."""
    sample = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
    flat = data_part[sample].astype(np.int64) * E + indices
    return np.bincount(flat, minlength=P * E).reshape(P, E).astype(np.int32)


def fetch_matrix(
    cnt: np.ndarray, owner: np.ndarray, S: np.ndarray, num_samples: int, batch_size: int
) -> np.ndarray:
    """``[P, P]`` float64: expected rows rank ``i`` fetches from rank ``j`` per step (diagonal: local)."""
    P = cnt.shape[0]
    scale = batch_size * P / max(1, num_samples)
    out = np.zeros((P, P), dtype=np.float64)
    for i in range(P):
        out[i] = np.bincount(owner, weights=S[cnt[i]], minlength=P) * scale
    return out


def priority_lists(
    cnt: np.ndarray, owner: np.ndarray, S: np.ndarray, mat: np.ndarray, degrees: np.ndarray
) -> list[np.ndarray]:
    """Per rank ``i``: every row it does not own, by descending priority
    ``mat[i, owner(e)] * S(c_ie)^2 * (1/deg_e + 1/c_ie)`` (0 where ``c_ie = 0``), ties by ascending id (a
    stable, deterministic order)."""
    P, E = cnt.shape
    out = []
    ids = np.arange(E, dtype=np.int64)
    for i in range(P):
        c = cnt[i].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            prio = mat[i, owner] * S[cnt[i]] ** 2 * (1.0 / np.maximum(degrees, 1) + 1.0 / c)
        prio = np.where(c > 0, prio, 0.0)
        others = ids[owner != i]
        order = np.lexsort((others, -prio[others]))
        out.append(others[order])
    return out
