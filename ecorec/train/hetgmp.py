"""The ``hetgmp`` mode's pieces of a training run: the partition (checked against this run), the mode
settings, the per-rank train loader, and the run record's ``hetgmp`` metrics.

Sample schedule: rank ``r`` trains on ``Partition.samples_of(r)`` with the local batch ``b = G / R``
(``ecorec.data.partitioned``); one "epoch" is ``ceil(N_train / G)`` steps. Evaluation uses the ordinary
loader (equal contiguous shards, as HET-GMP validates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ecorec.train.config import RunConfig

# the run's pieces are imported where used, so that hetgmp_run_dict (the workflow's) needs no torch
if TYPE_CHECKING:
    from ecorec.data.partitioned import PartitionedBatchLoader
    from ecorec.parallel import HetGMPSettings
    from ecorec.planner.partition import Partition

__all__ = ["hetgmp_metrics", "hetgmp_run_dict", "hetgmp_setup", "hetgmp_train_loader"]


def hetgmp_setup(
    cfg: RunConfig, metadata: Any, features: Sequence[str], rank: int, world_size: int
) -> tuple[HetGMPSettings, Partition]:
    """Load ``hetgmp.partition`` (rejecting one made for another dataset, split, features or world size) and
    this rank's mode settings."""
    from ecorec.parallel import HetGMPSettings
    from ecorec.planner.partition import Partition, dataset_fingerprint

    assert cfg.hetgmp.partition is not None
    start, stop = metadata.splits["train"]
    part = Partition.load(
        cfg.hetgmp.partition,
        world_size=world_size,
        fingerprint=dataset_fingerprint(cfg.dataset.path, "train", features),
        num_samples=stop - start,
        num_rows=sum(metadata.num_embeddings[f] for f in features),
        features=list(features),
    )
    mirrors = part.mirrors_of(rank, cfg.hetgmp.store_rate)
    return HetGMPSettings(part.owner, mirrors, cfg.hetgmp.bound, cfg.hetgmp.prefetch), part


def hetgmp_train_loader(
    cfg: RunConfig, part: Partition, rank: int, world_size: int, features: Sequence[str]
) -> PartitionedBatchLoader:
    """This rank's train batches under the partition."""
    from ecorec.data.partitioned import PartitionedBatchLoader

    G = cfg.train.global_batch_size
    return PartitionedBatchLoader(
        cfg.dataset.path,
        split="train",
        samples=part.samples_of(rank),
        local_batch_size=G // world_size,
        steps_per_epoch=max(1, math.ceil(part.data.size / G)),
        rank=rank,
        seed=cfg.run.seed,
        shuffle=cfg.dataset.shuffle,
        features=features,
        verify=cfg.dataset.verify,
    )


def hetgmp_metrics(model: Any, part: Partition, all_stats: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``hetgmp`` block of the run record from every rank's counters (``HetGMPStats.as_dict`` plus
    ``memory``)."""
    steps = max(1, all_stats[0]["steps"])
    rows = [s["fetched_rows"] / steps for s in all_stats]
    return {
        "partition": part.header.get("method"),
        "partition_seconds": part.header.get("partition_seconds"),
        "predicted_remote_rows_per_step": part.header.get("predicted_fetches_per_step"),
        "remote_rows_per_step": rows,
        "remote_rows_per_step_mean": float(np.mean(rows)),
        "remote_bytes_per_step_mean": float(np.mean([s["fetched_bytes"] / steps for s in all_stats])),
        "query_bytes_per_step_mean": float(np.mean([s["query_bytes"] / steps for s in all_stats])),
        "pushed_bytes_per_step_mean": float(np.mean([s["pushed_bytes"] / steps for s in all_stats])),
        "max_staleness": max(s["max_staleness"] for s in all_stats),
        "mirror_bytes": [s["memory"]["mirrors"] for s in all_stats],
        "owned_bytes": [s["memory"]["owned"] for s in all_stats],
        "mirror_rows": [s["mirror_rows"] for s in all_stats],
    }


def hetgmp_run_dict(
    section: Mapping[str, Any],
    *,
    partitioner: str,
    store_rate: float,
    bound: int,
    dataset_path: str,
    partition_path: str,
    output_dir: str,
    device: str = "cpu",
) -> dict[str, Any]:
    """The run config (plain data for ``run_config_from_dict``) of one point of the workflow's HET-GMP grid.

    ``section`` is config.yaml's ``hetgmp`` entry: ``world``, ``batch`` (local), ``steps``, ``eval_batches``,
    ``seed``, ``prefetch``, ``model``, ``embeddings`` (optimizer, lr), ``dense_optimizer``, and optionally
    ``timing_warmup_steps`` / ``timing_windows``.
    """
    world, batch = int(section["world"]), int(section["batch"])
    return {
        "run": {
            "seed": int(section.get("seed", 0)),
            "device": device,
            "output_dir": output_dir,
            "name": f"hetgmp-{partitioner}-s{store_rate:g}-B{bound}",
        },
        "dataset": {"path": dataset_path, "prefetch": 1, "shuffle": True},
        "model": dict(section["model"]),
        "embeddings": {"algorithm": "none", "update": "plain", **dict(section["embeddings"])},
        "dense_optimizer": dict(section["dense_optimizer"]),
        "parallel": {"mode": "hetgmp", "world_size": world},
        "hetgmp": {
            "partition": partition_path,
            "store_rate": float(store_rate),
            "bound": int(bound),
            "prefetch": bool(section.get("prefetch", False)),
        },
        "train": {
            "global_batch_size": world * batch,
            "steps": int(section["steps"]),
            "eval_batches": int(section["eval_batches"]),
            "eval_splits": ["val"],
            "timing_warmup_steps": int(section.get("timing_warmup_steps", 2)),
            "timing_windows": int(section.get("timing_windows", 3)),
            "log_every": 0,
        },
    }
