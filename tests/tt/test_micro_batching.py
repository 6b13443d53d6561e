"""Sorted-index micro-batching: the plan's invariants, and micro-batched == not micro-batched."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ecorec.tt import TTEmbeddingBag, tt_level_counts
from ecorec.tt.indexing import build_lookup_plan, micro_batch_sizes
from ecorec.tt.testing import DISTRIBUTIONS, random_lookup

from .utils import assert_rel_close, copy_cores, core_grads, module_forward


def test_micro_batch_sizes() -> None:
    assert micro_batch_sizes(10, 3) == [4, 3, 3]
    assert micro_batch_sizes(10, 1) == [10]
    assert micro_batch_sizes(3, 7) == [1, 1, 1]  # capped at U
    assert micro_batch_sizes(0, 4) == []  # no indices: no micro-batch, no division by zero
    assert micro_batch_sizes(10, 1, max_micro_uniques=4) == [4, 3, 3]
    assert micro_batch_sizes(10, 5, max_micro_uniques=4) == [2, 2, 2, 2, 2]
    with pytest.raises(ValueError, match="micro_batches must be >= 1"):
        micro_batch_sizes(10, 0)
    with pytest.raises(ValueError, match="max_micro_uniques"):
        micro_batch_sizes(10, 1, max_micro_uniques=0)


@settings(max_examples=40, deadline=None)
@given(
    p=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    micro_batches=st.integers(1, 9),
    num_bags=st.integers(1, 15),
    distribution=st.sampled_from(DISTRIBUTIONS),
    seed=st.integers(0, 2**16),
)
def test_plan_invariants(
    p: list[int], micro_batches: int, num_bags: int, distribution: str, seed: int
) -> None:
    n = int(torch.tensor(p).prod())
    lookup = random_lookup(n, num_bags, mean_length=3, distribution=distribution, empty_fraction=0.2,
                           generator=torch.Generator().manual_seed(seed))  # fmt: skip
    plan = build_lookup_plan(lookup.indices, lookup.offsets, p, micro_batches=micro_batches)
    d, nnz = len(p), lookup.indices.numel()
    uniques = torch.unique(lookup.indices)
    assert torch.equal(plan.uniques, uniques)
    assert torch.equal(plan.uniques[plan.inverse], lookup.indices)
    sorted_rows = lookup.indices[plan.sorted_positions]
    assert torch.equal(sorted_rows, torch.sort(lookup.indices).values)
    assert torch.equal(plan.unique_offsets[1:] - plan.unique_offsets[:-1], torch.bincount(plan.inverse))
    # The levels are the distinct prefixes, their parents and children.
    counts = tt_level_counts(lookup.indices, _shapes(p))
    assert plan.level_counts() == counts
    for k in range(1, d):
        parent_keys = torch.unique(torch.div(uniques, int(torch.tensor(p[k:]).prod()), rounding_mode="floor"))
        assert torch.equal(
            torch.sort(plan.level_parents[k]).values, plan.level_parents[k]
        )  # children contiguous
        assert plan.level_parents[k].unique().numel() == parent_keys.numel() == counts[k - 1]
    bounds = plan.micro_bounds.tolist()
    if nnz == 0:
        assert bounds == []
        return
    sizes = micro_batch_sizes(uniques.numel(), micro_batches)
    assert len(bounds) == len(sizes)
    # Micro-batches partition the uniques and the occurrences, in order.
    assert [b[2 * d + 1] - b[2 * d] for b in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == nnz
    assert all(bounds[m][1] == bounds[m + 1][0] for m in range(len(bounds) - 1))
    for k in range(d):
        # Every level's ranges are contiguous, overlap by at most one straddling prefix, and cover the level:
        # at most M - 1 extra products per level.
        ranges = [(b[2 + 2 * k], b[3 + 2 * k]) for b in bounds]
        assert ranges[0][0] == 0 and ranges[-1][1] == counts[k]
        assert all(0 <= ranges[m][1] - ranges[m + 1][0] <= 1 for m in range(len(ranges) - 1))
        assert sum(b - a for a, b in ranges) <= counts[k] + len(ranges) - 1
    # A micro-batch's occurrences (in sorted order) are exactly those of its uniques.
    for bound in bounds:
        o_start, o_end, u_start, u_end = bound[0], bound[1], bound[2 * d], bound[2 * d + 1]
        ids = plan.inverse[plan.sorted_positions[o_start:o_end]]
        assert bool(((ids >= u_start) & (ids < u_end)).all())
        assert int(((plan.inverse >= u_start) & (plan.inverse < u_end)).sum()) == o_end - o_start


def _shapes(p: list[int]):
    from ecorec.tt import TTShapes

    return TTShapes(int(torch.tensor(p).prod()), 1, tuple(p), (1,) * len(p), (1,) * (len(p) + 1))


def _pair(micro_batches: int = 1, max_micro_uniques: int | None = None, **kwargs):
    """Two modules with the same cores: one not micro-batched, one micro-batched."""
    ranks = kwargs.pop("tt_ranks", [3, 4])
    common = dict(include_last_offset=True, dtype=torch.float64, **kwargs)
    base = TTEmbeddingBag(900, 12, ranks, weight_init="sampled_gaussian", init_std=1.0, **common)
    micro = TTEmbeddingBag(
        900, 12, ranks, micro_batches=micro_batches, max_micro_uniques=max_micro_uniques, **common
    )
    copy_cores(micro, base)
    return base, micro


@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("micro_batches", [1, 2, 7, "U"])
def test_micro_batched_equals_unbatched(micro_batches: int | str, mode: str) -> None:
    lookup = random_lookup(
        900, 24, mean_length=6, distribution="zipf", empty_fraction=0.1, weighted=mode == "sum",
        dtype=torch.float64, generator=torch.Generator().manual_seed(12),
    )  # fmt: skip
    num_uniques = torch.unique(lookup.indices).numel()
    m = num_uniques if micro_batches == "U" else micro_batches
    base, micro = _pair(m, mode=mode)
    grad_output = torch.randn(24, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    out_base, out_micro = module_forward(base, lookup), module_forward(micro, lookup)
    assert_rel_close(out_micro, out_base, 1e-12)
    for a, b in zip(core_grads(micro, out_micro, grad_output), core_grads(base, out_base, grad_output)):
        assert_rel_close(a, b, 1e-12)


def test_cap_on_uniques_per_micro_batch() -> None:
    lookup = random_lookup(
        900, 30, mean_length=6, dtype=torch.float64, generator=torch.Generator().manual_seed(14)
    )
    base, micro = _pair(max_micro_uniques=5)
    plan = build_lookup_plan(lookup.indices, lookup.offsets, micro.shapes.p_shapes, max_micro_uniques=5)
    assert max(b[7] - b[6] for b in plan.micro_bounds.tolist()) <= 5
    assert_rel_close(module_forward(micro, lookup), module_forward(base, lookup), 1e-12)


@settings(max_examples=15, deadline=None)
@given(
    micro_batches=st.integers(1, 40),
    num_cores=st.integers(2, 4),
    distribution=st.sampled_from(DISTRIBUTIONS),
    seed=st.integers(0, 2**16),
)
def test_micro_batched_equals_unbatched_random(
    micro_batches: int, num_cores: int, distribution: str, seed: int
):
    base, micro = _pair(micro_batches, num_cores=num_cores, tt_ranks=2, deterministic=seed % 2 == 0)
    lookup = random_lookup(
        900, 20, mean_length=5, distribution=distribution, empty_fraction=0.2, weighted=True,
        dtype=torch.float64, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    grad_output = torch.randn(20, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    out_base, out_micro = module_forward(base, lookup), module_forward(micro, lookup)
    assert_rel_close(out_micro, out_base, 1e-12)
    for a, b in zip(core_grads(micro, out_micro, grad_output), core_grads(base, out_base, grad_output)):
        assert_rel_close(a, b, 1e-12)
