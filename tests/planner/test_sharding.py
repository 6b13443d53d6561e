import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecorec.planner import (
    PlanError,
    ShardingMethod,
    ShardingPlan,
    TableProfile,
    lpt_lower_bound,
    plan_sharding,
)


def _tables(costs, memory=None, dims=None, pooling=None, rows=None):
    n = len(costs)
    return [
        TableProfile(
            name=f"t{i}",
            num_embeddings=(rows or [1000] * n)[i],
            embedding_dim=(dims or [16] * n)[i],
            pooling_factor=(pooling or [1.0] * n)[i],
            cost=costs[i],
            memory_bytes=(memory or [1] * n)[i],
        )
        for i in range(n)
    ]


def _optimal_makespan(costs, world_size):
    best = math.inf
    for assignment in itertools.product(range(world_size), repeat=len(costs)):
        loads = [0.0] * world_size
        for cost, rank in zip(costs, assignment):
            loads[rank] += cost
        best = min(best, max(loads))
    return best


@settings(max_examples=60, deadline=None)
@given(
    costs=st.lists(st.floats(min_value=0.1, max_value=100.0), min_size=1, max_size=7),
    world_size=st.integers(min_value=1, max_value=3),
)
def test_greedy_lpt_is_within_four_thirds_of_optimum(costs, world_size):
    plan = plan_sharding(_tables(costs), world_size, "greedy")
    optimum = _optimal_makespan(costs, world_size)
    # Graham's bound for LPT on identical machines: (4/3 - 1/(3m)) * OPT.
    assert plan.makespan <= (4 / 3 - 1 / (3 * world_size)) * optimum + 1e-9
    assert plan.makespan >= plan.lower_bound - 1e-9
    assert optimum >= lpt_lower_bound(_tables(costs), world_size) - 1e-9


@pytest.mark.parametrize("method", list(ShardingMethod))
@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_every_table_placed_exactly_once(method, world_size):
    costs = [float(c) for c in (7, 3, 9, 1, 4, 4, 8, 2, 6, 5, 3)]
    tables = _tables(costs, dims=[8, 16, 32] * 3 + [64, 4], pooling=[1, 2, 3, 4] * 2 + [5, 6, 7])
    plan = plan_sharding(tables, world_size, method, seed=3)
    placed = [n for names in plan.assignment.values() for n in names]
    assert sorted(placed) == sorted(t.name for t in tables)
    assert sorted(plan.assignment) == list(range(world_size))
    assert sum(plan.rank_cost) == pytest.approx(sum(costs))
    assert plan.makespan >= plan.lower_bound - 1e-9


def test_round_robin_follows_table_order():
    plan = plan_sharding(_tables([1.0] * 5), 2, "round_robin")
    assert plan.assignment == {0: ["t0", "t2", "t4"], 1: ["t1", "t3"]}


def test_greedy_hand_example():
    # Sorted 9, 7, 5, 4, 3 onto 2 ranks: 9 -> r0, 7 -> r1, 5 -> r1 (12), 4 -> r0 (13), 3 -> r1 (15).
    # Makespan 15; the optimum is 14 (9+5 | 7+4+3), which is also the lower bound (total 28 / 2).
    plan = plan_sharding(_tables([9.0, 7.0, 5.0, 4.0, 3.0]), 2, "greedy")
    assert plan.assignment == {0: ["t0", "t3"], 1: ["t1", "t2", "t4"]}
    assert plan.rank_cost == [13.0, 15.0]
    assert plan.lower_bound == 14.0


def test_greedy_uses_per_rank_costs():
    # Rank 1 is twice as slow: the greedy must account for it.
    tables = _tables([(4.0, 8.0), (4.0, 8.0), (1.0, 2.0)])
    plan = plan_sharding(tables, 2, "greedy")
    assert plan.assignment == {0: ["t0", "t1"], 1: ["t2"]}
    assert plan.rank_cost == [8.0, 2.0]


def test_dreamshard_weights():
    tables = _tables(
        [1.0, 1.0, 1.0, 1.0],
        memory=[400, 100, 100, 100],
        dims=[4, 64, 32, 32],
        pooling=[1.0, 1.0, 4.0, 1.0],
        rows=[10, 10, 1000, 10],
    )
    # dim_greedy balances dims: 64 | 32 + 32, then 4 ties at 64 | 64 and goes to the rank with less memory
    assert plan_sharding(tables, 2, "dim_greedy").assignment == {0: ["t1", "t0"], 1: ["t2", "t3"]}
    # size_greedy balances bytes: 400 | 100 + 100 + 100
    assert plan_sharding(tables, 2, "size_greedy").assignment == {0: ["t0"], 1: ["t1", "t2", "t3"]}
    # lookup_greedy: dim*pooling = 4, 64, 128, 32 -> 128 | 64 + 32 + 4
    assert plan_sharding(tables, 2, "lookup_greedy").assignment == {0: ["t2"], 1: ["t1", "t3", "t0"]}
    # size_lookup_greedy: dim*pooling*log10(rows) = 4, 64, 384, 32 -> 384 | 64 + 32 + 4
    assert plan_sharding(tables, 2, "size_lookup_greedy").assignment == {0: ["t2"], 1: ["t1", "t3", "t0"]}


def _heavy_and_light():
    """One table heavy by every cost and weight but small (1 byte); four light tables of 5 bytes each.

    Uncapped, the balancing methods put the heavy table alone on one rank and all light ones (20 bytes) on
    the other. Under a 12-byte cap only 2 light tables fit per rank.
    """
    return _tables(
        [10.0, 1.0, 1.0, 1.0, 1.0],
        memory=[1, 5, 5, 5, 5],
        dims=[64, 8, 8, 8, 8],
        pooling=[10.0, 1.0, 1.0, 1.0, 1.0],
        rows=[10**6, 1000, 1000, 1000, 1000],
    )


def _rank_memory(tables, plan):
    by_name = {t.name: t.memory_bytes for t in tables}
    return [sum(by_name[n] for n in plan.assignment[r]) for r in range(plan.world_size)]


@pytest.mark.parametrize("method", ["greedy", "dim_greedy", "lookup_greedy", "size_lookup_greedy"])
def test_memory_cap_changes_a_plan_that_would_exceed_it(method):
    tables, cap = _heavy_and_light(), 12
    uncapped = plan_sharding(tables, 2, method)
    assert uncapped.assignment == {0: ["t0"], 1: ["t1", "t2", "t3", "t4"]}
    assert max(_rank_memory(tables, uncapped)) == 20 > cap
    capped = plan_sharding(tables, 2, method, memory_cap_bytes=cap)
    # By hand: t1, t2 go to rank 1 (10 bytes); t3 and t4 no longer fit there and go to rank 0 (1 + 5 + 5).
    assert capped.assignment == {0: ["t0", "t3", "t4"], 1: ["t1", "t2"]}
    assert capped.rank_memory == _rank_memory(tables, capped) == [11, 10]
    assert max(capped.rank_memory) <= cap
    assert capped.meta["memory_cap_bytes"] == cap


def test_memory_cap_changes_random_plans_that_would_exceed_it():
    tables, cap = _heavy_and_light(), 12
    changed = 0
    for seed in range(20):
        uncapped = plan_sharding(tables, 2, "random", seed=seed)
        capped = plan_sharding(tables, 2, "random", memory_cap_bytes=cap, seed=seed)
        assert capped.rank_memory == _rank_memory(tables, capped)
        assert max(capped.rank_memory) <= cap
        assert sorted(n for names in capped.assignment.values() for n in names) == [t.name for t in tables]
        if max(_rank_memory(tables, uncapped)) > cap:
            assert capped.assignment != uncapped.assignment
            changed += 1
        else:  # the same draws when every rank has room: the cap changes nothing
            assert capped.assignment == uncapped.assignment
    assert changed >= 5  # the instance does exercise the cap (10 of 16 uncapped splits exceed it)


@pytest.mark.parametrize(
    ("method", "memory", "cap", "table", "size"),
    [
        # round robin is fixed: t0, t2, t4 on rank 0 make 15 bytes; under 12 the plan cannot change.
        ("round_robin", [5, 1, 5, 1, 5], 12, "t4", 5),
        # size_greedy balances bytes: uncapped 3 | 3, then 2 -> 5 | 5, then 2 -> 7 (over 6). Its least-loaded
        # rank is the one with the least memory, so under the cap nothing else is tried.
        ("size_greedy", [3, 3, 2, 2, 2], 6, "t4", 2),
    ],
)
def test_memory_cap_fixed_placements_raise(method, memory, cap, table, size):
    tables = _tables([1.0] * len(memory), memory=memory)
    uncapped = plan_sharding(tables, 2, method)
    assert max(_rank_memory(tables, uncapped)) > cap
    with pytest.raises(PlanError) as err:
        plan_sharding(tables, 2, method, memory_cap_bytes=cap)
    assert f"table '{table}' ({size} bytes) fits on no rank under memory_cap_bytes={cap}" in str(err.value)
    # With room for the uncapped plan, the cap changes nothing.
    roomy = plan_sharding(tables, 2, method, memory_cap_bytes=max(uncapped.rank_memory))
    assert roomy.assignment == uncapped.assignment


@pytest.mark.parametrize("method", list(ShardingMethod))
def test_plan_that_does_not_fit_raises_naming_the_table(method):
    tables = _tables([1.0, 1.0, 1.0], memory=[6, 6, 6])
    with pytest.raises(PlanError, match=r"table 't\d' \(6 bytes\) fits on no rank under memory_cap_bytes=10"):
        plan_sharding(tables, 2, method, memory_cap_bytes=10)


def test_bad_arguments():
    with pytest.raises(PlanError, match="unknown sharding method 'lpt'"):
        plan_sharding(_tables([1.0]), 2, "lpt")
    with pytest.raises(PlanError, match="world_size must be >= 1"):
        plan_sharding(_tables([1.0]), 0)
    with pytest.raises(PlanError, match="duplicate table names"):
        plan_sharding(_tables([1.0]) * 2, 2)
    with pytest.raises(PlanError, match="3 per-rank costs for world_size=2"):
        plan_sharding(_tables([(1.0, 2.0, 3.0)]), 2)


def test_json_round_trip_and_bad_file(tmp_path):
    plan = plan_sharding(_tables([3.0, 2.0, 1.0]), 2, "greedy")
    path = tmp_path / "plan.json"
    plan.save(path)
    loaded = ShardingPlan.load(path)
    assert loaded.assignment == plan.assignment
    assert loaded.rank_cost == plan.rank_cost
    assert json.loads(path.read_text())["makespan"] == plan.makespan

    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"world_size": 2, "assignment": {"0": ["a"], "1": ["a"]}, "method": "x", '
        '"rank_cost": [1, 1], "rank_memory": [0, 0], "lower_bound": 1}'
    )
    with pytest.raises(PlanError, match="broken.json: a table is placed on more than one rank"):
        ShardingPlan.load(broken)
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"world_size": 2, "assign')
    with pytest.raises(PlanError, match="truncated.json: invalid JSON"):
        ShardingPlan.load(truncated)
