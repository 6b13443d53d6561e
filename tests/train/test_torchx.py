"""The torchx component of ``ecorec.train``: a tiny 2-rank CPU run launched with ``torchx run -s local_cwd``
finishes and writes its record; the SLURM scheduler renders a multi-node torchrun job from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_torchx_local_cwd_runs_a_two_rank_job(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "run": {"seed": 1, "output_dir": str(tmp_path / "out")},
                "dataset": {
                    "source": "random",
                    "random": {
                        "num_embeddings_per_feature": [1200, 40, 300],
                        "pooling": [2],
                        "num_dense": 4,
                        "train_samples": 512,
                        "val_samples": 128,
                        "test_samples": 0,
                    },
                },
                "model": {"embedding_dim": 8, "dense_arch": [16, 8], "over_arch": [16, 1]},
                "embeddings": {"algorithm": "ecorec", "tt_ranks": [4, 4], "tt_min_rows": 1000},
                "parallel": {"mode": "dp", "world_size": 2},
                "train": {"global_batch_size": 64, "epochs": 1, "eval_batches": 1, "eval_splits": ["val"]},
            }
        )
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    torchx = str(Path(sys.executable).parent / "torchx")
    cmd = [
        torchx, "run", "-s", "local_cwd", "-cfg", f"log_dir={tmp_path / 'logs'}",
        "ecorec/torchx_components.py:train", "--config", str(config), "-j", "1x2",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SUCCEEDED" in done.stdout + done.stderr
    metrics = json.loads((tmp_path / "out" / "record.json").read_text())["metrics"]
    assert metrics["world_size"] == 2 and metrics["steps"] == 8  # 512 / 64: one epoch
    assert (tmp_path / "out" / "logs" / "rank1.log").exists()


def test_torchx_slurm_job_is_multi_node_torchrun():
    from torchx.schedulers.slurm_scheduler import create_scheduler

    from ecorec.torchx_components import train

    app = train("--stop-after-steps", "5", config="run.yaml", j="2x4", gpu=4, resume=True)
    script = str(create_scheduler("test").submit_dryrun(app, {"partition": "gpu", "time": "60"}))
    assert "#SBATCH hetjob" in script and "--gpus-per-task=4" in script
    assert script.count("--nnodes 2 --nproc_per_node 4") == 2
    assert "-m ecorec.train --config run.yaml --resume --stop-after-steps 5" in script
