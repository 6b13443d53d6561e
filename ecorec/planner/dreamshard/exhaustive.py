"""Every distinct table-wise placement of a small task, and the optimum of a cost over them.

Devices are identical, so two placements that differ only by a relabelling of the devices cost the same: the
distinct placements of ``T`` tables on ``R`` devices are the set partitions of the tables into at most ``R``
groups, ``sum_{k<=R} S(T, k)`` of them (Stirling numbers of the second kind: 187 for T = 6 on 4 devices, 128
for T = 8 on 2, 2795 for T = 8 on 4). Each is enumerated once as a restricted growth string (table 0 on device
0, and each next table on a used device or on the first unused one), and those over the per-device memory cap
are dropped. Measured, they give a small task's true optimum, the ground truth a placer's gap is judged by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from math import comb

from ecorec.planner.dreamshard.placement import MemoryModel, Placement, placement_from_devices
from ecorec.planner.dreamshard.tasks import Task


def stirling2(n: int, k: int) -> int:
    """Stirling number of the second kind: partitions of ``n`` items into ``k`` non-empty groups."""
    if n < 0 or k < 0:
        raise ValueError(f"stirling2 needs n, k >= 0, got {n}, {k}")
    return sum((-1) ** (k - j) * comb(k, j) * j**n for j in range(k + 1)) // _factorial(k)


def _factorial(k: int) -> int:
    out = 1
    for i in range(2, k + 1):
        out *= i
    return out


def count_distinct_placements(num_tables: int, num_devices: int) -> int:
    """How many placements :func:`distinct_assignments` yields (before the memory cap)."""
    if num_tables == 0:
        return 1
    return sum(stirling2(num_tables, k) for k in range(1, min(num_tables, num_devices) + 1))


def distinct_assignments(num_tables: int, num_devices: int) -> Iterator[tuple[int, ...]]:
    """Every assignment ``devices[i]`` of ``num_tables`` tables to at most ``num_devices`` devices, one per
    class of relabellings (restricted growth strings: ``devices[0] = 0``, ``devices[i] <= max(devices[:i]) +
    1``)."""
    if num_devices < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}")
    if num_tables == 0:
        yield ()
        return
    devices = [0] * num_tables

    def extend(i: int, used: int) -> Iterator[tuple[int, ...]]:
        if i == num_tables:
            yield tuple(devices)
            return
        for d in range(min(used + 1, num_devices)):
            devices[i] = d
            yield from extend(i + 1, max(used, d + 1))

    yield from extend(1, 1)


def exhaustive_placements(
    task: Task, num_devices: int, memory: MemoryModel, cap_bytes: float | None
) -> list[Placement]:
    """Every distinct table-wise placement of ``task`` within ``cap_bytes`` per device (see the module
    docstring)."""
    sizes = [memory.bytes(t) for t in task.tables]
    out = []
    for devices in distinct_assignments(len(task.tables), num_devices):
        if cap_bytes is not None:
            used = [0] * num_devices
            for d, size in zip(devices, sizes, strict=True):
                used[d] += size
            if max(used) > cap_bytes:
                continue
        out.append(placement_from_devices(task.tables, devices, num_devices))
    return out


def optimum(placements: Sequence[Placement], cost: Callable[[Placement], float]) -> tuple[Placement, float]:
    """The placement of least ``cost`` (the first such in order) and its cost."""
    if not placements:
        raise ValueError("optimum: no placements")
    costs = [cost(p) for p in placements]
    best = min(range(len(placements)), key=lambda i: (costs[i], i))
    return placements[best], costs[best]
