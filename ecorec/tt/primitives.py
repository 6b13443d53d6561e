"""Tensor primitives shared by the three TT algorithms (pure torch).

Every algorithm is built from the same few pieces, so a benchmark compares the algorithms' work, not their
implementations:

- :func:`core_product` / :func:`core_product_grads`: one small GEMM per item against a gathered core row;
- :func:`segment_sum`: sums of contiguous runs, deterministic by construction (``F.embedding_bag`` over the
  identity, one sequential sum per run);
- :func:`accumulate_rows_`: add per-item slices into a dense core gradient by row id (``index_add_``, or a
  sorted segment sum when ``deterministic``);
- :func:`bag_weights`: the per-occurrence weight that turns a bag reduction into ``sum``/``mean`` pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def core_product(left: torch.Tensor, core: torch.Tensor, rows: torch.Tensor, rank: int) -> torch.Tensor:
    """``out[i] = left[i] @ core[rows[i]].view(rank, c)``.

    Args:
        left: ``(n, m, rank)``.
        core: ``(p, rank * c)``, a TT core (row = ``(r_t, q_t * r_{t+1})`` block).
        rows: ``(n,)`` int64 core rows.

    Returns:
        ``(n, m, c)``.
    """
    n = rows.numel()
    right = core.index_select(0, rows).view(n, rank, -1)
    return torch.bmm(left, right)


def core_product_grads(
    left: torch.Tensor, core: torch.Tensor, rows: torch.Tensor, rank: int, grad_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`core_product` w.r.t. the gathered core slices and ``left``.

    Args:
        left: ``(n, m, rank)``; core: ``(p, rank * c)``; rows: ``(n,)``; grad_out: ``(n, m, c)``.

    Returns:
        ``(d_slices (n, rank * c), d_left (n, m, rank))``: ``d_slices[i] = left[i]^T @ grad_out[i]`` (to be
        accumulated into ``d_core[rows[i]]``) and ``d_left[i] = grad_out[i] @ core[rows[i]]^T``.
    """
    n = rows.numel()
    right = core.index_select(0, rows).view(n, rank, -1)
    d_slices = torch.bmm(left.transpose(1, 2), grad_out).view(n, -1)
    d_left = torch.bmm(grad_out, right.transpose(1, 2))
    return d_slices, d_left


def segment_sum(values: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Sums of contiguous runs of rows.

    Args:
        values: ``(n, ...)``.
        offsets: ``(m + 1,)`` int64, non-decreasing, ``offsets[0] >= 0``, ``offsets[-1] <= n``; run ``k`` is
            ``values[offsets[k]:offsets[k+1]]`` (an empty run sums to zeros).

    Returns:
        ``(m, ...)``, each run summed in order (deterministic; no ``n x ...`` copy).
    """
    n = values.shape[0]
    flat = values.reshape(n, -1)
    ids = torch.arange(n, device=values.device, dtype=torch.int64)
    out = F.embedding_bag(ids, flat, offsets, mode="sum", include_last_offset=True)
    return out.view(offsets.numel() - 1, *values.shape[1:])


def accumulate_rows_(
    target: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, deterministic: bool
) -> None:
    """``target[rows[i]] += values[i]`` for every ``i`` (rows may repeat).

    Args:
        target: ``(p, C)`` dense gradient, updated in place.
        rows: ``(n,)`` int64 in ``[0, p)``.
        values: ``(n, C)``.
        deterministic: sum each row's contributions in sorted order (stable sort, segment sum over all ``p``
            rows, one dense add) instead of ``index_add_``, whose CUDA kernel uses float atomics. Both are
            sequential, hence deterministic, on CPU.
    """
    if rows.numel() == 0:
        return
    if not deterministic:
        target.index_add_(0, rows, values)
        return
    sorted_rows, order = torch.sort(rows, stable=True)
    starts = torch.searchsorted(
        sorted_rows, torch.arange(target.shape[0] + 1, device=rows.device, dtype=torch.int64)
    )
    target += F.embedding_bag(order, values, starts, mode="sum", include_last_offset=True)


def bag_weights(
    offsets: torch.Tensor,
    bag_ids: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mode: str,
    dtype: torch.dtype,
) -> torch.Tensor | None:
    """Per-occurrence weights that make a plain weighted sum equal the requested pooling.

    Args:
        offsets: ``(B+1,)``; bag_ids: ``(nnz,)`` bag of each occurrence; per_sample_weights: ``(nnz,)`` or
            ``None`` (only with ``mode="sum"``); dtype: dtype of the result.

    Returns:
        ``(nnz,)``: ``per_sample_weights`` for ``"sum"`` (``None`` if absent), ``1 / len(bag)`` for
        ``"mean"``.
    """
    if mode == "sum":
        return per_sample_weights
    lengths = (offsets[1:] - offsets[:-1]).clamp_min(1).to(dtype)
    return lengths.reciprocal().index_select(0, bag_ids)
