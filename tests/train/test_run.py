"""Whole training runs under torchrun (2 ranks, gloo, a tiny synthetic dataset): the run record, exact resume
after an interruption, and bad configurations stopped by the launcher before any worker starts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "workflow_scripts" / "launch_torchrun.sh"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHON"] = sys.executable
    return env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

    path = tmp_path_factory.mktemp("data") / "synthetic"
    generate_synthetic_dataset(
        path,
        SyntheticConfig(
            num_tables=6,
            num_samples=2048,
            rows_min=40,
            rows_max=3000,
            num_dense=4,
            mean_pooling=2.0,
            reference_batch_size=256,
            seed=3,
        ),
        row_group_size=256,
        splits={"train": 0.75, "val": 0.125, "test": 0.125},
    )
    return path


def _config(tmp_path: Path, dataset_dir: Path, name: str, **changes) -> Path:
    data = {
        "run": {"seed": 5, "output_dir": str(tmp_path / name)},
        "dataset": {"path": str(dataset_dir), "prefetch": 1},
        "model": {"embedding_dim": 8, "dense_arch": [16, 8], "over_arch": [16, 1]},
        "embeddings": {
            "algorithm": "ecorec",
            "tt_ranks": [4, 4],
            "tt_min_rows": 500,
            "optimizer": "adagrad",
            "lr": 0.05,
        },
        "dense_optimizer": {"kind": "adam", "lr": 0.005},
        "lr_schedule": {"warmup_steps": 2, "decay_start_step": 6, "decay_steps": 6, "decay_end_lr": 0.001},
        "parallel": {
            "mode": "twp",
            "world_size": 2,
            "sharding": "round_robin",
            "num_micro_keys": 2,
            "reorder": True,
            "skew_degree": 0.5,
        },
        "train": {
            "global_batch_size": 128,
            "steps": 12,
            "eval_batches": 2,
            "checkpoint_every": 4,
            "timing_warmup_steps": 1,
            "timing_windows": 3,
        },
    }
    for section, values in changes.items():  # a value of None removes the key
        merged = {**data.get(section, {}), **values}
        data[section] = {key: value for key, value in merged.items() if value is not None}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _launch(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", str(LAUNCHER), "--config", str(config), "--nproc-per-agent", "2"]
    if extra:
        cmd += ["--", *extra]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)


def _process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, dataset) -> Path:
    """The uninterrupted run (12 steps, checkpoints every 4): its output folder."""
    tmp_path = tmp_path_factory.mktemp("full")
    full = _launch(_config(tmp_path, dataset, "full"))
    assert full.returncode == 0, full.stderr[-3000:]
    return tmp_path / "full"


@pytest.mark.slow
def test_run_killed_mid_training_resumes_to_the_uninterrupted_loss_curve(tmp_path, dataset, full_run):
    """SIGKILL to every process of the torchrun job (agent and workers) right after its first checkpoint is
    published, while it trains on (and may be writing the next checkpoint); --resume then ends exactly as the
    run that was never killed."""
    config = _config(tmp_path, dataset, "killed")
    cmd = ["bash", str(LAUNCHER), "--config", str(config), "--nproc-per-agent", "2"]
    job = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    latest = tmp_path / "killed" / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 240
    while not latest.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert latest.exists(), job.communicate(timeout=60)[1].decode()[-3000:]
    for pid in _process_tree(job.pid):  # torchrun starts its workers in sessions of their own
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    job.wait(timeout=60)
    assert not (tmp_path / "killed" / "record.json").exists(), "the run ended before it could be killed"
    killed_at = json.loads(latest.read_text())["step"]

    resumed = _launch(config, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((full_run / "record.json").read_text())["metrics"]
    again = json.loads((tmp_path / "killed" / "record.json").read_text())["metrics"]
    assert again["resumed_from_step"] == killed_at >= 4
    assert again["loss_curve"] == record["loss_curve"]
    assert again["final_auroc"] == record["final_auroc"]


@pytest.mark.slow  # the uninterrupted run (shared)
def test_the_record_of_a_run(full_run):
    """What the uninterrupted run's record holds (its resume is tested above, on a SIGKILLed launch)."""
    record = json.loads((full_run / "record.json").read_text())
    metrics = record["metrics"]
    assert len(metrics["loss_curve"]) == 12 and metrics["resumed_from_step"] is None

    # what the record holds
    assert record["config"]["parallel"]["mode"] == "twp"
    assert record["environment"]["world_size"] == 2
    timing = metrics["timing"]
    assert len(timing["windows"]) == 3 and sum(w["num_steps"] for w in timing["windows"]) == 11
    assert timing["median_s"] > 0 and timing["p90_s"] >= timing["median_s"] and timing["samples_per_s"] > 0
    memory = metrics["peak_memory_bytes"]
    assert (
        len(memory["per_rank"]) == 2
        and memory["max"] == max(memory["per_rank"])
        and memory["kind"] == "max_rss"
    )
    assert set(metrics["final_auroc"]) == {"val", "test"}
    assert all(0.0 <= v <= 1.0 for v in metrics["final_auroc"].values())
    assert sorted(t for tables in metrics["plan"].values() for t in tables) == [f"f{i}" for i in range(6)]
    assert all(len(groups) == 2 for groups in metrics["stages"].values())
    assert (full_run / "logs" / "rank1.log").is_file()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"parallel": {"mode": "hybrid"}}, "parallel.mode"),
        ({"parallel": {"num_micro_keys": 6, "allow_fewer_stages": False}}, "parallel.num_micro_keys"),
        ({"dataset": {"path": "/nonexistent/dataset"}}, "dataset.path"),
        (
            {"model": {"kind": "dcn", "cross_layers": 0, "dense_arch": None, "over_arch": None}},
            "model: DCN needs >= 1 cross layer",
        ),
    ],
)
def test_bad_config_fails_before_any_worker_starts(tmp_path, dataset, changes, field):
    config = _config(tmp_path, dataset, "bad", **changes)
    proc = _launch(config)
    assert proc.returncode == 2
    assert field in proc.stderr
    # the launcher prints every command it execs: torchrun was never started
    assert "torch.distributed.run" not in proc.stderr
    assert not (tmp_path / "bad" / "logs").exists()


@pytest.mark.slow
def test_run_stops_once_val_auroc_reaches_the_target(tmp_path, dataset, full_run):
    config = _config(
        tmp_path,
        dataset,
        "target",
        train={
            "steps": 16,
            "eval_every": 2,
            "target_auc": 0.5,
            "checkpoint_every": 0,
            "timing_warmup_steps": 0,
        },
    )
    proc = _launch(config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "target" / "record.json").read_text())["metrics"]
    on_the_way = metrics["eval"][: -len(metrics["final_auroc"])]  # the final evaluations come last
    val = [e for e in on_the_way if e["split"] == "val"]
    assert metrics["stopped_early"] and metrics["steps"] < 16 and metrics["steps"] == 2 * len(val)
    # (this seeded run's val AUROC climbs from 0.486 after step 2 to 0.5003 after step 12: it stops there)
    assert val[-1]["auroc"] >= 0.5 and all(e["auroc"] < 0.5 for e in val[:-1])
    # evaluating on the way changes nothing of the training: the curve is the uninterrupted run's prefix
    full = json.loads((full_run / "record.json").read_text())["metrics"]["loss_curve"]
    assert metrics["loss_curve"] == full[: metrics["steps"]]


@pytest.mark.slow
def test_resume_refuses_another_config_and_resume_from_fine_tunes(tmp_path, dataset, full_run):
    """--resume on a checkpoint of a different config fails naming the keys (in every rank's log too) and
    writes no record; --resume-from loads the same weights on purpose and evaluates every sample of the
    splits (G = 96 does not divide the 256 val / test samples: the last batch is padded and masked)."""
    changed = tmp_path / "changed"
    shutil.copytree(full_run / "checkpoints", changed / "checkpoints")
    proc = _launch(_config(tmp_path, dataset, "changed", embeddings={"lr": 0.1}), "--resume")
    assert proc.returncode != 0
    assert "differing keys: embeddings.lr: 0.05 -> 0.1" in proc.stderr
    for rank in (0, 1):
        log = (changed / "logs" / f"rank{rank}.log").read_text()
        assert f"rank {rank} failed: CheckpointError" in log and "embeddings.lr: 0.05 -> 0.1" in log
    assert not (changed / "record.json").exists()

    config = _config(
        tmp_path,
        dataset,
        "finetune",
        embeddings={"lr": 0.1, "tt_lr": 0.02},
        train={"steps": 2, "global_batch_size": 96, "eval_batches": 0, "checkpoint_every": 0},
    )
    proc = _launch(config, "--resume-from", str(full_run / "checkpoints"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "config differs (intended)" in proc.stderr
    metrics = json.loads((tmp_path / "finetune" / "record.json").read_text())["metrics"]
    assert metrics["resumed_from_step"] is None and len(metrics["loss_curve"]) == 2
    (tmp_path / "fresh.yaml").write_text(  # the same config, from the initial weights
        config.read_text().replace(str(tmp_path / "finetune"), str(tmp_path / "fresh"))
    )
    fresh = _launch(tmp_path / "fresh.yaml")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    fresh_curve = json.loads((tmp_path / "fresh" / "record.json").read_text())["metrics"]["loss_curve"]
    assert metrics["loss_curve"][0] != fresh_curve[0]  # trained weights, not the initial ones
    final = [e for e in metrics["eval"] if e["step"] == 2]
    assert sorted((e["split"], e["samples"]) for e in final) == [("test", 256), ("val", 256)]

    # the record lists every table's kind, parameters and compression (tt_min_rows 500, ranks [4, 4], D 8)
    from ecorec.data import read_metadata
    from ecorec.tt import TTShapes

    rows = read_metadata(dataset).num_embeddings
    tables = metrics["tables"]
    assert [t["table"] for t in tables] == [f"f{i}" for i in range(6)]
    for t in tables:
        n = rows[t["table"]]
        tt_params = TTShapes.from_sizes(n, 8, [4, 4]).num_parameters()
        is_tt = n >= 500 and tt_params <= n * 8
        assert t["kind"] == ("tt" if is_tt else "uncompressed")
        assert t["parameters"] == (tt_params if is_tt else n * 8)
        assert t["compression"] == pytest.approx(n * 8 / t["parameters"])
    assert metrics["num_tt_tables"] == sum(t["kind"] == "tt" for t in tables) >= 1
    log = (tmp_path / "finetune" / "logs" / "rank0.log").read_text()
    assert all(f"table {t['table']}: {t['kind']}, {t['parameters']} parameters" in log for t in tables)


@pytest.mark.slow
def test_one_launch_trains_several_runs_each_as_if_alone(tmp_path, dataset, full_run):
    """Two --config files in one torchrun launch (the pipeline's one launch per figure point): the second
    run's loss curve and AUROC equal the same run launched alone, and the first (mp) meters exactly the
    bytes its all-to-alls and all-reduce move: each rank sends its tables' pooled [b, D] blocks forward and
    the other rank's gradient blocks backward (b x T x D x 4 bytes for 2 ranks), and the ring all-reduce
    2 (W - 1) / W of the head's gradients."""
    mp = _config(tmp_path, dataset, "mp", parallel={"mode": "mp", "num_micro_keys": None, "reorder": None,
                 "skew_degree": None}, train={"checkpoint_every": 0})  # fmt: skip
    again = tmp_path / "again.yaml"
    again.write_text(
        (full_run.parent / "full.yaml").read_text().replace(str(full_run), str(tmp_path / "again"))
    )
    cmd = ["bash", str(LAUNCHER), "--config", str(mp), "--config", str(again), "--nproc-per-agent", "2"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    alone = json.loads((full_run / "record.json").read_text())["metrics"]
    shared = json.loads((tmp_path / "again" / "record.json").read_text())["metrics"]
    assert shared["loss_curve"] == alone["loss_curve"] and shared["final_auroc"] == alone["final_auroc"]
    assert "earlier runs of its launch" in shared["peak_memory_bytes"]["kind"]

    record = json.loads((tmp_path / "mp" / "record.json").read_text())
    comm = record["metrics"]["comm"]
    b, tables, dim = 64, 6, 8
    assert comm["bytes_by_kind"]["all_to_all"] == b * tables * dim * 4
    from ecorec.models import ModelSettings, head_parameters

    model = record["config"]["model"]
    settings = ModelSettings(
        embedding_dim=dim,
        dense_arch=tuple(model["dense_arch"]),
        over_arch=tuple(model["over_arch"]),
        interaction=model["interaction"],
    )
    assert comm["bytes_by_kind"]["all_reduce"] == head_parameters(settings, 4, tables) * 4  # 2 (2-1)/2 = 1
    assert 0.0 <= comm["exposed_share"] < 1.0 and comm["ranks_per_node"] == 2
    assert comm["bytes_off_node"] == 0  # both ranks on this one node
