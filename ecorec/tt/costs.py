"""Cost facts of a TT lookup, for the planner and the benchmarks.

For level ``k = 1..d-1`` one product ``T_k = T_{k-1} @ G_k[I_k]`` is a GEMM
``(Q_{k-1} x r_k) @ (r_k x q_k r_{k+1})`` of ``F_k = 2 Q_{k-1} r_k q_k r_{k+1}`` FLOPs (level 0 is a gather).
For ``d = 3``, ``D = 32``, ``q = [2, 4, 4]``, ranks 32: ``F_1 = 16384`` ("E1", one per prefix group) and
``F_2 = 2048`` ("E2", one per row).

Products per lookup, the backward's recomputation included (``n_k`` = distinct level-``k`` prefixes,
``n_{d-2} = G``, ``n_{d-1} = U``; sums over ``k = 1..d-1``, ``k < d-1`` for the recomputed prefixes):

- ``ecorec``: forward ``sum_k n_k F_k``; backward ``sum_{k<d-1} n_k F_k + 2 sum_k n_k F_k``;
- ``fbtt``: forward ``nnz sum_k F_k``; backward ``nnz (sum_{k<d-1} F_k + 2 sum_k F_k)``;
- ``elrec``: forward ``G sum_{k<d-1} F_k + nnz F_{d-1}``; backward ``U (sum_{k<d-1} F_k + 2 sum_k F_k)``.

ecorec's micro-batching adds at most ``M - 1`` products per prefix level (not counted). For ``d = 3`` this is
the artifact's "FWD: E1 + E2, BWD: 3 E1 + 2 E2" with ``E1 = G`` and ``E2 = U`` products.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ecorec.tt.shapes import TTShapes
from ecorec.types import Algorithm

_TT_ALGORITHMS = tuple(a.value for a in Algorithm.tt())


def tt_level_counts(indices: torch.Tensor, shapes: TTShapes) -> list[int]:
    """``[n_0, .., n_{d-1}]``: distinct level-k prefixes of ``indices`` (``n_{d-1} = U``, ``n_{d-2} = G``)."""
    rows = indices.reshape(-1).to(torch.int64)
    return [
        int(torch.unique(torch.div(rows, div, rounding_mode="floor")).numel())
        for div in shapes.prefix_divisors()
    ]


def tt_lookup_counts(indices: torch.Tensor, shapes: TTShapes) -> tuple[int, int, int]:
    """``(nnz, U, G)`` of one lookup: indices, distinct rows, distinct length-``(d-1)`` prefixes."""
    counts = tt_level_counts(indices, shapes)
    return indices.numel(), counts[-1], counts[-2]


def tt_level_flops(shapes: TTShapes) -> list[int]:
    """``[F_1, ..., F_{d-1}]``: FLOPs of one level-k product."""
    r, q = shapes.ranks, shapes.q_shapes
    dims = shapes.level_dims()
    return [2 * dims[k - 1] * r[k] * q[k] * r[k + 1] for k in range(1, shapes.num_cores)]


def tt_gemm_flops(
    shapes: TTShapes,
    nnz: int,
    num_uniques: int,
    num_groups: int,
    algorithm: str,
    level_counts: Sequence[int] | None = None,
) -> tuple[int, int]:
    """``(forward_flops, backward_flops)`` of the TT GEMMs of one lookup (table in the module docstring).

    Args:
        nnz, num_uniques, num_groups: ``nnz``, ``U``, ``G`` (see :func:`tt_lookup_counts`).
        algorithm: ``"ecorec"``, ``"fbtt"`` or ``"elrec"``.
        level_counts: ``[n_0, ..., n_{d-1}]`` (:func:`tt_level_counts`); needed for exact ``ecorec`` counts
            when ``d > 3``; without it the intermediate levels are bounded by ``G``.
    """
    flops = tt_level_flops(shapes)  # flops[k-1] = F_k
    d = shapes.num_cores
    if level_counts is None:
        counts = [num_groups] * (d - 1) + [num_uniques]
    else:
        counts = list(level_counts)
        if len(counts) != d:
            raise ValueError(f"level_counts must have d={d} entries, got level_counts={counts}")
    prefix = sum(flops[:-1])  # levels 1..d-2
    total = sum(flops)
    if algorithm == "ecorec":
        per_level = [counts[k] * flops[k - 1] for k in range(1, d)]
        forward = sum(per_level)
        return forward, sum(per_level[:-1]) + 2 * forward
    if algorithm == "fbtt":
        return nnz * total, nnz * (prefix + 2 * total)
    if algorithm == "elrec":
        return num_groups * prefix + nnz * flops[-1], num_uniques * (prefix + 2 * total)
    raise ValueError(f"algorithm must be one of {_TT_ALGORITHMS}, got algorithm={algorithm!r}")


def tt_memory_traffic(
    shapes: TTShapes,
    nnz: int,
    num_bags: int,
    level_counts: Sequence[int],
    algorithm: str,
    *,
    element_bytes: int = 4,
    index_bytes: int = 8,
) -> tuple[int, int]:
    """``(forward_bytes, backward_bytes)``: a model of the memory traffic of one lookup and its backward with
    the fused optimizer, for the benchmarks' achieved-bandwidth figures.

    - one level-``k`` product reads its left operand (``Q_{k-1} r_k``) and core row (``r_k q_k r_{k+1}``)
      and writes its result (``Q_k r_{k+1}``); its backward reads the result's gradient twice, the left
      operand and the core row, writes the core-gradient slice and the left gradient, and adds the slice into
      the dense core gradient (slice read, gradient row read and written);
    - ``ecorec`` also sums the left gradients of each prefix's children (reads ``n_k``, writes ``n_{k-1}``
      items of ``Q_{k-1} r_k``);
    - pooling reads one ``D``-row and one index per occurrence and writes the ``(B, D)`` output; the
      backward's bag step reads one ``dY`` row and two indices per occurrence and, for ``ecorec``/``elrec``,
      writes one ``Q``-row per unique;
    - the dense gradients are zeroed and the fused update reads the gradient and reads and writes the cores.

    Products counted as in :func:`tt_gemm_flops` (``ecorec``: ``n_k`` per level; ``fbtt``: ``nnz``; ``elrec``:
    prefixes forward, ``nnz`` rows, everything per unique backward). Repeated core rows that a cache serves
    and the pointer arrays and atomics of the kernels are not counted.
    """
    d = shapes.num_cores
    counts = list(level_counts)
    if len(counts) != d:
        raise ValueError(f"level_counts must have d={d} entries, got level_counts={counts}")
    r, q, dims = shapes.ranks, shapes.q_shapes, shapes.level_dims()
    b = element_bytes
    left = [dims[k - 1] * r[k] for k in range(1, d)]  # per level k = 1..d-1
    row = [r[k] * q[k] * r[k + 1] for k in range(1, d)]
    result = [dims[k] * r[k + 1] for k in range(1, d)]
    product = [b * (left[i] + row[i] + result[i]) for i in range(d - 1)]
    pair = [b * (2 * result[i] + 2 * left[i] + 5 * row[i]) for i in range(d - 1)]
    num_uniques = counts[-1]
    if algorithm == "ecorec":
        forward_items = counts[1:]
        backward_items = counts[1:]
        rows_written = num_uniques
    elif algorithm == "fbtt":
        forward_items = [nnz] * (d - 1)
        backward_items = [nnz] * (d - 1)
        rows_written = 0
    elif algorithm == "elrec":
        forward_items = [*counts[1:-1], nnz]
        backward_items = [num_uniques] * (d - 1)
        rows_written = num_uniques
    else:
        raise ValueError(f"algorithm must be one of {_TT_ALGORITHMS}, got algorithm={algorithm!r}")
    dim = shapes.embedding_dim
    pooling = nnz * (dim * b + index_bytes) + (num_bags + 1) * index_bytes + num_bags * dim * b
    forward = sum(n * cost for n, cost in zip(forward_items, product)) + pooling
    bag_step = nnz * (dim * b + 2 * index_bytes) + rows_written * shapes.padded_dim * b
    recompute = sum(n * cost for n, cost in zip(backward_items[:-1], product[:-1]))
    pairs = sum(n * cost for n, cost in zip(backward_items, pair))
    contraction = 0
    if algorithm == "ecorec":
        contraction = sum(b * (counts[k] + counts[k - 1]) * left[k - 1] for k in range(1, d))
    update = 4 * shapes.num_parameters() * b
    return forward, bag_step + recompute + pairs + contraction + update
