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


@settings(max_examples=150, deadline=None)
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
    # the slope: consecutive differences of the integer sizes follow the linear profile within rounding
    g = len(sizes)
    if g > 1:
        k = skew * 2.0 * (n - g) / (g * (g - 1))
        steps = [abs(a - b) for a, b in zip(sizes, sizes[1:])]
        assert all(abs(step - k) <= 2.0 for step in steps)


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
