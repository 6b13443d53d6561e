"""The emulated-cluster launcher refuses a world size its run config disagrees with before anything starts,
and leaves no orphans: ranks die with a launcher killed by SIGKILL, and the next run removes its namespaces
and says so."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ecorec.cluster.__main__ import main as cluster_main
from ecorec.cluster.network import OWNER_DIR, cleanup, list_namespaces
from ecorec.utils.process import process_alive
from tests.cluster.conftest import needs_net_admin

REPO = Path(__file__).resolve().parents[2]


def test_world_size_mismatch_fails_before_any_rendezvous(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("parallel:\n  mode: dp\n  world_size: 2\n")
    start = time.monotonic()
    code = cluster_main(
        ["run", "--nodes", "3", "--ranks-per-node", "1", "--prefix", "bqws", "--", "-m", "ecorec.train",
         "--config", str(config)]
    )  # fmt: skip
    assert code == 2 and time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert (
        f"{config}: parallel.world_size is 2, but the cluster has --nodes 3 x --ranks-per-node 1 = 3" in err
    )
    assert "set parallel.world_size: 3" in err and "--nodes 2 --ranks-per-node 1" in err
    with contextlib.suppress(FileNotFoundError):  # no `ip`: nothing could have been created anyway
        assert not [ns for ns in list_namespaces() if ns.startswith("bqws")]


def test_bad_cluster_arguments_name_the_flag_or_field(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("parallel: {world_size: '2'}\n")
    script = ["--", "-m", "ecorec.train", "--config", str(config)]
    assert cluster_main(["run", "--nodes", "2", "--ranks-per-node", "1", *script]) == 2
    assert f"{config}: parallel.world_size: expected a positive integer, got '2'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cluster_main(["run", "--nodes", "0", "--ranks-per-node", "1", *script])
    assert "argument --nodes: must be >= 1, got 0" in capsys.readouterr().err
    twice = tmp_path / "config.yaml"
    twice.write_text("cluster:\n  profile: a100_ib100\ncluster:\n  ranks_per_node: 1\n")
    assert cluster_main(["dilation", "--config", str(twice), "--ranks-per-node", "1", "--here-us", "10"]) == 2
    err = capsys.readouterr().err
    assert f"{twice}:3:1: key 'cluster' appears twice in this mapping (first at line 1)" in err


_SLEEPER = textwrap.dedent(
    """
    import os, sys, time
    with open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@needs_net_admin
def test_sigkilled_launcher_leaves_no_ranks_and_the_next_run_reaps_its_network(tmp_path):
    prefix = "bq" + secrets.token_hex(2)
    (tmp_path / "sleeper.py").write_text(_SLEEPER)
    (tmp_path / "hello.py").write_text("print('hello from the next run')\n")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ecorec.cluster", "run", "--nodes", "2", "--ranks-per-node", "1",
         "--prefix", prefix, "--", str(tmp_path / "sleeper.py"), str(tmp_path)],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        pid_files = [tmp_path / "rank0.pid", tmp_path / "rank1.pid"]
        assert _wait(lambda: all(p.is_file() and p.read_text() for p in pid_files), 120), (
            "ranks never started"
        )
        ranks = [int(p.read_text()) for p in pid_files]
        assert (OWNER_DIR / f"{prefix}.json").is_file()
        launcher.kill()  # SIGKILL: no cleanup of its own
        launcher.wait()
        assert _wait(lambda: not any(process_alive(pid, None) for pid in ranks), 30), (
            "ranks outlived the launcher"
        )
        left = [ns for ns in list_namespaces() if ns.startswith(prefix)]
        assert sorted(left) == sorted([f"{prefix}hub", f"{prefix}n0", f"{prefix}n1"])
        nxt = subprocess.run(
            [sys.executable, "-m", "ecorec.cluster", "run", "--nodes", "1", "--ranks-per-node", "1", "--",
             str(tmp_path / "hello.py")],
            env=_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert nxt.returncode == 0, nxt.stderr[-2000:]
        assert f"removed the emulated network {prefix} (namespaces" in nxt.stderr
        assert f"whose launcher (pid {launcher.pid}) is gone" in nxt.stderr
        assert not [ns for ns in list_namespaces() if ns.startswith(prefix)]
        assert not (OWNER_DIR / f"{prefix}.json").exists()
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGKILL)
        cleanup(prefix)
        (OWNER_DIR / f"{prefix}.json").unlink(missing_ok=True)
