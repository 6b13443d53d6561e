"""The one wrapper around ``torch.distributed`` used by the modes: pooled-embedding all-to-all, bucketed
gradient all-reduce, gathers. Every call takes its process group explicitly and runs on gloo (CPU) and NCCL
(GPU).

Gradient convention (all modes): each rank backpropagates its *share* of the global loss,
``loss_r = sum_{i in rank r's samples} bce_i / G``, so that ``sum_r loss_r`` is the mean BCE over the global
batch ``G = R*b``. Every gradient collective therefore **sums**; no division is needed anywhere, and every
mode's gradients equal a single process's gradients of the global mean loss.

Overlap: the exchanges are started with ``async_op=True`` and return a pending handle; the caller computes the
next stage and then waits. On CUDA the packing copies and the collective are issued on a side stream (after it
waits for the compute stream) and the tensors crossing streams are marked with ``record_stream``.

Metering: every exchange takes an optional :class:`CommMeter` (the ``comm_meter`` of the rank's
``ShardingEnv``) and reports into it the bytes it sends to each other rank and the time the caller spends
blocked in ``wait()`` (the *exposed* communication: what compute did not hide, synchronisation skew between
ranks included, as a profiler would show it). The trainer reads it once per step (``metrics.comm``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

__all__ = [
    "CommMeter",
    "CommSample",
    "GradientAllReduce",
    "PendingExchange",
    "PooledAllToAll",
    "all_gather_equal",
    "all_reduce_sum",
    "world_of",
]


def world_of(group: dist.ProcessGroup | None) -> tuple[int, int]:
    """``(rank, world_size)`` in ``group``; ``(0, 1)`` when torch.distributed is not initialised."""
    if not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


@dataclass(frozen=True)
class CommSample:
    """One rank's communication over an interval (a training step).

    Attributes:
        bytes_to: bytes this rank sent to each rank (``[world_size]``; its own entry is 0).
        wait_s: seconds blocked waiting for collectives, per kind (``all_to_all``, ``all_reduce``,
            ``fetch``).
        bytes_by_kind: bytes sent to other ranks, per kind.
    """

    bytes_to: tuple[int, ...]
    wait_s: dict[str, float]
    bytes_by_kind: dict[str, int]

    @property
    def exposed_s(self) -> float:
        """Seconds blocked in collectives (every kind)."""
        return sum(self.wait_s.values())

    def bytes_off_node(self, ranks_per_node: int, rank: int) -> int:
        """Bytes sent to ranks of other nodes, nodes being consecutive groups of ``ranks_per_node`` ranks
        (torchrun's numbering: the ranks of one agent are consecutive)."""
        node = rank // max(1, ranks_per_node)
        return sum(n for r, n in enumerate(self.bytes_to) if r // max(1, ranks_per_node) != node)


@dataclass
class CommMeter:
    """Bytes sent and time blocked in collectives, accumulated by one rank's exchanges until :meth:`take`.

    Args:
        rank, world_size: of the exchanges' process group.

    Example::

        meter = CommMeter(rank, world)
        exchange = PooledAllToAll(widths, group, meter=meter)
        ...  # a training step
        sample = meter.take()   # CommSample: bytes_to [world], wait_s {kind: s}
    """

    rank: int = 0
    world_size: int = 1
    _bytes_to: list[int] = field(default_factory=list, repr=False)
    _wait_s: dict[str, float] = field(default_factory=dict, repr=False)
    _bytes_by_kind: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in [0, world_size={self.world_size})")
        self._bytes_to = [0] * self.world_size

    def sent(self, kind: str, bytes_to: Sequence[int]) -> None:
        """Record ``bytes_to[r]`` bytes sent to each rank ``r`` (this rank's own entry is ignored)."""
        if len(bytes_to) != self.world_size:
            raise ValueError(f"bytes_to needs one entry per rank ({self.world_size}), got {len(bytes_to)}")
        off_rank = 0
        for r, n in enumerate(bytes_to):
            if r != self.rank:
                self._bytes_to[r] += int(n)
                off_rank += int(n)
        self._bytes_by_kind[kind] = self._bytes_by_kind.get(kind, 0) + off_rank

    def sent_ring(self, kind: str, nbytes: int) -> None:
        """Record a ring all-reduce of ``nbytes``: ``2 (W - 1) / W * nbytes`` to the next rank (gloo's and
        NCCL's ring algorithm for large buffers)."""
        if self.world_size == 1:
            return
        out = [0] * self.world_size
        out[(self.rank + 1) % self.world_size] = 2 * (self.world_size - 1) * int(nbytes) // self.world_size
        self.sent(kind, out)

    @contextmanager
    def waiting(self, kind: str) -> Iterator[None]:
        """Time the enclosed wait for a collective of ``kind``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._wait_s[kind] = self._wait_s.get(kind, 0.0) + time.perf_counter() - start

    def take(self) -> CommSample:
        """What was recorded since the last ``take`` (and start afresh)."""
        sample = CommSample(tuple(self._bytes_to), dict(self._wait_s), dict(self._bytes_by_kind))
        self._bytes_to = [0] * self.world_size
        self._wait_s, self._bytes_by_kind = {}, {}
        return sample


@contextmanager
def _waiting(meter: CommMeter | None, kind: str) -> Iterator[None]:
    if meter is None:
        yield
    else:
        with meter.waiting(kind):
            yield


class _SideStream:
    """A lazily created CUDA side stream for communication (None on CPU)."""

    def __init__(self) -> None:
        self._streams: dict[torch.device, torch.cuda.Stream] = {}

    def get(self, device: torch.device) -> torch.cuda.Stream | None:
        if device.type != "cuda":
            return None
        if device not in self._streams:
            self._streams[device] = torch.cuda.Stream(device=device)
        return self._streams[device]


@dataclass
class PendingExchange:
    """An all-to-all in flight. ``wait()`` returns the received buffer, usable on the current stream."""

    work: dist.Work | None
    received: torch.Tensor
    stream: torch.cuda.Stream | None = None
    meter: CommMeter | None = None

    def wait(self) -> torch.Tensor:
        if self.work is not None:
            with _waiting(self.meter, "all_to_all"):
                self.work.wait()
            self.work = None
        if self.stream is not None:
            current = torch.cuda.current_stream(self.received.device)
            current.wait_stream(self.stream)
            self.received.record_stream(current)
            self.stream = None
        return self.received


class PooledAllToAll:
    """Exchange pooled embeddings between "my tables, every sample" and "every table, my samples".

    Forward: rank ``r`` holds ``x_r: [R*b, w_r]`` (its tables' pooled embeddings for the global batch, rows in
    global sample order, ``w_r`` = its columns in this exchange). Rank ``s`` receives from every ``r`` the
    rows ``[s*b, (s+1)*b)`` of ``x_r``: blocks ``[b, w_r]``, one per source rank. Backward is the transpose:
    rank ``s`` sends ``[b, w_r]`` gradient blocks to every ``r`` and receives ``[R*b, w_s]``. One
    ``all_to_all_single`` each way; the row chunks are zero-copy views (rows are contiguous).

    Args:
        widths: ``w_r`` for every rank ``r`` (columns each rank contributes), the same list on every rank.
        group: the process group (``None``: the default group).
        meter: where the bytes sent and the time blocked in ``wait()`` are recorded (optional).
    """

    def __init__(
        self,
        widths: Sequence[int],
        group: dist.ProcessGroup | None = None,
        *,
        meter: CommMeter | None = None,
    ) -> None:
        self.group = group
        self.meter = meter
        self.rank, self.world_size = world_of(group)
        if len(widths) != self.world_size:
            raise ValueError(f"widths needs one entry per rank ({self.world_size}), got {len(widths)}")
        self.widths = [int(w) for w in widths]
        self._side = _SideStream()

    def _issue(
        self, send: torch.Tensor, recv_numel: int, out_splits: list[int], in_splits: list[int]
    ) -> PendingExchange:
        if self.world_size == 1:
            return PendingExchange(None, send.clone())
        if self.meter is not None:
            self.meter.sent("all_to_all", [n * send.element_size() for n in in_splits])
        stream = self._side.get(send.device)
        if stream is None:
            recv = send.new_empty(recv_numel)
            work = dist.all_to_all_single(recv, send, out_splits, in_splits, group=self.group, async_op=True)
            return PendingExchange(work, recv, meter=self.meter)
        stream.wait_stream(torch.cuda.current_stream(send.device))
        with torch.cuda.stream(stream):
            recv = send.new_empty(recv_numel)
            work = dist.all_to_all_single(recv, send, out_splits, in_splits, group=self.group, async_op=True)
        send.record_stream(stream)
        return PendingExchange(work, recv, stream, meter=self.meter)

    def start_forward(self, local: torch.Tensor) -> PendingExchange:
        """Send ``local: [R*b, w_me]``; the result of ``wait()`` splits with :meth:`forward_blocks`."""
        rows, width = local.shape
        if width != self.widths[self.rank]:
            raise ValueError(f"rank {self.rank} sends {width} columns, widths says {self.widths[self.rank]}")
        if rows % self.world_size:
            raise ValueError(f"{rows} rows do not split into {self.world_size} equal local batches")
        b = rows // self.world_size
        send = local.detach().contiguous().view(-1)
        out_splits = [b * w for w in self.widths]
        return self._issue(send, sum(out_splits), out_splits, [b * width] * self.world_size)

    def forward_blocks(self, received: torch.Tensor, local_batch: int) -> list[torch.Tensor]:
        """Split a forward receive buffer into the ``[b, w_r]`` blocks of each source rank ``r`` (views)."""
        chunks = received.split([local_batch * w for w in self.widths])
        return [c.view(local_batch, w) for c, w in zip(chunks, self.widths)]

    def start_backward(self, grads: Sequence[torch.Tensor]) -> PendingExchange:
        """Send gradient blocks ``grads[r]: [b, w_r]`` to their owners; ``wait()`` gives ``[R*b * w_me]``."""
        if len(grads) != self.world_size:
            raise ValueError(f"need one gradient block per rank ({self.world_size}), got {len(grads)}")
        b = grads[0].shape[0]
        send = torch.cat([g.reshape(-1) for g in grads]) if self.world_size > 1 else grads[0].reshape(-1)
        in_splits = [b * w for w in self.widths]
        me = self.widths[self.rank]
        return self._issue(send.contiguous(), self.world_size * b * me, [b * me] * self.world_size, in_splits)


class GradientAllReduce:
    """Sum the gradients of ``params`` over the group in a few flat buckets, asynchronously.

    ``start()`` packs each bucket (``bucket_bytes`` at most, one dtype/device each) and issues an async
    ``all_reduce(SUM)``; ``wait()`` unpacks the sums into ``.grad``. A parameter without a gradient on this
    rank contributes zeros (so every rank issues the same collectives) and receives the sum.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        group: dist.ProcessGroup | None = None,
        bucket_bytes: int = 25 * 2**20,
        *,
        meter: CommMeter | None = None,
    ) -> None:
        self.group = group
        self.meter = meter
        self.world_size = world_of(group)[1]
        self.buckets: list[list[torch.nn.Parameter]] = []
        current: list[torch.nn.Parameter] = []
        size = 0
        for p in params:
            if not p.requires_grad:
                continue
            nbytes = p.numel() * p.element_size()
            if current and (
                size + nbytes > bucket_bytes or p.dtype != current[0].dtype or p.device != current[0].device
            ):
                self.buckets.append(current)
                current, size = [], 0
            current.append(p)
            size += nbytes
        if current:
            self.buckets.append(current)
        self._pending: list[tuple[list[torch.nn.Parameter], torch.Tensor, dist.Work | None]] = []

    def start(self) -> None:
        if self._pending:
            raise RuntimeError("GradientAllReduce.start() called twice without wait()")
        for bucket in self.buckets:
            flat = torch.cat(
                [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in bucket]
            )
            work = None
            if self.world_size > 1:
                work = dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group, async_op=True)
                if self.meter is not None:
                    self.meter.sent_ring("all_reduce", flat.numel() * flat.element_size())
            self._pending.append((bucket, flat, work))

    def wait(self) -> None:
        for bucket, flat, work in self._pending:
            if work is not None:
                with _waiting(self.meter, "all_reduce"):
                    work.wait()
            offset = 0
            for p in bucket:
                n = p.numel()
                value = flat[offset : offset + n].view_as(p)
                if p.grad is None:
                    p.grad = value.clone()
                else:
                    p.grad.copy_(value)
                offset += n
        self._pending = []


def all_reduce_sum(values: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Return the sum of ``values`` over the group (a new tensor; the input is untouched)."""
    out = values.detach().clone()
    if world_of(group)[1] > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
    return out


def all_gather_equal(value: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Concatenate equally shaped tensors of every rank along dim 0 (rank order)."""
    world = world_of(group)[1]
    if world == 1:
        return value.detach().clone()
    parts = [torch.empty_like(value) for _ in range(world)]
    dist.all_gather(parts, value.detach().contiguous(), group=group)
    return torch.cat(parts)
