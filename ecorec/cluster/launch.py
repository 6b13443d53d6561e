"""Run a torchrun job on the emulated cluster: one torchrun agent per node, each started inside its node's
namespace (``ip netns exec``), joined by a c10d rendezvous at node 0's address over the emulated network, with
``GLOO_SOCKET_IFNAME`` = the node's link so that every collective between nodes crosses a shaped link.

Cleanup on every exit path: the agents run in their own sessions; on success, on an agent's failure (the other
agents would wait for it forever), on an exception, on SIGTERM and on SIGINT the launcher sends SIGTERM to
each agent's process group, SIGKILL after a grace period, kills what is left inside the namespaces and deletes
them (:class:`ecorec.cluster.network.EmulatedNetwork`). Only SIGKILL of the launcher itself can leave
namespaces behind; ``python -m ecorec.cluster cleanup --prefix <prefix>`` removes them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecorec.cluster.network import ClusterCapabilityError, EmulatedNetwork, LinkSpec, check_capabilities

__all__ = [
    "CLUSTER_ENV",
    "ClusterSpec",
    "Terminated",
    "agent_command",
    "run_job",
    "run_on_cluster",
    "run_on_loopback",
]

_LOG = logging.getLogger("ecorec.cluster")

CLUSTER_ENV = "ECOREC_CLUSTER"
"""Environment variable the launcher sets on every rank: JSON of the emulated cluster (nodes, ranks per
node, link rates, tbf settings, profile and dilation when given). ``ecorec.train`` copies it into the run
record's ``metrics.cluster``."""

RDZV_PORT = 29400  # inside the run's own namespaces: no collision with other runs or the host


class Terminated(Exception):
    """The launcher received SIGTERM."""


@dataclass(frozen=True)
class ClusterSpec:
    """``nodes`` x ``ranks_per_node`` ranks, the links' shaping, an optional name prefix and extra facts for
    the record (``info``: profile, dilation factor, ...)."""

    nodes: int
    ranks_per_node: int
    link: LinkSpec = field(default_factory=LinkSpec)
    prefix: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"ClusterSpec.nodes must be >= 1, got {self.nodes}")
        if self.ranks_per_node < 1:
            raise ValueError(f"ClusterSpec.ranks_per_node must be >= 1, got {self.ranks_per_node}")

    @property
    def world_size(self) -> int:
        return self.nodes * self.ranks_per_node


def _script_args(script: Sequence[str]) -> list[str]:
    if not script:
        raise ValueError("no script given: pass SCRIPT.py [ARGS] or -m MODULE [ARGS]")
    if script[0] == "-m":
        if len(script) < 2:
            raise ValueError("-m needs a module name")
        return list(script)
    if not script[0].endswith(".py"):
        raise ValueError(f"script {script[0]!r}: expected a .py file or -m MODULE")
    if not os.path.isfile(script[0]):
        raise FileNotFoundError(f"script {script[0]!r} does not exist")
    return list(script)


def agent_command(
    spec: ClusterSpec,
    node: int,
    master_addr: str,
    local_addr: str,
    run_id: str,
    script: Sequence[str],
    python: str = sys.executable,
) -> list[str]:
    """The torchrun command of node ``node`` (run inside its namespace)."""
    return [
        python, "-m", "torch.distributed.run",
        f"--nnodes={spec.nodes}",
        f"--nproc-per-node={spec.ranks_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={master_addr}:{RDZV_PORT}",
        f"--rdzv-id={run_id}",
        f"--rdzv-conf=is_host={1 if node == 0 else 0}",
        f"--local-addr={local_addr}",
        "--max-restarts=0",
        "--monitor-interval=0.2",
        *_script_args(script),
    ]  # fmt: skip


def _thread_env(env: dict[str, str], world_size: int) -> dict[str, str]:
    """Without OMP_NUM_THREADS, every rank's OpenMP would use every core (torchrun sets 1 only for several
    ranks per agent, and one rank per node is common here): the ranks' spinning threads then stall gloo for
    whole time slices. Default: the cores shared by all ranks of all nodes (they share one machine)."""
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // world_size))
        _LOG.info("OMP_NUM_THREADS=%s per rank (%s cores, %d ranks)", env["OMP_NUM_THREADS"], os.cpu_count(),
                  world_size)  # fmt: skip
    return env


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace_s
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        if all(p.poll() is not None for p in procs):
            return


class _SignalGuard:
    """SIGTERM -> :class:`Terminated`, SIGINT -> KeyboardInterrupt, in the main thread, for the duration."""

    def __enter__(self) -> _SignalGuard:
        self._old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def on_term(signum: int, frame: Any) -> None:
                raise Terminated(f"signal {signum}")

            self._old[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)
            self._old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def ignore(self) -> None:
        """While cleaning up: a second Ctrl-C or SIGTERM must not interrupt the cleanup."""
        for sig in self._old:
            signal.signal(sig, signal.SIG_IGN)


def run_on_cluster(
    spec: ClusterSpec,
    script: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    grace_s: float = 5.0,
    on_started: Any = None,
) -> int:
    """Run ``script`` (``[file.py, args...]`` or ``["-m", module, args...]``) on every rank of the emulated
    cluster; returns the job's exit status (0, or the first failing agent's status; 128 + signal number when
    the launcher is stopped by SIGTERM/SIGINT, after cleaning up). ``on_started(network)`` is called once the
    agents run (tests use it)."""
    script = _script_args(script)
    base_env = _thread_env(dict(os.environ if env is None else env), spec.world_size)
    with _SignalGuard() as guard, EmulatedNetwork(spec.nodes, spec.link, spec.prefix) as net:
        procs: list[subprocess.Popen[bytes]] = []
        info = {
            **net.describe(),
            "emulated": True,
            "ranks_per_node": spec.ranks_per_node,
            "world_size": spec.world_size,
            **dict(spec.info),
        }
        try:
            master = net.nodes[0].address
            for node in net.nodes:
                node_env = {
                    **base_env,
                    "GLOO_SOCKET_IFNAME": node.interface,
                    CLUSTER_ENV: json.dumps({**info, "node": node.index}),
                }
                cmd = agent_command(spec, node.index, master, node.address, str(net.prefix), script, python)
                full = ["ip", "netns", "exec", node.namespace, *cmd]
                _LOG.info("node %d: %s", node.index, " ".join(full))
                procs.append(subprocess.Popen(full, env=node_env, start_new_session=True))
            if on_started is not None:
                on_started(net)
            status = 0
            while True:
                codes = [p.poll() for p in procs]
                failed = [c for c in codes if c not in (None, 0)]
                if failed:
                    status = failed[0]
                    _LOG.error("an agent exited with status %d; stopping the others", status)
                    break
                if all(c == 0 for c in codes):
                    break
                time.sleep(0.1)
            return status
        except Terminated:
            _LOG.warning("SIGTERM: stopping the agents and removing the emulated network %s", net.prefix)
            return 128 + signal.SIGTERM
        except KeyboardInterrupt:
            _LOG.warning("SIGINT: stopping the agents and removing the emulated network %s", net.prefix)
            return 128 + signal.SIGINT
        finally:
            guard.ignore()
            _stop(procs, grace_s)


def run_on_loopback(
    spec: ClusterSpec,
    script: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    reason: str = "",
) -> int:
    """The fallback without the capability: the same ranks on plain loopback (``torchrun --standalone``), the
    record saying that nothing was emulated and why."""
    script = _script_args(script)
    info = {"emulated": False, "reason": reason, "nodes": spec.nodes, "ranks_per_node": spec.ranks_per_node,
            "world_size": spec.world_size, **dict(spec.info)}  # fmt: skip
    run_env = _thread_env(dict(os.environ if env is None else env), spec.world_size)
    run_env[CLUSTER_ENV] = json.dumps(info)
    cmd = [python, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
           f"--nproc-per-node={spec.world_size}", *script]  # fmt: skip
    _LOG.info("plain loopback: %s", " ".join(cmd))
    with _SignalGuard() as guard:
        proc = subprocess.Popen(cmd, env=run_env, start_new_session=True)
        try:
            return proc.wait()
        except Terminated:
            return 128 + signal.SIGTERM
        except KeyboardInterrupt:
            return 128 + signal.SIGINT
        finally:
            guard.ignore()
            _stop([proc], 5.0)


def run_job(
    spec: ClusterSpec,
    script: Sequence[str],
    *,
    fallback: bool = False,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
) -> int:
    """:func:`run_on_cluster`, or with ``fallback`` and without the capability :func:`run_on_loopback` after
    a warning (``ClusterCapabilityError`` otherwise)."""
    try:
        check_capabilities()
    except ClusterCapabilityError as exc:
        if not fallback:
            raise
        _LOG.warning("NOT EMULATED, plain loopback: %s", exc)
        return run_on_loopback(spec, script, env=env, python=python, reason=str(exc))
    return run_on_cluster(spec, script, env=env, python=python)
