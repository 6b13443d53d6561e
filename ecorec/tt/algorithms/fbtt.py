"""TT-Rec's (FBTT) per-occurrence TT lookup, pure torch, on the same core storage as ``ecorec``.

Every index occurrence computes its own chain ``G_0[I_0] @ G_1[I_1] @ ... @ G_{d-1}[I_{d-1}]`` (no
deduplication), in chunks of ``chunk_size`` consecutive occurrences (the artifact fork's default is 20000;
upstream TT-Rec uses 1000; ``0`` means all at once):

- forward: per chunk, the chain per occurrence ``(C, Q)``, then a weighted reduction into the chunk's bags;
- backward: per chunk, recompute the prefix chain per occurrence, read ``dY[bag]`` per occurrence (``C x Q``),
  then for each core two products per occurrence (the core slice and the gradient of the prefix), accumulated
  into dense core gradients by row (``index_add_``, or sorted segment sums when ``deterministic``).

Transient memory per chunk of ``C`` occurrences: the prefix chain ``C * sum_k Q_k r_{k+1}`` plus, with
per-item gradient slices (product strategies ``"gather"``/``"slices"``, as TT-Rec's kernels),
``C * r_k q_k r_{k+1}`` per core (``r_1 q_1 r_2`` dominates), independent of duplication in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ecorec.tt.indexing import bag_ids_from_offsets, row_digits
from ecorec.tt.primitives import bag_weights, chain_backward_, chain_products, padded_grad
from ecorec.tt.shapes import TTShapes


class FBTTPlan(NamedTuple):
    """Per-occurrence plan: digits of every occurrence and the chunking.

    Attributes:
        num_bags: ``B``.
        offsets: ``(B+1,)``.
        bag_ids: ``(nnz,)``.
        digits: ``d`` tensors ``(nnz,)``, digit ``I_k`` of every occurrence.
        chunk_bounds: ``(num_chunks, 4)`` rows ``[o_start, o_end, bag_first, bag_end)`` (read once with
            ``.tolist()``): the chunk's occurrences and the range of bags they fall in.
    """

    num_bags: int
    offsets: torch.Tensor
    bag_ids: torch.Tensor
    digits: list[torch.Tensor]
    chunk_bounds: torch.Tensor


def build_fbtt_plan(
    indices: torch.Tensor, offsets: torch.Tensor, p_shapes: Sequence[int], chunk_size: int
) -> FBTTPlan:
    """Digits per occurrence and chunk boundaries (``chunk_size = 0``: one chunk)."""
    nnz = indices.numel()
    device = indices.device
    bag_ids = bag_ids_from_offsets(offsets, nnz)
    digits = row_digits(indices, p_shapes)
    step = nnz if chunk_size <= 0 else chunk_size
    starts = torch.arange(0, nnz, max(step, 1), device=device, dtype=torch.int64)
    ends = (starts + step).clamp_max(nnz)
    if nnz:
        first_bag = bag_ids[starts]
        end_bag = bag_ids[ends - 1] + 1
        chunk_bounds = torch.stack([starts, ends, first_bag, end_bag], dim=1)
    else:
        chunk_bounds = torch.zeros(0, 4, device=device, dtype=torch.int64)
    return FBTTPlan(offsets.numel() - 1, offsets, bag_ids, digits, chunk_bounds)


def fbtt_forward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    plan: FBTTPlan,
    bounds: Sequence[Sequence[int]],
    per_sample_weights: torch.Tensor | None,
    mode: str,
    strategy: str = "auto",
) -> torch.Tensor:
    """Pooled embeddings ``Tensor[B, D]``; ``bounds = plan.chunk_bounds.tolist()``; ``strategy``: see
    :func:`ecorec.tt.primitives.resolve_product_strategy`."""
    dim = shapes.embedding_dim
    ref = cores[0]
    weights = bag_weights(plan.offsets, plan.bag_ids, per_sample_weights, mode, ref.dtype)
    output = torch.zeros(plan.num_bags, dim, device=ref.device, dtype=ref.dtype)
    for o_start, o_end, bag_first, bag_end in bounds:
        digits = [t[o_start:o_end] for t in plan.digits]
        rows = (
            chain_products(cores, shapes, digits, strategy)[-1]
            .view(o_end - o_start, shapes.padded_dim)[:, :dim]
            .contiguous()
        )
        bag_offsets = plan.offsets[bag_first : bag_end + 1].clamp(o_start, o_end) - o_start
        ids = torch.arange(o_end - o_start, device=ref.device, dtype=torch.int64)
        w = weights[o_start:o_end] if weights is not None else None
        output[bag_first:bag_end] += F.embedding_bag(
            ids, rows, bag_offsets, mode="sum", per_sample_weights=w, include_last_offset=True
        )
    return output


def fbtt_backward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    plan: FBTTPlan,
    bounds: Sequence[Sequence[int]],
    grad_output: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mode: str,
    deterministic: bool = False,
    strategy: str = "auto",
) -> list[torch.Tensor]:
    """Dense core gradients (``d`` tensors shaped like the cores)."""
    grads = [torch.zeros_like(core) for core in cores]
    weights = bag_weights(plan.offsets, plan.bag_ids, per_sample_weights, mode, grad_output.dtype)
    grad_rows = padded_grad(grad_output, shapes)
    for o_start, o_end, _, _ in bounds:
        digits = [t[o_start:o_end] for t in plan.digits]
        products = chain_products(cores, shapes, digits[:-1], strategy)
        grad = grad_rows.index_select(0, plan.bag_ids[o_start:o_end])  # dY[bag] per occurrence, (C, Q)
        if weights is not None:
            grad = grad * weights[o_start:o_end, None]
        chain_backward_(cores, shapes, products, digits, grad, grads, deterministic, strategy)
    return grads
