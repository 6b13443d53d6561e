"""Cost facts: counts against Python sets, FLOPs against the artifact's E1/E2 formulas (spec 1.3, 1.8-1.9)."""

from __future__ import annotations

import pytest
import torch

from ecorec.tt import TTShapes, tt_gemm_flops, tt_level_counts, tt_lookup_counts
from ecorec.tt.costs import tt_memory_traffic
from ecorec.tt.testing import random_lookup


def test_counts_against_python_sets() -> None:
    shapes = TTShapes.from_sizes(1_000_000, 32, 32)  # p = [100, 100, 100]
    indices = random_lookup(
        1_000_000, 500, mean_length=8, distribution="zipf", generator=torch.Generator()
    ).indices
    rows = indices.tolist()
    nnz, num_uniques, num_groups = tt_lookup_counts(indices, shapes)
    assert nnz == len(rows)
    assert num_uniques == len(set(rows))
    assert num_groups == len({r // 100 for r in rows})
    assert tt_level_counts(indices, shapes) == [len({r // 10_000 for r in rows}), num_groups, num_uniques]


def test_flops_match_e1_e2_of_the_artifact() -> None:
    shapes = TTShapes.from_sizes(1_000_000, 32, 32)
    e1, e2 = 16_384, 2_048  # 2 q0 r1 q1 r2 and 2 q0 q1 r2 q2 for q = [2, 4, 4], r = 32
    nnz, num_uniques, num_groups = 1000, 300, 120
    assert tt_gemm_flops(shapes, nnz, num_uniques, num_groups, "ecorec") == (
        num_groups * e1 + num_uniques * e2,
        3 * num_groups * e1 + 2 * num_uniques * e2,  # "BWD: 3 E1 + 2 E2"
    )
    assert tt_gemm_flops(shapes, nnz, num_uniques, num_groups, "fbtt") == (
        nnz * (e1 + e2),
        nnz * (3 * e1 + 2 * e2),
    )
    assert tt_gemm_flops(shapes, nnz, num_uniques, num_groups, "elrec") == (
        num_groups * e1 + nnz * e2,
        num_uniques * (3 * e1 + 2 * e2),
    )
    with pytest.raises(ValueError, match="algorithm must be one of"):
        tt_gemm_flops(shapes, nnz, num_uniques, num_groups, "dense")


def test_flops_with_four_cores_use_level_counts() -> None:
    shapes = TTShapes.from_sizes(10_000, 16, [2, 3, 4], p_shapes=[10, 10, 10, 10], q_shapes=[2, 2, 2, 2])
    # F_k = 2 Q_{k-1} r_k q_k r_{k+1}: Q = [2, 4, 8], r = [1, 2, 3, 4, 1]
    f1, f2, f3 = 2 * 2 * 2 * 2 * 3, 2 * 4 * 3 * 2 * 4, 2 * 8 * 4 * 2 * 1
    counts = [5, 7, 9, 11]
    forward, backward = tt_gemm_flops(shapes, 20, 11, 9, "ecorec", level_counts=counts)
    assert forward == 7 * f1 + 9 * f2 + 11 * f3
    assert backward == 7 * f1 + 9 * f2 + 2 * forward
    with pytest.raises(ValueError, match="level_counts must have d=4 entries"):
        tt_gemm_flops(shapes, 20, 11, 9, "ecorec", level_counts=[1, 2])


def test_memory_traffic_by_hand() -> None:
    # d = 3, q = [1, 2, 2], ranks [1, 2, 3, 1]: left (Q0 r1, Q1 r2) = (2, 6); rows (r1 q1 r2, r2 q2) =
    # (12, 6); results (Q1 r2, Q2) = (6, 4); products 4 * (2 + 12 + 6) = 80 and 4 * (6 + 6 + 4) = 64 bytes.
    shapes = TTShapes.from_sizes(64, 4, [2, 3], p_shapes=[4, 4, 4], q_shapes=[1, 2, 2])
    counts, nnz, bags = [3, 5, 9], 20, 6
    pooling = nnz * (4 * 4 + 8) + (bags + 1) * 8 + bags * 4 * 4
    pairs = [4 * (2 * 6 + 2 * 2 + 5 * 12), 4 * (2 * 4 + 2 * 6 + 5 * 6)]  # 304, 200
    update = 4 * 4 * shapes.num_parameters()
    forward, backward = tt_memory_traffic(shapes, nnz, bags, counts, "ecorec")
    assert forward == 5 * 80 + 9 * 64 + pooling
    bag_step = nnz * (16 + 16) + 9 * 4 * 4
    contraction = 4 * ((5 + 3) * 2 + (9 + 5) * 6)
    assert backward == bag_step + 5 * 80 + 5 * pairs[0] + 9 * pairs[1] + contraction + update
    forward, backward = tt_memory_traffic(shapes, nnz, bags, counts, "fbtt")
    assert forward == nnz * (80 + 64) + pooling
    assert backward == nnz * (16 + 16) + nnz * 80 + nnz * sum(pairs) + update
    forward, backward = tt_memory_traffic(shapes, nnz, bags, counts, "elrec")
    assert forward == 5 * 80 + nnz * 64 + pooling
    assert backward == nnz * (16 + 16) + 9 * 16 + 9 * 80 + 9 * sum(pairs) + update
    with pytest.raises(ValueError, match="level_counts must have d=3"):
        tt_memory_traffic(shapes, nnz, bags, [1, 2], "ecorec")
