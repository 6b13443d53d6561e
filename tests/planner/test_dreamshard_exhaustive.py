"""The exhaustive search over a small task's placements: one placement per class of device relabellings, every
class present (brute force over all R^T assignments is the oracle), and a planted optimum found."""

from __future__ import annotations

import itertools
import random

import polars as pl
import pytest

from ecorec.planner.dreamshard.exhaustive import (
    count_distinct_placements,
    distinct_assignments,
    exhaustive_placements,
    optimum,
)
from ecorec.planner.dreamshard.features import TableCatalog
from ecorec.planner.dreamshard.placement import MemoryModel, Placement, placement_from_devices
from ecorec.planner.dreamshard.tasks import Task, TaskTable


def _canonical(devices: tuple[int, ...]) -> tuple[int, ...]:
    """Relabel devices in order of first use (two assignments are the same placement iff equal after it)."""
    label: dict[int, int] = {}
    return tuple(label.setdefault(d, len(label)) for d in devices)


@pytest.mark.parametrize(("tables", "devices"), [(6, 4), (8, 2), (5, 3), (4, 6), (1, 3)])
def test_one_placement_per_relabelling_class(tables: int, devices: int) -> None:
    brute = {_canonical(a) for a in itertools.product(range(devices), repeat=tables)}
    found = list(distinct_assignments(tables, devices))
    assert len(found) == len(set(found)) == count_distinct_placements(tables, devices)
    assert set(found) == brute


def _catalog(rows: list[int]) -> TableCatalog:
    frame = {"table": [f"t{i}" for i in range(len(rows))], "rows": rows, "pooling_factor": [1.0] * len(rows)}
    frame.update({f"bin_{k}": [0.0] * len(rows) for k in range(17)})
    return TableCatalog(pl.DataFrame(frame))


def _planted_cost(target: tuple[int, ...], weights: list[float]):
    """A non-additive synthetic cost: each pair of tables placed against the planted grouping costs its
    weights' product, plus a small load-balance term; zero pair cost only for the planted grouping."""

    def cost(placement: Placement) -> float:
        where = {s.table: s.device for s in placement.shards}
        devices = [where[f"t{i}"] for i in range(len(target))]
        wrong = sum(
            weights[i] * weights[j]
            for i, j in itertools.combinations(range(len(target)), 2)
            if (devices[i] == devices[j]) != (target[i] == target[j])
        )
        loads = [sum(w for w, d in zip(weights, devices, strict=True) if d == r) for r in range(4)]
        return wrong + 1e-3 * max(loads)

    return cost


def test_exhaustive_search_finds_a_planted_optimum() -> None:
    rng = random.Random(7)
    tables = [TaskTable(f"t{i}", 16) for i in range(7)]
    task = Task("planted", tuple(tables))
    memory = MemoryModel(_catalog([1000 * (i + 1) for i in range(7)]))
    weights = [rng.uniform(1.0, 3.0) for _ in tables]
    target = (2, 0, 2, 1, 3, 0, 1)  # a grouping into 4 devices, labelled arbitrarily
    cost = _planted_cost(target, weights)
    candidates = exhaustive_placements(task, 4, memory, None)
    best, best_cost = optimum(candidates, cost)
    where = {s.table: s.device for s in best.shards}
    assert _canonical(tuple(where[t.name] for t in tables)) == _canonical(target)
    # the brute-force minimum over every assignment of the 7 tables to 4 devices is the same cost
    brute = min(
        cost(placement_from_devices(tables, a, 4)) for a in itertools.product(range(4), repeat=len(tables))
    )
    assert best_cost == pytest.approx(brute)


def test_the_memory_cap_drops_placements_and_the_optimum_respects_it() -> None:
    tables = [TaskTable(f"t{i}", 16) for i in range(5)]
    task = Task("capped", tuple(tables))
    rows = [4000, 3000, 2000, 1000, 1000]
    memory = MemoryModel(_catalog(rows))
    cap = 4 * 16 * 4500  # bytes: t0 (4000 rows) fits only alone or with nothing over 500 rows
    candidates = exhaustive_placements(task, 3, memory, cap)
    assert 0 < len(candidates) < count_distinct_placements(5, 3)
    for p in candidates:
        used = [sum(memory.bytes(s.task_table) for s in p.device_shards(d)) for d in range(3)]
        assert max(used) <= cap
    brute = [
        a
        for a in itertools.product(range(3), repeat=5)
        if max(sum(4 * 16 * r for r, d in zip(rows, a, strict=True) if d == k) for k in range(3)) <= cap
    ]
    assert len({_canonical(a) for a in brute}) == len(candidates)
