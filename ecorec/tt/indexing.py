"""Index preprocessing for the ``ecorec`` algorithm: sort-unique, prefix levels, sorted-index micro-batching.

Levels. With TT digits ``(I_0, ..., I_{d-1})`` of a row ``idx`` (row-major over p), the level-``k`` prefix
key is ``idx // (p_{k+1} * ... * p_{d-1})`` (the first ``k + 1`` digits); level ``d - 1`` is the row itself.
On the sorted unique rows, the rows that share a level-``k`` prefix are a contiguous run, and so are the
level-``k`` prefixes that share a level-``(k-1)`` parent. For ``d = 3``, level 1 holds the "prefix groups"
(``G`` of them, one ``T01`` product each) and level 2 the ``U`` unique rows.

Micro-batches are contiguous, nearly equal ranges of the sorted uniques (the first ``U mod M`` one longer).
Each touches a contiguous range of prefixes at every level; a prefix straddling a boundary is recomputed by
both sides, so a level has at most ``M - 1`` extra products.

Everything in :class:`TTLookupPlan` is a tensor or an int, so a CUDA op can return the same tuple. Building
it syncs with the device a few times (sizes of ``unique_consecutive`` outputs); the consumers need exactly
one more sync, ``plan.micro_bounds.tolist()``, for the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch


class TTLookupPlan(NamedTuple):
    """Everything the ``ecorec`` forward and backward need about one batch's indices (shape letters: B, nnz,
    U, M, d; ``n_k`` = distinct level-``k`` prefixes, ``n_{d-1} = U``).

    Attributes:
        num_bags: ``B``.
        offsets: ``(B+1,)`` bag boundaries into the original index order.
        bag_ids: ``(nnz,)`` bag of each occurrence (original order).
        uniques: ``(U,)`` sorted distinct rows.
        inverse: ``(nnz,)`` unique id of each occurrence (original order).
        sorted_positions: ``(nnz,)`` original position of each occurrence, occurrences sorted by row (stable,
            so bag order within a row).
        unique_offsets: ``(U+1,)`` occurrence ranges of each unique in sorted order.
        level_digits: ``d`` tensors ``(n_k,)``: digit ``I_k`` of each distinct level-``k`` prefix.
        level_parents: ``d`` tensors ``(n_k,)``: index of the parent level-``(k-1)`` prefix (level 0: empty).
        level_child_offsets: ``d - 1`` tensors ``(n_k + 1,)``: children of level-``k`` prefix ``g`` are the
            level-``(k+1)`` prefixes ``[off[g], off[g+1])``.
        micro_bounds: ``(M, 2 + 2 d)``: per micro-batch ``[o_start, o_end, a_0, b_0, ..., a_{d-1}, b_{d-1}]``,
            its occurrence range in sorted order and its prefix range ``[a_k, b_k)`` at every level (level
            ``d - 1``: its unique range).
    """

    num_bags: int
    offsets: torch.Tensor
    bag_ids: torch.Tensor
    uniques: torch.Tensor
    inverse: torch.Tensor
    sorted_positions: torch.Tensor
    unique_offsets: torch.Tensor
    level_digits: list[torch.Tensor]
    level_parents: list[torch.Tensor]
    level_child_offsets: list[torch.Tensor]
    micro_bounds: torch.Tensor

    @property
    def num_uniques(self) -> int:
        """``U``."""
        return self.uniques.numel()

    @property
    def num_micro_batches(self) -> int:
        """``M`` (0 when there are no indices)."""
        return self.micro_bounds.shape[0]

    def level_counts(self) -> list[int]:
        """``[n_0, ..., n_{d-1}]``: distinct prefixes per level over the whole batch (``n_{d-1} = U``)."""
        return [t.numel() for t in self.level_digits]


def row_digits(rows: torch.Tensor, p_shapes: Sequence[int]) -> list[torch.Tensor]:
    """TT digits of ``rows (n,)`` int64 >= 0 in the mixed radix ``p_shapes``: ``len(p_shapes)`` tensors
    ``(n,)``, most significant (core 0's row) first."""
    digits = []
    rest = rows
    for p in reversed(p_shapes):
        digits.append(rest % p)
        rest = torch.div(rest, p, rounding_mode="floor")
    return digits[::-1]


def bag_ids_from_offsets(offsets: torch.Tensor, nnz: int) -> torch.Tensor:
    """``(nnz,)`` bag id of every occurrence, from ``offsets (B+1,)`` (no device sync)."""
    num_bags = offsets.numel() - 1
    lengths = offsets[1:] - offsets[:-1]
    bags = torch.arange(num_bags, device=offsets.device, dtype=torch.int64)
    return torch.repeat_interleave(bags, lengths, output_size=nnz)


def micro_batch_sizes(
    num_uniques: int, micro_batches: int = 1, max_micro_uniques: int | None = None
) -> list[int]:
    """Sizes of the contiguous micro-batches of sorted uniques.

    ``M = max(micro_batches, ceil(U / max_micro_uniques))``, capped at ``U``; the first ``U mod M`` ranges
    get one extra unique. ``U = 0`` gives no micro-batch.
    """
    if micro_batches < 1:
        raise ValueError(f"micro_batches must be >= 1, got micro_batches={micro_batches}")
    if max_micro_uniques is not None and max_micro_uniques < 1:
        raise ValueError(f"max_micro_uniques must be >= 1 or None, got max_micro_uniques={max_micro_uniques}")
    if num_uniques == 0:
        return []
    count = micro_batches
    if max_micro_uniques is not None:
        count = max(count, math.ceil(num_uniques / max_micro_uniques))
    count = min(count, num_uniques)
    base, extra = divmod(num_uniques, count)
    return [base + 1 if m < extra else base for m in range(count)]


def build_lookup_plan(
    indices: torch.Tensor,
    offsets: torch.Tensor,
    p_shapes: Sequence[int],
    *,
    micro_batches: int = 1,
    max_micro_uniques: int | None = None,
) -> TTLookupPlan:
    """Preprocess one lookup's indices for the ``ecorec`` algorithm.

    Args:
        indices: ``(nnz,)`` int64 rows (already validated).
        offsets: ``(B+1,)`` int64 bag boundaries with the last offset.
        p_shapes: ``(p_0, ..., p_{d-1})``.
        micro_batches, max_micro_uniques: see :func:`micro_batch_sizes`.

    Returns:
        The :class:`TTLookupPlan`.
    """
    device = indices.device
    d = len(p_shapes)
    nnz = indices.numel()
    i64 = dict(device=device, dtype=torch.int64)
    bag_ids = bag_ids_from_offsets(offsets, nnz)
    sorted_rows, sorted_positions = torch.sort(indices, stable=True)
    uniques, sorted_uid, counts = torch.unique_consecutive(
        sorted_rows, return_inverse=True, return_counts=True
    )
    num_uniques = uniques.numel()
    inverse = torch.empty(nnz, **i64)
    inverse[sorted_positions] = sorted_uid
    unique_offsets = torch.zeros(num_uniques + 1, **i64)
    torch.cumsum(counts, 0, out=unique_offsets[1:])

    sizes = micro_batch_sizes(num_uniques, micro_batches, max_micro_uniques)
    num_micro = len(sizes)
    starts = torch.tensor([0, *sizes], **i64).cumsum(0)
    micro_start, micro_last = starts[:-1], starts[1:] - 1  # first and last unique of each micro-batch

    divisors = [math.prod(p_shapes[k + 1 :]) for k in range(d)]
    level_digits: list[torch.Tensor] = []
    level_parents: list[torch.Tensor] = []
    level_child_offsets: list[torch.Tensor] = []
    bounds = [unique_offsets[micro_start], unique_offsets[micro_last + 1]]
    previous_inverse: torch.Tensor | None = None  # (U,) level-(k-1) prefix id of every unique
    for k in range(d):
        if k == d - 1:
            keys, level_inverse = uniques, torch.arange(num_uniques, **i64)
            run_starts = level_inverse
        else:
            keys, level_inverse, run_counts = torch.unique_consecutive(
                torch.div(uniques, divisors[k], rounding_mode="floor"),
                return_inverse=True,
                return_counts=True,
            )
            run_starts = torch.cumsum(run_counts, 0) - run_counts
        level_digits.append(keys % p_shapes[k])
        if previous_inverse is None:
            level_parents.append(torch.empty(0, **i64))
        else:
            parents = previous_inverse[run_starts]
            level_parents.append(parents)
            # parents is sorted: the children of prefix g start at the first parent >= g (no device sync).
            parent_ids = torch.arange(level_digits[k - 1].numel() + 1, **i64)
            level_child_offsets.append(torch.searchsorted(parents, parent_ids))
        bounds += [level_inverse[micro_start], level_inverse[micro_last] + 1]
        previous_inverse = level_inverse
    micro_bounds = torch.stack(bounds, dim=1) if num_micro else torch.zeros(0, 2 + 2 * d, **i64)

    return TTLookupPlan(
        num_bags=offsets.numel() - 1,
        offsets=offsets,
        bag_ids=bag_ids,
        uniques=uniques,
        inverse=inverse,
        sorted_positions=sorted_positions,
        unique_offsets=unique_offsets,
        level_digits=level_digits,
        level_parents=level_parents,
        level_child_offsets=level_child_offsets,
        micro_bounds=micro_bounds,
    )
