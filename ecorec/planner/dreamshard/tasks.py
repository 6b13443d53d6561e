"""Placement tasks (DreamShard's ``gen_tasks``): disjoint train/test table pools and tasks drawn from them.

A dataset's tables are shuffled with a seed and split into a train pool (the first ``train_fraction``) and a
test pool (the rest), so that the tables of test tasks are never seen in training. A task is ``T`` distinct
tables of one pool (``T`` fixed or drawn uniformly from an inclusive range), each with an embedding dim drawn
from ``dims`` (DreamShard: one dim, 16; NeuroShard draws dims per table). **Exhaustive** tasks are small test
tasks (``exhaustive_tables`` tables of the test pool) whose every distinct placement is measured
(:mod:`ecorec.planner.dreamshard.exhaustive`): their true optimum is the ground truth placers are judged by.

The task file (JSON, :meth:`TaskSet.save`; version 1 files have no exhaustive tasks)::

    {"format": "ecorec.placement.tasks", "version": 2, "seed": 0, "dims": [16],
     "tables_per_task": [8, 8], "train_pool": ["f3", ...], "test_pool": ["f0", ...],
     "train": [{"id": "train-000", "tables": [{"name": "f3", "dim": 16}, ...]}, ...],
     "test":  [{"id": "test-000", ...}, ...],
     "exhaustive": [{"id": "exhaustive-000", ...}, ...]}
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ecorec.utils import read_json, write_json_atomic

TASKS_FORMAT = "ecorec.placement.tasks"


class TaskError(ValueError):
    """Bad task settings or a malformed task file."""


@dataclass(frozen=True)
class TaskTable:
    """One table of a task (or a column shard of it): dataset table ``name`` at embedding dim ``dim``."""

    name: str
    dim: int


@dataclass(frozen=True)
class Task:
    id: str
    tables: tuple[TaskTable, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tables": [{"name": t.name, "dim": t.dim} for t in self.tables]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(str(data["id"]), tuple(TaskTable(str(t["name"]), int(t["dim"])) for t in data["tables"]))


@dataclass(frozen=True)
class TaskSet:
    seed: int
    dims: tuple[int, ...]
    tables_per_task: tuple[int, int]
    train_pool: tuple[str, ...]
    test_pool: tuple[str, ...]
    train: tuple[Task, ...]
    test: tuple[Task, ...]
    exhaustive: tuple[Task, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TASKS_FORMAT,
            "version": 2,
            "seed": self.seed,
            "dims": list(self.dims),
            "tables_per_task": list(self.tables_per_task),
            "train_pool": list(self.train_pool),
            "test_pool": list(self.test_pool),
            "train": [t.to_dict() for t in self.train],
            "test": [t.to_dict() for t in self.test],
            "exhaustive": [t.to_dict() for t in self.exhaustive],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "tasks") -> TaskSet:
        if data.get("format") != TASKS_FORMAT:
            raise TaskError(f"{source}: field 'format' is {data.get('format')!r}, expected {TASKS_FORMAT!r}")
        try:
            tasks = cls(
                seed=int(data["seed"]),
                dims=tuple(int(d) for d in data["dims"]),
                tables_per_task=(int(data["tables_per_task"][0]), int(data["tables_per_task"][1])),
                train_pool=tuple(str(n) for n in data["train_pool"]),
                test_pool=tuple(str(n) for n in data["test_pool"]),
                train=tuple(Task.from_dict(t) for t in data["train"]),
                test=tuple(Task.from_dict(t) for t in data["test"]),
                exhaustive=tuple(Task.from_dict(t) for t in data.get("exhaustive", [])),
            )
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise TaskError(f"{source}: not a task file ({type(err).__name__}: {err})") from err
        tasks.validate(source)
        return tasks

    def validate(self, source: str = "tasks") -> None:
        """Pools disjoint; every task's tables distinct and from its own pool."""
        overlap = set(self.train_pool) & set(self.test_pool)
        if overlap:
            raise TaskError(f"{source}: tables {sorted(overlap)} are in both the train and the test pool")
        for pool_name, pool, tasks in (
            ("train", self.train_pool, self.train),
            ("test", self.test_pool, self.test),
            ("test", self.test_pool, self.exhaustive),
        ):
            members = set(pool)
            for task in tasks:
                names = [t.name for t in task.tables]
                if len(set(names)) != len(names):
                    raise TaskError(f"{source}: task {task.id!r} lists a table twice")
                outside = [n for n in names if n not in members]
                if outside:
                    raise TaskError(f"{source}: task {task.id!r} uses {outside}, not in the {pool_name} pool")

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TaskSet:
        return cls.from_dict(read_json(path, TaskError), source=str(path))


def _tables_range(tables_per_task: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(tables_per_task, int):
        return (tables_per_task, tables_per_task)
    if len(tables_per_task) != 2:
        raise TaskError(f"tables_per_task must be an int or [min, max], got {list(tables_per_task)}")
    lo, hi = int(tables_per_task[0]), int(tables_per_task[1])
    if not 1 <= lo <= hi:
        raise TaskError(f"tables_per_task must satisfy 1 <= min <= max, got [{lo}, {hi}]")
    return (lo, hi)


def make_task_set(
    table_names: Sequence[str],
    *,
    num_train: int,
    num_test: int,
    tables_per_task: int | Sequence[int],
    seed: int = 0,
    train_fraction: float = 0.5,
    dims: Sequence[int] = (16,),
    num_exhaustive: int = 0,
    exhaustive_tables: int = 6,
) -> TaskSet:
    """Split ``table_names`` into disjoint pools and draw ``num_train`` / ``num_test`` tasks from them.

    Args:
        table_names: the dataset's tables (distinct).
        tables_per_task: T, or ``[min, max]`` (inclusive) to draw T per task.
        seed: seeds the pool split, the table draws and the dims.
        train_fraction: share of the tables in the train pool (DreamShard: 0.5).
        dims: embedding dims a task table may get (drawn uniformly per table).
        num_exhaustive, exhaustive_tables: small test-pool tasks whose every placement is measured.

    Raises:
        TaskError: duplicate names, an empty pool, or T larger than a pool.
    """
    names = list(table_names)
    if len(set(names)) != len(names):
        raise TaskError("table_names: duplicate table names")
    if not 0.0 < train_fraction < 1.0:
        raise TaskError(f"train_fraction must be in (0, 1), got {train_fraction}")
    if not dims or any(int(d) < 1 for d in dims):
        raise TaskError(f"dims must be positive ints, got {list(dims)}")
    if num_train < 0 or num_test < 0 or num_exhaustive < 0:
        raise TaskError(
            "num_train, num_test and num_exhaustive must be >= 0, got "
            f"{num_train}, {num_test}, {num_exhaustive}"
        )
    if num_exhaustive and exhaustive_tables < 1:
        raise TaskError(f"exhaustive_tables must be >= 1, got {exhaustive_tables}")
    lo, hi = _tables_range(tables_per_task)
    rng = random.Random(seed)
    shuffled = names[:]
    rng.shuffle(shuffled)
    cut = round(len(shuffled) * train_fraction)
    train_pool, test_pool = tuple(shuffled[:cut]), tuple(shuffled[cut:])
    for pool_name, pool in (("train", train_pool), ("test", test_pool)):
        if len(pool) < hi:
            raise TaskError(
                f"the {pool_name} pool has {len(pool)} tables (of {len(names)}, "
                f"train_fraction={train_fraction}); "
                f"tables_per_task max {hi} does not fit: lower tables_per_task to <= {len(pool)}, or use a "
                "dataset with more tables"
            )
    if num_exhaustive and len(test_pool) < exhaustive_tables:
        raise TaskError(
            f"the test pool has {len(test_pool)} tables; exhaustive_tables={exhaustive_tables} does not fit"
        )

    def draw(prefix: str, pool: tuple[str, ...], count: int, sizes: tuple[int, int]) -> tuple[Task, ...]:
        tasks = []
        for i in range(count):
            size = rng.randint(*sizes)
            chosen = rng.sample(pool, size)
            tasks.append(
                Task(f"{prefix}-{i:03d}", tuple(TaskTable(n, int(rng.choice(list(dims)))) for n in chosen))
            )
        return tuple(tasks)

    task_set = TaskSet(
        seed=seed,
        dims=tuple(int(d) for d in dims),
        tables_per_task=(lo, hi),
        train_pool=train_pool,
        test_pool=test_pool,
        train=draw("train", train_pool, num_train, (lo, hi)),
        test=draw("test", test_pool, num_test, (lo, hi)),
        exhaustive=draw("exhaustive", test_pool, num_exhaustive, (exhaustive_tables, exhaustive_tables)),
    )
    task_set.validate()
    return task_set
