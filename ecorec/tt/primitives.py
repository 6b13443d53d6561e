"""Tensor primitives shared by the three TT algorithms (pure torch).

Every algorithm is built from the same few pieces, so a benchmark compares the algorithms' work, not their
implementations:

- :func:`core_product` / :func:`core_product_backward`: one small GEMM per item against its core row;
- :func:`segment_sum`: sums of contiguous runs, deterministic by construction (``F.embedding_bag`` over the
  identity, one sequential sum per run);
- :func:`accumulate_rows_`: add per-item slices into a dense core gradient by row id (``index_add_``, or a
  sorted segment sum when ``deterministic``);
- :func:`bag_weights`: the per-occurrence weight that turns a bag reduction into ``sum``/``mean`` pooling;
- :func:`chain_products` / :func:`chain_backward_`: the plain per-item chain ``G_0[I_0] @ ... @ G_k[I_k]`` and
  its backward (FBTT per occurrence, EL-Rec per prefix and per unique row; EcoRec's tree of prefixes has its
  own);
- :func:`padded_grad`: ``dY`` widened to the cores' padded dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ecorec.tt.shapes import TTShapes

PRODUCT_STRATEGIES = ("auto", "gather", "grouped", "slices")


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


def resolve_product_strategy(strategy: str, left: torch.Tensor, rank: int, cols: int, num_rows: int) -> str:
    """The concrete strategy (``"gather"``, ``"grouped"`` or ``"slices"``) for ``n`` items
    ``(m x rank) @ (rank x cols)`` against a core of ``num_rows`` rows.

    - ``"gather"``: copy each item's core row (``n * rank * cols`` values) and run one ``bmm``; the core
      gradient is materialised as per-item slices ``left[i]^T @ grad[i]`` and accumulated with
      :func:`accumulate_rows_`.
    - ``"grouped"``: sort the items by core row and run one ``mm`` per distinct row against the core in place
      (no copy of core rows; a Python loop over at most ``num_rows`` rows and a host sync for the counts); the
      core gradient of a row is one ``addmm_`` over its items (no per-item slices; deterministic).
    - ``"slices"``: products as ``"grouped"`` (no gathered core rows, like the CUDA kernels' pointer-batched
      GEMMs), core gradient as per-item slices + :func:`accumulate_rows_` (the buffers of the published
      kernels, e.g. the artifact's ``tr_core1``; for measuring those algorithms' memory).
    - ``"auto"``: ``"grouped"`` on CPU when the gathered rows would outweigh the items' operands
      (``rank * cols > m * (rank + cols)``: the middle cores, ``r_1 q_1 r_2`` against ``q_0 (r_1 + q_1 r_2)``)
      and there are at least 8 items per core row to amortise the loop; ``"gather"`` otherwise (elsewhere
      gathers are cheap and the loop's launches and syncs are not).

    All strategies compute the same values (up to float summation order).
    """
    if strategy in ("gather", "grouped", "slices"):
        return strategy
    if strategy != "auto":
        raise ValueError(f"product_strategy must be one of {PRODUCT_STRATEGIES}, got {strategy!r}")
    n, m = left.shape[0], left.shape[1]
    grouped = left.device.type == "cpu" and rank * cols > m * (rank + cols) and n >= 8 * num_rows
    return "grouped" if grouped else "gather"


def _grouped_mm(
    operand: torch.Tensor,
    core: torch.Tensor,
    rank: int,
    cols: int,
    order: torch.Tensor,
    runs: list[tuple[int, int, int]],
    transpose: bool,
) -> torch.Tensor:
    """Per-row products against the core in place: ``operand[i] @ W`` with ``W = core[row(i)]`` viewed
    ``(rank, cols)`` (``operand``: ``(n, m, rank)``), or ``operand[i] @ W^T`` if ``transpose`` (``operand``:
    ``(n, m, cols)``)."""
    n, m, inner = operand.shape
    outer = rank if transpose else cols
    sorted_operand = operand.index_select(0, order).view(n * m, inner)
    out_sorted = torch.empty(n * m, outer, device=operand.device, dtype=operand.dtype)
    for row, start, end in runs:
        weight = core[row].view(rank, cols)
        items = slice(start * m, end * m)
        torch.mm(sorted_operand[items], weight.t() if transpose else weight, out=out_sorted[items])
    out = torch.empty(n, m, outer, device=operand.device, dtype=operand.dtype)
    return out.index_copy_(0, order, out_sorted.view(n, m, outer))


def core_product(
    left: torch.Tensor, core: torch.Tensor, rows: torch.Tensor, rank: int, strategy: str = "auto"
) -> torch.Tensor:
    """``out[i] = left[i] @ core[rows[i]].view(rank, c)``.

    Args:
        left: ``(n, m, rank)``.
        core: ``(p, rank * c)``, a TT core (row = ``(r_t, q_t * r_{t+1})`` block).
        rows: ``(n,)`` int64 core rows.
        strategy: see :func:`resolve_product_strategy`.

    Returns:
        ``(n, m, c)``.
    """
    n = left.shape[0]
    cols = core.shape[1] // rank
    if resolve_product_strategy(strategy, left, rank, cols, core.shape[0]) == "gather":
        return torch.bmm(left, core.index_select(0, rows).view(n, rank, cols))
    order, runs = _grouped_by_row(rows, core.shape[0])
    return _grouped_mm(left, core, rank, cols, order, runs, transpose=False)


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
            ``grad_core[rows[i]] += left[i]^T @ grad_out[i]``.
        deterministic: passed to :func:`accumulate_rows_` (the ``"grouped"`` accumulation is deterministic).
        strategy: see :func:`resolve_product_strategy`.

    Returns:
        ``d_left (n, m, rank)``: ``d_left[i] = grad_out[i] @ core[rows[i]]^T``.
    """
    n, m = left.shape[0], left.shape[1]
    cols = core.shape[1] // rank
    resolved = resolve_product_strategy(strategy, left, rank, cols, core.shape[0])
    if resolved == "gather":
        slices = torch.bmm(left.transpose(1, 2), grad_out).view(n, rank * cols)
        accumulate_rows_(grad_core, rows, slices, deterministic)
        right = core.index_select(0, rows).view(n, rank, cols)
        return torch.bmm(grad_out, right.transpose(1, 2))
    order, runs = _grouped_by_row(rows, core.shape[0])
    if resolved == "slices":
        slices = torch.bmm(left.transpose(1, 2), grad_out).view(n, rank * cols)
        accumulate_rows_(grad_core, rows, slices, deterministic)
    else:
        left_sorted = left.index_select(0, order).view(n * m, rank)
        grad_sorted = grad_out.index_select(0, order).view(n * m, cols)
        for row, start, end in runs:
            items = slice(start * m, end * m)
            grad_core[row].view(rank, cols).addmm_(left_sorted[items].t(), grad_sorted[items])
    return _grouped_mm(grad_out, core, rank, cols, order, runs, transpose=True)


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
    flat = values.reshape(n, math.prod(values.shape[1:]))
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


def chain_products(
    cores: Sequence[torch.Tensor], shapes: TTShapes, digits: Sequence[torch.Tensor], strategy: str
) -> list[torch.Tensor]:
    """Per-item prefix products of the plain chain, ``[T_0, ..., T_k]`` for ``k = len(digits) - 1``.

    Args:
        cores: the TT cores ``(p_t, r_t q_t r_{t+1})``.
        digits: ``k + 1`` tensors ``(n,)``, digit ``I_t`` of each item (at least one).
        strategy: see :func:`resolve_product_strategy`.

    Returns:
        ``T_t`` of shape ``(n, Q_t, r_{t+1})``, ``T_t = T_{t-1} @ G_t[I_t]``.
    """
    r, q, dims = shapes.ranks, shapes.q_shapes, shapes.level_dims()
    n = digits[0].numel()
    products = [cores[0].index_select(0, digits[0]).view(n, q[0], r[1])]
    for k in range(1, len(digits)):
        out = core_product(products[-1], cores[k], digits[k], r[k], strategy)
        products.append(out.view(n, dims[k], r[k + 1]))
    return products


def chain_backward_(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    products: Sequence[torch.Tensor],
    digits: Sequence[torch.Tensor],
    grad: torch.Tensor,
    grads: Sequence[torch.Tensor],
    deterministic: bool,
    strategy: str,
) -> None:
    """Backward of the full per-item chain: accumulate every core's gradient in place.

    Args:
        products: ``[T_0, ..., T_{d-2}]`` of :func:`chain_products` over ``digits[:-1]``.
        digits: ``d`` tensors ``(n,)``, the items' digits.
        grad: ``(n, Q)`` gradient of the items' rows (``Q`` the padded dimension).
        grads: ``d`` dense core gradients shaped like the cores, updated in place (two products per item
            and core, last core first, then ``dG_0[I_0] += dT_0``).
        deterministic / strategy: as in :func:`core_product_backward`.
    """
    d, r, q = shapes.num_cores, shapes.ranks, shapes.q_shapes
    n = digits[0].numel()
    for k in range(d - 1, 0, -1):
        left = products[k - 1]
        grad = core_product_backward(
            left,
            cores[k],
            digits[k],
            r[k],
            grad.view(n, left.shape[1], q[k] * r[k + 1]),
            grads[k],
            deterministic,
            strategy,
        )
    accumulate_rows_(grads[0], digits[0], grad.reshape(n, q[0] * r[1]), deterministic)


def padded_grad(grad_output: torch.Tensor, shapes: TTShapes) -> torch.Tensor:
    """``(B, Q)`` contiguous ``grad_output (B, D)`` with zero columns up to the padded dimension ``Q``
    (the dropped columns get zero gradient)."""
    grad_rows = grad_output.contiguous()
    if shapes.padded_dim > shapes.embedding_dim:
        grad_rows = F.pad(grad_rows, (0, shapes.padded_dim - shapes.embedding_dim))
    return grad_rows
