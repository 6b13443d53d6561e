"""Shared test helpers: tiny synthetic batches obeying the sample-to-rank rule, and a gloo process
launcher."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.models import TableSpec


@dataclass
class GlobalBatch:
    """One global batch: per feature ``lengths [G]`` and ``values [nnz]``; ``dense [G, n]``; ``labels
    [G]``."""

    lengths: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]
    dense: torch.Tensor
    labels: torch.Tensor


@dataclass
class Batch:
    sparse: KeyedJaggedTensor
    dense: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor | None = None  # [b] bool, False for padding (the loader's pad_last)


def make_global_batches(
    specs: Sequence[TableSpec],
    num_batches: int,
    global_batch: int,
    num_dense: int,
    seed: int,
    max_pool: int = 4,
) -> list[GlobalBatch]:
    """Random bags (0..max_pool ids, empty bags included) and labels correlated with the first feature."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(num_batches):
        lengths, values = {}, {}
        for spec in specs:
            lens = torch.randint(0, max_pool + 1, (global_batch,), generator=gen)
            lengths[spec.name] = lens
            values[spec.name] = torch.randint(0, spec.num_embeddings, (int(lens.sum()),), generator=gen)
        dense = torch.rand(global_batch, num_dense, generator=gen)
        labels = (torch.rand(global_batch, generator=gen) < 0.3 + 0.4 * (lengths[specs[0].name] % 2)).float()
        out.append(GlobalBatch(lengths, values, dense, labels))
    return out


def pad_tail(batch: GlobalBatch, num_real: int) -> GlobalBatch:
    """``batch`` with samples ``[num_real, G)`` replaced by padding as the loader's ``pad_last`` makes it:
    empty bags, zero dense features, label 0."""
    lengths, values = {}, {}
    for name, lens in batch.lengths.items():
        keep = int(lens[:num_real].sum())
        lengths[name] = torch.cat([lens[:num_real], torch.zeros_like(lens[num_real:])])
        values[name] = batch.values[name][:keep]
    dense = batch.dense.clone()
    dense[num_real:] = 0
    labels = batch.labels.clone()
    labels[num_real:] = 0
    return GlobalBatch(lengths, values, dense, labels)


def sample_slice(batch: GlobalBatch, name: str, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    lens = batch.lengths[name]
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lens.cumsum(0)])
    return lens[start:stop], batch.values[name][offsets[start] : offsets[stop]]


def rank_batch(batch: GlobalBatch, rank: int, world_size: int, layout: str, features: Sequence[str]) -> Batch:
    """The rank's batch by the rule of docs/architecture.md: local slice ``[r*b, (r+1)*b)`` of the global
    batch (``layout="local"``) or all G samples (``"global"``) for ``features``; dense/labels always local."""
    G = batch.labels.numel()
    b = G // world_size
    lo, hi = (rank * b, (rank + 1) * b) if layout == "local" else (0, G)
    lengths, values = [], []
    for name in features:
        lens, vals = sample_slice(batch, name, lo, hi)
        lengths.append(lens)
        values.append(vals)
    kjt = KeyedJaggedTensor.from_lengths_sync(
        keys=list(features),
        values=torch.cat(values) if values else torch.empty(0, dtype=torch.long),
        lengths=torch.cat(lengths) if lengths else torch.empty(0, dtype=torch.long),
    )
    return Batch(kjt, batch.dense[rank * b : (rank + 1) * b], batch.labels[rank * b : (rank + 1) * b])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def run_ranks(fn: Callable[..., Any], world_size: int, *args: Any) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` spawned gloo processes (raises if one fails)."""
    mp.spawn(_entry, args=(world_size, free_port(), fn, args), nprocs=world_size, join=True)
