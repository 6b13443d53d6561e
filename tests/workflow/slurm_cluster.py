"""A real single-node SLURM cluster for tests: Debian's munge, slurmctld and slurmd, started as root.

munge runs on a private socket and key; slurmctld/slurmd on free ports with state, spool, logs and pid files
in a temporary folder. The configuration must be ``/etc/slurm/slurm.conf``: jobs of the Snakemake SLURM
executor run with every ``SLURM_*`` variable stripped (``SLURM_CONF`` included), so ``srun`` inside a job
only finds the default path. An existing file there that this module did not write is left alone (the cluster
is not started). Everything is stopped by pid file, and the configuration removed, when the cluster stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by the ecorec test suite (tests/workflow/slurm_cluster.py)"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun", "munge")
INSTALL_HINT = "apt-get install -y slurmctld slurmd slurm-client munge (as root; .ci/run does it)"


class ClusterUnavailable(RuntimeError):
    """The cluster cannot run here; the message says why (tests skip with it)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _stop_pid_file(path: Path, timeout: float = 10.0) -> None:
    """SIGTERM the process named in ``path`` (if any) and wait for it to exit."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


class LocalSlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; ``partition`` is the partition to submit to."""

    partition = "debug"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hostname = socket.gethostname()
        self._started: list[Path] = []
        self._wrote_conf = False

    def _check(self) -> None:
        if os.name != "posix" or os.geteuid() != 0:
            raise ClusterUnavailable("the local SLURM cluster needs root (slurmd runs jobs as their user)")
        missing = [d for d in DAEMONS if shutil.which(d) is None]
        if missing:
            raise ClusterUnavailable(
                f"SLURM/munge not installed (missing {', '.join(missing)}): {INSTALL_HINT}"
            )
        if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text():
            raise ClusterUnavailable(f"{SLURM_CONF} exists and belongs to another cluster; not touching it")

    def _config(self) -> str:
        r = self.root
        cpus = os.cpu_count() or 1
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        return "\n".join(
            [
                MARKER,
                "ClusterName=ecorectest",
                f"SlurmctldHost={self.hostname}",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={r / 'munge' / 'munge.socket'}",
                "SlurmUser=root",
                "SlurmdUser=root",
                f"StateSaveLocation={r / 'state'}",
                f"SlurmdSpoolDir={r / 'spool'}",
                f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                f"SlurmdPidFile={r / 'slurmd.pid'}",
                f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "MpiDefault=none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "ReturnToService=2",
                f"NodeName={self.hostname} CPUs={cpus} RealMemory={memory_mb // 2} State=UNKNOWN",
                f"PartitionName={self.partition} Nodes={self.hostname} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )

    def _logs(self) -> str:
        tails = []
        for log in sorted((self.root / "log").glob("*.log")):
            tails.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-8:]))
        return "\n".join(tails)

    def start(self, timeout: float = 30.0) -> None:
        self._check()
        r = self.root
        for sub in ("state", "spool", "log", "munge"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "munge").chmod(0o700)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munged = [
            "munged",
            "--force",
            f"--socket={r / 'munge' / 'munge.socket'}",
            f"--key-file={key}",
            f"--pid-file={r / 'munge' / 'munged.pid'}",
            f"--log-file={r / 'log' / 'munged.log'}",
            f"--seed-file={r / 'munge' / 'seed'}",
        ]
        try:
            subprocess.run(munged, check=True, capture_output=True, text=True, timeout=30)
            self._started.append(r / "munge" / "munged.pid")
            SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SLURM_CONF.write_text(self._config())
            self._wrote_conf = True
            for daemon, pid in (("slurmctld", "slurmctld.pid"), ("slurmd", "slurmd.pid")):
                subprocess.run([daemon, "-f", str(SLURM_CONF)], check=True, capture_output=True, timeout=30)
                self._started.append(r / pid)
        except (subprocess.SubprocessError, OSError) as err:
            self.stop()
            raise ClusterUnavailable(f"could not start the SLURM daemons ({err})\n{self._logs()}") from err
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        self.stop()
        raise ClusterUnavailable(f"the SLURM node did not become idle in {timeout:.0f} s\n{self._logs()}")

    def stop(self) -> None:
        for pid_file in reversed(self._started):
            _stop_pid_file(pid_file)
        self._started = []
        if self._wrote_conf and SLURM_CONF.exists() and MARKER in SLURM_CONF.read_text():
            SLURM_CONF.unlink()
        self._wrote_conf = False
