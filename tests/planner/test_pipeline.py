import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecorec.planner import execution_order, pipeline_stages, plan_sharding, split_into_stages, stage_sizes
from tests.planner.test_sharding import _tables


def test_published_examples():
    # ecorec_artifact_spec.md section 2.7
    assert stage_sizes(197, 4, 1.0) == [98, 65, 33, 1]
    assert stage_sizes(197, 4, 0.0) == [50, 49, 49, 49]
    assert stage_sizes(49, 4, 1.0) == [24, 16, 8, 1]


def _spec_profile(n: int, g: int, skew: float) -> list[float]:
    """Spec section 2.7, step 1-2: the desired linear profile ``n/g + k (i - (g+1)/2)``, largest first."""
    k = skew * 2.0 * (n - g) / (g * (g - 1)) if g > 1 else 0.0
    return [n / g + k * (i - (g + 1) / 2) for i in range(g, 0, -1)]


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=300),
    groups=st.integers(min_value=1, max_value=12),
    skew=st.floats(min_value=0.0, max_value=1.0),
    decreasing=st.booleans(),
)
def test_stage_sizes_properties(n, groups, skew, decreasing):
    sizes = stage_sizes(n, groups, skew, decreasing)
    assert sum(sizes) == n
    assert len(sizes) == min(n, groups)
    assert min(sizes) >= 1
    assert sizes == sorted(sizes, reverse=decreasing)
    if skew == 0.0:
        assert max(sizes) - min(sizes) <= 1
    # The slope: every integer size is within 1 of the desired linear profile (spec section 2.7).
    g = len(sizes)
    desired = _spec_profile(n, g, skew)
    if not decreasing:
        desired.reverse()
    assert all(abs(size - want) < 1.0 + 1e-9 for size, want in zip(sizes, desired)), (sizes, desired)
    # With a slope of more than one table per stage, the sizes are strictly monotone.
    k = skew * 2.0 * (n - g) / (g * (g - 1)) if g > 1 else 0.0
    if k > 1.0 + 1e-9:
        steps = [a - b for a, b in zip(sizes, sizes[1:])]
        assert all(step > 0 if decreasing else step < 0 for step in steps), sizes


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=400),
    groups=st.integers(min_value=1, max_value=16),
    skew=st.floats(min_value=0.0, max_value=1.0),
)
def test_backward_sizes_are_the_forward_ones_reversed(n, groups, skew):
    assert (
        stage_sizes(n, groups, skew, decreasing=False) == stage_sizes(n, groups, skew, decreasing=True)[::-1]
    )


@pytest.mark.parametrize(("n", "g", "skew"), [(4, 2, 0.5), (49, 4, 1.0), (197, 4, 1.0), (10, 3, 0.3)])
def test_mirror_on_cases_where_the_artifact_differs(n, g, skew):
    # The artifact's partition_number(n, g, skew, decreasing=False) gave [2, 2] for (4, 2, 0.5) and
    # [1, 9, 16, 23] for (49, 4, 1): not mirrors of [3, 1] and [24, 16, 8, 1].
    forward = stage_sizes(n, g, skew, decreasing=True)
    assert stage_sizes(n, g, skew, decreasing=False) == forward[::-1]
    assert stage_sizes(4, 2, 0.5) == [3, 1] and stage_sizes(4, 2, 0.5, decreasing=False) == [1, 3]
    assert stage_sizes(49, 4, 1.0, decreasing=False) == [1, 8, 16, 24]


@pytest.mark.parametrize("g", range(2, 13))
def test_full_skew_is_strictly_decreasing_when_n_allows(g):
    # skew 1 keeps the smallest stage at 1; distinct sizes need n >= 1 + 2 + ... + g.
    for n in range(g * (g + 1) // 2, 400):
        sizes = stage_sizes(n, g, 1.0)
        assert sizes[-1] == 1
        assert all(a > b for a, b in zip(sizes, sizes[1:])), (n, sizes)


def test_steeper_skew_shrinks_the_last_forward_stage():
    last = [stage_sizes(100, 4, skew)[-1] for skew in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert last == sorted(last, reverse=True)
    assert last[0] == 25 and last[-1] == 1


def test_backward_mirrors_forward_exactly():
    order = [f"t{i}" for i in range(49)]
    forward, backward = pipeline_stages(order, 4, 1.0)
    assert [len(s) for s in forward] == [24, 16, 8, 1]
    assert backward == list(reversed(forward))
    assert [t for s in forward for t in s] == order


def test_fewer_tables_than_stages_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="ecorec.planner.pipeline"):
        assert stage_sizes(3, 4, 1.0) == [1, 1, 1]
    assert "3 tables < num_micro_keys=4" in caplog.text
    assert stage_sizes(0, 4, 1.0) == []


def test_bad_stage_arguments():
    with pytest.raises(ValueError, match="num_micro_keys must be >= 1"):
        stage_sizes(4, 0)
    with pytest.raises(ValueError, match=r"skew_degree must be in \[0, 1\], got 1.5"):
        stage_sizes(4, 2, 1.5)
    with pytest.raises(ValueError, match="sum to 3, not to 4 tables"):
        split_into_stages(["a", "b", "c", "d"], [1, 2])


def test_execution_order():
    costs = {"t0": 9.0, "t1": 7.0, "t2": 5.0, "t3": 4.0, "t4": 3.0}
    plan = plan_sharding(_tables(list(costs.values())), 2, "greedy")
    # greedy lists are in placement order = descending cost; reordering runs cheapest first
    assert execution_order(plan, costs, reorder=False) == {0: ["t0", "t3"], 1: ["t1", "t2", "t4"]}
    assert execution_order(plan, costs, reorder=True) == {0: ["t3", "t0"], 1: ["t4", "t2", "t1"]}
    with pytest.raises(KeyError, match="no cost for tables"):
        execution_order({0: ["x"]}, costs)
