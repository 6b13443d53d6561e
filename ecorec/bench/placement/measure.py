"""Measured placement costs assembled from cached pieces: :func:`measure_placements`."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch.distributed as dist

from ecorec.bench.placement.comm import (
    canonical_dims,
    link_exchange_rounds,
    run_exchange_workers,
    time_exchanges_in_group,
)
from ecorec.bench.placement.compute import ShardSpec, load_batch, time_shards
from ecorec.bench.placement.config import (
    PlacementBenchConfig,
    PlacementCost,
    data_identity,
    exchange_key,
    read_piece,
    round_values,
    shard_key,
    write_piece,
)
from ecorec.planner.dreamshard.placement import Placement

logger = logging.getLogger(__name__)

LAUNCHERS = ("spawn", "group", "cluster")


def shard_spec(placement: Placement, device: int) -> ShardSpec:
    """The shard of ``device``: its sorted ``(table, column, dim)`` triples."""
    return tuple(sorted((s.table, s.column, s.dim) for s in placement.device_shards(device)))


def device_dims(placement: Placement) -> list[int]:
    """Each device's total embedding dim (what its all-to-all carries per sample)."""
    return [sum(s.dim for s in placement.device_shards(r)) for r in range(placement.num_devices)]


def table_rows(config: PlacementBenchConfig) -> dict[str, int]:
    from ecorec.data import read_metadata

    return {name: int(rows) for name, rows in read_metadata(config.dataset).num_embeddings.items()}


def _measure_shards(
    config: PlacementBenchConfig, shards: Sequence[ShardSpec], rows: dict[str, int], keys: Sequence[str]
) -> dict[str, np.ndarray]:
    """Time the shards here; cache and return their round values ``[rounds, 2]`` by key."""
    tables = sorted({t for shard in shards for t, _, _ in shard})
    batch = load_batch(config, tables)
    times, environment = time_shards(config, shards, rows, batch)
    out = {}
    for key, shard, samples in zip(keys, shards, times, strict=True):
        rounds = round_values(samples)
        write_piece(
            config,
            key,
            {
                "shard": [list(t) for t in shard],
                "rounds": rounds.tolist(),
                "iterations": samples.tolist(),
                "timing": environment.to_dict(),
            },
        )
        out[key] = rounds
    logger.info(
        "placement bench: %d shards timed (core %s, load %s -> %s)",
        len(shards),
        environment.core,
        environment.load_before,
        environment.load_after,
    )
    return out


def _measure_exchanges(
    config: PlacementBenchConfig,
    vectors: Sequence[tuple[int, ...]],
    keys: Sequence[str],
    launcher: str,
    cluster_args: Sequence[str],
) -> dict[str, np.ndarray]:
    """Each exchange's round values ``[R, rounds, 2]`` by key (computed over the link, or timed), cached."""
    if config.comm == "link":
        rounds = [link_exchange_rounds(config, v) for v in vectors]
        iterations = None
    else:
        if launcher == "group":
            raw = time_exchanges_in_group(vectors, config)
            objects: list[Any] = [None if raw is None else raw.tolist()]
            dist.broadcast_object_list(objects, src=0)
            times = np.asarray(objects[0], dtype=np.float64)
        else:
            args = list(cluster_args) if launcher == "cluster" else None
            times = run_exchange_workers(vectors, config, args)
        rounds = [round_values(t) for t in times]
        iterations = times
    out = {}
    for i, (key, vector) in enumerate(zip(keys, vectors, strict=True)):
        piece: dict[str, Any] = {"dims": list(vector), "rounds": rounds[i].tolist()}
        if iterations is not None:
            piece["iterations"] = iterations[i].tolist()
        write_piece(config, key, piece)
        out[key] = rounds[i]
    return out


def measure_placements(
    placements: Sequence[Placement],
    config: PlacementBenchConfig,
    *,
    launcher: str = "spawn",
    cluster_args: Sequence[str] = (),
    replicate: int = 0,
) -> list[PlacementCost]:
    """The measured cost of every placement, from cached pieces where the cache holds them.

    Each device's compute is its shard's (timed here, one shard at a time, on rank 0 under ``group``); the
    communication columns are its exchange's (``config.comm``).

    Args:
        launcher: where measured exchanges run: ``spawn``: ``world_size`` gloo (nccl) rank processes on
            loopback; ``group``: the current process group (launched by torchrun; every rank calls this and
            gets the results); ``cluster``: ranks on the emulated cluster (``python -m ecorec.cluster run
            cluster_args``; name its network in ``config.cluster_profile``, which enters the cache key).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    for p in placements:
        if p.num_devices != config.world_size:
            raise ValueError(f"placement for {p.num_devices} devices, world_size={config.world_size}")
    rows = table_rows(config)
    missing = sorted({s.table for p in placements for s in p.shards} - set(rows))
    if missing:
        raise ValueError(f"{config.dataset}: placements use unknown tables {missing}")
    rank = dist.get_rank() if launcher == "group" else 0
    data = data_identity(config)
    plans = []
    shards: dict[str, ShardSpec] = {}
    exchanges: dict[str, tuple[int, ...]] = {}
    for p in placements:
        specs = [shard_spec(p, r) for r in range(p.num_devices)]
        shard_keys = [shard_key(config, s, data, replicate) if s else "" for s in specs]
        shards.update({k: s for k, s in zip(shard_keys, specs, strict=True) if k})
        vector, position = canonical_dims(device_dims(p))
        comm_key = exchange_key(config, vector, replicate)
        exchanges[comm_key] = vector
        plans.append((shard_keys, comm_key, position))
    pieces: dict[str, np.ndarray] = {}
    for key in list(shards) + list(exchanges):
        cached = read_piece(config, key)
        if cached is not None:
            pieces[key] = np.asarray(cached["rounds"], dtype=np.float64)
    fresh: set[str] = set()
    todo = [k for k in shards if k not in pieces]
    if todo:
        if launcher != "group" or rank == 0:
            pieces.update(_measure_shards(config, [shards[k] for k in todo], rows, todo))
        if launcher == "group":
            objects: list[Any] = [{k: pieces[k].tolist() for k in todo} if rank == 0 else None]
            dist.broadcast_object_list(objects, src=0)
            pieces.update({k: np.asarray(v) for k, v in objects[0].items()})
        fresh.update(todo)
    todo = [k for k in exchanges if k not in pieces]
    if todo:
        pieces.update(_measure_exchanges(config, [exchanges[k] for k in todo], todo, launcher, cluster_args))
        fresh.update(todo)
    out = []
    zero = np.zeros((config.rounds, 2))
    for p, (shard_keys, comm_key, position) in zip(placements, plans, strict=True):
        comm = pieces[comm_key]
        rounds = np.zeros((p.num_devices, config.rounds, 4))
        for r in range(p.num_devices):
            compute = pieces[shard_keys[r]] if shard_keys[r] else zero
            rounds[r, :, 0], rounds[r, :, 3] = compute[:, 0], compute[:, 1]
            rounds[r, :, 1], rounds[r, :, 2] = comm[position[r], :, 0], comm[position[r], :, 1]
        key = hashlib.sha256(("".join(shard_keys) + comm_key).encode()).hexdigest()
        out.append(
            PlacementCost.from_rounds(
                rounds,
                key=key,
                cached=not any(k in fresh for k in [*shard_keys, comm_key] if k),
            )
        )
    return out
