"""Timing a shard's fused forward and backward in this process (DreamShard's compute columns).

Compute is timed **one shard at a time**, as DreamShard's devices would run it alone: on this machine devices
share CPU cores, so shards timed concurrently would measure their contention, not the device. The measuring
thread is pinned to one core (``config.pin``), Python's garbage collector is off while it times, and on the
CPU the columns are the thread's CPU time (``config.compute_clock``), so time the thread does not run does
not count. Large tables should live on transparent huge pages (``THP_MEM_ALLOC_ENABLE=1`` in the environment
before torch first allocates; the CLI and the workflow scripts set it): with 4 kB pages a 90 MB table's random
lookups miss the TLB, and how often depended on the build (measured: one shard's minimum over 8 iterations
6.35-8.5 ms over six builds, 7.4-7.8 ms on huge pages). Running the rounds under ``SCHED_FIFO``, even holding
the other core at real-time priority during each round, or dividing by a reference shard timed in the same
rounds did not lower the repeat-to-repeat spread on the 2-core VM this was built on: its noise is the host's
memory system, which drifts by +-20% over minutes (pieces re-measured two minutes later came out 0.75x and
1.2x their first values) and which no scheduling inside the VM controls.

Shards are built a window at a time (``config.window_bytes`` of parameters), and the rounds of a window's
shards interleave: round ``j`` of every shard, then round ``j + 1``, so that a shard's rounds sample different
moments of the machine's load.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ecorec.bench.placement.config import PlacementBenchConfig

logger = logging.getLogger(__name__)

#: A shard as its sorted ``(table, column, dim)`` triples.
ShardSpec = tuple[tuple[str, int, int], ...]


def load_batch(
    config: PlacementBenchConfig, tables: Sequence[str]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{table: (indices [nnz] int64, offsets [B+1] int64)}`` of the configured batch."""
    from ecorec.stats import dataset_lookups

    batches = dataset_lookups(
        config.dataset,
        batch_size=config.batch_size,
        num_batches=config.batch_index + 1,
        split=config.split,
        features=list(tables),
    )
    lookups = list(batches)[-1]
    out = {}
    for name, (values, lengths) in lookups.items():
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        out[name] = (torch.as_tensor(values, dtype=torch.int64), torch.as_tensor(offsets, dtype=torch.int64))
    return out


def uses_tt(config: PlacementBenchConfig, rows: int) -> bool:
    """Whether a table of ``rows`` rows is a TT table under ``config.kind``."""
    return config.kind != "uncompressed" and rows >= config.tt_min_rows


def shard_bytes(config: PlacementBenchConfig, shard: ShardSpec, rows: Mapping[str, int]) -> int:
    """Parameter bytes of the shard's uncompressed tables (what a window of built shards holds)."""
    return sum(4 * rows[t] * d for t, _, d in shard if not uses_tt(config, rows[t]))


class FusedShard:
    """One device's tables as one module: ``forward() -> [B, D_r]`` and ``backward(grad)``.

    ``uncompressed``: fbgemm's ``SplitTableBatchedEmbeddingBagsCodegen`` over all of them (CPU: HOST/CPU;
    CUDA: DEVICE, as DreamShard), EXACT_SGD; ``tt``: one ``TTEmbeddingBag`` per table (fused SGD), tables
    under ``tt_min_rows`` rows as ``nn.EmbeddingBag``; ``mixed``: the TT tables and one fused TBE over the
    others.
    """

    def __init__(
        self,
        config: PlacementBenchConfig,
        shard: ShardSpec,
        rows: Mapping[str, int],
        batch: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
        device: torch.device,
    ) -> None:
        self.config, self.device = config, device
        self.total_dim = sum(d for _, _, d in shard)
        self.output: torch.Tensor | None = None
        self.parts: list[Any] = []  # (module, inputs, kind)
        self.plain: list[torch.nn.Parameter] = []
        tt = [s for s in shard if uses_tt(config, rows[s[0]])]
        rest = [s for s in shard if not uses_tt(config, rows[s[0]])]
        if config.kind == "tt":
            self.parts += [self._embedding_bag(s, rows, batch) for s in rest]
        elif rest:
            self.parts.append(self._tbe(rest, rows, batch))
        self.parts += [self._tt(s, rows, batch) for s in tt]

    def _tbe(self, shard: ShardSpec, rows: Mapping[str, int], batch) -> tuple[Any, Any, str]:
        from fbgemm_gpu.split_embedding_configs import EmbOptimType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import (
            ComputeDevice,
            EmbeddingLocation,
            PoolingMode,
        )
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            SplitTableBatchedEmbeddingBagsCodegen,
        )

        on_gpu = self.device.type == "cuda"
        location = EmbeddingLocation.DEVICE if on_gpu else EmbeddingLocation.HOST
        compute = ComputeDevice.CUDA if on_gpu else ComputeDevice.CPU
        module = SplitTableBatchedEmbeddingBagsCodegen(
            embedding_specs=[(rows[t], d, location, compute) for t, _, d in shard],
            optimizer=EmbOptimType.EXACT_SGD,
            learning_rate=self.config.learning_rate,
            pooling_mode=PoolingMode.SUM,
            device=self.device,
        )
        # table-major fused input: bag (t, b) spans offsets[t*B + b] : offsets[t*B + b + 1]
        indices, offsets, base = [], [torch.zeros(1, dtype=torch.int64)], 0
        for t, _, _ in shard:
            values, offs = batch[t]
            indices.append(values)
            offsets.append(offs[1:] + base)
            base += int(values.numel())
        inputs = (torch.cat(indices).to(self.device), torch.cat(offsets).to(self.device))
        return module, inputs, "tbe"

    def _tt(self, spec: tuple[str, int, int], rows: Mapping[str, int], batch) -> tuple[Any, Any, str]:
        from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig

        table, _, dim = spec
        module = TTEmbeddingBag(
            rows[table],
            dim,
            list(self.config.tt_ranks),
            num_cores=len(self.config.tt_ranks) + 1,
            algorithm=self.config.algorithm,
            optimizer=TTOptimizerConfig(kind="sgd", lr=self.config.learning_rate),
            include_last_offset=True,
            device=self.device,
        )
        values, offs = batch[table]
        return module, (values.to(self.device), offs.to(self.device)), "tt"

    def _embedding_bag(
        self, spec: tuple[str, int, int], rows: Mapping[str, int], batch
    ) -> tuple[Any, Any, str]:
        table, _, dim = spec
        module = torch.nn.EmbeddingBag(rows[table], dim, mode="sum", include_last_offset=True).to(self.device)
        self.plain += list(module.parameters())
        values, offs = batch[table]
        return module, (values.to(self.device), offs.to(self.device)), "bag"

    def forward(self) -> torch.Tensor:
        if not self.parts:
            return torch.zeros(self.config.batch_size, 0, device=self.device)
        self.output = torch.cat([module(*inputs) for module, inputs, _ in self.parts], dim=1)
        return self.output

    def backward(self, grad: torch.Tensor) -> None:
        if self.output is None:
            return
        self.output.backward(grad)
        with torch.no_grad():  # SGD on the nn.EmbeddingBag tables (TBE and TT tables update fused)
            for p in self.plain:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-self.config.learning_rate)
                    p.grad = None
        self.output = None


@dataclass
class TimingEnvironment:
    """How the compute was timed (recorded with every measured shard)."""

    core: int | None
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"core": self.core, "load_before": list(self.load_before), "load_after": list(self.load_after)}


@contextlib.contextmanager
def pinned(config: PlacementBenchConfig) -> Iterator[int | None]:
    """Pin the calling thread to the last core it may run on (``config.pin`` on the CPU) for the block;
    yields the core (``None``: not pinned)."""
    if not config.pin or config.device == "cuda" or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    core = max(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _iterations(
    fused: FusedShard, grad: torch.Tensor, count: int, clock, device: torch.device
) -> list[list[float]]:
    out = []
    for _ in range(count):
        _sync(device)
        t0 = clock()
        fused.forward()
        _sync(device)
        t1 = clock()
        fused.backward(grad)
        _sync(device)
        t2 = clock()
        out.append([1e3 * (t1 - t0), 1e3 * (t2 - t1)])
    return out


def _windows(
    config: PlacementBenchConfig, shards: Sequence[ShardSpec], rows: Mapping[str, int]
) -> list[list[int]]:
    windows: list[list[int]] = [[]]
    held = 0
    for i, shard in enumerate(shards):
        size = shard_bytes(config, shard, rows)
        if windows[-1] and held + size > config.window_bytes:
            windows.append([])
            held = 0
        windows[-1].append(i)
        held += size
    return [w for w in windows if w]


def time_shards(
    config: PlacementBenchConfig,
    shards: Sequence[ShardSpec],
    rows: Mapping[str, int],
    batch: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
) -> tuple[list[np.ndarray], TimingEnvironment]:
    """Time every shard in ``rounds`` interleaved rounds of ``repeats`` iterations: ``[rounds, repeats, 2]``
    ms (forward, backward) per shard, and how they were timed."""
    device = torch.device("cuda", 0) if config.device == "cuda" else torch.device("cpu")
    clock = time.thread_time if config.compute_clock == "thread" else time.perf_counter
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    results: list[np.ndarray] = [np.zeros((config.rounds, config.repeats, 2)) for _ in shards]
    load_before = tuple(float(x) for x in os.getloadavg())
    enabled = gc.isenabled()
    gc.disable()
    try:
        with pinned(config) as core:
            for window in _windows(config, shards, rows):
                built = [FusedShard(config, shards[i], rows, batch, device) for i in window]
                grads = [torch.ones(config.batch_size, f.total_dim, device=device) for f in built]
                for fused, grad in zip(built, grads, strict=True):
                    _iterations(fused, grad, config.warmup, clock, device)
                for r in range(config.rounds):
                    for i, fused, grad in zip(window, built, grads, strict=True):
                        results[i][r] = _iterations(fused, grad, config.repeats, clock, device)
                del built, grads
                gc.collect()
    finally:
        torch.set_num_threads(threads)
        if enabled:
            gc.enable()
    environment = TimingEnvironment(core, load_before, tuple(float(x) for x in os.getloadavg()))
    return results, environment
