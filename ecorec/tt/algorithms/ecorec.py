"""EcoRec's TT lookup (SC'24), pure torch: unique rows, one product per distinct prefix, micro-batches.

Forward ("multiply, then contract"), per micro-batch of sorted uniques:

1. level 0: ``T_0[g] = G_0[I_0(g)]`` viewed ``(q_0, r_1)`` for every distinct first digit;
2. level ``k = 1..d-1``: ``T_k[g] = T_{k-1}[parent(g)] @ G_k[I_k(g)]``, viewed ``(q_0..q_k, r_{k+1})``; for
   ``d = 3`` that is one ``T01`` product per prefix group and one row product per unique (``E = T_2``);
3. reduce the unique rows into bags (``F.embedding_bag`` over unique ids, weighted by the per-sample weights
   or ``1/len(bag)``). One micro-batch: a single ``embedding_bag`` over all occurrences. Several: each
   micro-batch reduces its own occurrences (in bag order) into a ``(B, D)`` partial, added to the output in
   micro-batch order.

Backward ("contract, then multiply"), per micro-batch; nothing but the plan is kept from the forward:

1. bag -> unique: ``dE[u] = sum_{occurrences o of u} w_o dY[bag(o)]`` with one ``F.embedding_bag`` over
   ``dY`` (each unique's occurrences form a "bag"), no ``nnz x D`` tensor;
2. recompute the prefix products ``T_0 .. T_{d-2}`` of the micro-batch;
3. level ``k = d-1 .. 1``: two products per level-k item, the ``dG_k`` slice ``T_{k-1}[parent]^T @ dT_k``
   (accumulated into ``dG_k`` by digit) and ``dT_k @ G_k[I_k]^T``, summed over each parent's contiguous
   children into ``dT_{k-1}`` (the unique -> prefix group contraction);
4. ``dG_0[I_0] += dT_0``.

Every core-row accumulation goes through :func:`ecorec.tt.primitives.accumulate_rows_` (or the ``"grouped"``
strategy's per-row ``addmm_``), so ``deterministic=True`` never calls ``index_add_``.

The caller applies one optimizer update after all micro-batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ecorec.tt.indexing import TTLookupPlan
from ecorec.tt.primitives import (
    accumulate_rows_,
    core_product,
    core_product_backward,
    padded_grad,
    segment_sum,
)
from ecorec.tt.shapes import TTShapes


def _prefix_products(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    plan: TTLookupPlan,
    bound: Sequence[int],
    last_level: int,
    strategy: str,
) -> list[torch.Tensor]:
    """``[T_0, ..., T_{last_level}]`` of one micro-batch; ``T_k`` is ``(n_k^m, Q_k, r_{k+1})``.

    ``bound`` is the micro-batch's row of ``plan.micro_bounds`` (host ints).
    """
    r, q, dims = shapes.ranks, shapes.q_shapes, shapes.level_dims()
    a0, b0 = bound[2], bound[3]
    products = [cores[0].index_select(0, plan.level_digits[0][a0:b0]).view(b0 - a0, q[0], r[1])]
    for k in range(1, last_level + 1):
        a, b = bound[2 + 2 * k], bound[3 + 2 * k]
        parents = plan.level_parents[k][a:b] - bound[2 * k]  # local index into the level-(k-1) products
        left = products[-1].index_select(0, parents)
        out = core_product(left, cores[k], plan.level_digits[k][a:b], r[k], strategy)
        products.append(out.view(b - a, dims[k], r[k + 1]))
    return products


def _local_child_offsets(plan: TTLookupPlan, bound: Sequence[int], k: int) -> torch.Tensor:
    """``(n_k^m + 1,)`` offsets of each level-k prefix's children inside the micro-batch's level-(k+1)
    range."""
    a, b = bound[2 + 2 * k], bound[3 + 2 * k]
    child_a, child_b = bound[2 + 2 * (k + 1)], bound[3 + 2 * (k + 1)]
    return plan.level_child_offsets[k][a : b + 1].clamp(child_a, child_b) - child_a


def _mean_scale(plan: TTLookupPlan, mode: str, dtype: torch.dtype) -> torch.Tensor | None:
    """``(B,)`` ``1 / len(bag)`` for mean pooling (empty bags: 1), ``None`` for sum."""
    if mode == "sum":
        return None
    return (plan.offsets[1:] - plan.offsets[:-1]).clamp_min(1).to(dtype).reciprocal()


def _occurrence_weights(
    per_sample_weights: torch.Tensor | None,
    bag_scale: torch.Tensor | None,
    positions: torch.Tensor,
    bags: torch.Tensor,
) -> torch.Tensor | None:
    """Weights of the occurrences at ``positions`` (in bags ``bags``): per-sample weight times bag scale."""
    weights = per_sample_weights.index_select(0, positions) if per_sample_weights is not None else None
    if bag_scale is not None:
        scale = bag_scale.index_select(0, bags)
        weights = scale if weights is None else weights * scale
    return weights


def ecorec_forward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    plan: TTLookupPlan,
    bounds: Sequence[Sequence[int]],
    per_sample_weights: torch.Tensor | None,
    mode: str,
    strategy: str = "auto",
) -> torch.Tensor:
    """Pooled embeddings.

    Args:
        cores: ``d`` cores ``(p_t, r_t q_t r_{t+1})``.
        plan: from :func:`ecorec.tt.indexing.build_lookup_plan`.
        bounds: ``plan.micro_bounds.tolist()`` (the one host sync of the batch).
        per_sample_weights: ``(nnz,)`` or ``None``; mode: ``"sum"`` or ``"mean"``.
        strategy: execution of the core products (:func:`ecorec.tt.primitives.resolve_product_strategy`).

    Returns:
        ``Tensor[B, D]``.
    """
    d, dim = shapes.num_cores, shapes.embedding_dim
    ref = cores[0]
    out_shape = (plan.num_bags, dim)
    if len(bounds) == 0:
        return torch.zeros(out_shape, device=ref.device, dtype=ref.dtype)
    if len(bounds) == 1:
        rows = _prefix_products(cores, shapes, plan, bounds[0], d - 1, strategy)[-1].view(
            plan.num_uniques, shapes.padded_dim
        )
        rows = rows[:, :dim].contiguous() if rows.shape[1] > dim else rows
        return F.embedding_bag(
            plan.inverse,
            rows,
            plan.offsets,
            mode=mode,
            per_sample_weights=per_sample_weights,
            include_last_offset=True,
        )
    bag_scale = _mean_scale(plan, mode, ref.dtype)
    bag_range = torch.arange(plan.num_bags + 1, device=ref.device, dtype=torch.int64)
    output = torch.zeros(out_shape, device=ref.device, dtype=ref.dtype)
    for bound in bounds:
        o_start, o_end, u_start = bound[0], bound[1], bound[2 * d]
        rows = _prefix_products(cores, shapes, plan, bound, d - 1, strategy)[-1]
        rows = rows.view(rows.shape[0], shapes.padded_dim)[:, :dim].contiguous()
        # This micro-batch's occurrences in bag (= original) order; an O(nnz / M) transient.
        positions = torch.sort(plan.sorted_positions[o_start:o_end]).values
        local_ids = plan.inverse.index_select(0, positions) - u_start
        bags = plan.bag_ids.index_select(0, positions)
        bag_offsets = torch.searchsorted(bags, bag_range)
        w = _occurrence_weights(per_sample_weights, bag_scale, positions, bags)
        output += F.embedding_bag(
            local_ids, rows, bag_offsets, mode="sum", per_sample_weights=w, include_last_offset=True
        )
    return output


def ecorec_backward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    plan: TTLookupPlan,
    bounds: Sequence[Sequence[int]],
    grad_output: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mode: str,
    deterministic: bool = False,
    strategy: str = "auto",
) -> list[torch.Tensor]:
    """Dense core gradients, accumulated over all micro-batches.

    Args:
        grad_output: ``(B, D)``; the other arguments as in :func:`ecorec_forward`.
        deterministic: sorted segment sums instead of ``index_add_`` for every core-row accumulation.
        strategy: as in :func:`ecorec_forward`.

    Returns:
        ``d`` tensors shaped like the cores.
    """
    d, r, q = shapes.num_cores, shapes.ranks, shapes.q_shapes
    grads = [torch.zeros_like(core) for core in cores]
    if len(bounds) == 0:
        return grads
    bag_scale = _mean_scale(plan, mode, grad_output.dtype)
    grad_rows = padded_grad(grad_output, shapes)
    for bound in bounds:
        o_start, o_end, u_start, u_end = bound[0], bound[1], bound[2 * d], bound[2 * d + 1]
        # 1. bag -> unique contraction: dE (U_m, Q).
        occurrence_offsets = plan.unique_offsets[u_start : u_end + 1] - o_start
        positions = plan.sorted_positions[o_start:o_end]
        bags = plan.bag_ids.index_select(0, positions)
        grad = F.embedding_bag(
            bags,
            grad_rows,
            occurrence_offsets,
            mode="sum",
            per_sample_weights=_occurrence_weights(per_sample_weights, bag_scale, positions, bags),
            include_last_offset=True,
        )
        # 2. recompute the prefix products of this micro-batch.
        products = _prefix_products(cores, shapes, plan, bound, d - 2, strategy)
        # 3. levels d-1 .. 1: two products per item, then contract the items into their parents.
        for k in range(d - 1, 0, -1):
            a, b = bound[2 + 2 * k], bound[3 + 2 * k]
            parents = plan.level_parents[k][a:b] - bound[2 * k]
            left = products[k - 1].index_select(0, parents)  # (n_k, Q_{k-1}, r_k)
            digits = plan.level_digits[k][a:b]
            d_left = core_product_backward(
                left,
                cores[k],
                digits,
                r[k],
                grad.view(b - a, left.shape[1], q[k] * r[k + 1]),
                grads[k],
                deterministic,
                strategy,
            )
            grad = segment_sum(d_left, _local_child_offsets(plan, bound, k - 1))
        # 4. level 0: the distinct first digits of the micro-batch (no repeats within a call, so even the
        # atomic index_add_ sums in a fixed order; ``deterministic`` avoids index_add_ on every core anyway).
        a0, b0 = bound[2], bound[3]
        accumulate_rows_(
            grads[0], plan.level_digits[0][a0:b0], grad.view(b0 - a0, q[0] * r[1]), deterministic
        )
    return grads
