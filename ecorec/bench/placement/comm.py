"""The communication columns: the forward all-to-all of the pooled outputs (rank ``r`` sends ``[B/R, D_r]``
to each rank) and the reverse exchange of their gradients, either over the link's rate or timed.

``comm="link"`` (:func:`ecorec.planner.dreamshard.placement.link_exchange_ms`, the planner's
:class:`~ecorec.planner.dreamshard.placement.LinkModel` too): the exchange takes the bytes of its busiest link
direction over the link's rate. Each device has its own link (one per emulated node, the cluster's dilated
rate; a node's own exchanges cost ``intra_gbit``, nothing when unshaped), every device waits for the whole
collective, so every device's column is that time. This is what the emulated cluster's shaped links allow
once the CPU keeps up; measured on the 2-core machine this was built on, an all-to-all of a few hundred kB
between 4 ranks takes 1.3-4.7 ms of per-collective overhead (an empty all-to-all alone: 1.3-2.8 ms at load 6)
against 0.1 ms of link time at the dilated NVLink rate, and varies 2x from round to round, so a timed
exchange there measures the machine's scheduling, not the link.

``comm="measured"`` (:func:`time_exchanges_in_group`): timed all-to-alls between the ranks of a process group
(loopback gloo, the emulated cluster's namespaces, or NCCL on GPUs); each rank pinned to a core; rounds
interleaved across the exchanges of a call, each round the minimum of ``repeats`` iterations, every iteration
after a tiny all-to-all barrier (DreamShard's).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ecorec.bench.placement.config import PlacementBenchConfig
from ecorec.planner.dreamshard.placement import link_exchange_ms


def canonical_dims(dims: Sequence[int]) -> tuple[tuple[int, ...], list[int]]:
    """The exchange of ``dims`` as the sorted (descending) vector and, per device, its position there (the
    exchange is symmetric under a relabelling of identical devices)."""
    order = sorted(range(len(dims)), key=lambda r: (-dims[r], r))
    position = [0] * len(dims)
    for slot, r in enumerate(order):
        position[r] = slot
    return tuple(int(dims[r]) for r in order), position


def link_exchange_rounds(config: PlacementBenchConfig, dims: Sequence[int]) -> np.ndarray:
    """``[R, rounds, 2]`` ms of ``dims``' exchange over the link (the same in every round and direction)."""
    assert config.link_gbit is not None
    ms = link_exchange_ms(
        dims,
        config.batch_size,
        config.link_gbit,
        ranks_per_node=config.ranks_per_node,
        intra_gbit=config.intra_gbit,
    )
    return np.full((len(dims), config.rounds, 2), ms)


# ---- timed exchanges ---------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pin_rank(rank: int) -> int | None:
    """Pin this rank's process to core ``rank mod cores`` (of the cores it may use); returns the core."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    core = cores[rank % len(cores)]
    os.sched_setaffinity(0, {core})
    return core


def time_exchanges_in_group(
    vectors: Sequence[Sequence[int]], config: PlacementBenchConfig
) -> np.ndarray | None:
    """Time the exchange of every dims vector inside an initialised process group of ``world_size`` ranks
    (every rank calls it with the same arguments): ``[V, R, rounds, repeats, 2]`` ms on rank 0, ``None`` on
    the others."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if world != config.world_size:
        raise ValueError(f"process group has {world} ranks, config.world_size={config.world_size}")
    device = (
        torch.device("cuda", rank % max(torch.cuda.device_count(), 1))
        if config.device == "cuda"
        else torch.device("cpu")
    )
    chunk = config.batch_size // world
    token = torch.zeros(world, device=device)
    buffers = []
    for dims in vectors:
        mine = int(dims[rank])
        buffers.append(
            (
                torch.randn(config.batch_size * mine, device=device),
                torch.empty(chunk * int(sum(dims)), device=device),
                torch.empty(config.batch_size * mine, device=device),
                [chunk * mine] * world,
                [chunk * int(d) for d in dims],
            )
        )
    times = np.zeros((len(vectors), config.rounds, config.repeats, 2))

    def once(pooled, received, back, sizes_in, sizes_out) -> tuple[float, float]:
        dist.all_to_all_single(torch.empty_like(token), token)  # DreamShard's tiny all-to-all barrier
        _sync(device)
        t0 = time.perf_counter()
        dist.all_to_all_single(received, pooled, output_split_sizes=sizes_out, input_split_sizes=sizes_in)
        _sync(device)
        t1 = time.perf_counter()
        dist.all_to_all_single(back, received, output_split_sizes=sizes_in, input_split_sizes=sizes_out)
        _sync(device)
        t2 = time.perf_counter()
        return 1e3 * (t1 - t0), 1e3 * (t2 - t1)

    for buf in buffers:
        for _ in range(config.warmup):
            once(*buf)
    for r in range(config.rounds):
        for v, buf in enumerate(buffers):
            for i in range(config.repeats):
                times[v, r, i] = once(*buf)
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, times.tolist())
    if rank != 0:
        return None
    return np.asarray(gathered, dtype=np.float64).transpose(1, 0, 2, 3, 4)  # [V, R, rounds, repeats, 2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker(request_path: str) -> int:
    """One rank (``python -m ecorec.bench.placement --worker request.json`` under RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT): time the request's exchanges; rank 0 writes them."""
    with open(request_path) as handle:
        request = json.load(handle)
    config = PlacementBenchConfig.from_dict(request["config"])
    torch.set_num_threads(config.threads)
    dist.init_process_group("nccl" if config.device == "cuda" else "gloo")
    try:
        if config.pin and config.device != "cuda":
            pin_rank(dist.get_rank())
        times = time_exchanges_in_group(request["vectors"], config)
        if times is not None:
            with open(request["result"] + ".tmp", "wb") as handle:
                np.save(handle, times, allow_pickle=False)
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


def run_exchange_workers(
    vectors: Sequence[Sequence[int]], config: PlacementBenchConfig, cluster_args: Sequence[str] | None = None
) -> np.ndarray:
    """Start ``world_size`` ranks that time the exchanges; returns ``[V, R, rounds, repeats, 2]``.

    ``cluster_args`` ``None``: plain subprocesses on loopback (callers need no ``__main__`` guard); otherwise
    the arguments of ``python -m ecorec.cluster run`` (``--nodes N --ranks-per-node P`` with ``N * P ==
    world_size``, the link settings): the ranks run on the emulated cluster and the all-to-alls cross its
    shaped links.
    """
    with tempfile.TemporaryDirectory(prefix="ecorec-placement-") as tmp:
        request_path, result_path = os.path.join(tmp, "request.json"), os.path.join(tmp, "result.npy")
        request = {
            "config": dataclasses.asdict(config),
            "vectors": [list(map(int, v)) for v in vectors],
            "result": result_path,
        }
        with open(request_path, "w") as handle:
            json.dump(request, handle)
        command = ["-m", "ecorec.bench.placement", "--worker", request_path]
        env = {**os.environ, "OMP_NUM_THREADS": str(config.threads)}
        out = _child_output()
        if cluster_args is not None:
            cmd = [sys.executable, "-m", "ecorec.cluster", "run", *cluster_args, "--", *command]
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
                    subprocess.Popen([sys.executable, *command], env=rank_env, stdout=out, stderr=out)
                )
            codes = [p.wait() for p in procs]
            if any(codes):
                raise RuntimeError(f"placement bench: worker exit codes {codes} (see their stderr above)")
        return np.load(result_path, allow_pickle=False)
