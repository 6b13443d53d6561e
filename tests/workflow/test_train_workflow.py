"""rules/train.smk: the DAG of the configured runs, the SLURM resources per world size, and one training run
through the SLURM profile on a real (local) cluster that finishes with the local run's losses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.workflow.snakemake_cli import REPO_ROOT, dry_run_job_counts, run_snakemake


def _fake_dataset(workdir: Path, name: str = "synthetic") -> None:
    (workdir / "results" / "datasets" / name).mkdir(parents=True)


def test_default_runs_dry_run(tmp_path):
    _fake_dataset(tmp_path)
    counts = dry_run_job_counts(
        "train_runs", "--configfile", str(REPO_ROOT / "config.yaml"), workdir=tmp_path
    )
    runs = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())["train"]["runs"]
    # config.yaml's runs are figure 10's largest point: one launch trains every system of that point
    launches = {rule: n for rule, n in counts.items() if rule.startswith("train") and rule != "train_config"}
    launches.pop("train_runs")
    assert launches == {"train_fig10": 1}
    fig10 = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())["fig10"]["systems"]
    assert counts["train_config"] == len(set(fig10) | {run["system"] for run in runs}) >= len(runs)


def test_paper_runs_on_slurm_get_nodes_agents_and_gpus_per_world_size(tmp_path):
    paper = yaml.safe_load((REPO_ROOT / "config.paper.yaml").read_text())
    _fake_dataset(tmp_path, paper.get("dataset", "synthetic"))
    proc = run_snakemake(
        "-n",
        "-p",
        "train_runs",
        "--workflow-profile",
        str(REPO_ROOT / "profiles" / "slurm"),
        "--configfile",
        str(REPO_ROOT / "config.yaml"),
        str(REPO_ROOT / "config.paper.yaml"),
        workdir=tmp_path,
    )
    text = proc.stdout + proc.stderr
    # 32 ranks, 4 GPUs per node: 8 nodes, one torchrun agent of 4 ranks each, srun (MPI mode), gres gpu:4
    assert "--nodes 8 --agents 8 --nproc-per-agent 4 --cpus-per-task 32" in text
    expected = "nodes=8, agents=8, nproc_per_agent=4, mpi=srun, tasks=8, tasks_per_gpu=0, gres=gpu:4"
    assert f"{expected}, cpus_per_task=32" in text
    # 4 ranks fit one node: a single agent, no srun of our own
    assert "--nodes 1 --agents 1 --nproc-per-agent 4" in text


def _tiny_overlay(path: Path) -> Path:
    overlay = {
        # plain loopback locally: this compares the SLURM launch with torchrun's (the emulated cluster has
        # its own test against loopback, tests/cluster/test_train_emulated.py)
        "cluster": {"emulate": False},
        "train": {
            "steps": 6,
            "agents_per_node": 2,  # two torchrun agents: srun + c10d rendezvous under SLURM
            "timing_warmup_steps": 1,
            "eval_batches": 2,
            "embeddings": {"tt_ranks": [4, 4], "tt_min_rows": 500, "optimizer": "adagrad", "lr": 0.05},
            "runs": [{"system": "ecorec", "algorithm": "ecorec", "tables": 6, "world": 2, "batch": 64}],
        },
    }
    path.write_text(yaml.safe_dump(overlay))
    return path


def _runs(folder: str, names: list[str]) -> list[str]:
    return ["runs"] if Path(folder).name == "results" else []


@pytest.mark.slurm
def test_training_through_the_slurm_profile_matches_the_local_run(slurm_cluster, tmp_path):
    from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

    dataset = tmp_path / "dataset"
    generate_synthetic_dataset(
        dataset,
        SyntheticConfig(num_tables=6, num_samples=1024, rows_min=40, rows_max=3000, num_dense=4, seed=2),
        row_group_size=256,
        splits={"train": 0.75, "val": 0.125, "test": 0.125},
    )
    overlay = _tiny_overlay(tmp_path / "overlay.yaml")
    record = Path("results/runs/synthetic/ecorec/ecorec/T6-R2-b64-W2/record.json")
    curves = {}
    for where in ("local", "slurm"):
        workdir = tmp_path / where
        if where == "local":
            shutil.copytree(dataset, workdir / "results" / "datasets" / "synthetic")
        else:  # the local run's dataset, statistics and plan (mtimes kept): under SLURM only the run itself
            shutil.copytree(tmp_path / "local" / "results", workdir / "results", ignore=_runs)
        args = ["train_runs", "--configfile", str(REPO_ROOT / "config.yaml"), str(overlay)]
        if where == "slurm":
            args += [
                "--workflow-profile",
                str(REPO_ROOT / "profiles" / "slurm"),
                "--jobs",
                "2",
                "--default-resources",
                f"slurm_partition={slurm_cluster.partition}",
                "--slurm-status-command",
                "squeue",
                "--slurm-init-seconds-before-status-checks",
                "1",
                "--seconds-between-status-checks",
                "2",
            ]
        else:
            args += ["--cores", "2"]
        run_snakemake(*args, workdir=workdir, timeout=300)
        curves[where] = json.loads((workdir / record).read_text())["metrics"]["loss_curve"]
        log = (workdir / "logs/train/synthetic/ecorec/ecorec/T6-R2-b64-W2.log").read_text()
        launch = [line for line in log.splitlines() if line.startswith("launch_torchrun.sh:")]
        if where == "slurm":
            assert "srun --nodes=1 --ntasks=2 --ntasks-per-node=2" in launch[0]
            assert "--rdzv-backend=c10d" in launch[0]
        else:
            assert "--standalone" in launch[0]
    assert len(curves["local"]) == 6
    assert curves["slurm"] == curves["local"]
