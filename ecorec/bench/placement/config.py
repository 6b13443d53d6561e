"""The measurement's settings, its robust statistic, and the content-hash cache of measured pieces.

A placement's cost is assembled from two kinds of measured **pieces** (:mod:`ecorec.bench.placement`):

- a **shard**: the fused forward and backward of one device's tables (``[rounds, 2]`` ms); it depends only on
  the tables on that device, so it is cached by the shard's content and shared by every placement that puts
  the same tables together;
- an **exchange**: the forward and backward all-to-all of a vector of per-device dims (``[R, rounds, 2]``
  ms), cached by the vector (sorted: the devices' links are identical, so the exchange is symmetric under a
  relabelling of the devices).

The robust statistic (:meth:`PlacementCost.from_rounds`): each piece is timed in ``rounds`` rounds spread in
time (interleaved with the other pieces of a measurement), a round being ``repeats`` back-to-back iterations;
a column's value is the **minimum over all its iterations** (min-of-k, ``k = rounds * repeats``): on a shared
machine every disturbance (another process's cache and memory traffic, the host's) only adds time, so the
fastest of k iterations spread over seconds is the most reproducible estimate of the undisturbed cost
(measured on the 2-core VM this was built on at load 5: a shard's repeat-to-repeat relative IQR 6.7% for the
min of 32 iterations in 8 rounds, 9.7% for the median of the rounds' minima, 12% for the median of all
iterations). The plan cost is the max over devices of the four columns' sum. Each measurement also states
its rounds' spread (the plan cost of each round alone); the repeat-to-repeat spread of the statistic itself is
measured by re-measuring placements in independent passes (``replicate``; the placement study's noise
panel), because rounds of one measurement share the machine's load of that moment and understate it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ecorec.planner.dreamshard.placement import TABLE_KINDS

logger = logging.getLogger(__name__)

COLUMNS = ("forward_compute", "forward_comm", "backward_comm", "backward_compute")
COMM_MODES = ("link", "measured")


@dataclass(frozen=True)
class PlacementBenchConfig:
    """Settings of a placement measurement.

    Attributes:
        dataset: Parquet dataset folder whose batch is looked up.
        batch_size: B, samples of the batch every device looks up (divisible by ``world_size``).
        world_size: R, devices.
        kind: ``uncompressed`` (fbgemm's fused TBE) | ``tt`` (TT tables; those under ``tt_min_rows`` as
            ``nn.EmbeddingBag``) | ``mixed`` (EcoRec's deployment: TT tables from ``tt_min_rows`` rows, one
            fused TBE over the smaller ones).
        split, batch_index: which batch of the dataset.
        warmup: untimed iterations of a piece before its first round.
        rounds: rounds of a piece, interleaved with the other pieces measured in the same call.
        repeats: timed iterations per round (the round's value is their minimum).
        tt_ranks, tt_min_rows, algorithm: TT tables.
        device: ``cpu`` or ``cuda`` (compute on GPU 0, nccl for measured exchanges).
        comm: ``link``: an all-to-all costs its bytes over the slowest link at ``link_gbit`` (the emulated
            cluster's dilated rate; no process group), ``measured``: timed all-to-alls between ``world_size``
            ranks (loopback, a torchrun group, or the emulated cluster).
        link_gbit: Gbit/s per device and direction (``comm="link"``).
        ranks_per_node: devices per node (``comm="link"``: exchanges inside a node cost ``intra_gbit``, free
            when ``None``).
        intra_gbit: Gbit/s of a node's own exchanges (``comm="link"``).
        cluster_profile: names the network in the cache key (``loopback`` unless on a cluster).
        cache_dir: folder of cached pieces (``None``: no cache).
        threads: torch threads of the compute measurement.
        learning_rate: of the fused SGD update.
        compute_clock: ``thread`` (CPU): compute in the measuring thread's CPU time, so other jobs of a shared
            machine do not count; ``wall``: ``time.perf_counter`` (always on CUDA, after a synchronize).
        pin: pin the measuring thread (and each measured-exchange rank) to one core.
        window_bytes: parameters of the shards kept built at once, so that their rounds interleave.

    Everything that changes a number enters the cache keys; ``cache_dir``, ``threads``, ``pin`` and
    ``window_bytes`` (how it is measured, not what) do not.
    """

    dataset: str
    batch_size: int
    world_size: int
    kind: str = "uncompressed"
    split: str = "train"
    batch_index: int = 0
    warmup: int = 1
    rounds: int = 5
    repeats: int = 3
    tt_ranks: tuple[int, ...] = (16, 16)
    tt_min_rows: int = 1000
    algorithm: str = "ecorec"
    device: str = "cpu"
    comm: str = "measured"
    link_gbit: float | None = None
    ranks_per_node: int = 1
    intra_gbit: float | None = None
    cluster_profile: str = "loopback"
    cache_dir: str | None = None
    threads: int = 1
    learning_rate: float = 0.01
    compute_clock: str = "thread"
    pin: bool = True
    window_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        if self.compute_clock not in ("thread", "wall"):
            raise ValueError(
                f"placement bench: compute_clock must be 'thread' or 'wall', got {self.compute_clock!r}"
            )
        if self.compute_clock == "thread" and self.device == "cuda":
            object.__setattr__(self, "compute_clock", "wall")  # GPU kernels do not run on the host thread
        if self.kind not in TABLE_KINDS:
            raise ValueError(f"placement bench: kind must be one of {TABLE_KINDS}, got {self.kind!r}")
        if self.world_size < 1 or self.batch_size < 1 or self.batch_size % self.world_size:
            raise ValueError(
                f"placement bench: batch_size={self.batch_size} must be a positive multiple of "
                f"world_size={self.world_size}"
            )
        if self.rounds < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError(
                f"placement bench: rounds >= 1, repeats >= 1 and warmup >= 0, got {self.rounds}, "
                f"{self.repeats}, {self.warmup}"
            )
        if self.comm not in COMM_MODES:
            raise ValueError(f"placement bench: comm must be one of {COMM_MODES}, got {self.comm!r}")
        if self.comm == "link" and not (self.link_gbit is not None and self.link_gbit > 0):
            raise ValueError(f"placement bench: comm='link' needs link_gbit > 0, got {self.link_gbit!r}")
        if self.ranks_per_node < 1:
            raise ValueError(f"placement bench: ranks_per_node must be >= 1, got {self.ranks_per_node}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlacementBenchConfig:
        return cls(**{**data, "tt_ranks": tuple(data["tt_ranks"])})


# ---- the statistic ---------------------------------------------------------------------------------------


def round_values(iterations: np.ndarray) -> np.ndarray:
    """``[..., rounds, repeats, C] -> [..., rounds, C]``: each round's minimum over its iterations."""
    return np.asarray(iterations, dtype=np.float64).min(axis=-2)


def plan_statistic(rounds: np.ndarray) -> float:
    """``[R, rounds, 4] ->`` the plan cost: max over devices of the sum of each column's minimum."""
    return float(np.asarray(rounds, dtype=np.float64).min(axis=1).sum(axis=1).max())


@dataclass
class PlacementCost:
    """Measured cost of one placement (ms).

    Attributes:
        device_costs: ``[R, 4]`` per device, :data:`COLUMNS` (each the minimum over its iterations).
        plan_cost: max over devices of the row sums.
        spread: ``(lo, hi)``: the lowest and highest plan cost of a single round (the rounds' spread).
        iqr: first and third quartile of the single rounds' plan costs.
        samples: ``[R, rounds, 4]``: each device's round values.
        key: identifies the placement's pieces.
        cached: every piece came from the cache.
    """

    device_costs: list[list[float]]
    plan_cost: float
    spread: tuple[float, float]
    iqr: tuple[float, float] = (0.0, 0.0)
    samples: list[list[list[float]]] = field(default_factory=list)
    key: str = ""
    cached: bool = False

    @property
    def round_relative_iqr(self) -> float:
        """IQR of the single rounds' plan costs over their median."""
        middle = float(np.median(np.asarray(self.samples).sum(axis=2).max(axis=0))) if self.samples else 0.0
        return (self.iqr[1] - self.iqr[0]) / middle if middle > 0 else 0.0

    @classmethod
    def from_rounds(cls, rounds: np.ndarray, key: str = "", cached: bool = False) -> PlacementCost:
        """From the devices' round values ``[R, rounds, 4]``."""
        rounds = np.asarray(rounds, dtype=np.float64)
        per_round = rounds.sum(axis=2).max(axis=0)
        q1, q3 = np.quantile(per_round, [0.25, 0.75])
        return cls(
            device_costs=rounds.min(axis=1).tolist(),
            plan_cost=plan_statistic(rounds),
            spread=(float(per_round.min()), float(per_round.max())),
            iqr=(float(q1), float(q3)),
            samples=rounds.tolist(),
            key=key,
            cached=cached,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "columns": list(COLUMNS),
            "device_costs": self.device_costs,
            "plan_cost": self.plan_cost,
            "spread": list(self.spread),
            "iqr": list(self.iqr),
            "samples": self.samples,
        }


def relative_iqr(values: Sequence[float]) -> float:
    """``(q3 - q1) / median`` of repeated measurements of one quantity (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    q1, middle, q3 = np.quantile(np.asarray(values, dtype=np.float64), [0.25, 0.5, 0.75])
    return float((q3 - q1) / middle) if middle > 0 else 0.0


# ---- content-hash cache of pieces ------------------------------------------------------------------------


def data_identity(config: PlacementBenchConfig) -> dict[str, Any]:
    """What identifies the measured batch: the dataset's content (the sha256 of its metadata, which lists
    every file's sha256), the split and the batch."""
    with open(os.path.join(config.dataset, "metadata.json"), "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    return {"metadata_sha256": digest, "split": config.split, "batch_index": config.batch_index}


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _protocol(config: PlacementBenchConfig) -> dict[str, Any]:
    return {"warmup": config.warmup, "rounds": config.rounds, "repeats": config.repeats}


def shard_key(
    config: PlacementBenchConfig,
    shard: tuple[tuple[str, int, int], ...],
    data: dict[str, Any],
    replicate: int = 0,
) -> str:
    """Key of a shard's compute: its ``(table, column, dim)`` triples, the batch and every setting that
    changes the compute (not the devices, the network or the world size: each device looks up the whole
    batch); ``replicate`` > 0 names an independent re-measurement."""
    settings: dict[str, Any] = {
        "batch_size": config.batch_size,
        "kind": config.kind,
        "device": config.device,
        "compute_clock": config.compute_clock,
        "learning_rate": config.learning_rate,
        **_protocol(config),
    }
    if config.kind != "uncompressed":
        settings.update(
            tt_ranks=list(config.tt_ranks), tt_min_rows=config.tt_min_rows, algorithm=config.algorithm
        )
    payload = {"piece": "shard", "shard": [list(t) for t in shard], "data": data, "settings": settings}
    if replicate:
        payload["replicate"] = replicate
    return _digest({**payload, "torch": torch.__version__.split("+")[0]})


def exchange_key(config: PlacementBenchConfig, dims: tuple[int, ...], replicate: int = 0) -> str:
    """Key of an exchange: the (sorted) dims vector, the batch size and the network (``replicate`` > 0: an
    independent re-measurement of a timed exchange)."""
    settings: dict[str, Any] = {"batch_size": config.batch_size, "comm": config.comm, "device": config.device}
    if config.comm == "link":
        settings.update(
            link_gbit=config.link_gbit, ranks_per_node=config.ranks_per_node, intra_gbit=config.intra_gbit
        )
    else:
        settings.update(network=config.cluster_profile, **_protocol(config))
    payload = {"piece": "exchange", "dims": list(dims), "settings": settings}
    if replicate and config.comm == "measured":
        payload["replicate"] = replicate
    return _digest({**payload, "torch": torch.__version__.split("+")[0]})


def cache_path(config: PlacementBenchConfig, key: str) -> str | None:
    if config.cache_dir is None:
        return None
    return os.path.join(config.cache_dir, key[:2], f"{key}.json")


def read_piece(config: PlacementBenchConfig, key: str) -> dict[str, Any] | None:
    """A cached piece (``{"rounds": ..., ...}``), or ``None``."""
    path = cache_path(config, key)
    if path is None or not os.path.exists(path):
        return None
    with open(path) as handle:
        try:
            piece = json.load(handle)
            np.asarray(piece["rounds"], dtype=np.float64)
            return piece
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            logger.warning("%s: unreadable cache entry (%s); measuring again", path, err)
            return None


def write_piece(config: PlacementBenchConfig, key: str, piece: dict[str, Any]) -> None:
    from ecorec.utils import write_json_atomic

    path = cache_path(config, key)
    if path is not None:
        write_json_atomic(path, {**piece, "key": key})
