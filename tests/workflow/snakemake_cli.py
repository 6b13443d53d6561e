"""Run the workflow's Snakemake CLI in a subprocess and parse what a dry run would do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake_env() -> dict[str, str]:
    """Environment for a Snakemake subprocess: this repo's ecorec first on sys.path, the venv on PATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_snakemake(
    *args: str, workdir: Path | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``snakemake --snakefile <Snakefile> <args>`` in ``workdir`` (default: the repo).

    The Snakefile is the workdir's own when it holds a copy of the workflow (so the workflow, its source
    hashes and the ecorec it imports are the copy's), else the repository's.
    """
    own = Path(workdir) / "Snakefile" if workdir is not None else None
    snakefile = own if own is not None and own.is_file() else REPO_ROOT / "Snakefile"
    cmd = [*SNAKEMAKE, "--snakefile", str(snakefile), *args]
    proc = subprocess.run(
        cmd,
        cwd=workdir or REPO_ROOT,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def api_dry_run(workdir: Path, configfiles, config=None, targets=()) -> None:
    """Dry run through Snakemake's Python API in this process (fast after the first call); raises errors."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.PROGRESS})) as api:
        workflow = api.workflow(
            snakefile=REPO_ROOT / "Snakefile",
            workdir=workdir,
            resource_settings=ResourceSettings(cores=2),
            config_settings=ConfigSettings(configfiles=[Path(c) for c in configfiles], config=config or {}),
        )
        workflow.dag(DAGSettings(targets=set(targets))).execute_workflow(executor="dryrun")


_JOB_LINE = re.compile(r"^(\S+)\s+(\d+)$")


def dry_run_job_counts(*args: str, workdir: Path | None = None) -> dict[str, int]:
    """Return {rule: number of jobs} that ``snakemake -n`` would run (empty when nothing is to be done)."""
    proc = run_snakemake("-n", "--cores", "2", *args, workdir=workdir)
    text = proc.stdout + proc.stderr
    if "Job stats:" not in text:
        if "Nothing to be done" in text:
            return {}
        raise AssertionError(f"no job stats in dry-run output:\n{text}")
    counts: dict[str, int] = {}
    block = text.split("Job stats:", 1)[1].splitlines()
    for line in block[3:]:
        match = _JOB_LINE.match(line.strip())
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts
