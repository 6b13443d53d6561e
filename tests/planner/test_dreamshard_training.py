"""DreamShard's outer loop: measures, fits, trains, checkpoints every iteration and resumes from them."""

import numpy as np
import polars as pl

from ecorec.planner.dreamshard.features import FeatureScaler, TableCatalog
from ecorec.planner.dreamshard.placement import MemoryModel
from ecorec.planner.dreamshard.placers import PlacerContext
from ecorec.planner.dreamshard.tasks import make_task_set
from ecorec.planner.dreamshard.training import TrainingSettings, train_dreamshard


class FakeCost:
    def __init__(self, device_costs):
        self.device_costs = device_costs
        self.plan_cost = max(sum(row) for row in device_costs)


def test_outer_loop_checkpoints_each_iteration_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    frame = {"table": [f"t{i}" for i in range(8)], "rows": [1000 * (i + 1) for i in range(8)]}
    frame["pooling_factor"] = rng.uniform(1, 4, 8).tolist()
    frame.update({f"bin_{k}": [1.0 if k == 0 else 0.0] * 8 for k in range(17)})
    catalog = TableCatalog(pl.DataFrame(frame))
    tasks = make_task_set(catalog.names, num_train=3, num_test=1, tables_per_task=3, dims=(8, 16))
    calls = []

    def measure(placements):  # a device's four columns grow with its tables' rows x dim
        calls.append(len(placements))
        out = []
        for p in placements:
            loads = [sum(catalog.rows(s.table) * s.dim for s in p.device_shards(d)) / 1e5 for d in range(2)]
            out.append(FakeCost([[load, 0.1, 0.1, 2 * load] for load in loads]))
        return out

    def context():
        scaler = FeatureScaler.fit(catalog.raw([t for task in tasks.train for t in task.tables]))
        return PlacerContext(catalog, MemoryModel(catalog), 2, None, 512, scaler=scaler)

    settings = TrainingSettings(
        iterations=2,
        placements_per_iteration=3,
        cost_steps=5,
        rl_batches=1,
        rl_episodes=2,
        seed_placers=("greedy",),
    )
    result = train_dreamshard(list(tasks.train), context(), measure, settings, checkpoint_dir=str(tmp_path))
    assert calls == [3 + 3, 3]  # iteration 0 also measures the seed placer on every training task
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter-000.pt", "iter-001.pt"]
    assert len(result.samples) == 9 and [h["iteration"] for h in result.history] == [0, 1]
    calls.clear()
    resumed = train_dreamshard(list(tasks.train), context(), measure, settings, checkpoint_dir=str(tmp_path))
    assert calls == [] and len(resumed.samples) == 9  # nothing left to do: resumed after the last iteration


def test_random_groups_on_one_device_join_the_first_iteration(tmp_path):
    frame = {"table": [f"t{i}" for i in range(8)], "rows": [1000 * (i + 1) for i in range(8)]}
    frame["pooling_factor"] = [2.0] * 8
    frame.update({f"bin_{k}": [1.0 if k == 0 else 0.0] * 8 for k in range(17)})
    catalog = TableCatalog(pl.DataFrame(frame))
    tasks = make_task_set(catalog.names, num_train=3, num_test=1, tables_per_task=3)
    measured = []

    def measure(placements):
        measured.extend(placements)
        return [FakeCost([[1.0, 0.1, 0.1, 2.0]] + [[0.0, 0.1, 0.1, 0.0]] * 2) for _ in placements]

    scaler = FeatureScaler.fit(catalog.raw([t for task in tasks.train for t in task.tables]))
    context = PlacerContext(catalog, MemoryModel(catalog), 3, None, 512, scaler=scaler)
    settings = TrainingSettings(
        iterations=1, placements_per_iteration=0, cost_steps=2, rl_batches=1, rl_episodes=1, shard_samples=5,
        shard_tables=2,
    )  # fmt: skip
    train_dreamshard(list(tasks.train), context, measure, settings)
    assert len(measured) == 5
    pool = {t for task in tasks.train for t in task.tables}
    for p in measured:  # 1-2 tables of a training task, all on device 0, of a 3-device placement
        assert p.num_devices == 3 and 1 <= len(p.shards) <= 2 and set(p.devices()) == {0}
        assert {s.task_table for s in p.shards} <= pool
