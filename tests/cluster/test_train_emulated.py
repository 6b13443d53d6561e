"""A short training run on the emulated cluster (2 nodes x 1 rank, a shaped link) against the same run on
plain loopback, both started by workflow_scripts/launch_torchrun.sh: the loss curves are identical (only time
changes), and the record states the cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import needs_net_admin

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "workflow_scripts" / "launch_torchrun.sh"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

    path = tmp_path_factory.mktemp("data") / "synthetic"
    generate_synthetic_dataset(
        path,
        SyntheticConfig(num_tables=4, num_samples=1024, rows_min=40, rows_max=2000, num_dense=4,
                        mean_pooling=2.0, reference_batch_size=128, seed=3),
        row_group_size=128,
        splits={"train": 0.75, "val": 0.125, "test": 0.125},
    )  # fmt: skip
    return path


def _run(tmp_path: Path, dataset: Path, name: str, emulate: str | None) -> dict:
    config = {
        "run": {"seed": 5, "output_dir": str(tmp_path / name)},
        "dataset": {"path": str(dataset), "prefetch": 1},
        "model": {"embedding_dim": 8, "dense_arch": [16, 8], "over_arch": [16, 1]},
        "embeddings": {"algorithm": "ecorec", "tt_ranks": [4, 4], "tt_min_rows": 500, "optimizer": "adagrad",
                       "lr": 0.05},
        "dense_optimizer": {"kind": "adam", "lr": 0.005},
        "parallel": {"mode": "twp", "world_size": 2, "sharding": "round_robin", "num_micro_keys": 2},
        "train": {"global_batch_size": 128, "steps": 5, "eval_batches": 1, "timing_warmup_steps": 1,
                  "timing_windows": 3},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = ["bash", str(LAUNCHER), "--python", sys.executable, "--config", str(path), "--nproc-per-agent", "2"]
    if emulate:
        cmd += ["--emulate", emulate]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((tmp_path / name / "record.json").read_text())


@pytest.mark.slow
@needs_net_admin
def test_emulated_run_has_the_loss_curve_of_the_loopback_run(tmp_path: Path, dataset: Path) -> None:
    plain = _run(tmp_path, dataset, "plain", None)
    emulated = _run(tmp_path, dataset, "emulated", "--nodes 2 --ranks-per-node 1 --link-gbit 0.2")
    assert plain["metrics"]["cluster"] is None
    cluster = emulated["metrics"]["cluster"]
    assert cluster["emulated"] is True and cluster["nodes"] == 2 and cluster["link_gbit"] == 0.2
    assert len(plain["metrics"]["loss_curve"]) == 5
    assert emulated["metrics"]["loss_curve"] == plain["metrics"]["loss_curve"]
    assert emulated["metrics"]["final_auroc"] == plain["metrics"]["final_auroc"]
