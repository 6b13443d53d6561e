"""Tasks and DreamShard table features against hand-computed values."""

import numpy as np
import pytest

from ecorec.planner.dreamshard.features import FEATURE_NAMES, FeatureScaler, TableCatalog
from ecorec.planner.dreamshard.tasks import TaskError, TaskSet, TaskTable, make_task_set
from ecorec.stats import table_reuse_features


def _hand_batches():
    # batch 1: rows 0 x2, 1 x1, 2 x3, 5 x1 -> counts 2 (bin1), 1 (bin0), 3 (bin2), 1 (bin0)
    # batch 2: row 3 x40 -> (32, 64] = bin6
    return [
        {"a": (np.array([0, 0, 1, 2, 2, 2, 5]), np.array([2, 3, 2]))},
        {"a": (np.array([3] * 40), np.array([40, 0, 0]))},
    ]


def test_table_features_equal_hand_computed_values():
    frame = table_reuse_features(_hand_batches(), {"a": 10}, batch_size=3)
    row = frame.row(0, named=True)
    assert row["rows"] == 10 and row["num_batches"] == 2
    assert row["pooling_factor"] == pytest.approx(47 / 6)
    expected = np.zeros(17)
    expected[[0, 1, 2, 6]] = [2 / 5, 1 / 5, 1 / 5, 1 / 5]
    np.testing.assert_allclose([row[f"bin_{k}"] for k in range(17)], expected)

    raw = TableCatalog(frame).raw([TaskTable("a", 8)])
    assert raw.shape == (1, 21) and len(FEATURE_NAMES) == 21
    np.testing.assert_allclose(raw[0], [8, 10, 47 / 6, 80, *expected])


def test_table_features_reject_out_of_range_index():
    with pytest.raises(ValueError, match="table 'a'.*out of range"):
        table_reuse_features([{"a": (np.array([10]), np.array([1]))}], {"a": 10}, batch_size=1)


def test_feature_scaler_modes():
    raw = np.array([[16, 100, 2.0, 1600] + [1] + [0] * 16, [16, 1000, 4.0, 16000] + [1] + [0] * 16], float)
    task = FeatureScaler(mode="task").transform(raw)
    np.testing.assert_allclose(task[:, 1], [-1, 1])  # z-scored within the task
    np.testing.assert_allclose(task[:, 0], [16, 16])  # dim raw
    scaler = FeatureScaler.fit(raw)
    np.testing.assert_allclose(scaler.transform(raw)[:, 1], [-1, 1], rtol=1e-6)
    assert FeatureScaler.from_dict(scaler.to_dict()) == scaler


def test_task_pools_are_disjoint_and_tasks_stay_in_their_pool(tmp_path):
    names = [f"t{i}" for i in range(20)]
    tasks = make_task_set(names, num_train=6, num_test=4, tables_per_task=(3, 5), seed=1, dims=(8, 16))
    assert not set(tasks.train_pool) & set(tasks.test_pool)
    assert sorted(tasks.train_pool + tasks.test_pool) == sorted(names)
    for pool, group in ((tasks.train_pool, tasks.train), (tasks.test_pool, tasks.test)):
        for task in group:
            tables = [t.name for t in task.tables]
            assert 3 <= len(tables) <= 5 and len(set(tables)) == len(tables)
            assert set(tables) <= set(pool)
            assert {t.dim for t in task.tables} <= {8, 16}
    path = tmp_path / "tasks.json"
    tasks.save(path)
    assert TaskSet.load(path) == tasks
    assert (
        make_task_set(names, num_train=6, num_test=4, tables_per_task=(3, 5), seed=1, dims=(8, 16)) == tasks
    )


def test_tasks_bad_settings_are_named():
    with pytest.raises(TaskError, match="train pool has 2 tables"):
        make_task_set(["a", "b", "c", "d"], num_train=1, num_test=1, tables_per_task=3)
    bad = make_task_set([f"t{i}" for i in range(8)], num_train=1, num_test=1, tables_per_task=2).to_dict()
    bad["test"][0]["tables"][0]["name"] = bad["train_pool"][0]
    with pytest.raises(TaskError, match="not in the test pool"):
        TaskSet.from_dict(bad)


def test_exhaustive_tasks_come_from_the_test_pool(tmp_path):
    names = [f"t{i}" for i in range(20)]
    tasks = make_task_set(
        names, num_train=2, num_test=2, tables_per_task=(3, 5), seed=1, num_exhaustive=3, exhaustive_tables=6
    )
    assert [t.id for t in tasks.exhaustive] == ["exhaustive-000", "exhaustive-001", "exhaustive-002"]
    for task in tasks.exhaustive:
        assert len(task.tables) == 6 and {t.name for t in task.tables} <= set(tasks.test_pool)
    tasks.save(tmp_path / "tasks.json")
    assert TaskSet.load(tmp_path / "tasks.json") == tasks
    old = tasks.to_dict()  # a version-1 file has no exhaustive tasks
    del old["exhaustive"]
    assert TaskSet.from_dict(old).exhaustive == ()
    bad = tasks.to_dict()
    bad["exhaustive"][0]["tables"][0]["name"] = bad["train_pool"][0]
    with pytest.raises(TaskError, match="not in the test pool"):
        TaskSet.from_dict(bad)
    with pytest.raises(TaskError, match="exhaustive_tables=11 does not fit"):
        make_task_set(
            names, num_train=1, num_test=1, tables_per_task=2, num_exhaustive=1, exhaustive_tables=11
        )
