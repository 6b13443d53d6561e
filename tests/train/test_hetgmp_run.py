"""A whole ``hetgmp`` training run under torchrun (2 ranks, gloo) on a tiny synthetic dataset partitioned by
HET-GMP's refinement, and a partition made for another world size stopped before any worker starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ecorec.planner.partition import partition_dataset

REPO = Path(__file__).resolve().parents[2]


def _launch(config: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHON"] = sys.executable
    cmd = ["bash", str(REPO / "workflow_scripts" / "launch_torchrun.sh"), "--config", str(config)]
    return subprocess.run(
        [*cmd, "--nproc-per-agent", "2"], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

    path = tmp_path_factory.mktemp("data") / "synthetic"
    generate_synthetic_dataset(
        path,
        SyntheticConfig(
            num_tables=4,
            num_samples=1024,
            rows_min=40,
            rows_max=800,
            num_dense=4,
            mean_pooling=2.0,
            reference_batch_size=128,
            seed=3,
        ),
        row_group_size=128,
        splits={"train": 0.75, "val": 0.125, "test": 0.125},
    )
    return path


def _config(tmp_path: Path, dataset: Path, partition: Path, name: str, world: int = 2) -> Path:
    data = {
        "run": {"seed": 5, "output_dir": str(tmp_path / name)},
        "dataset": {"path": str(dataset), "prefetch": 1},
        "model": {"kind": "wide_deep", "embedding_dim": 8, "deep_layers": [16, 16]},
        "embeddings": {"algorithm": "none", "optimizer": "sgd", "lr": 0.1},
        "dense_optimizer": {"kind": "sgd", "lr": 0.1},
        "parallel": {"mode": "hetgmp", "world_size": world},
        "hetgmp": {"partition": str(partition), "store_rate": 0.05, "bound": 2, "prefetch": True},
        "train": {"global_batch_size": 64, "steps": 8, "eval_batches": 2, "timing_warmup_steps": 1},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_hetgmp_run_record(tmp_path, dataset):
    part = tmp_path / "part.npz"
    header = partition_dataset(dataset, part, world_size=2, method="hetgmp", batch_size=32, gpus_per_node=1)
    proc = _launch(_config(tmp_path, dataset, part, "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "record.json").read_text())["metrics"]
    h = metrics["hetgmp"]
    assert metrics["mode"] == "hetgmp" and len(metrics["loss_curve"]) == 8
    assert h["partition"] == "hetgmp" and h["max_staleness"] <= 2
    assert len(h["remote_rows_per_step"]) == 2 and h["remote_rows_per_step_mean"] > 0
    assert all(m > 0 for m in h["mirror_bytes"]) and h["mirror_rows"][0] > 0
    assert set(metrics["final_auroc"]) == {"val", "test"}
    assert header["samples_per_rank"] == [int(x) for x in header["samples_per_rank"]]


def test_partition_of_another_world_size_is_rejected(tmp_path, dataset):
    part = tmp_path / "part4.npz"
    partition_dataset(dataset, part, world_size=4, method="random")
    proc = _launch(_config(tmp_path, dataset, part, "bad"))
    assert proc.returncode != 0
    assert "hetgmp.partition" in proc.stderr and "world_size is 4 but this run needs 2" in proc.stderr
