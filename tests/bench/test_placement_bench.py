"""Measured placement costs: reproducible within the stated spread, cached by content hash."""

from pathlib import Path

import pytest

from ecorec.bench.placement import PlacementBenchConfig, cache_key, measure_placements
from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset
from ecorec.planner.dreamshard.placement import Placement, Shard

PLACEMENT = Placement(
    2, (Shard("f0", 16, 0), Shard("f1", 16, 1), Shard("f2", 8, 1), Shard("f2", 8, 0, column=8))
)
ALL_ON_ONE = Placement(2, (Shard("f0", 16, 0), Shard("f1", 16, 0), Shard("f2", 16, 0)))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("placement") / "synthetic"
    config = SyntheticConfig(num_tables=4, num_samples=1024, rows_min=500, rows_max=5000, num_dense=1, seed=3)
    generate_synthetic_dataset(path, config, row_group_size=512, splits={"train": 1.0})
    return path


def _config(dataset, **kwargs):
    settings = dict(dataset=str(dataset), batch_size=512, world_size=2, warmup=2, repeats=7)
    settings.update(kwargs)
    return PlacementBenchConfig(**settings)


def test_measured_cost_is_reproducible_within_its_spread(dataset):
    (first,) = measure_placements([PLACEMENT], _config(dataset))  # two launches, no cache
    (second,) = measure_placements([PLACEMENT], _config(dataset))
    for cost in (first, second):
        assert len(cost.device_costs) == 2 and all(len(row) == 4 for row in cost.device_costs)
        assert cost.spread[0] <= cost.iqr[0] <= cost.plan_cost <= cost.iqr[1] <= cost.spread[1]
        assert cost.plan_cost == pytest.approx(max(sum(row) for row in cost.device_costs))
    assert first.spread[0] <= second.plan_cost <= first.spread[1] or (
        second.spread[0] <= first.plan_cost <= second.spread[1]
    ), (first.to_dict(), second.to_dict())


def test_costs_are_cached_by_content_hash(dataset, tmp_path):
    config = _config(dataset, kind="tt", cache_dir=str(tmp_path / "cache"), repeats=2, warmup=1)
    measured, repeated = measure_placements([ALL_ON_ONE, ALL_ON_ONE], config)  # measured once
    (again,) = measure_placements([ALL_ON_ONE], config)
    assert not measured.cached and again.cached
    assert repeated.device_costs == measured.device_costs
    assert again.device_costs == measured.device_costs and again.key == measured.key
    # the idle device computes nothing: its compute columns are far below the loaded device's
    assert measured.device_costs[1][0] < measured.device_costs[0][0]
    assert cache_key(config, PLACEMENT) != cache_key(config, ALL_ON_ONE)
    assert cache_key(_config(dataset, batch_size=256), ALL_ON_ONE) != cache_key(_config(dataset), ALL_ON_ONE)
    assert cache_key(_config(dataset, cache_dir="x"), ALL_ON_ONE) == cache_key(_config(dataset), ALL_ON_ONE)


def test_bad_settings_are_named(dataset):
    with pytest.raises(ValueError, match="batch_size=511 must be a positive multiple of world_size=2"):
        _config(dataset, batch_size=511)
    with pytest.raises(ValueError, match="unknown tables \\['nope'\\]"):
        measure_placements([Placement(2, (Shard("nope", 4, 0),))], _config(dataset))
