"""Measured placement costs: the robust statistic, the link model, pieces cached by content and shared between
placements, and a measured cost's structure against the link model."""

from pathlib import Path

import numpy as np
import pytest

from ecorec.bench.placement import (
    PlacementBenchConfig,
    PlacementCost,
    canonical_dims,
    link_exchange_ms,
    measure_placements,
    plan_statistic,
    relative_iqr,
    round_values,
)
from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset
from ecorec.planner.dreamshard.placement import Placement, Shard

PLACEMENT = Placement(
    2, (Shard("f0", 16, 0), Shard("f1", 16, 1), Shard("f2", 8, 1), Shard("f2", 8, 0, column=8))
)
ALL_ON_ONE = Placement(2, (Shard("f0", 16, 0), Shard("f1", 16, 0), Shard("f2", 16, 0)))
SPLIT = Placement(2, (Shard("f0", 16, 0), Shard("f1", 16, 1), Shard("f2", 16, 1)))
SAME_GROUPS = Placement(2, (Shard("f0", 16, 1), Shard("f1", 16, 0), Shard("f2", 16, 0)))  # SPLIT relabelled


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("placement") / "synthetic"
    config = SyntheticConfig(num_tables=4, num_samples=2048, rows_min=500, rows_max=5000, num_dense=1, seed=3)
    generate_synthetic_dataset(path, config, row_group_size=1024, splits={"train": 1.0})
    return path


def _config(dataset, **kwargs):
    settings = dict(
        dataset=str(dataset), batch_size=2048, world_size=2, rounds=3, repeats=2, comm="link", link_gbit=1.0
    )
    settings.update(kwargs)
    return PlacementBenchConfig(**settings)


def test_the_statistic_recovers_the_undisturbed_cost():
    rng = np.random.default_rng(0)
    true = np.array([[1.0, 0.2, 0.2, 2.0], [3.0, 0.2, 0.2, 5.0]])  # [R, 4] undisturbed costs
    iterations = np.broadcast_to(true[:, None, None, :], (2, 4, 3, 4)).copy()  # [R, rounds, repeats, 4]
    iterations += 0.05 + rng.exponential(0.5, iterations.shape)  # disturbances only add time
    iterations[:, 2, 1, :] = true  # one undisturbed iteration of every column
    rounds = round_values(iterations)
    assert plan_statistic(rounds) == pytest.approx(true.sum(axis=1).max())
    cost = PlacementCost.from_rounds(rounds)
    assert np.allclose(cost.device_costs, true)
    per_round = rounds.sum(axis=2).max(axis=0)
    assert cost.spread == pytest.approx((per_round.min(), per_round.max()))
    assert np.median(iterations, axis=(1, 2)).sum(axis=1).max() > 1.1 * cost.plan_cost  # a median would not
    assert relative_iqr([1.0, 2.0, 3.0]) == pytest.approx(0.5) and relative_iqr([4.0]) == 0.0


def test_link_exchange_is_the_busiest_link_s_bytes_over_its_rate():
    # 4 devices, B = 1024 (chunk 256), dims [32, 16, 16, 0]: device 0 sends 3 x 256 x 32 floats, receives
    # 256 x 32; every other device receives 256 x 32 from device 0 plus the others' chunks
    out0 = 3 * 256 * 32 * 4
    into1 = 256 * (32 + 16) * 4
    expected = max(out0, into1) * 8 / 1e9 * 1e3
    assert link_exchange_ms([32, 16, 16, 0], 1024, 1.0) == pytest.approx(expected)
    assert link_exchange_ms([16, 32, 0, 16], 1024, 1.0) == pytest.approx(expected)  # relabelled: the same
    assert link_exchange_ms([16, 16], 1024, 1.0, ranks_per_node=2) == 0.0  # one node, unshaped inside
    assert canonical_dims([16, 32, 0, 16]) == ((32, 16, 16, 0), [1, 0, 3, 2])


def test_pieces_are_cached_and_shared_by_placements(dataset, tmp_path):
    config = _config(dataset, cache_dir=str(tmp_path / "cache"))
    split, relabelled = measure_placements([SPLIT, SAME_GROUPS], config)
    assert not split.cached and relabelled.cached is False  # measured in the same call
    assert relabelled.plan_cost == split.plan_cost  # the same groups of tables: the same pieces
    assert sorted(map(tuple, relabelled.device_costs)) == sorted(map(tuple, split.device_costs))
    (again,) = measure_placements([ALL_ON_ONE], config)
    (cached,) = measure_placements([ALL_ON_ONE], config)
    assert not again.cached and cached.cached and cached.plan_cost == again.plan_cost
    # the idle device computes nothing; the loaded one holds every table's work
    assert cached.device_costs[1][0] == 0.0 < cached.device_costs[0][0]
    (fresh,) = measure_placements([ALL_ON_ONE], config, replicate=1)  # an independent re-measurement
    assert not fresh.cached


def test_a_measured_cost_is_its_rounds_minimum_and_its_link_columns_the_model(dataset):
    """The structure of a real measurement, checked against what does not depend on this machine's timing:
    the plan cost is the busiest device's summed columns, no round is cheaper than the statistic, and with
    ``comm="link"`` both communication columns are the link model's busiest-link time, identical in
    independent re-measurements. (How reproducible the timed columns are is the study's printed IQR, not a
    test.)"""
    config = _config(dataset, rounds=3, repeats=2)
    panel = [measure_placements([PLACEMENT], config, replicate=r)[0] for r in range(2)]
    exchange = link_exchange_ms([24, 24], config.batch_size, config.link_gbit)  # f0|f2[:8] and f1|f2[8:]
    assert exchange == pytest.approx(1024 * 24 * 4 * 8 / 1e9 * 1e3)
    for cost in panel:
        assert not cost.cached
        assert len(cost.device_costs) == 2 and all(len(row) == 4 for row in cost.device_costs)
        assert cost.plan_cost == pytest.approx(max(sum(row) for row in cost.device_costs))
        assert cost.plan_cost <= cost.spread[0] <= cost.spread[1]
        for forward_compute, forward_comm, backward_comm, backward_compute in cost.device_costs:
            assert forward_comm == pytest.approx(exchange) and backward_comm == pytest.approx(exchange)
            assert forward_compute > 0 and backward_compute > 0  # both devices hold tables


def test_bad_settings_are_named(dataset):
    with pytest.raises(ValueError, match="batch_size=511 must be a positive multiple of world_size=2"):
        _config(dataset, batch_size=511)
    with pytest.raises(ValueError, match="comm='link' needs link_gbit > 0"):
        _config(dataset, link_gbit=None)
    with pytest.raises(ValueError, match="rounds >= 1"):
        _config(dataset, rounds=0)
    with pytest.raises(ValueError, match="unknown tables \\['nope'\\]"):
        measure_placements([Placement(2, (Shard("nope", 4, 0),))], _config(dataset))
