"""Table-wise sharding plans: which rank holds which embedding tables.

Methods (``ShardingMethod``):

- ``greedy``: longest-processing-time-first list scheduling (EcoRec's method): tables sorted by total
  predicted cost, descending; each goes to the rank with the smallest ``load[rank] + cost[table][rank]`` among
  the ranks with memory room. Costs may differ per rank (heterogeneous devices).
- ``random``: a seeded uniform choice among the ranks with memory room.
- ``round_robin``: table ``i`` (in the given order) to rank ``i mod R`` (the artifact's "sequential").
- DreamShard's baselines ``size_greedy``, ``dim_greedy``, ``lookup_greedy``, ``size_lookup_greedy``: the same
  greedy loop, but ranking and balancing a heuristic weight instead of the predicted cost (table bytes;
  embedding dim; dim x pooling factor; dim x pooling factor x log10(rows)); ties go to the rank with the least
  memory used.

Whatever method places the tables, the plan reports each rank's load under the predicted cost (so methods are
compared on the same scale), its memory, the makespan (max rank cost) and the LPT lower bound.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecorec.types import ShardingMethod  # defined once, torch-free (re-exported here)
from ecorec.utils import read_json, write_json_atomic


class PlanError(ValueError):
    """A plan that cannot be made (a table fits on no rank, bad arguments)."""


@dataclass(frozen=True)
class TableProfile:
    """What the planner knows about one embedding table.

    Attributes:
        name: feature/table name.
        num_embeddings: rows of the (uncompressed) table.
        embedding_dim: D.
        pooling_factor: mean number of indices per sample (bag length).
        cost: predicted cost per iteration (seconds or FLOPs; any consistent unit): one number for every
            rank, or a tuple with one number per rank.
        memory_bytes: bytes the table occupies on the rank that holds it (parameters and optimizer state).
    """

    name: str
    num_embeddings: int
    embedding_dim: int
    pooling_factor: float
    cost: float | tuple[float, ...]
    memory_bytes: int

    def cost_on(self, rank: int) -> float:
        return float(self.cost[rank]) if isinstance(self.cost, tuple) else float(self.cost)

    def total_cost(self, world_size: int) -> float:
        return sum(self.cost_on(r) for r in range(world_size))


@dataclass
class ShardingPlan:
    """``assignment[rank]`` lists the tables of ``rank`` in placement order, with per-rank load and memory."""

    world_size: int
    method: str
    assignment: dict[int, list[str]]
    rank_cost: list[float]
    rank_memory: list[int]
    lower_bound: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def makespan(self) -> float:
        """The largest rank cost: the step time a table-wise split implies."""
        return max(self.rank_cost) if self.rank_cost else 0.0

    @property
    def mean_cost(self) -> float:
        return sum(self.rank_cost) / self.world_size

    @property
    def imbalance(self) -> float:
        """makespan / mean rank cost (1.0 = perfect balance)."""
        mean = self.mean_cost
        return self.makespan / mean if mean > 0 else 1.0

    def table_to_rank(self) -> dict[str, int]:
        return {name: rank for rank, names in self.assignment.items() for name in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "world_size": self.world_size,
            "method": self.method,
            "assignment": {str(rank): names for rank, names in sorted(self.assignment.items())},
            "rank_cost": self.rank_cost,
            "rank_memory": self.rank_memory,
            "makespan": self.makespan,
            "mean_cost": self.mean_cost,
            "lower_bound": self.lower_bound,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "plan") -> ShardingPlan:
        try:
            world_size = int(data["world_size"])
            assignment = {int(rank): list(names) for rank, names in data["assignment"].items()}
            plan = cls(
                world_size=world_size,
                method=str(data["method"]),
                assignment=assignment,
                rank_cost=[float(c) for c in data["rank_cost"]],
                rank_memory=[int(m) for m in data["rank_memory"]],
                lower_bound=float(data["lower_bound"]),
                meta=dict(data.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise PlanError(f"{source}: not a sharding plan ({type(err).__name__}: {err})") from err
        if sorted(plan.assignment) != list(range(world_size)):
            raise PlanError(f"{source}: assignment ranks {sorted(plan.assignment)} != 0..{world_size - 1}")
        names = [n for names in plan.assignment.values() for n in names]
        if len(names) != len(set(names)):
            raise PlanError(f"{source}: a table is placed on more than one rank")
        return plan

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ShardingPlan:
        return cls.from_dict(read_json(path, PlanError), source=str(path))


def lpt_lower_bound(tables: Sequence[TableProfile], world_size: int) -> float:
    """A lower bound on any plan's makespan: max(largest single-table cost, total cost / R).

    With per-rank costs, each table's cheapest rank is used.
    """
    if not tables:
        return 0.0
    cheapest = [min(t.cost_on(r) for r in range(world_size)) for t in tables]
    return max(max(cheapest), sum(cheapest) / world_size)


def _heuristic_weight(method: ShardingMethod) -> Callable[[TableProfile, int], float]:
    if method is ShardingMethod.GREEDY:
        return lambda t, world_size: t.total_cost(world_size)
    if method is ShardingMethod.SIZE_GREEDY:
        return lambda t, world_size: float(t.memory_bytes)
    if method is ShardingMethod.DIM_GREEDY:
        return lambda t, world_size: float(t.embedding_dim)
    if method is ShardingMethod.LOOKUP_GREEDY:
        return lambda t, world_size: t.embedding_dim * t.pooling_factor
    if method is ShardingMethod.SIZE_LOOKUP_GREEDY:
        return lambda t, world_size: t.embedding_dim * t.pooling_factor * math.log10(max(t.num_embeddings, 1))
    raise AssertionError(method)


def _check_inputs(tables: Sequence[TableProfile], world_size: int) -> None:
    if world_size < 1:
        raise PlanError(f"world_size must be >= 1, got {world_size}")
    names = [t.name for t in tables]
    if len(names) != len(set(names)):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise PlanError(f"duplicate table names: {dup}")
    for t in tables:
        if isinstance(t.cost, tuple) and len(t.cost) != world_size:
            raise PlanError(f"table {t.name!r}: {len(t.cost)} per-rank costs for world_size={world_size}")
        if any(t.cost_on(r) < 0 for r in range(world_size)):
            raise PlanError(f"table {t.name!r}: negative cost {t.cost}")
        if t.memory_bytes < 0:
            raise PlanError(f"table {t.name!r}: negative memory_bytes {t.memory_bytes}")


def _no_room(table: TableProfile, memory: list[int], cap: float) -> PlanError:
    return PlanError(
        f"table {table.name!r} ({table.memory_bytes} bytes) fits on no rank under "
        f"memory_cap_bytes={cap:.0f}: rank memory used {memory}"
    )


def plan_sharding(
    tables: Sequence[TableProfile],
    world_size: int,
    method: ShardingMethod | str = ShardingMethod.GREEDY,
    memory_cap_bytes: float | None = None,
    seed: int = 0,
) -> ShardingPlan:
    """Place every table on exactly one rank.

    Args:
        tables: the tables, in their canonical order (round-robin follows it; greedy ties keep it).
        world_size: R, number of ranks.
        method: a ``ShardingMethod`` or its string value.
        memory_cap_bytes: per-rank memory limit; a table that fits nowhere raises ``PlanError``.
        seed: seed of the ``random`` method.

    Returns:
        ``ShardingPlan`` with per-rank load under the tables' predicted ``cost``.
    """
    try:
        method = ShardingMethod(method)
    except ValueError as err:
        choices = ", ".join(m.value for m in ShardingMethod)
        raise PlanError(f"unknown sharding method {method!r}; choose one of: {choices}") from err
    _check_inputs(tables, world_size)
    cap = math.inf if memory_cap_bytes is None else float(memory_cap_bytes)
    assignment: dict[int, list[str]] = {r: [] for r in range(world_size)}
    load = [0.0] * world_size  # what the method balances
    memory = [0] * world_size

    def place(table: TableProfile, rank: int, weight: float) -> None:
        assignment[rank].append(table.name)
        load[rank] += weight
        memory[rank] += table.memory_bytes

    def fits(table: TableProfile, rank: int) -> bool:
        return memory[rank] + table.memory_bytes <= cap

    if method is ShardingMethod.ROUND_ROBIN:
        for i, table in enumerate(tables):
            rank = i % world_size
            if not fits(table, rank):
                raise _no_room(table, memory, cap)
            place(table, rank, table.cost_on(rank))
    elif method is ShardingMethod.RANDOM:
        rng = random.Random(seed)
        for table in tables:
            ranks = [r for r in range(world_size) if fits(table, r)]
            if not ranks:
                raise _no_room(table, memory, cap)
            rank = rng.choice(ranks)
            place(table, rank, table.cost_on(rank))
    else:
        weight_of = _heuristic_weight(method)
        order = sorted(range(len(tables)), key=lambda i: (-weight_of(tables[i], world_size), i))
        for i in order:
            table = tables[i]
            candidates = [r for r in range(world_size) if fits(table, r)]
            if not candidates:
                raise _no_room(table, memory, cap)
            if method is ShardingMethod.GREEDY:
                rank = min(candidates, key=lambda r: (load[r] + table.cost_on(r), r))
                place(table, rank, table.cost_on(rank))
            else:
                rank = min(candidates, key=lambda r: (load[r], memory[r], r))
                place(table, rank, weight_of(table, world_size))

    by_name = {t.name: t for t in tables}
    rank_cost = [sum(by_name[n].cost_on(r) for n in assignment[r]) for r in range(world_size)]
    return ShardingPlan(
        world_size=world_size,
        method=method.value,
        assignment=assignment,
        rank_cost=rank_cost,
        rank_memory=memory,
        lower_bound=lpt_lower_bound(tables, world_size),
        meta={
            "memory_cap_bytes": None if memory_cap_bytes is None else float(memory_cap_bytes),
            "seed": seed,
        },
    )


def compare_sharding_methods(
    tables: Sequence[TableProfile],
    world_size: int,
    methods: Sequence[ShardingMethod | str] = tuple(ShardingMethod),
    memory_cap_bytes: float | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Plan with every method and report, per method: makespan (max rank cost), mean rank cost, their ratio,
    the LPT lower bound and makespan / lower bound, and the largest rank memory. A method whose plan does
    not fit under the cap is reported with ``error`` set instead."""
    rows: list[dict[str, Any]] = []
    for method in methods:
        try:
            plan = plan_sharding(tables, world_size, method, memory_cap_bytes=memory_cap_bytes, seed=seed)
        except PlanError as err:
            rows.append({"method": str(ShardingMethod(method)), "error": str(err)})
            continue
        rows.append(
            {
                "method": plan.method,
                "world_size": world_size,
                "num_tables": len(tables),
                "makespan": plan.makespan,
                "mean_cost": plan.mean_cost,
                "imbalance": plan.imbalance,
                "lower_bound": plan.lower_bound,
                "makespan_over_lower_bound": plan.makespan / plan.lower_bound if plan.lower_bound else 1.0,
                "max_rank_memory_bytes": max(plan.rank_memory),
                "error": None,
            }
        )
    return rows
