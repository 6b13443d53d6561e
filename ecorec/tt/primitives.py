"""Tensor primitives shared by the three TT algorithms (pure torch).

Every algorithm is built from the same few pieces, so a benchmark compares the algorithms' work, not their
implementations:

- :func:`core_product` / :func:`core_product_backward`: one small GEMM per item against its core row;
- :func:`segment_sum`: sums of contiguous runs, deterministic by construction (``F.embedding_bag`` over the
  identity, one sequential sum per run);
- :func:`accumulate_rows_`: add per-item slices into a dense core gradient by row id (``index_add_``, or a
  sorted segment sum when ``deterministic``);
- :func:`bag_weights`: the per-occurrence weight that turns a bag reduction into ``sum``/``mean`` pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PRODUCT_STRATEGIES = ("auto", "gather", "grouped")


def _grouped_by_row(rows: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """Items sorted by core row: ``(order (n,), [(row, start, end), ...])`` over present rows (host sync)."""
    sorted_rows, order = torch.sort(rows, stable=True)
    counts = torch.bincount(sorted_rows, minlength=num_rows).tolist()
    runs, start = [], 0
    for row, count in enumerate(counts):
        if count:
            runs.append((row, start, start + count))
            start += count
    return order, runs


def _use_grouped(strategy: str, left: torch.Tensor, rank: int, cols: int, num_rows: int) -> bool:
    """Pick the execution strategy of :func:`core_product` for ``n`` items ``(m x rank) @ (rank x cols)``.

    ``"gather"`` copies each item's core row (``n * rank * cols`` values) and runs one ``bmm``. ``"grouped"``
    sorts the items by core row and runs one ``mm`` per distinct row against the core in place: no copy of
    core rows, but a Python loop over at most ``num_rows`` rows and a host sync for the counts. ``"auto"``
    groups on CPU when the gathered rows would outweigh the items' operands (``rank * cols > m * (rank +
    cols)``: the middle cores, ``r_1 q_1 r_2`` against ``q_0 (r_1 + q_1 r_2)``) and there are at least 4 items
    per core row to amortise the loop; elsewhere gathers are cheap and the loop's launches and syncs are not.
    """
    if strategy == "gather":
        return False
    if strategy == "grouped":
        return True
    if strategy != "auto":
        raise ValueError(f"strategy must be one of {PRODUCT_STRATEGIES}, got strategy={strategy!r}")
    n, m = left.shape[0], left.shape[1]
    return left.device.type == "cpu" and rank * cols > m * (rank + cols) and n >= 4 * num_rows


def core_product(
    left: torch.Tensor, core: torch.Tensor, rows: torch.Tensor, rank: int, strategy: str = "auto"
) -> torch.Tensor:
    """``out[i] = left[i] @ core[rows[i]].view(rank, c)``.

    Args:
        left: ``(n, m, rank)``.
        core: ``(p, rank * c)``, a TT core (row = ``(r_t, q_t * r_{t+1})`` block).
        rows: ``(n,)`` int64 core rows.
        strategy: ``"auto"``, ``"gather"`` or ``"grouped"`` (same result; see :func:`_use_grouped`).

    Returns:
        ``(n, m, c)``.
    """
    n, m = left.shape[0], left.shape[1]
    cols = core.shape[1] // rank
    if not _use_grouped(strategy, left, rank, cols, core.shape[0]):
        return torch.bmm(left, core.index_select(0, rows).view(n, rank, cols))
    order, runs = _grouped_by_row(rows, core.shape[0])
    left_sorted = left.index_select(0, order).view(n * m, rank)
    out_sorted = torch.empty(n * m, cols, device=left.device, dtype=left.dtype)
    for row, start, end in runs:
        torch.mm(
            left_sorted[start * m : end * m], core[row].view(rank, cols), out=out_sorted[start * m : end * m]
        )
    return torch.empty_like(out_sorted).view(n, m, cols).index_copy_(0, order, out_sorted.view(n, m, cols))


def core_product_backward(
    left: torch.Tensor,
    core: torch.Tensor,
    rows: torch.Tensor,
    rank: int,
    grad_out: torch.Tensor,
    grad_core: torch.Tensor,
    deterministic: bool,
    strategy: str = "auto",
) -> torch.Tensor:
    """Backward of :func:`core_product`: accumulate the core gradient, return the gradient of ``left``.

    Args:
        left: ``(n, m, rank)``; core: ``(p, rank * c)``; rows: ``(n,)``; grad_out: ``(n, m, c)``.
        grad_core: ``(p, rank * c)`` dense gradient of ``core``, updated in place:
            ``grad_core[rows[i]] += left[i]^T @ grad_out[i]`` (per-item slices and :func:`accumulate_rows_`
            with ``"gather"``; one ``addmm_`` per distinct row, deterministic, with ``"grouped"``).
        deterministic: passed to :func:`accumulate_rows_`.
        strategy: as in :func:`core_product`.

    Returns:
        ``d_left (n, m, rank)``: ``d_left[i] = grad_out[i] @ core[rows[i]]^T``.
    """
    n, m = left.shape[0], left.shape[1]
    cols = core.shape[1] // rank
    if not _use_grouped(strategy, left, rank, cols, core.shape[0]):
        slices = torch.bmm(left.transpose(1, 2), grad_out).view(n, rank * cols)
        accumulate_rows_(grad_core, rows, slices, deterministic)
        right = core.index_select(0, rows).view(n, rank, cols)
        return torch.bmm(grad_out, right.transpose(1, 2))
    order, runs = _grouped_by_row(rows, core.shape[0])
    left_sorted = left.index_select(0, order).view(n * m, rank)
    grad_sorted = grad_out.index_select(0, order).view(n * m, cols)
    d_left_sorted = torch.empty(n * m, rank, device=left.device, dtype=left.dtype)
    for row, start, end in runs:
        items = slice(start * m, end * m)
        grad_core[row].view(rank, cols).addmm_(left_sorted[items].t(), grad_sorted[items])
        torch.mm(grad_sorted[items], core[row].view(rank, cols).t(), out=d_left_sorted[items])
    d_left = torch.empty_like(d_left_sorted).view(n, m, rank)
    return d_left.index_copy_(0, order, d_left_sorted.view(n, m, rank))


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
