"""The workflow skeleton: schema validation, dry runs (API and CLI), lint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflow.snakemake_cli import REPO_ROOT, api_dry_run, dry_run_job_counts, run_snakemake


def test_default_config_dry_run_through_python_api(tmp_path):
    api_dry_run(tmp_path, [REPO_ROOT / "config.yaml"])


def test_schema_rejects_wrong_type_naming_the_key(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    config["device"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    proc = run_snakemake("-n", "--cores", "1", "--configfile", str(bad), workdir=tmp_path, check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "3 is not of type 'string'" in message
    assert "device" in message


def test_schema_rejects_unknown_top_level_key(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    config["devcie"] = "cpu"
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump(config))
    proc = run_snakemake("-n", "--cores", "1", "--configfile", str(bad), workdir=tmp_path, check=False)
    assert proc.returncode != 0
    assert "devcie" in proc.stdout + proc.stderr


def test_default_dry_run_cli_has_jobs():
    counts = dry_run_job_counts("--forceall")
    assert counts.get("all") == 1
    assert counts.get("environment") == 1
    # one synthetic dataset each: the figures', HET-GMP's and the placement study's
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    synthetic = {config["dataset"], config["hetgmp"]["dataset"], config["placement"]["dataset"]}
    assert all(config["datasets"][name]["source"] == "synthetic" for name in synthetic)
    assert counts.get("synthetic") == len(synthetic) == 3


def test_paper_overlay_dry_run_with_slurm_profile(tmp_path):
    # A dry run needs no SLURM daemons: the plugin is only consulted at submission.
    counts = dry_run_job_counts(
        "--forceall",
        "--workflow-profile",
        str(REPO_ROOT / "profiles" / "slurm"),
        "--configfile",
        str(REPO_ROOT / "config.yaml"),
        str(REPO_ROOT / "config.paper.yaml"),
        workdir=tmp_path,
    )
    assert counts.get("all") == 1


def test_lint_reports_nothing_but_missing_environments(tmp_path):
    proc = run_snakemake("--lint", "--cores", "1", check=False)
    text = proc.stdout + proc.stderr
    findings = [line.strip() for line in text.splitlines() if line.strip().startswith("*")]
    other = [f for f in findings if "conda environment or container" not in f]
    assert not other, text


def _snakefmt() -> str | None:
    beside = Path(sys.executable).parent / "snakefmt"
    return str(beside) if beside.exists() else shutil.which("snakefmt")


@pytest.mark.skipif(_snakefmt() is None, reason="snakefmt is not installed")
def test_snakefmt_clean():
    files = [str(REPO_ROOT / "Snakefile"), *map(str, sorted((REPO_ROOT / "rules").glob("*.smk")))]
    proc = subprocess.run([_snakefmt(), "--check", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fitted_calibration_feeds_every_plan(tmp_path):
    """planner.calibration: fit -> one cost_calibration job (on figure 11's benchmarks) before the plans."""
    overlay = tmp_path / "fit.yaml"
    overlay.write_text("planner: {calibration: fit}\n")
    (tmp_path / "results" / "datasets" / "synthetic").mkdir(parents=True)
    plan = "results/plans/synthetic/greedy/ecorec-T32-R2-G512.json"
    default = str(REPO_ROOT / "config.yaml")
    counts = dry_run_job_counts(plan, "--configfile", default, str(overlay), workdir=tmp_path)
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    assert counts["cost_calibration"] == 1 and counts["sharding_plan"] == 1
    assert counts["bench_kernels"] == len(config["fig11"]["batch_sizes"])
    without = dry_run_job_counts(plan, "--configfile", default, workdir=tmp_path)
    assert "cost_calibration" not in without and "bench_kernels" not in without
