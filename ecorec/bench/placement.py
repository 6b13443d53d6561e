"""Measured cost of table placements (DreamShard's protocol): ``python -m ecorec.bench placement``.

For each placement (:class:`ecorec.planner.dreamshard.placement.Placement`), ``R`` ranks (one per device)
each build **one fused module over the shards placed on them** and take **one real batch** of the dataset
(``batch_size`` samples of the split, the same for every rank, as in DreamShard where every device looks up
its tables for the whole batch). Four numbers per device and iteration (ms), DreamShard's columns:

1. ``forward_compute``: the fused lookup's forward, output ``[B, D_r]`` (``D_r`` = its shards' dims summed);
2. ``forward_comm``: the forward all-to-all of the pooled outputs (rank ``r`` sends ``[B/R, D_r]`` to each);
3. ``backward_comm``: the reverse all-to-all of their gradients (DreamShard measures it as the time of
   cat + backward through the all-to-all + kernel backward minus the kernel backward alone: the same
   exchange);
4. ``backward_compute``: the fused backward with the optimizer update (EXACT_SGD).

Protocol: ``warmup`` then ``repeats`` iterations, each preceded by a barrier; each column is the **median** of
its repeats; the plan cost is the **max over devices of the sum of the four medians**. The spread stated with
it is the same statistic of the per-column minima and maxima: ``[max_r sum_c min_i, max_r sum_c max_i]`` (it
contains the plan cost), and ``iqr`` the same of the quartiles.

Compute is timed **one device at a time** (the other ranks wait in a barrier): on this machine the ranks
share CPU cores, so concurrent compute would measure contention, not the device (on GPUs DreamShard's devices
run concurrently). On the CPU the compute columns are by default the rank's **thread CPU time**
(``compute_clock``), so that other jobs of a shared machine are not counted. The all-to-alls are wall time,
timed with all ranks together, so communication is real: over loopback gloo by default, or over whatever
links the process group spans when launched under ``torchrun`` (e.g. on the emulated cluster of
``ecorec.cluster``: ``--launcher torchrun``, with ``--cluster-profile`` naming it so that it enters the cache
key).

Table kinds: ``uncompressed`` = fbgemm's fused ``SplitTableBatchedEmbeddingBagsCodegen`` (CPU: HOST/CPU; CUDA:
DEVICE, as DreamShard) over the rank's shards; ``tt`` = one ``TTEmbeddingBag`` per shard (``algorithm``,
fused SGD), tables under ``tt_min_rows`` rows as ``nn.EmbeddingBag``.

Results are cached by content hash (:func:`cache_key`: the placement, the data batch's identity, every setting
that changes a number) in ``cache_dir``, so re-evaluating a placement costs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ecorec.planner.dreamshard.placement import TABLE_KINDS, Placement
from ecorec.utils import write_json_atomic

logger = logging.getLogger(__name__)

COLUMNS = ("forward_compute", "forward_comm", "backward_comm", "backward_compute")


@dataclass(frozen=True)
class PlacementBenchConfig:
    """Settings of a placement measurement (all enter the cache key except ``cache_dir`` and ``threads``).

    Attributes:
        dataset: Parquet dataset folder whose batch is looked up.
        batch_size: B, samples of the batch (divisible by ``world_size``).
        world_size: R, devices (ranks).
        kind: ``uncompressed`` | ``tt``.
        split, batch_index: which batch of the dataset.
        warmup, repeats: DreamShard: 5 and 10.
        tt_ranks, tt_min_rows, algorithm: TT tables (``kind="tt"``).
        device: ``cpu`` (gloo) or ``cuda`` (nccl; rank r on GPU r).
        cluster_profile: names the network the ranks span (``loopback`` unless launched on a cluster).
        cache_dir: folder of cached results (``None``: no cache).
        threads: torch threads per rank.
        learning_rate: of the fused SGD update.
        compute_clock: ``thread`` (CPU only): compute columns in the rank's thread CPU time
            (``time.thread_time``; with one torch thread the kernels run in that thread), so that other
            jobs on a shared machine do not count; ``wall``: ``time.perf_counter`` (always for communication,
            and on CUDA after a synchronize).
    """

    dataset: str
    batch_size: int
    world_size: int
    kind: str = "uncompressed"
    split: str = "train"
    batch_index: int = 0
    warmup: int = 5
    repeats: int = 10
    tt_ranks: tuple[int, ...] = (16, 16)
    tt_min_rows: int = 1000
    algorithm: str = "ecorec"
    device: str = "cpu"
    cluster_profile: str = "loopback"
    cache_dir: str | None = None
    threads: int = 1
    learning_rate: float = 0.01
    compute_clock: str = "thread"

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
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(
                f"placement bench: repeats >= 1 and warmup >= 0, got {self.repeats}, {self.warmup}"
            )


@dataclass
class PlacementCost:
    """Measured cost of one placement (ms).

    Attributes:
        device_costs: ``[R, 4]`` medians per device of :data:`COLUMNS`.
        plan_cost: max over devices of the row sums.
        spread: ``[lo, hi]``: the plan cost of the per-column minima and maxima over repeats.
        iqr: the plan cost of the per-column first and third quartiles.
        samples: ``[R, repeats, 4]`` raw times.
        cached: read from the cache.
    """

    device_costs: list[list[float]]
    plan_cost: float
    spread: tuple[float, float]
    iqr: tuple[float, float] = (0.0, 0.0)
    samples: list[list[list[float]]] = field(default_factory=list)
    key: str = ""
    cached: bool = False

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

    @classmethod
    def from_dict(cls, data: dict[str, Any], cached: bool = False) -> PlacementCost:
        return cls(
            device_costs=[[float(v) for v in row] for row in data["device_costs"]],
            plan_cost=float(data["plan_cost"]),
            spread=(float(data["spread"][0]), float(data["spread"][1])),
            iqr=(float(data["iqr"][0]), float(data["iqr"][1])),
            samples=data.get("samples", []),
            key=str(data.get("key", "")),
            cached=cached,
        )

    @classmethod
    def from_samples(cls, samples: np.ndarray, key: str = "") -> PlacementCost:
        """From raw times ``[R, repeats, 4]``."""

        def plan(stat: np.ndarray) -> float:
            return float(stat.sum(axis=1).max())

        medians = np.median(samples, axis=1)
        return cls(
            device_costs=medians.tolist(),
            plan_cost=plan(medians),
            spread=(plan(samples.min(axis=1)), plan(samples.max(axis=1))),
            iqr=(plan(np.quantile(samples, 0.25, axis=1)), plan(np.quantile(samples, 0.75, axis=1))),
            samples=samples.tolist(),
            key=key,
        )


def data_identity(config: PlacementBenchConfig) -> dict[str, Any]:
    """What identifies the measured batch: the dataset's content (the sha256 of its metadata, which lists
    every file's sha256), the split and the batch."""
    with open(os.path.join(config.dataset, "metadata.json"), "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    return {"metadata_sha256": digest, "split": config.split, "batch_index": config.batch_index}


def cache_key(config: PlacementBenchConfig, placement: Placement, data: dict[str, Any] | None = None) -> str:
    """sha256 over the placement, the data batch and every setting that changes the numbers."""
    settings = {
        k: v
        for k, v in dataclasses.asdict(config).items()
        if k not in ("dataset", "cache_dir", "threads", "split", "batch_index")
    }
    if config.kind != "tt":
        for k in ("tt_ranks", "tt_min_rows", "algorithm"):
            settings.pop(k)
    payload = {
        "placement": json.loads(placement.canonical()),
        "data": data if data is not None else data_identity(config),
        "settings": settings,
        "torch": torch.__version__.split("+")[0],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _cache_path(config: PlacementBenchConfig, key: str) -> str | None:
    if config.cache_dir is None:
        return None
    return os.path.join(config.cache_dir, key[:2], f"{key}.json")


def read_cached(config: PlacementBenchConfig, key: str) -> PlacementCost | None:
    path = _cache_path(config, key)
    if path is None or not os.path.exists(path):
        return None
    with open(path) as handle:
        try:
            return PlacementCost.from_dict(json.load(handle), cached=True)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            logger.warning("%s: unreadable cache entry (%s); measuring again", path, err)
            return None


# ---- the measurement, inside one rank ------------------------------------------------------------------


def _load_batch(
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


class _FusedShards:
    """The shards of one rank as one module: ``forward() -> [B, D_r]`` and ``backward(grad)``."""

    def __init__(self, config: PlacementBenchConfig, shards, rows: dict[str, int], batch, device) -> None:
        self.config, self.device = config, device
        self.dims = [s.dim for s in shards]
        self.total_dim = sum(self.dims)
        self.output: torch.Tensor | None = None
        if not shards:
            self.module = None
            return
        if config.kind == "uncompressed":
            self._build_tbe(shards, rows, batch)
        else:
            self._build_tt(shards, rows, batch)

    def _build_tbe(self, shards, rows, batch) -> None:
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
        self.module = SplitTableBatchedEmbeddingBagsCodegen(
            embedding_specs=[(rows[s.table], s.dim, location, compute) for s in shards],
            optimizer=EmbOptimType.EXACT_SGD,
            learning_rate=self.config.learning_rate,
            pooling_mode=PoolingMode.SUM,
            device=self.device,
        )
        # table-major fused input: bag (t, b) spans offsets[t*B + b] : offsets[t*B + b + 1]
        indices, offsets, base = [], [torch.zeros(1, dtype=torch.int64)], 0
        for s in shards:
            values, offs = batch[s.table]
            indices.append(values)
            offsets.append(offs[1:] + base)
            base += int(values.numel())
        self.indices = torch.cat(indices).to(self.device)
        self.offsets = torch.cat(offsets).to(self.device)

    def _build_tt(self, shards, rows, batch) -> None:
        from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig

        modules, self.inputs = [], []
        for s in shards:
            if rows[s.table] >= self.config.tt_min_rows:
                modules.append(
                    TTEmbeddingBag(
                        rows[s.table],
                        s.dim,
                        list(self.config.tt_ranks),
                        num_cores=len(self.config.tt_ranks) + 1,
                        algorithm=self.config.algorithm,
                        optimizer=TTOptimizerConfig(kind="sgd", lr=self.config.learning_rate),
                        include_last_offset=True,
                        device=self.device,
                    )
                )
            else:
                modules.append(
                    torch.nn.EmbeddingBag(rows[s.table], s.dim, mode="sum", include_last_offset=True).to(
                        self.device
                    )
                )
            values, offs = batch[s.table]
            self.inputs.append((values.to(self.device), offs.to(self.device)))
        self.module = torch.nn.ModuleList(modules)
        self.plain = [p for m in modules if isinstance(m, torch.nn.EmbeddingBag) for p in m.parameters()]

    def forward(self) -> torch.Tensor:
        if self.module is None:
            return torch.zeros(self.config.batch_size, 0, device=self.device)
        if self.config.kind == "uncompressed":
            self.output = self.module(self.indices, self.offsets)
        else:
            self.output = torch.cat(
                [m(v, o) for m, (v, o) in zip(self.module, self.inputs, strict=True)], dim=1
            )
        return self.output

    def backward(self, grad: torch.Tensor) -> None:
        if self.module is None or self.output is None:
            return
        self.output.backward(grad)
        with (
            torch.no_grad()
        ):  # SGD on the small uncompressed tables of the TT kind (the TT ones update fused)
            for p in getattr(self, "plain", []):
                if p.grad is not None:
                    p.add_(p.grad, alpha=-self.config.learning_rate)
                    p.grad = None
        self.output = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_compute(
    fused: _FusedShards, config: PlacementBenchConfig, device: torch.device
) -> list[list[float]]:
    """``[repeats, 2]`` forward and backward ms of the rank's fused module."""
    grad = torch.ones(config.batch_size, fused.total_dim, device=device)
    clock = time.thread_time if config.compute_clock == "thread" else time.perf_counter
    out = []
    for i in range(config.warmup + config.repeats):
        _sync(device)
        t0 = clock()
        fused.forward()
        _sync(device)
        t1 = clock()
        fused.backward(grad)
        _sync(device)
        t2 = clock()
        if i >= config.warmup:
            out.append([1e3 * (t1 - t0), 1e3 * (t2 - t1)])
    return out


def _time_comm(
    dims: Sequence[int], config: PlacementBenchConfig, rank: int, device: torch.device
) -> list[list[float]]:
    """``[repeats, 2]`` ms of the forward all-to-all (rank r sends ``[B/R, D_r]`` to each rank) and of the
    reverse exchange of the gradients."""
    world, chunk = config.world_size, config.batch_size // config.world_size
    mine = dims[rank]
    pooled = torch.randn(config.batch_size * mine, device=device)
    received = torch.empty(chunk * sum(dims), device=device)
    fwd_in, fwd_out = [chunk * mine] * world, [chunk * d for d in dims]
    grads_back = torch.empty(config.batch_size * mine, device=device)
    token = torch.zeros(world, device=device)
    out = []
    for i in range(config.warmup + config.repeats):
        dist.all_to_all_single(torch.empty_like(token), token)  # DreamShard's tiny all-to-all barrier
        _sync(device)
        t0 = time.perf_counter()
        dist.all_to_all_single(received, pooled, output_split_sizes=fwd_out, input_split_sizes=fwd_in)
        _sync(device)
        t1 = time.perf_counter()
        dist.all_to_all_single(grads_back, received, output_split_sizes=fwd_in, input_split_sizes=fwd_out)
        _sync(device)
        t2 = time.perf_counter()
        if i >= config.warmup:
            out.append([1e3 * (t1 - t0), 1e3 * (t2 - t1)])
    return out


def measure_in_group(
    placements: Sequence[Placement], config: PlacementBenchConfig, rows: dict[str, int]
) -> list[np.ndarray] | None:
    """Measure ``placements`` inside an initialised process group of ``config.world_size`` ranks (every rank
    calls it with the same arguments). Returns the raw times ``[R, repeats, 4]`` per placement on rank 0,
    ``None`` on the other ranks."""
    rank = dist.get_rank()
    if dist.get_world_size() != config.world_size:
        raise ValueError(
            f"process group has {dist.get_world_size()} ranks, config.world_size={config.world_size}"
        )
    device = (
        torch.device("cuda", rank % max(torch.cuda.device_count(), 1))
        if config.device == "cuda"
        else (torch.device("cpu"))
    )
    tables = sorted({s.table for p in placements for s in p.shards})
    batch = _load_batch(config, tables)
    results = []
    for placement in placements:
        if placement.num_devices != config.world_size:
            raise ValueError(f"placement for {placement.num_devices} devices, world_size={config.world_size}")
        shards = placement.device_shards(rank)
        dims = [sum(s.dim for s in placement.device_shards(r)) for r in range(config.world_size)]
        fused = _FusedShards(config, shards, rows, batch, device)
        compute: list[list[float]] = []
        for turn in range(config.world_size):  # compute timed one device at a time
            dist.barrier()
            if turn == rank:
                compute = _time_compute(fused, config, device)
        dist.barrier()
        comm = _time_comm(dims, config, rank, device)
        mine = [[c[0], m[0], m[1], c[1]] for c, m in zip(compute, comm, strict=True)]
        gathered: list[Any] = [None] * config.world_size
        dist.all_gather_object(gathered, mine)
        if rank == 0:
            results.append(np.asarray(gathered, dtype=np.float64))
        del fused
    return results if rank == 0 else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(request_path: str) -> int:
    """One loopback rank (``python -m ecorec.bench.placement --worker request.json`` with RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT set): measure the request's placements; rank 0 writes the raw times."""
    with open(request_path) as handle:
        request = json.load(handle)
    config = PlacementBenchConfig(**{**request["config"], "tt_ranks": tuple(request["config"]["tt_ranks"])})
    placements = [Placement.from_dict(p) for p in request["placements"]]
    torch.set_num_threads(config.threads)
    dist.init_process_group("nccl" if config.device == "cuda" else "gloo")
    try:
        results = measure_in_group(placements, config, request["rows"])
        if dist.get_rank() == 0:
            assert results is not None
            with open(request["result"] + ".tmp", "wb") as handle:
                np.save(handle, np.stack(results), allow_pickle=False)
            os.replace(request["result"] + ".tmp", request["result"])
        dist.barrier()  # no rank tears gloo down while a peer's last exchange is in flight (seen: SIGABRT)
    finally:
        dist.destroy_process_group()
    return 0


def _child_output() -> Any:
    """Where the worker processes write: this process's ``sys.stderr`` when it is a real file (a workflow
    script redirects it into the rule's log), else the inherited stderr."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return sys.stderr


def _run_workers(
    placements: Sequence[Placement],
    config: PlacementBenchConfig,
    rows: dict[str, int],
    cluster_args: Sequence[str] | None = None,
) -> list:
    """Start ``world_size`` worker ranks for the placements and return rank 0's raw times
    ``[R, repeats, 4]`` per placement.

    ``cluster_args`` ``None``: plain subprocesses on loopback (so callers need no ``__main__`` guard);
    otherwise the arguments of ``python -m ecorec.cluster run`` (``--nodes N --ranks-per-node P`` with
    ``N * P == world_size``, the link settings): the ranks run on the emulated cluster, one torchrun agent per
    node, and the all-to-alls cross its shaped links.
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ecorec-placement-") as tmp:
        request_path, result_path = os.path.join(tmp, "request.json"), os.path.join(tmp, "result.npy")
        request = {
            "config": dataclasses.asdict(config),
            "placements": [p.to_dict() for p in placements],
            "rows": rows,
            "result": result_path,
        }
        with open(request_path, "w") as handle:
            json.dump(request, handle)
        worker = ["-m", "ecorec.bench.placement", "--worker", request_path]
        env = {**os.environ, "OMP_NUM_THREADS": str(config.threads)}
        out = _child_output()
        if cluster_args is not None:
            cmd = [sys.executable, "-m", "ecorec.cluster", "run", *cluster_args, "--", *worker]
            code = subprocess.run(cmd, env=env, stdout=out, stderr=out).returncode
            if code:
                raise RuntimeError(f"placement bench on the emulated cluster: exit status {code} ({cmd})")
        else:
            port = _free_port()
            procs = []
            for rank in range(config.world_size):
                rank_env = {
                    **env,
                    "RANK": str(rank),
                    "WORLD_SIZE": str(config.world_size),
                    "LOCAL_RANK": str(rank),
                    "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(port),
                }
                procs.append(
                    subprocess.Popen([sys.executable, *worker], env=rank_env, stdout=out, stderr=out)
                )
            codes = [p.wait() for p in procs]
            if any(codes):
                raise RuntimeError(f"placement bench: worker exit codes {codes} (see their stderr above)")
        return list(np.load(result_path, allow_pickle=False))


def _table_rows(config: PlacementBenchConfig) -> dict[str, int]:
    from ecorec.data import read_metadata

    return {name: int(rows) for name, rows in read_metadata(config.dataset).num_embeddings.items()}


def measure_placements(
    placements: Sequence[Placement],
    config: PlacementBenchConfig,
    *,
    launcher: str = "spawn",
    cluster_args: Sequence[str] = (),
) -> list[PlacementCost]:
    """The measured cost of every placement, from the cache where it holds it.

    Args:
        launcher: ``spawn``: start ``world_size`` gloo (nccl) rank processes on loopback for the uncached
            placements;
            ``group``: run inside the current process group (launched by torchrun, e.g. on an emulated
            cluster; every rank calls this; results are returned on every rank);
            ``cluster``: start the ranks on an emulated cluster (``python -m ecorec.cluster run
            cluster_args``; name its network in ``config.cluster_profile``, which enters the cache key).
    """
    if launcher not in ("spawn", "group", "cluster"):
        raise ValueError(f"launcher must be 'spawn', 'group' or 'cluster', got {launcher!r}")
    rows = _table_rows(config)
    missing = sorted({s.table for p in placements for s in p.shards} - set(rows))
    if missing:
        raise ValueError(f"{config.dataset}: placements use unknown tables {missing}")
    data = data_identity(config)
    keys = [cache_key(config, p, data) for p in placements]
    costs: list[PlacementCost | None] = [read_cached(config, k) for k in keys]
    first: dict[str, int] = {}
    todo = [i for i, c in enumerate(costs) if c is None and first.setdefault(keys[i], i) == i]
    if todo:
        todo_placements = [placements[i] for i in todo]
        if launcher == "group":
            raw = measure_in_group(todo_placements, config, rows)
            objects: list[Any] = [raw]
            dist.broadcast_object_list(objects, src=0)
            measured = list(objects[0])
        else:
            args = list(cluster_args) if launcher == "cluster" else None
            measured = _run_workers(todo_placements, config, rows, args)
        for i, samples in zip(todo, measured, strict=True):
            cost = PlacementCost.from_samples(np.asarray(samples), key=keys[i])
            path = _cache_path(config, keys[i])
            if path is not None:
                write_json_atomic(path, cost.to_dict())
            costs[i] = cost
    for i, key in enumerate(keys):  # repeated placements in one call are measured once
        if costs[i] is None:
            costs[i] = dataclasses.replace(costs[first[key]])  # type: ignore[arg-type]
    return [c for c in costs if c is not None]


# ---- command line ----------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ecorec.bench placement",
        description="Measured cost of table placements (DreamShard's protocol); prints one JSON line each.",
    )
    parser.add_argument("--dataset", required=True, help="Parquet dataset folder")
    parser.add_argument(
        "--placements",
        required=True,
        help="JSON file: a list of placements ({num_devices, shards: [[table, dim, device, column], ...]})",
    )
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--kind", choices=TABLE_KINDS, default="uncompressed")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch-index", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--tt-ranks", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--tt-min-rows", type=int, default=1000)
    parser.add_argument("--algorithm", default="ecorec")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--compute-clock",
        choices=("thread", "wall"),
        default="thread",
        help="compute columns in thread CPU time (CPU; default) or wall time",
    )
    parser.add_argument(
        "--launcher",
        choices=("spawn", "torchrun"),
        default="spawn",
        help="spawn: loopback ranks started here; torchrun: this process is one rank of a torchrun job "
        "(e.g. on the emulated cluster), world size from the environment",
    )
    parser.add_argument("--cluster-profile", default="loopback", help="network the ranks span (cache key)")
    parser.add_argument("--output", default=None, help="also write the JSON lines here (rank 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"] and len(argv) == 2:
        return _worker(argv[1])
    args = _parser().parse_args(argv)
    with open(args.placements) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as err:
            print(f"{args.placements}: invalid JSON ({err})", file=sys.stderr)
            return 2
    try:
        placements = [Placement.from_dict(p) for p in data]
    except (KeyError, TypeError, ValueError) as err:
        print(f"{args.placements}: not a list of placements ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    if not placements:
        print(f"{args.placements}: no placements", file=sys.stderr)
        return 2
    launcher, rank = "spawn", 0
    if args.launcher == "torchrun":
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
        launcher, rank = "group", dist.get_rank()
        world = dist.get_world_size()
    else:
        world = placements[0].num_devices
    config = PlacementBenchConfig(
        dataset=args.dataset,
        batch_size=args.batch_size,
        world_size=world,
        kind=args.kind,
        split=args.split,
        batch_index=args.batch_index,
        warmup=args.warmup,
        repeats=args.repeats,
        tt_ranks=tuple(args.tt_ranks),
        tt_min_rows=args.tt_min_rows,
        algorithm=args.algorithm,
        device=args.device,
        cluster_profile=args.cluster_profile,
        cache_dir=args.cache_dir,
        threads=args.threads,
        compute_clock=args.compute_clock,
    )
    torch.set_num_threads(args.threads)
    costs = measure_placements(placements, config, launcher=launcher)
    if rank == 0:
        lines = [
            json.dumps({**{k: v for k, v in c.to_dict().items() if k != "samples"}, "cached": c.cached})
            for c in costs
        ]
        print("\n".join(lines))
        if args.output:
            from ecorec.utils import atomic_write

            with atomic_write(args.output) as handle:
                handle.write("\n".join(lines) + "\n")
    if args.launcher == "torchrun":
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
