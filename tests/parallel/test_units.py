"""Pure pieces of ecorec.parallel: bag selection, bwp sample placement, twp stages, placement checks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ecorec.parallel import micro_batch_bags, table_wise_stages, validate_placement
from ecorec.parallel.jagged import select_bags
from ecorec.planner import stage_sizes


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 5), min_size=1, max_size=12),
    data=st.data(),
    weighted=st.booleans(),
)
def test_select_bags_matches_a_python_loop(lengths, data, weighted):
    offsets = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    values = torch.arange(int(offsets[-1])) * 10
    weights = torch.rand(values.numel()) if weighted else None
    bags = data.draw(st.lists(st.integers(0, len(lengths) - 1), max_size=15))
    got_v, got_o, got_w = select_bags(values, offsets, torch.tensor(bags, dtype=torch.long), weights)
    exp_v, exp_w, exp_o = [], [], [0]
    for bag in bags:
        lo, hi = int(offsets[bag]), int(offsets[bag + 1])
        exp_v += values[lo:hi].tolist()
        exp_w += weights[lo:hi].tolist() if weighted else []
        exp_o.append(exp_o[-1] + hi - lo)
    assert got_v.tolist() == exp_v
    assert got_o.tolist() == exp_o
    if weighted:
        assert got_w.tolist() == exp_w
    else:
        assert got_w is None


@pytest.mark.parametrize(("world", "local", "n"), [(1, 4, 2), (2, 8, 2), (3, 6, 3), (4, 4, 4)])
def test_bwp_micro_batches_reassemble_every_rank_local_batch(world, local, n):
    # micro-batch m carries, for rank r, rows [r*b + m*b/n, ...): over m, rank r gets [r*b, (r+1)*b)
    parts = [micro_batch_bags(world, local, n, m).view(world, local // n) for m in range(n)]
    for r in range(world):
        assert torch.cat([p[r] for p in parts]).tolist() == list(range(r * local, (r + 1) * local))
    assert sorted(torch.cat([p.reshape(-1) for p in parts]).tolist()) == list(range(world * local))


def test_table_wise_stages_reorder_slope_and_fallback(caplog):
    order = {0: ["a", "b", "c", "d", "e"], 1: ["f", "g"]}

    def sizes(n, k):
        return stage_sizes(n, k, 1.0, decreasing=True)

    stages = table_wise_stages(order, 2, sizes)
    assert stages == {0: [["a", "b", "c", "d"], ["e"]], 1: [["f"], ["g"]]}
    # K=4 but rank 1 holds 2 tables: every rank falls back to 2 stages (the same split as asking for 2)
    assert table_wise_stages(order, 4, sizes) == stages
    assert "using 2 stages" in caplog.text
    with pytest.raises(ValueError, match="num_micro_keys=4 stages but some rank holds only 2 tables"):
        table_wise_stages(order, 4, sizes, allow_fewer_stages=False)
    empty_rank = table_wise_stages({0: ["a", "b"], 1: []}, 2, sizes)
    assert empty_rank[1] == [[], []]


def test_validate_placement_names_the_problem():
    with pytest.raises(ValueError, match="each rank 0..1"):
        validate_placement({0: ["a"]}, ["a"], 2)
    with pytest.raises(ValueError, match="'a' on ranks 0 and 1"):
        validate_placement({0: ["a"], 1: ["a"]}, ["a"], 2)
    with pytest.raises(ValueError, match="without a rank"):
        validate_placement({0: ["a"], 1: []}, ["a", "b"], 2)
    with pytest.raises(ValueError, match="unknown tables"):
        validate_placement({0: ["a"], 1: ["z"]}, ["a"], 2)
    validate_placement({0: ["b"], 1: ["a"]}, ["a", "b"], 2)


def test_sharding_env_checks_placement_in_one_place():
    from ecorec.parallel import ShardingEnv

    env = ShardingEnv(rank=1, world_size=2, placement={0: ["a"], 1: ["b", "c"]})
    assert env.for_features(["a", "b", "c"]) is env and env.tables_of() == ["b", "c"]
    with pytest.raises(ValueError, match="without a rank"):
        env.for_features(["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="rank 1 holds tables"):
        env.check_holds(["b"])
    with pytest.raises(ValueError, match="needs a placement"):
        ShardingEnv().for_features(["a"])
    solo = ShardingEnv.from_group(None, device="cpu", placement={0: ("a",)})
    assert (solo.rank, solo.world_size, solo.placement) == (0, 1, {0: ["a"]})
