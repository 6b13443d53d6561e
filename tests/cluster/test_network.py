"""The emulated network and launcher: links shaped as configured, and nothing left behind after success,
failure or SIGTERM; the capability check's error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ecorec.cluster import (
    ClusterCapabilityError,
    ClusterSpec,
    EmulatedNetwork,
    LinkSpec,
    check_capabilities,
    check_link,
    list_namespaces,
    new_prefix,
    run_on_cluster,
)
from ecorec.cluster.network import tbf_parameters
from tests.cluster.conftest import needs_net_admin

# One gloo all-reduce over every rank, then each rank writes what it saw (or fails on request).
_PROBE = textwrap.dedent(
    """
    import json, os, sys, time
    import torch, torch.distributed as dist
    out = sys.argv[1]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    x = torch.full((1000,), float(rank + 1))
    dist.all_reduce(x)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"sum": x[0].item(), "ifname": os.environ.get("GLOO_SOCKET_IFNAME"),
                   "cluster": json.loads(os.environ["ECOREC_CLUSTER"]), "pid": os.getpid()}, f)
    if len(sys.argv) > 2 and sys.argv[2] == "fail" and rank == 1:
        sys.exit(3)
    if len(sys.argv) > 2 and sys.argv[2] == "hang":
        time.sleep(600)
    dist.destroy_process_group()
    """
)


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(_PROBE)
    return path


def _host_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def _assert_gone(prefix: str) -> None:
    assert not [ns for ns in list_namespaces() if ns.startswith(prefix)]
    assert prefix not in _host_links()
    assert prefix not in Path("/proc/mounts").read_text()


def test_capability_error_names_what_is_missing() -> None:
    status = "Name:\tpython\nCapEff:\t0000000000000000\n"
    with pytest.raises(ClusterCapabilityError, match="CAP_NET_ADMIN and CAP_SYS_ADMIN"):
        check_capabilities(status)
    with pytest.raises(ClusterCapabilityError, match="iproute2 programs \\['no-such-program-x'\\]"):
        check_capabilities("CapEff:\t000001ffffffffff\n", which=("no-such-program-x",))
    check_capabilities("CapEff:\t000001ffffffffff\n", which=())


@needs_net_admin
def test_cli_without_capability_gives_the_clear_error(probe: Path) -> None:
    """Capabilities really dropped (setpriv): exit 2 and the message, before anything is created."""
    cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin,-sys_admin", sys.executable, "-m",
           "ecorec.cluster", "run", "--nodes", "2", "--ranks-per-node", "1", "--link-gbit", "1", "--",
           str(probe), "/nonexistent"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "needs CAP_NET_ADMIN and CAP_SYS_ADMIN" in proc.stderr


def test_tbf_burst_exceeds_mtu() -> None:
    for rate in (1e6, 1e8, 1e10):
        p = tbf_parameters(rate, 9000, 50.0)
        assert p["burst"] > 9000 and p["limit"] >= 4 * p["burst"] and p["rate"] == int(rate)
    assert tbf_parameters(8e9, 1500, 50.0)["burst"] >= 1e6  # 1 ms of 1 GB/s
    with pytest.raises(ValueError, match="rate"):
        tbf_parameters(0, 1500, 50.0)


@needs_net_admin
def test_network_shapes_both_directions_and_is_removed() -> None:
    with EmulatedNetwork(3, LinkSpec(link_gbit=0.5)) as net:
        prefix = net.prefix
        assert [n.address for n in net.nodes] == ["10.213.0.1", "10.213.0.2", "10.213.0.3"]
        qd = net.qdiscs()
        for i in range(3):
            assert "tbf" in qd[f"{prefix}n{i}"] and "rate 500Mbit" in qd[f"{prefix}n{i}"]
        assert qd[f"{prefix}hub"].count("tbf") == 3
        # node 0 reaches node 2 through the bridge: a connect to a closed port is refused (not timed out)
        probe = "import socket\ntry:\n socket.create_connection(('10.213.0.3', 9), timeout=5)\n"
        probe += "except ConnectionRefusedError:\n print('refused')\n"
        out = subprocess.run(
            ["ip", "netns", "exec", net.nodes[0].namespace, sys.executable, "-c", probe],
            capture_output=True,
            text=True,
        )
        assert out.stdout.strip() == "refused", out.stderr
        assert prefix not in _host_links()
    _assert_gone(prefix)


@needs_net_admin
def test_shaped_link_rate_within_ten_percent() -> None:
    res = check_link(0.2, seconds=3.0, warmup_s=1.0)
    assert abs(res.ratio - 1.0) <= 0.10, res


@needs_net_admin
def test_run_success_cleans_up(probe: Path, tmp_path: Path) -> None:
    prefix = new_prefix()
    seen: dict[str, str] = {}

    def started(net: EmulatedNetwork) -> None:
        seen.update(net.qdiscs())

    spec = ClusterSpec(2, 2, LinkSpec(link_gbit=1.0), prefix, {"profile": "test"})
    assert run_on_cluster(spec, [str(probe), str(tmp_path)], on_started=started) == 0
    records = [__import__("json").loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)]
    assert all(r["sum"] == 1 + 2 + 3 + 4 for r in records)
    assert sorted(r["ifname"] for r in records) == [f"{prefix}n0"] * 2 + [f"{prefix}n1"] * 2
    assert all(r["cluster"]["link_gbit"] == 1.0 and r["cluster"]["profile"] == "test" for r in records)
    assert "tbf" in seen[f"{prefix}n0"]
    _assert_gone(prefix)


@needs_net_admin
def test_run_failure_stops_the_others_and_cleans_up(probe: Path, tmp_path: Path) -> None:
    prefix = new_prefix()
    spec = ClusterSpec(2, 1, LinkSpec(link_gbit=1.0), prefix)
    # rank 1 exits 3; rank 0 would wait forever in the next collective without the launcher stopping it
    status = run_on_cluster(spec, [str(probe), str(tmp_path), "fail"], grace_s=2.0)
    assert status != 0
    _assert_gone(prefix)


@needs_net_admin
def test_sigterm_stops_the_run_and_cleans_up(probe: Path, tmp_path: Path) -> None:
    prefix = new_prefix()
    cmd = [sys.executable, "-m", "ecorec.cluster", "run", "--nodes", "2", "--ranks-per-node", "1",
           "--link-gbit", "1", "--prefix", prefix, "--", str(probe), str(tmp_path), "hang"]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("rank*.json"))) < 2:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the ranks did not start"
            time.sleep(0.2)
        assert [ns for ns in list_namespaces() if ns.startswith(prefix)]
        pids = [__import__("json").loads(p.read_text())["pid"] for p in tmp_path.glob("rank*.json")]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_gone(prefix)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
