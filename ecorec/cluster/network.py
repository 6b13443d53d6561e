"""The emulated network: one Linux network namespace per node, joined through a hub namespace's bridge by veth
links whose every direction is shaped on egress with a ``tc tbf`` token bucket.

Topology (the same for every N >= 2; N = 2 uses the hub too, so one code path covers all sizes and each node's
link is shaped the same way whatever N is)::

    node 0 ns  [lo] [<p>n0: 10.213.0.1/24] ==veth== [<p>h0] \\
    node 1 ns  [lo] [<p>n1: 10.213.0.2/24] ==veth== [<p>h1]  +-- bridge <p>br in the hub ns <p>hub
    ...                                                      /

- Uplink: tbf on the node side of the veth (``<p>n<i>`` egress); downlink: tbf on the hub side (``<p>h<i>``
  egress). So each node has a full-duplex link of the configured rate, like one NIC per node.
- Ranks of one node talk to the node's own address, which Linux routes over the node's loopback: unshaped
  unless ``intra_gbit`` is set (a tbf on the node's ``lo``).
- N = 1: a single namespace, no link (only loopback).
- Nothing is created in or changed in the caller's own network namespace: the veths are created inside the hub
  namespace with their peers moved straight into the node namespaces, addresses exist only inside these
  namespaces, and deleting the namespaces deletes every link, bridge and qdisc with them.
- No latency emulation: ``netem`` is not available on the machines this was built for; the tbf queue limit
  (``queue_ms`` of the rate) only bounds buffering.

Every name starts with a per-run prefix (``ecr`` + 5 hex digits by default), so concurrent runs and tests do
not collide and :func:`cleanup` can remove a run's leftovers by prefix.

Owner records: before creating anything, a network writes ``<state_dir>/<prefix>.json`` (default
``/run/ecorec-cluster``, beside ``/run/netns`` where ``ip netns`` keeps the namespaces; both vanish at reboot)
naming its launcher (pid, start time, pid namespace), and removes it after deleting its namespaces. A launcher
killed with SIGKILL cannot clean up; :func:`reap_orphans` (called by every new run) deletes the namespaces of
each record whose launcher is gone, killing what still runs inside, and says so.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ecorec.utils.atomic import write_json_atomic
from ecorec.utils.process import pid_namespace, process_alive, process_start_time

__all__ = [
    "CAP_NET_ADMIN",
    "CAP_SYS_ADMIN",
    "ClusterCapabilityError",
    "ClusterError",
    "EmulatedNetwork",
    "LinkSpec",
    "NodeInfo",
    "OWNER_DIR",
    "Orphan",
    "check_capabilities",
    "cleanup",
    "list_namespaces",
    "new_prefix",
    "reap_orphans",
    "tbf_parameters",
    "unowned_namespaces",
]

_LOG = logging.getLogger("ecorec.cluster")

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
SUBNET = "10.213.0"  # only ever configured inside namespaces this module creates
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,9}$")
#: Where each network records its launcher (see the module docstring).
OWNER_DIR = Path("/run/ecorec-cluster")
_DEFAULT_NAME_RE = re.compile(r"^(ecr[0-9a-f]{5})(hub|n\d+)$")


class ClusterError(RuntimeError):
    """The emulated cluster could not be set up or run."""


class ClusterCapabilityError(ClusterError):
    """The process lacks what network emulation needs (root / CAP_NET_ADMIN + CAP_SYS_ADMIN, ip, tc)."""


def _effective_caps(status_text: str) -> int:
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise ClusterCapabilityError("cannot read CapEff from /proc/self/status")


def check_capabilities(status_text: str | None = None, which: Sequence[str] = ("ip", "tc")) -> None:
    """Raise :class:`ClusterCapabilityError` naming what is missing, before anything is created.

    ``status_text``: the text of ``/proc/self/status`` (read when ``None``; tests pass their own). Needs
    CAP_NET_ADMIN (links, addresses, qdiscs) and CAP_SYS_ADMIN (``ip netns add`` mounts the namespace), and
    the ``ip`` and ``tc`` programs (iproute2).
    """
    if status_text is None:
        with open("/proc/self/status", encoding="utf-8") as handle:
            status_text = handle.read()
    caps = _effective_caps(status_text)
    missing = [
        name
        for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
        if not caps >> bit & 1
    ]
    if missing:
        raise ClusterCapabilityError(
            f"the emulated cluster needs {' and '.join(missing)} (effective capabilities 0x{caps:x}): "
            "network namespaces, veth links and tc qdiscs need root or those capabilities. "
            "Run as root, or run without emulation (plain loopback: cluster.emulate: false)."
        )
    absent = [prog for prog in which if shutil.which(prog) is None]
    if absent:
        raise ClusterCapabilityError(
            f"the emulated cluster needs the iproute2 programs {absent} on PATH (apt-get install iproute2)"
        )


def new_prefix(state_dir: Path | None = OWNER_DIR) -> str:
    """A fresh run prefix (``ecr`` + 5 hex digits) that no existing namespace or owner record uses."""
    existing = list_namespaces()
    while True:
        prefix = "ecr" + secrets.token_hex(3)[:5]
        taken = state_dir is not None and (state_dir / f"{prefix}.json").exists()
        if not taken and not any(ns.startswith(prefix) for ns in existing):
            return prefix


@dataclass(frozen=True)
class Orphan:
    """An emulated network whose launcher is gone: its prefix, the launcher's pid, the namespaces removed."""

    prefix: str
    pid: int
    namespaces: list[str]


def _namespaces_of(prefix: str, existing: Sequence[str]) -> list[str]:
    """Exactly the namespaces a network of ``prefix`` creates (``<prefix>hub``, ``<prefix>n<i>``), not those
    of another prefix that merely starts the same way."""
    pattern = re.compile(rf"^{re.escape(prefix)}(hub|n\d+)$")
    return [ns for ns in existing if pattern.match(ns)]


def _write_owner(state_dir: Path, prefix: str) -> Path:
    pid = os.getpid()
    path = state_dir / f"{prefix}.json"
    write_json_atomic(
        path,
        {
            "prefix": prefix,
            "pid": pid,
            "start_time": process_start_time(pid),
            "pid_namespace": pid_namespace(),
            "created": time.time(),
        },
    )
    return path


def reap_orphans(state_dir: Path = OWNER_DIR) -> list[Orphan]:
    """Delete the namespaces of every network whose launcher is gone (its owner record names a pid that no
    longer runs, or runs another program), killing what still runs inside, and remove the record. Records of
    another pid namespace are left alone (their pids mean nothing here). Returns what was removed."""
    if not state_dir.is_dir():
        return []
    here = pid_namespace()
    reaped = []
    for record in sorted(state_dir.glob("*.json")):
        try:
            owner = json.loads(record.read_text())
            prefix, pid = _check_prefix(str(owner["prefix"])), int(owner["pid"])
        except (OSError, ValueError, KeyError, TypeError) as err:  # records are written atomically: not ours
            _LOG.warning("%s: not an owner record of an emulated network (%s); remove it", record, err)
            continue
        if owner.get("pid_namespace") != here or process_alive(pid, owner.get("start_time")):
            continue
        gone = _namespaces_of(prefix, list_namespaces())
        for ns in gone:
            _delete_namespace(ns)
        record.unlink(missing_ok=True)
        reaped.append(Orphan(prefix, pid, gone))
    return reaped


def unowned_namespaces(state_dir: Path = OWNER_DIR) -> dict[str, list[str]]:
    """Namespaces named like a default prefix's (``ecr`` + 5 hex digits) with no owner record, by prefix:
    left by an older ecorec (or in use by one). Never removed automatically."""
    out: dict[str, list[str]] = {}
    for ns in list_namespaces():
        match = _DEFAULT_NAME_RE.match(ns)
        if match and not (state_dir / f"{match.group(1)}.json").exists():
            out.setdefault(match.group(1), []).append(ns)
    return out


def _check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix):
        raise ValueError(
            f"cluster prefix {prefix!r}: use 2-10 lower-case letters/digits starting with a letter "
            "(interface names are limited to 15 characters)"
        )
    return prefix


def _run(cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ClusterError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc


def list_namespaces() -> list[str]:
    """Names of the network namespaces in ``/run/netns`` (``ip netns list``)."""
    proc = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _namespace_pids(ns: str) -> list[int]:
    proc = _run(["ip", "netns", "pids", ns], check=False)
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]


def _delete_namespace(ns: str, grace_s: float = 3.0) -> None:
    """Kill what still runs in ``ns`` (SIGTERM, then SIGKILL after ``grace_s``) and delete it."""
    pids = _namespace_pids(ns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = _namespace_pids(ns)
        if not pids:
            break
    _run(["ip", "netns", "delete", ns], check=False)


def cleanup(prefix: str) -> list[str]:
    """Delete every namespace whose name starts with ``prefix`` (and so its links, bridge and qdiscs), killing
    processes still inside; returns the deleted names. For leftovers of a run that was killed with SIGKILL."""
    _check_prefix(prefix)
    gone = [ns for ns in list_namespaces() if ns.startswith(prefix)]
    for ns in gone:
        _delete_namespace(ns)
    return gone


def tbf_parameters(rate_bps: float, mtu: int, queue_ms: float) -> dict[str, int]:
    """tbf settings for a rate in bit/s: ``burst`` in bytes (above the MTU, else every packet drops; at least
    1 ms of the rate so the kernel's timer granularity does not lower the achieved rate), ``limit`` in bytes
    (``queue_ms`` of the rate, at least 4 bursts), ``rate`` in bit/s."""
    if rate_bps <= 0:
        raise ValueError(f"link rate must be > 0 bit/s, got {rate_bps}")
    rate_Bps = rate_bps / 8
    burst = max(2 * (mtu + 100), int(rate_Bps * 1e-3), 16 * 1024)
    limit = max(4 * burst, int(rate_Bps * queue_ms * 1e-3))
    return {"rate": int(rate_bps), "burst": burst, "limit": limit}


@dataclass(frozen=True)
class LinkSpec:
    """Shaping of the emulated links.

    ``link_gbit``: per-node inter-node rate in Gbit/s, each direction (``None``: unshaped veths);
    ``intra_gbit``: rate of each node's loopback (``None``: unshaped); ``mtu`` of the veths (jumbo frames by
    default: fewer packets per byte for the CPU to move); ``queue_ms``: the tbf queue, in ms of the rate."""

    link_gbit: float | None = None
    intra_gbit: float | None = None
    mtu: int = 9000
    queue_ms: float = 50.0

    def __post_init__(self) -> None:
        for name in ("link_gbit", "intra_gbit"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"LinkSpec.{name} must be > 0 Gbit/s or None, got {value}")
        if not 576 <= self.mtu <= 65535:
            raise ValueError(f"LinkSpec.mtu must be in [576, 65535], got {self.mtu}")
        if not self.queue_ms > 0:
            raise ValueError(f"LinkSpec.queue_ms must be > 0, got {self.queue_ms}")


@dataclass(frozen=True)
class NodeInfo:
    """One emulated node: its namespace, its link's interface name inside it, and its address."""

    index: int
    namespace: str
    interface: str
    address: str


@dataclass
class EmulatedNetwork:
    """Context manager that creates the namespaces, links and qdiscs of ``num_nodes`` nodes and removes them
    on exit (also on an exception inside the block). ``nodes`` lists the nodes; ``describe()`` the
    settings."""

    num_nodes: int
    link: LinkSpec = field(default_factory=LinkSpec)
    prefix: str | None = None
    state_dir: Path | None = OWNER_DIR  # the owner record's folder (None: no record)
    nodes: list[NodeInfo] = field(default_factory=list, init=False)
    namespaces: list[str] = field(default_factory=list, init=False)
    _owner: Path | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.num_nodes < 1:
            raise ValueError(f"num_nodes must be >= 1, got {self.num_nodes}")
        if self.num_nodes > 250:
            raise ValueError(f"num_nodes must be <= 250 (one /24 subnet), got {self.num_nodes}")

    @property
    def hub(self) -> str:
        return f"{self.prefix}hub"

    def __enter__(self) -> EmulatedNetwork:
        check_capabilities()
        self.prefix = _check_prefix(self.prefix) if self.prefix else new_prefix(self.state_dir)
        try:
            if self.state_dir is not None:  # first: a launcher killed at any later moment leaves a record
                self._owner = _write_owner(self.state_dir, self.prefix)
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_ns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _shape(self, ns: str, dev: str, gbit: float, mtu: int) -> None:
        p = tbf_parameters(gbit * 1e9, mtu, self.link.queue_ms)
        _run(
            [
                "tc",
                "-n",
                ns,
                "qdisc",
                "replace",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                f"{p['rate']}bit",
                "burst",
                str(p["burst"]),
                "limit",
                str(p["limit"]),
            ]
        )

    def _create(self) -> None:
        p = self.prefix
        mtu = self.link.mtu
        multi = self.num_nodes > 1
        if multi:
            self._add_ns(self.hub)
            _run(["ip", "-n", self.hub, "link", "add", f"{p}br", "type", "bridge"])
            _run(["ip", "-n", self.hub, "link", "set", f"{p}br", "mtu", str(mtu), "up"])
        for i in range(self.num_nodes):
            ns = f"{p}n{i}"
            self._add_ns(ns)
            node_if, hub_if = f"{p}n{i}", f"{p}h{i}"
            address = f"{SUBNET}.{i + 1}"
            if multi:
                _run(
                    [
                        "ip",
                        "-n",
                        self.hub,
                        "link",
                        "add",
                        hub_if,
                        "mtu",
                        str(mtu),
                        "type",
                        "veth",
                        "peer",
                        "name",
                        node_if,
                        "netns",
                        ns,
                        "mtu",
                        str(mtu),
                    ]
                )
                _run(["ip", "-n", self.hub, "link", "set", hub_if, "master", f"{p}br", "up"])
                _run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", node_if])
                _run(["ip", "-n", ns, "link", "set", node_if, "up"])
                if self.link.link_gbit is not None:
                    self._shape(ns, node_if, self.link.link_gbit, mtu)  # uplink
                    self._shape(self.hub, hub_if, self.link.link_gbit, mtu)  # downlink
            else:
                node_if, address = "lo", "127.0.0.1"
            if self.link.intra_gbit is not None:
                self._shape(ns, "lo", self.link.intra_gbit, 65536)
            self.nodes.append(NodeInfo(i, ns, node_if, address))
        _LOG.info("emulated network %s: %d nodes, %s", p, self.num_nodes, self.describe())

    def close(self) -> None:
        """Delete the namespaces (nodes first, hub last); safe to call twice."""
        for ns in reversed(self.namespaces):
            _delete_namespace(ns)
        self.namespaces.clear()
        if self._owner is not None:
            self._owner.unlink(missing_ok=True)
            self._owner = None

    def describe(self) -> dict[str, object]:
        """The settings a run record stores."""
        tbf = (
            tbf_parameters(self.link.link_gbit * 1e9, self.link.mtu, self.link.queue_ms)
            if self.link.link_gbit is not None
            else None
        )
        return {
            "prefix": self.prefix,
            "nodes": self.num_nodes,
            "topology": "hub bridge, one full-duplex veth per node" if self.num_nodes > 1 else "one node",
            "link_gbit": self.link.link_gbit,
            "intra_gbit": self.link.intra_gbit,
            "mtu": self.link.mtu,
            "queue_ms": self.link.queue_ms,
            "tbf": tbf,
            "latency_emulated": False,
        }

    def qdiscs(self) -> dict[str, str]:
        """``tc qdisc show`` of every namespace (for logs and tests)."""
        return {ns: _run(["tc", "-n", ns, "qdisc", "show"], check=False).stdout for ns in self.namespaces}
