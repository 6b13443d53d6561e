"""EL-Rec's TT lookup (SC'22, bag version as in EcoRec's ``elrec_ext``), pure torch, same core storage.

- forward ("intermediate-result reuse"): the distinct length-``(d-1)`` prefixes of the whole batch are found
  once and each computes its prefix product ``T`` (a plain chain per prefix); the last product is done **per
  occurrence** (``nnz x Q`` rows), then reduced into bags;
- backward ("in-advance gradient aggregation"): ``dY`` is expanded to every occurrence (``nnz x D``, as EL-Rec
  does) and aggregated to the unique rows; then, per unique row, the whole chain is recomputed and
  differentiated (two products per core per unique), with no prefix-group contraction.

Unlike the original, no ``p_0 p_1``-sized prefix cache is allocated: only the distinct prefixes are stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ecorec.tt.indexing import bag_ids_from_offsets, row_digits
from ecorec.tt.primitives import accumulate_rows_, bag_weights, chain_backward_, chain_products, core_product
from ecorec.tt.shapes import TTShapes


class ELRecPlan(NamedTuple):
    """Attributes:
    num_bags: ``B``; offsets: ``(B+1,)``; bag_ids: ``(nnz,)``.
    group_digits: ``d - 1`` tensors ``(G,)``, digits of each distinct length-(d-1) prefix.
    group_inverse: ``(nnz,)`` prefix id of each occurrence.
    last_digits: ``(nnz,)`` last digit ``I_{d-1}`` of each occurrence.
    unique_digits: ``d`` tensors ``(U,)``, digits of each unique row.
    inverse: ``(nnz,)`` unique id of each occurrence.
    """

    num_bags: int
    offsets: torch.Tensor
    bag_ids: torch.Tensor
    group_digits: list[torch.Tensor]
    group_inverse: torch.Tensor
    last_digits: torch.Tensor
    unique_digits: list[torch.Tensor]
    inverse: torch.Tensor


def build_elrec_plan(indices: torch.Tensor, offsets: torch.Tensor, p_shapes: Sequence[int]) -> ELRecPlan:
    """Distinct prefixes and unique rows of the batch."""
    p_last = p_shapes[-1]
    prefixes = torch.div(indices, p_last, rounding_mode="floor")
    groups, group_inverse = torch.unique(prefixes, return_inverse=True)
    uniques, inverse = torch.unique(indices, return_inverse=True)
    return ELRecPlan(
        num_bags=offsets.numel() - 1,
        offsets=offsets,
        bag_ids=bag_ids_from_offsets(offsets, indices.numel()),
        group_digits=row_digits(groups, p_shapes[:-1]),
        group_inverse=group_inverse,
        last_digits=indices % p_last,
        unique_digits=row_digits(uniques, p_shapes),
        inverse=inverse,
    )


def elrec_forward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    plan: ELRecPlan,
    per_sample_weights: torch.Tensor | None,
    mode: str,
    strategy: str = "auto",
) -> torch.Tensor:
    """Pooled embeddings ``Tensor[B, D]``; ``strategy``: see
    :func:`ecorec.tt.primitives.resolve_product_strategy`."""
    d, r, dim = shapes.num_cores, shapes.ranks, shapes.embedding_dim
    nnz = plan.last_digits.numel()
    prefix = chain_products(cores, shapes, plan.group_digits, strategy)[-1]  # (G, Q_{d-2}, r_{d-1})
    left = prefix.index_select(0, plan.group_inverse)  # per occurrence
    rows = core_product(left, cores[d - 1], plan.last_digits, r[d - 1], strategy).view(nnz, shapes.padded_dim)
    rows = rows[:, :dim].contiguous()
    ids = torch.arange(nnz, device=rows.device, dtype=torch.int64)
    return F.embedding_bag(
        ids, rows, plan.offsets, mode=mode, per_sample_weights=per_sample_weights, include_last_offset=True
    )


def elrec_backward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    plan: ELRecPlan,
    grad_output: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mode: str,
    deterministic: bool = False,
    strategy: str = "auto",
) -> list[torch.Tensor]:
    """Dense core gradients (``d`` tensors shaped like the cores)."""
    grads = [torch.zeros_like(core) for core in cores]
    num_uniques = plan.unique_digits[0].numel()
    if num_uniques == 0:
        return grads
    weights = bag_weights(plan.offsets, plan.bag_ids, per_sample_weights, mode, grad_output.dtype)
    expanded = grad_output.index_select(0, plan.bag_ids)  # (nnz, D)
    if weights is not None:
        expanded = expanded * weights[:, None]
    grad = torch.zeros(num_uniques, shapes.padded_dim, device=expanded.device, dtype=expanded.dtype)
    accumulate_rows_(grad[:, : shapes.embedding_dim], plan.inverse, expanded, deterministic)
    products = chain_products(cores, shapes, plan.unique_digits[:-1], strategy)
    chain_backward_(cores, shapes, products, plan.unique_digits, grad, grads, deterministic, strategy)
    return grads
