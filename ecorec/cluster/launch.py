"""Run a torchrun job on the emulated cluster: one torchrun agent per node, each started inside its node's
namespace (``ip netns exec``), joined by a c10d rendezvous at node 0's address over the emulated network, with
``GLOO_SOCKET_IFNAME`` = the node's link so that every collective between nodes crosses a shaped link.

Cleanup on every exit path: the agents run in their own sessions; on success, on an agent's failure (the other
agents would wait for it forever), on an exception, on SIGTERM and on SIGINT the launcher sends SIGTERM to
each agent's process group, SIGKILL after a grace period, kills what is left inside the namespaces and deletes
them (:class:`ecorec.cluster.network.EmulatedNetwork`). SIGKILL of the launcher itself: each agent gets
SIGTERM from the kernel (``PR_SET_PDEATHSIG``, set between fork and exec), and torchrun stops its ranks
(``ecorec.train`` ranks also die with their agent); the namespaces stay, and the next run removes them
(:func:`ecorec.cluster.network.reap_orphans`, logged), as does ``python -m ecorec.cluster cleanup``.

Before anything is created, a run of ``-m ecorec.train --config FILE`` must have ``nodes x ranks_per_node``
equal to the file's ``parallel.world_size`` (:func:`check_world_size`): otherwise every rank would fail only
after the rendezvous, buried under c10d tracebacks.
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
from pathlib import Path
from typing import Any

from ecorec.cluster.network import (
    OWNER_DIR,
    ClusterCapabilityError,
    EmulatedNetwork,
    LinkSpec,
    check_capabilities,
    reap_orphans,
    unowned_namespaces,
)
from ecorec.utils.process import death_signal_setter
from ecorec.utils.yamlfile import load_yaml

__all__ = [
    "CLUSTER_ENV",
    "ClusterSpec",
    "Terminated",
    "agent_command",
    "check_world_size",
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


def _train_config(script: Sequence[str]) -> str | None:
    """The ``--config`` file of a ``-m ecorec.train`` script, else ``None``."""
    if list(script[:2]) != ["-m", "ecorec.train"]:
        return None
    args = list(script[2:])
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def check_world_size(spec: ClusterSpec, script: Sequence[str]) -> None:
    """For ``-m ecorec.train --config FILE``: ``ValueError`` naming the file, ``parallel.world_size`` and the
    fix unless ``spec.nodes x spec.ranks_per_node`` equals it (read strictly; a config that cannot be read is
    an error too). Other scripts pass."""
    config = _train_config(script)
    if config is None:
        return
    data = load_yaml(config)  # YamlFileError (a ValueError) names the file, line and column
    parallel = data.get("parallel") if isinstance(data, dict) else None
    world = parallel.get("world_size", 1) if isinstance(parallel, dict) else 1
    if not isinstance(world, int) or isinstance(world, bool) or world < 1:
        raise ValueError(f"{config}: parallel.world_size: expected a positive integer, got {world!r}")
    if world == spec.world_size:
        return
    p = spec.ranks_per_node if world % spec.ranks_per_node == 0 else 1
    launch = f"--nodes {world // p} --ranks-per-node {p}"
    raise ValueError(
        f"{config}: parallel.world_size is {world!r}, but the cluster has --nodes {spec.nodes} x "
        f"--ranks-per-node {spec.ranks_per_node} = {spec.world_size} ranks: set parallel.world_size: "
        f"{spec.world_size} in {config}, or launch {launch}"
    )


def _reap(state_dir: Path | None) -> None:
    """Remove the namespaces of runs whose launcher is gone (killed with SIGKILL), saying so."""
    if state_dir is None:
        return
    for orphan in reap_orphans(state_dir):
        _LOG.warning(
            "removed the emulated network %s (namespaces %s) of a run whose launcher (pid %d) is gone, "
            "killed "
            "without cleaning up; what still ran inside was stopped",
            orphan.prefix,
            " ".join(orphan.namespaces) or "none left",
            orphan.pid,
        )
    for prefix, names in unowned_namespaces(state_dir).items():
        _LOG.warning(
            "namespaces %s have no owner record (left by an older ecorec, or in use by one): if no run uses "
            "them, remove them with `python -m ecorec.cluster cleanup --prefix %s`",
            " ".join(names),
            prefix,
        )


def _popen_dying_with_us(cmd: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """``Popen`` in a new session whose child gets SIGTERM when this launcher exits, however it exits."""
    set_death_signal = death_signal_setter(signal.SIGTERM, parent=os.getpid())
    return subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=set_death_signal)  # noqa: PLW1509


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
    state_dir: Path | None = OWNER_DIR,
) -> int:
    """Run ``script`` (``[file.py, args...]`` or ``["-m", module, args...]``) on every rank of the emulated
    cluster; returns the job's exit status (0, or the first failing agent's status; 128 + signal number when
    the launcher is stopped by SIGTERM/SIGINT, after cleaning up). ``on_started(network)`` is called once the
    agents run (tests use it). First the namespaces of runs whose launcher was killed are removed
    (``state_dir``: the owner records; ``None``: no records, no reaping)."""
    script = _script_args(script)
    check_world_size(spec, script)
    _reap(state_dir)
    base_env = _thread_env(dict(os.environ if env is None else env), spec.world_size)
    network = EmulatedNetwork(spec.nodes, spec.link, spec.prefix, state_dir=state_dir)
    with _SignalGuard() as guard, network as net:
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
                procs.append(_popen_dying_with_us(full, node_env))
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
    check_world_size(spec, script)
    info = {"emulated": False, "reason": reason, "nodes": spec.nodes, "ranks_per_node": spec.ranks_per_node,
            "world_size": spec.world_size, **dict(spec.info)}  # fmt: skip
    run_env = _thread_env(dict(os.environ if env is None else env), spec.world_size)
    run_env[CLUSTER_ENV] = json.dumps(info)
    cmd = [python, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
           f"--nproc-per-node={spec.world_size}", *script]  # fmt: skip
    _LOG.info("plain loopback: %s", " ".join(cmd))
    with _SignalGuard() as guard:
        proc = _popen_dying_with_us(cmd, run_env)
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
    a warning (``ClusterCapabilityError`` otherwise). A world size that does not fit the script's run config
    fails first (:func:`check_world_size`)."""
    check_world_size(spec, _script_args(script))
    try:
        check_capabilities()
    except ClusterCapabilityError as exc:
        if not fallback:
            raise
        _LOG.warning("NOT EMULATED, plain loopback: %s", exc)
        return run_on_loopback(spec, script, env=env, python=python, reason=str(exc))
    return run_on_cluster(spec, script, env=env, python=python)
