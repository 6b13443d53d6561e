"""The `hetgmp` target: one partition per partitioner and one run per grid point (default and paper), the run
configs it writes are valid, and the figure module reduces records to the plotted rows."""

from __future__ import annotations

import json
import math

import yaml

from ecorec.plots.hetgmp import hetgmp_rows, plot_hetgmp
from ecorec.train import run_config_from_dict
from ecorec.train.hetgmp import hetgmp_run_dict
from ecorec.workflow.configfiles import merge_config
from tests.workflow.snakemake_cli import REPO_ROOT, dry_run_job_counts


def test_hetgmp_dry_runs_have_one_job_per_grid_point(tmp_path):
    default = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    h = default["hetgmp"]
    counts = dry_run_job_counts("hetgmp", "--configfile", str(REPO_ROOT / "config.yaml"), workdir=tmp_path)
    # without mirrors (store rate 0) the bound changes nothing: that store rate runs at the first bound only
    mirrored = sum(1 for rate in h["store_rates"] if float(rate) > 0)
    points = (len(h["store_rates"]) - mirrored) + mirrored * len(h["bounds"])
    grid = len(h["partitioners"]) * points
    assert counts["hetgmp_partition"] == len(h["partitioners"]) == 4
    assert counts["hetgmp_config"] == grid == 12
    # one torchrun launch per partitioner trains all its grid points
    assert counts["hetgmp_train"] == len(h["partitioners"])
    assert counts["hetgmp_figure"] == 1 and counts["synthetic"] == 1

    paper_dir = tmp_path / "paper"
    paper = merge_config(default, yaml.safe_load((REPO_ROOT / "config.paper.yaml").read_text()))
    (paper_dir / "results" / "datasets" / paper["hetgmp"]["dataset"]).mkdir(parents=True)
    counts = dry_run_job_counts(
        "hetgmp",
        "--configfile",
        str(REPO_ROOT / "config.yaml"),
        str(REPO_ROOT / "config.paper.yaml"),
        workdir=paper_dir,
    )
    assert paper["hetgmp"]["dataset"] == "criteo_kaggle"
    assert counts["hetgmp_config"] == grid and "synthetic" not in counts


def test_grid_point_run_config_is_valid():
    section = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())["hetgmp"]
    data = hetgmp_run_dict(
        section,
        partitioner="metis",
        store_rate=0.01,
        bound=10,
        dataset_path="/d",
        partition_path="/p.npz",
        output_dir="/o",
    )
    cfg = run_config_from_dict(data, "run.yaml", check_paths=False)
    assert cfg.parallel.mode == "hetgmp" and cfg.hetgmp.store_rate == 0.01 and cfg.hetgmp.bound == 10
    assert cfg.train.global_batch_size == section["world"] * section["batch"]


def _record(method: str, rate: float, bound: int, rows: float, auroc: float) -> dict:
    return {
        "config": {
            "run": {"name": method},
            "embeddings": {"algorithm": "none"},
            "parallel": {"world_size": 2},
            "train": {"global_batch_size": 8},
            "dataset": {},
            "hetgmp": {"store_rate": rate, "bound": bound},
        },
        "metrics": {
            "world_size": 2,
            "global_batch_size": 8,
            "timing": {"windows": [{"seconds": 0.1, "num_steps": 2}, {"seconds": 0.3, "num_steps": 2}]},
            "final_auroc": {"val": auroc},
            "hetgmp": {
                "partition": method,
                "remote_rows_per_step_mean": rows,
                "remote_bytes_per_step_mean": rows * 64,
                "predicted_remote_rows_per_step": [rows, rows],
                "max_staleness": bound,
                "mirror_bytes": [100, 300],
            },
        },
    }


def test_rows_relative_to_random_and_csv(tmp_path):
    records = [
        _record("random", 0.0, 0, 40.0, 0.6),
        _record("hetgmp", 0.0, 0, 10.0, 0.61),
        _record("random", 0.01, 0, 20.0, 0.6),
        _record("metis", 0.01, 0, 5.0, 0.62),
    ]
    rows = plot_hetgmp(
        hetgmp_rows(records, {"hetgmp": {"partition_seconds": 1.5}}), tmp_path / "h.png", tmp_path / "h.csv"
    )
    by = {(r["partitioner"], r["store_rate"]): r for r in rows}
    assert by[("hetgmp", 0.0)]["remote_rows_vs_random"] == 0.25
    assert by[("metis", 0.01)]["remote_rows_vs_random"] == 0.25
    assert by[("random", 0.01)]["remote_rows_vs_random"] == 1.0
    assert by[("hetgmp", 0.0)]["partition_seconds"] == 1.5 and math.isnan(
        by[("metis", 0.01)]["partition_seconds"]
    )
    assert by[("hetgmp", 0.0)]["samples_per_s"] == 8 / (0.1 / 2 * 0.5 + 0.3 / 2 * 0.5)  # mean window step
    assert by[("metis", 0.01)]["mirror_bytes_per_rank"] == 200
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("partitioner,store_rate,bound")
    assert (tmp_path / "h.png").stat().st_size > 0 and (tmp_path / "h.pdf").exists()
    json.dumps(rows)
