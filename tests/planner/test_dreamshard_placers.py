"""Every placer places every table once and respects the per-device memory cap (or fails loudly)."""

import numpy as np
import polars as pl
import pytest
import torch

from ecorec.planner.dreamshard.cost_net import CostNet
from ecorec.planner.dreamshard.features import FeatureScaler, TableCatalog
from ecorec.planner.dreamshard.placement import MemoryModel, PlacementFailure
from ecorec.planner.dreamshard.placers import Placer, PlacerContext, place
from ecorec.planner.dreamshard.policy import PolicyNet
from ecorec.planner.dreamshard.tasks import Task, TaskTable

ROWS = [5000, 3000, 2000, 8000, 1500, 4000, 2500, 6000]


@pytest.fixture(scope="module")
def catalog():
    rng = np.random.default_rng(0)
    frame = {
        "table": [f"t{i}" for i in range(8)],
        "rows": ROWS,
        "pooling_factor": rng.uniform(1, 8, 8).tolist(),
    }
    bins = rng.dirichlet(np.ones(17), size=8)
    frame.update({f"bin_{k}": bins[:, k].tolist() for k in range(17)})
    return TableCatalog(pl.DataFrame(frame))


def _context(catalog, cap, task):
    torch.manual_seed(0)
    memory = MemoryModel(catalog)
    scaler = FeatureScaler.fit(catalog.raw(list(task.tables)))
    return PlacerContext(
        catalog, memory, 2, cap, 512, scaler=scaler, cost_net=CostNet(), policy=PolicyNet(), beam_steps=1
    )


TASK = Task("t", tuple(TaskTable(f"t{i}", 16 if i % 2 else 8) for i in range(8)))


@pytest.mark.parametrize("placer", list(Placer))
def test_every_placer_places_every_table_once_under_the_cap(catalog, placer):
    memory = MemoryModel(catalog)
    total = sum(memory.bytes(t) for t in TASK.tables)
    cap = 0.75 * total
    placement = place(placer, TASK, _context(catalog, cap, TASK))
    columns = {t.name: [] for t in TASK.tables}
    used = [0, 0]
    for shard in placement.shards:
        columns[shard.table].append((shard.column, shard.dim))
        used[shard.device] += catalog.rows(shard.table) * shard.dim * 4
    for table in TASK.tables:  # every column of every table exactly once
        spans = sorted(columns[table.name])
        assert spans[0][0] == 0 and sum(d for _, d in spans) == table.dim
        assert all(a[0] + a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert max(used) <= cap


@pytest.mark.parametrize("placer", list(Placer))
def test_a_task_that_cannot_fit_is_a_failure(catalog, placer):
    memory = MemoryModel(catalog)
    cap = 0.9 * max(memory.bytes(t) for t in TASK.tables)  # the largest table fits nowhere
    with pytest.raises(PlacementFailure):
        place(placer, TASK, _context(catalog, cap, TASK))


def test_a_ratio_cap_follows_each_task(catalog):
    memory = MemoryModel(catalog)
    context = _context(catalog, None, TASK)
    context.cap_ratio = 1.2
    sizes = [memory.bytes(t) for t in TASK.tables]
    assert context.task_cap(TASK.tables) == pytest.approx(1.2 * sum(sizes) / 2)
    single = Task("s", TASK.tables[1:2])  # 1.2 x half a table is under the table: the table is the cap
    assert context.task_cap(single.tables) == sizes[1]
    context.cap_bytes = 0.5 * sum(sizes)  # both: the smaller holds
    assert context.task_cap(TASK.tables) == pytest.approx(0.5 * sum(sizes))
    context.cap_bytes = None
    placement = place("size_greedy", TASK, context)  # packs by bytes: fits under a ratio cap of 1.2
    used = [sum(memory.bytes(s.task_table) for s in placement.device_shards(d)) for d in range(2)]
    assert max(used) <= 1.2 * sum(sizes) / 2
