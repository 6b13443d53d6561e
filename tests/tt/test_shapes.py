"""TT shapes: the factorisation against TT-Rec's procedure (sympy partitions) and published values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy import factorint
from sympy.utilities.iterables import multiset_partitions

from ecorec.tt import TTShapes, suggested_tt_shapes


def _entropy(factors: list[int]) -> float:
    total = sum(factors)
    return -sum(f / total * math.log(f / total) for f in factors)


def _fbtt_best_entropy(n: int, d: int) -> float:
    """TT-Rec's ``_auto_shape``: prime factors padded with 1s, all multiset partitions into ``d`` blocks, max
    entropy of the block products (an independent oracle built on sympy)."""
    primes = [p for p, k in factorint(n).items() for _ in range(k)]
    primes += [1] * max(0, d - len(primes))
    return max(_entropy([math.prod(block) for block in part]) for part in multiset_partitions(primes, d))


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (100_000, [40, 50, 50]),
        (1_000_000, [100, 100, 100]),
        (1_234_567, [125, 125, 128]),
        (10_000_000, [200, 200, 250]),
        (40_000_000, [250, 400, 400]),
        (100_000_000, [400, 500, 500]),
    ],
)
def test_p_shapes_match_the_artifact(n: int, expected: list[int]) -> None:
    # Values computed with the artifact's (= FBTT's) function, spec section 1.2.
    assert suggested_tt_shapes(n, 3) == expected


def test_q_shapes_match_the_artifact() -> None:
    assert suggested_tt_shapes(32, 3, allow_round_up=False) == [2, 4, 4]
    assert suggested_tt_shapes(64, 3, allow_round_up=False) == [4, 4, 4]
    assert suggested_tt_shapes(128, 3, allow_round_up=False) == [4, 4, 8]
    assert suggested_tt_shapes(128, 3, allow_round_up=True) == [5, 5, 8]


def test_four_cores_interleave_halves() -> None:
    # d=4 canonical order is (a, c, b, d) of the ascending factors (spec 1.2).
    assert suggested_tt_shapes(10**6, 4, allow_round_up=False) == [25, 40, 25, 40]
    assert suggested_tt_shapes(12, 4, allow_round_up=False) == [1, 2, 2, 3]


def test_a_factor_is_one_only_when_needed() -> None:
    # 388 = 2*2*97: [1, 4, 97] has a higher entropy than [2, 2, 97] but TT-Rec never makes a block of 1s
    # when n has at least d prime factors.
    assert suggested_tt_shapes(388, 3, allow_round_up=False) == [2, 2, 97]
    assert suggested_tt_shapes(7, 3, allow_round_up=False) == [1, 1, 7]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 3000), d=st.integers(2, 4))
def test_most_balanced_against_tt_rec_procedure(n: int, d: int) -> None:
    shape = suggested_tt_shapes(n, d, allow_round_up=False)
    assert len(shape) == d and math.prod(shape) == n
    assert _entropy(shape) == pytest.approx(_fbtt_best_entropy(n, d), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 3000), d=st.integers(2, 3))
def test_round_up_picks_the_most_balanced_rounding(n: int, d: int) -> None:
    shape = suggested_tt_shapes(n, d, allow_round_up=True)
    product = math.prod(shape)
    candidates = [-(-n // 10**k) * 10**k for k in range(len(str(n)))]
    assert product in candidates
    best = max(_fbtt_best_entropy(c, d) for c in candidates)
    assert _entropy(shape) == pytest.approx(best, abs=1e-12)


def test_suggested_shapes_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n must be a positive int"):
        suggested_tt_shapes(0)
    with pytest.raises(ValueError, match="d must be a positive int"):
        suggested_tt_shapes(10, 0)


def test_core_shapes_and_parameter_count_of_table_1() -> None:
    # Spec 1.13: N=1e8, D=32, r=[32,32] -> cores 400x64, 500x4096, 500x128 = 2,137,600 floats.
    shapes = TTShapes.from_sizes(100_000_000, 32, [32, 32])
    assert shapes.p_shapes == (400, 500, 500) and shapes.q_shapes == (2, 4, 4)
    assert shapes.ranks == (1, 32, 32, 1)
    assert shapes.core_shapes() == [(400, 64), (500, 4096), (500, 128)]
    assert shapes.num_parameters() == 2_137_600
    assert shapes.compression_ratio() == pytest.approx(100_000_000 * 32 / 2_137_600)
    assert shapes.prefix_divisors() == [250_000, 500, 1]
    assert shapes.level_dims() == [2, 8, 32]


def test_from_sizes_number_of_cores() -> None:
    assert TTShapes.from_sizes(1000, 16, 4).num_cores == 3
    assert TTShapes.from_sizes(1000, 16, [4, 4, 4]).num_cores == 4
    assert TTShapes.from_sizes(1000, 16, 4, num_cores=2).ranks == (1, 4, 1)
    explicit = TTShapes.from_sizes(1000, 16, 4, p_shapes=[10, 10, 10], q_shapes=[2, 2, 4])
    assert explicit.p_shapes == (10, 10, 10) and explicit.q_shapes == (2, 2, 4)
    rounded = TTShapes.from_sizes(1000, 30, 4, enforce_embedding_dim=False)
    assert rounded.padded_dim >= 30


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(p_shapes=[10, 10, 9]), "prod\\(p_shapes\\)=900 < num_embeddings=1000"),
        (dict(q_shapes=[2, 2, 3]), "prod\\(q_shapes\\)=12 < embedding_dim=16"),
        (dict(p_shapes=[10, 100], q_shapes=[2, 2, 4]), "inconsistent number of cores"),
        (dict(num_cores=1), "inconsistent number of cores|at least 2 cores"),
        (dict(p_shapes=[10, 10, 10], q_shapes=[4, 4, 1], tt_ranks=[4, 0]), "ranks"),
    ],
)
def test_shapes_reject_inconsistent_sizes(kwargs: dict, message: str) -> None:
    ranks = kwargs.pop("tt_ranks", 4)
    with pytest.raises(ValueError, match=message):
        TTShapes.from_sizes(1000, 16, ranks, **kwargs)


def test_ranks_must_have_outer_ones() -> None:
    with pytest.raises(ValueError, match="ranks must be"):
        TTShapes(100, 4, (10, 10), (2, 2), (2, 4, 1))


@pytest.mark.parametrize(
    ("n", "exact", "rounded"),
    [
        (1001, (7, 11, 13), (10, 10, 11)),
        (999, (3, 9, 37), (10, 10, 10)),
        (15_600, (24, 25, 26), (24, 25, 26)),
    ],
)
def test_round_up_rows_is_optional(n: int, exact: tuple[int, ...], rounded: tuple[int, ...]) -> None:
    # 1001 = 7 * 11 * 13 has a balanced exact factorisation, yet TT-Rec's rule rounds it up to 1100.
    default = TTShapes.from_sizes(n, 16, 4)
    assert default.p_shapes == rounded == TTShapes.from_sizes(n, 16, 4, round_up_rows=True).p_shapes
    assert math.prod(default.p_shapes) >= n
    shapes = TTShapes.from_sizes(n, 16, 4, round_up_rows=False)
    assert shapes.p_shapes == exact and shapes.padded_rows == math.prod(exact) == n
    assert _entropy(list(exact)) == pytest.approx(_fbtt_best_entropy(n, 3), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5000), d=st.integers(2, 4))
def test_round_up_rows_false_factors_n_exactly(n: int, d: int) -> None:
    shapes = TTShapes.from_sizes(n, 8, 2, num_cores=d, round_up_rows=False)
    assert math.prod(shapes.p_shapes) == n and len(shapes.p_shapes) == d
    assert shapes.p_shapes == tuple(suggested_tt_shapes(n, d, allow_round_up=False))
    if n > 1:
        assert _entropy(list(shapes.p_shapes)) == pytest.approx(_fbtt_best_entropy(n, d), abs=1e-12)


def test_round_up_rows_false_checks_explicit_p_shapes() -> None:
    assert TTShapes.from_sizes(1001, 16, 4, p_shapes=[7, 11, 13], round_up_rows=False).padded_rows == 1001
    TTShapes.from_sizes(1001, 16, 4, p_shapes=[10, 10, 11])  # rounding up is fine by default
    with pytest.raises(
        ValueError, match=r"round_up_rows=False needs prod\(p_shapes\) == num_embeddings=1001"
    ):
        TTShapes.from_sizes(1001, 16, 4, p_shapes=[10, 10, 11], round_up_rows=False)
    with pytest.raises(ValueError, match="round_up_rows must be a bool, got round_up_rows=0"):
        TTShapes.from_sizes(1001, 16, 4, round_up_rows=0)
