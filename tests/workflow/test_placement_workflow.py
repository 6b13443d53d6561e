"""The placement target's wiring: every step once, the paper overlay, both table kinds."""

from __future__ import annotations

from tests.workflow.snakemake_cli import REPO_ROOT, dry_run_job_counts

STEPS = ("placement_tables", "placement_tasks", "placement_train", "placement_eval", "placement_figure")


def test_placement_target_runs_every_step_once(tmp_path):
    counts = dry_run_job_counts(
        "--forceall", "placement", "--configfile", str(REPO_ROOT / "config.yaml"), workdir=tmp_path
    )
    assert all(counts.get(step) == 1 for step in STEPS), counts
    assert "all" not in counts and "train" not in counts  # not part of the default target, no training runs


def test_placement_paper_overlay_and_both_kinds(tmp_path):
    counts = dry_run_job_counts(
        "--forceall",
        "placement",
        "--configfile",
        str(REPO_ROOT / "config.yaml"),
        str(REPO_ROOT / "config.paper.yaml"),
        "--config",
        "placement={'kinds': ['uncompressed', 'tt']}",
        workdir=tmp_path,
    )
    assert counts.get("placement_train") == 2 and counts.get("placement_eval") == 2, counts
    assert counts.get("placement_tables") == 1 and counts.get("to_parquet_meta_dlrm") == 1, counts
