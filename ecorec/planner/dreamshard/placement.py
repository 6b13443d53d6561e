"""A placement of a task's tables on devices, its memory, and the failure of a placer.

A :class:`Placement` lists shards ``(table, dim, device, column)``: without column splits one shard per task
table with its whole dim; with splits (NeuroShard's column-wise search) a table is several shards whose dims
add up to the table's dim, ``column`` being the shard's first column. Every placer must cover every table's
columns exactly once and keep each device's bytes under the cap (:func:`check_placement`); a placer that
cannot raises :class:`PlacementFailure`, which evaluations report (never drop).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ecorec.planner.dreamshard.features import TableCatalog
from ecorec.planner.dreamshard.tasks import Task, TaskTable

TABLE_KINDS = ("uncompressed", "tt", "mixed")
BYTES_PER_ELEMENT = 4  # float32 pooled outputs and gradients of the all-to-alls


class PlacementFailure(RuntimeError):
    """A placer found no placement of a task that fits the per-device memory cap (or covers every table)."""


@dataclass(frozen=True)
class Shard:
    """Columns ``[column, column + dim)`` of dataset table ``table`` on ``device``."""

    table: str
    dim: int
    device: int
    column: int = 0

    @property
    def task_table(self) -> TaskTable:
        """The shard as a table of its own (what the cost model and the benchmark see)."""
        return TaskTable(self.table, self.dim)


@dataclass(frozen=True)
class Placement:
    num_devices: int
    shards: tuple[Shard, ...]

    def device_shards(self, device: int) -> list[Shard]:
        return [s for s in self.shards if s.device == device]

    def devices(self) -> list[int]:
        """Device of every shard ``[S]``, in shard order."""
        return [s.device for s in self.shards]

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_devices": self.num_devices,
            "shards": [[s.table, s.dim, s.device, s.column] for s in self.shards],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Placement:
        return cls(
            int(data["num_devices"]),
            tuple(Shard(str(t), int(d), int(v), int(c)) for t, d, v, c in data["shards"]),
        )

    def canonical(self) -> str:
        """A JSON string that identifies the placement (shards sorted): the cache key's core."""
        shards = sorted([s.table, s.column, s.dim, s.device] for s in self.shards)
        return json.dumps({"num_devices": self.num_devices, "shards": shards}, separators=(",", ":"))


def placement_from_devices(
    tables: Sequence[TaskTable], devices: Sequence[int], num_devices: int
) -> Placement:
    """One whole-table shard per task table, table ``i`` on ``devices[i]``."""
    if len(tables) != len(devices):
        raise ValueError(f"{len(tables)} tables but {len(devices)} devices")
    return Placement(
        num_devices, tuple(Shard(t.name, t.dim, int(d)) for t, d in zip(tables, devices, strict=True))
    )


class MemoryModel:
    """Bytes a shard occupies on its device: ``rows * dim * bytes_per_element`` for uncompressed tables,
    the TT cores' parameters for ``kind="tt"`` or ``"mixed"`` (tables under ``tt_min_rows`` rows stay
    uncompressed)."""

    def __init__(
        self,
        catalog: TableCatalog,
        kind: str = "uncompressed",
        *,
        tt_ranks: Sequence[int] = (16, 16),
        tt_min_rows: int = 1000,
        bytes_per_element: int = 4,
    ) -> None:
        if kind not in TABLE_KINDS:
            raise ValueError(f"table kind must be one of {TABLE_KINDS}, got {kind!r}")
        self.catalog, self.kind = catalog, kind
        self.tt_ranks, self.tt_min_rows = list(tt_ranks), tt_min_rows
        self.bytes_per_element = bytes_per_element

    def bytes(self, table: TaskTable) -> int:
        rows = self.catalog.rows(table.name)
        if self.kind != "uncompressed" and rows >= self.tt_min_rows:
            from ecorec.tt import TTShapes

            shapes = TTShapes.from_sizes(rows, table.dim, self.tt_ranks, num_cores=len(self.tt_ranks) + 1)
            return shapes.num_parameters() * self.bytes_per_element
        return rows * table.dim * self.bytes_per_element


def check_placement(
    task: Task, placement: Placement, memory: MemoryModel, cap_bytes: float | None
) -> list[int]:
    """Check that ``placement`` covers every column of every task table exactly once, on valid devices, under
    ``cap_bytes`` per device; returns the bytes per device ``[num_devices]``.

    Raises:
        PlacementFailure: naming the table, device or the bytes over the cap.
    """
    dims = {t.name: t.dim for t in task.tables}
    covered: dict[str, list[tuple[int, int]]] = {name: [] for name in dims}
    used = [0] * placement.num_devices
    for shard in placement.shards:
        if shard.table not in dims:
            raise PlacementFailure(f"task {task.id}: shard of {shard.table!r}, not a table of the task")
        if not 0 <= shard.device < placement.num_devices:
            raise PlacementFailure(f"task {task.id}: table {shard.table!r} on device {shard.device}")
        covered[shard.table].append((shard.column, shard.dim))
        used[shard.device] += memory.bytes(shard.task_table)
    for name, spans in covered.items():
        spans.sort()
        position = 0
        for column, dim in spans:
            if column != position or dim < 1:
                raise PlacementFailure(
                    f"task {task.id}: table {name!r} columns {spans} do not tile [0, {dims[name]})"
                )
            position += dim
        if position != dims[name]:
            raise PlacementFailure(
                f"task {task.id}: table {name!r} columns {spans} do not tile [0, {dims[name]})"
            )
    if cap_bytes is not None and max(used, default=0) > cap_bytes:
        raise PlacementFailure(f"task {task.id}: device bytes {used} exceed the cap {cap_bytes:.0f}")
    return used


def link_exchange_ms(
    dims: Sequence[int],
    batch_size: int,
    link_gbit: float,
    *,
    ranks_per_node: int = 1,
    intra_gbit: float | None = None,
) -> float:
    """Time (ms) of one all-to-all of the pooled outputs (rank ``r`` sends ``[B/R, dims[r]]`` float32 to each
    rank; reversed, of their gradients) over per-node links of ``link_gbit`` Gbit/s per direction: the
    busiest node's bytes out or in over its link, and the busiest node's own exchanges over ``intra_gbit``
    (free when ``None``). Every device waits for the whole collective, so it is every device's time."""
    world = len(dims)
    chunk = batch_size // world
    nodes = -(-world // ranks_per_node)
    node = [r // ranks_per_node for r in range(world)]
    out, into, inside = [0.0] * nodes, [0.0] * nodes, [0.0] * nodes
    for src in range(world):
        for dst in range(world):
            if src == dst:
                continue
            size = chunk * dims[src] * BYTES_PER_ELEMENT
            if node[src] == node[dst]:
                inside[node[src]] += size
            else:
                out[node[src]] += size
                into[node[dst]] += size
    seconds = max(max(out), max(into)) * 8 / (link_gbit * 1e9)
    if intra_gbit:
        seconds = max(seconds, max(inside) * 8 / (intra_gbit * 1e9))
    return 1e3 * seconds


@dataclass(frozen=True)
class LinkModel:
    """The communication columns of a placement over known links (the placement benchmark's ``comm="link"``):
    each device's forward plus backward all-to-all, :func:`link_exchange_ms` each way."""

    batch_size: int
    link_gbit: float
    ranks_per_node: int = 1
    intra_gbit: float | None = None

    def device_ms(self, dims: Sequence[int]) -> list[float]:
        """``[R]`` ms of forward + backward communication per device, for per-device total dims ``dims``."""
        one = link_exchange_ms(
            dims,
            self.batch_size,
            self.link_gbit,
            ranks_per_node=self.ranks_per_node,
            intra_gbit=self.intra_gbit,
        )
        return [2.0 * one] * len(dims)
