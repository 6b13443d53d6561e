"""Forward of every algorithm against ``F.embedding_bag(full_weight(), ...)``: float64 1e-10, float32 1e-5."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ecorec.tt import TTEmbeddingBag, TTShapes, tt_full_weight
from ecorec.tt.reference import tt_rows
from ecorec.tt.testing import DISTRIBUTIONS, LookupInput, random_lookup

from .utils import (
    ALGORITHMS,
    REL_TOL,
    assert_rel_close,
    module_forward,
    oracle_forward,
    oracle_forward_float64,
)


def _module(algorithm: str, dtype: torch.dtype = torch.float64, **kwargs) -> TTEmbeddingBag:
    kwargs.setdefault("weight_init", "sampled_gaussian")
    kwargs.setdefault("init_std", 1.0)
    if algorithm == "fbtt":
        kwargs.setdefault("fbtt_chunk_size", 7)  # several chunks, bags split across chunk boundaries
    return TTEmbeddingBag(
        kwargs.pop("num_embeddings", 1000), kwargs.pop("embedding_dim", 12), kwargs.pop("tt_ranks", 3),
        algorithm=algorithm, dtype=dtype, **kwargs,
    )  # fmt: skip


DTYPES = [torch.float64, torch.float32]


def _check_forward(module: TTEmbeddingBag, lookup: LookupInput) -> None:
    """The module's output against the dense oracle, computed in float64, within ``REL_TOL`` of its dtype."""
    out = module_forward(module, lookup)
    assert out.dtype == module.cores[0].dtype
    assert_rel_close(out, oracle_forward_float64(module, lookup), REL_TOL[out.dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_forward_matches_dense_oracle(algorithm: str, mode: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    module = _module(algorithm, dtype, mode=mode, include_last_offset=True)
    lookup = random_lookup(
        1000, 13, mean_length=6, distribution="zipf", empty_fraction=0.2, weighted=mode == "sum", dtype=dtype,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    _check_forward(module, lookup)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_adversarial_indices(algorithm: str, distribution: str, dtype: torch.dtype) -> None:
    # Hot rows (long segments), every bag one repeated row, zipf skew; plus empty bags throughout.
    module = _module(algorithm, dtype, include_last_offset=True)
    lookup = random_lookup(
        1000, 9, mean_length=12, distribution=distribution, empty_fraction=0.3, weighted=True,
        dtype=dtype, generator=torch.Generator().manual_seed(2),
    )  # fmt: skip
    _check_forward(module, lookup)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    num_cores=st.integers(2, 4),
    algorithm=st.sampled_from(ALGORITHMS),
    mode=st.sampled_from(["sum", "mean"]),
    distribution=st.sampled_from(DISTRIBUTIONS),
    num_bags=st.integers(1, 12),
    include_last_offset=st.booleans(),
)
def test_random_shapes(
    dtype: torch.dtype,
    data: st.DataObject,
    num_cores: int,
    algorithm: str,
    mode: str,
    distribution: str,
    num_bags: int,
    include_last_offset: bool,
) -> None:
    p = data.draw(st.lists(st.integers(1, 7), min_size=num_cores, max_size=num_cores), label="p")
    q = data.draw(st.lists(st.integers(1, 3), min_size=num_cores, max_size=num_cores), label="q")
    ranks = data.draw(st.lists(st.integers(1, 4), min_size=num_cores - 1, max_size=num_cores - 1), label="r")
    n = data.draw(st.integers(max(1, math.prod(p) // 2), math.prod(p)), label="N")
    dim = data.draw(st.integers(1, math.prod(q)), label="D")
    module = _module(
        algorithm, dtype, num_embeddings=n, embedding_dim=dim, tt_ranks=ranks, tt_p_shapes=p, tt_q_shapes=q,
        mode=mode, include_last_offset=include_last_offset,
    )  # fmt: skip
    seed = data.draw(st.integers(0, 2**16), label="seed")
    lookup = random_lookup(
        n, num_bags, mean_length=data.draw(st.sampled_from([0.5, 2.0, 6.0])), distribution=distribution,
        empty_fraction=0.2, weighted=mode == "sum" and seed % 2 == 0, dtype=dtype,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    _check_forward(module, lookup)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_lengths_offsets_and_2d_inputs_agree(algorithm: str) -> None:
    module = _module(algorithm)
    indices = torch.randint(0, 1000, (5, 4), generator=torch.Generator().manual_seed(3))
    flat = indices.reshape(-1)
    expected = F.embedding_bag(indices, module.full_weight(), mode="sum")
    from_2d = module(indices)
    from_offsets = module(flat, torch.arange(0, 20, 4))
    from_lengths = module(flat, lengths=torch.full((5,), 4))
    from_int32 = module(flat.to(torch.int32), lengths=torch.full((5,), 4, dtype=torch.int32))
    for out in (from_2d, from_offsets, from_lengths, from_int32):
        assert_rel_close(out, expected, 1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_single_bag_and_no_indices(algorithm: str, dtype: torch.dtype) -> None:
    module = _module(algorithm, dtype, include_last_offset=True)
    one = LookupInput(torch.tensor([5, 5, 999]), torch.tensor([0, 3]), torch.tensor([3]), None)
    _check_forward(module, one)
    weighted = LookupInput(one.indices, one.offsets, one.lengths, torch.tensor([0.5, -1.0, 2.0], dtype=dtype))
    _check_forward(module, weighted)
    empty = module(torch.zeros(0, dtype=torch.int64), torch.zeros(4, dtype=torch.int64))
    assert empty.shape == (3, 12) and torch.equal(empty, torch.zeros(3, 12, dtype=dtype))
    no_bags = module(torch.zeros(0, dtype=torch.int64), torch.zeros(1, dtype=torch.int64))
    assert no_bags.shape == (0, 12)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_extra_columns_are_dropped(algorithm: str) -> None:
    # prod(q) = 18 > D = 11: the first 11 columns of the full TT product (columns row-major over q).
    module = _module(algorithm, embedding_dim=11, tt_q_shapes=[2, 3, 3], include_last_offset=True)
    padded_shapes = TTShapes(1000, 18, module.shapes.p_shapes, (2, 3, 3), module.shapes.ranks)
    padded = tt_full_weight(list(module.cores), padded_shapes)
    rows = torch.tensor([0, 17, 999, 17])
    out = module(rows, torch.tensor([0, 2, 4]))
    expected = torch.stack([padded[[0, 17]].sum(0), padded[[999, 17]].sum(0)])[:, :11]
    assert_rel_close(out, expected, 1e-12)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rows_beyond_n_are_not_needed(algorithm: str) -> None:
    # N = 997 (prime): p-shapes round up to prod(p) >= N; the last row is reachable and correct.
    module = _module(algorithm, num_embeddings=997, include_last_offset=True)
    assert math.prod(module.shapes.p_shapes) >= 997
    lookup = LookupInput(torch.tensor([996, 0, 996]), torch.tensor([0, 1, 3]), torch.tensor([1, 2]), None)
    assert_rel_close(module_forward(module, lookup), oracle_forward(module, lookup), 1e-10)


def test_inference_path_without_autograd_matches() -> None:
    module = _module("ecorec", include_last_offset=True)
    lookup = random_lookup(
        1000, 6, weighted=True, dtype=torch.float64, generator=torch.Generator().manual_seed(4)
    )
    with torch.no_grad():
        out = module_forward(module, lookup)
    assert not out.requires_grad
    assert_rel_close(out, oracle_forward(module, lookup), 1e-10)


def test_reference_rows_match_full_weight() -> None:
    # The two references (einsum reconstruction and per-row chain) agree with each other.
    module = _module("ecorec", num_cores=4, tt_ranks=2)
    rows = torch.arange(1000)
    assert_rel_close(tt_rows(list(module.cores), module.shapes, rows), module.full_weight(), 1e-12)


def test_full_weight_against_explicit_sum_over_ranks() -> None:
    # E[idx][j0, j1, j2] = sum_{a, b} G0[I0][j0, a] G1[I1][a, j1, b] G2[I2][b, j2] (spec 1.3), written out.
    module = TTEmbeddingBag(24, 8, [2, 3], tt_p_shapes=[2, 3, 4], tt_q_shapes=[2, 2, 2], dtype=torch.float64)
    g0 = module.cores[0].reshape(2, 2, 2)
    g1 = module.cores[1].reshape(3, 2, 2, 3)
    g2 = module.cores[2].reshape(4, 3, 2)
    weight = module.full_weight()
    for idx in (0, 5, 13, 23):
        i0, i1, i2 = idx // 12, (idx // 4) % 3, idx % 4
        for j in range(8):
            j0, j1, j2 = j // 4, (j // 2) % 2, j % 2
            value = sum(g0[i0, j0, a] * g1[i1, a, j1, b] * g2[i2, b, j2] for a in range(2) for b in range(3))
            assert weight[idx, j].item() == pytest.approx(value.item(), rel=1e-12)
