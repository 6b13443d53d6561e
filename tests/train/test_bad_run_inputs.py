"""Bad inputs of a training run, fed through ``python -m ecorec.train`` (``--prepare``, what the launcher runs
before any worker starts) or an in-process one-rank run: each error names the file or the field and the fix,
nothing is silently wrong, and what opting out of a check skips is written in the record."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from ecorec.data import DataFormatError, read_metadata
from ecorec.train.__main__ import main as train_main
from ecorec.train.config import run_config_from_dict
from ecorec.train.sources import UNVERIFIED_WARNING
from ecorec.utils import DiskFullError
from tests.train.conftest import free_port


@pytest.fixture(scope="module")
def clean_dataset(tmp_path_factory):
    from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

    path = tmp_path_factory.mktemp("data") / "synthetic"
    generate_synthetic_dataset(
        path,
        SyntheticConfig(
            num_tables=3, num_samples=1024, rows_min=40, rows_max=1500, num_dense=4, reference_batch_size=128
        ),
        row_group_size=128,
        samples_per_file=512,
        splits={"train": 0.75, "val": 0.25},
    )
    return path


@pytest.fixture
def dataset(tmp_path, clean_dataset):
    path = tmp_path / "ds"
    shutil.copytree(clean_dataset, path)
    return path


def _run_dict(tmp_path, dataset_dir, **changes) -> dict:
    data = {
        "run": {"seed": 1, "output_dir": str(tmp_path / "run")},
        "dataset": {"path": str(dataset_dir), "prefetch": 0},
        "model": {"embedding_dim": 8, "dense_arch": [16, 8], "over_arch": [16, 1]},
        "embeddings": {"algorithm": "ecorec", "tt_ranks": [4, 4], "tt_min_rows": 1000},
        "parallel": {"mode": "dp", "world_size": 1},
        "train": {"global_batch_size": 64, "steps": 4, "eval_batches": 1, "timing_warmup_steps": 1},
    }
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    return data


def _write(tmp_path, data, name="run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _prepare(config, capsys) -> str:
    assert train_main(["--config", str(config), "--prepare"]) == 2
    return capsys.readouterr().err


def _flip_labels(dataset):
    """Labels flipped in the first part file, metadata.json untouched (what once trained silently)."""
    meta = read_metadata(dataset)
    part = dataset / meta.files[0].path
    table = pq.read_table(part)
    flipped = table.set_column(0, "label", pc.subtract(1.0, table.column("label")).cast("float32"))
    pq.write_table(flipped, part, row_group_size=meta.row_group_size)
    return part


def test_prepare_refuses_flipped_labels(tmp_path, dataset, capsys):
    config = _write(tmp_path, _run_dict(tmp_path, dataset))
    part = _flip_labels(dataset)
    err = _prepare(config, capsys)
    assert f"{config}: dataset.path: {part}: " in err and "mismatch" in err and "rebuild the dataset" in err


def test_prepare_refuses_an_edited_checksum(tmp_path, dataset, capsys):
    """Only the checksum edited: metadata.json no longer matches the intact file."""
    obj = json.loads((dataset / "metadata.json").read_text())
    obj["files"][1]["sha256"] = "f" * 64
    (dataset / "metadata.json").write_text(json.dumps(obj))
    err = _prepare(_write(tmp_path, _run_dict(tmp_path, dataset)), capsys)
    assert f"{dataset / obj['files'][1]['path']}: sha256 mismatch: expected {'f' * 64}" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("parallel:\n  mode: dp\nparallel:\n  world_size: 1\n", ":3:1: key 'parallel' appears twice"),
        ("train:\n  steps: 3\n\tglobal_batch_size: 64\n", ":3:1: not valid YAML"),
    ],
    ids=["duplicate-section", "tab"],
)
def test_run_yaml_problems_name_file_line_and_column(tmp_path, capsys, text, expected):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    assert f"{config}{expected}" in _prepare(config, capsys)


def test_further_run_file_problems(tmp_path, capsys):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"run: {name: caf\xe9}\n")
    assert f"{latin1}: not UTF-8 text (byte 15)" in _prepare(latin1, capsys)
    random_source = {"source": "random", "random": {"num_embeddings_per_feature": [10, 20]}}
    two = _write(
        tmp_path, {"dataset": random_source, "parallel": {"mode": "dp", "world_size": 2}}, "two.yaml"
    )
    assert (
        train_main(["--config", str(two), "--prepare", "--world-size", "1"]) == 2
    )  # launch_torchrun.sh's check
    err = capsys.readouterr().err
    assert f"{two}: parallel.world_size is 2 but the launch starts 1 ranks: set parallel.world_size: 1" in err
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert f"{empty}: the run config is empty" in _prepare(empty, capsys)
    twice = _write(tmp_path, {"dataset": {**random_source, "features": ["f0", "f0"]}}, "twice.yaml")
    assert "dataset.features: ['f0'] listed more than once" in _prepare(twice, capsys)  # once passed silently


def test_a_feature_no_file_holds_names_the_metadata_field(tmp_path, dataset, capsys):
    obj = json.loads((dataset / "metadata.json").read_text())
    obj["features"].append("f4")
    obj["num_embeddings"]["f4"] = 10
    (dataset / "metadata.json").write_text(json.dumps(obj))
    err = _prepare(_write(tmp_path, _run_dict(tmp_path, dataset)), capsys)
    assert "metadata.json: field 'features': lists feature 'f4', but no file of 'files' holds column" in err
    assert "covers samples [0, 0)" not in err


def test_a_partition_that_is_not_one_says_what_it_should_be(tmp_path, dataset, capsys):
    bogus = tmp_path / "partition.npz"
    bogus.write_bytes(pickle.dumps({"data_partition": [0, 1]}))
    data = _run_dict(
        tmp_path,
        dataset,
        embeddings={"algorithm": "none", "optimizer": "sgd"},
        parallel={"mode": "hetgmp", "world_size": 1},
        hetgmp={"partition": str(bogus)},
    )
    err = _prepare(_write(tmp_path, data), capsys)
    assert f"hetgmp.partition: {bogus}: not a partition file: it is a Python pickle" in err
    assert "python -m ecorec.planner.partition" in err and "allow_pickle" not in err


def test_a_changed_file_stops_the_run_before_training_unless_opted_out(tmp_path, dataset, single_process):
    from ecorec.train.loop import run_training

    part = _flip_labels(dataset)
    with pytest.raises(DataFormatError, match=f"^{part}: "):
        run_training(run_config_from_dict(_run_dict(tmp_path, dataset)))
    assert not (tmp_path / "run" / "record.json").exists()
    os.environ["MASTER_PORT"] = str(free_port())
    record = run_training(run_config_from_dict(_run_dict(tmp_path, dataset, dataset={"verify": False})))
    m = record["metrics"]
    assert m["dataset_verification"] == {"verified": False, "reason": "dataset.verify: false"}
    assert UNVERIFIED_WARNING in m["config_warnings"] and record["config"]["dataset"]["verify"] is False


@pytest.fixture
def full_disk(tmp_path):
    """A 96 KiB tmpfs: room for the logs, not for a checkpoint (needs root to mount)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    command = ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)]
    proc = subprocess.run(command, capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_while_checkpointing_names_the_path(tmp_path, dataset, single_process, full_disk):
    from ecorec.train.loop import run_training

    data = _run_dict(
        tmp_path,
        dataset,
        run={"output_dir": str(full_disk / "run")},
        embeddings={"algorithm": "none", "optimizer": "adagrad"},  # uncompressed rows + state: > 96 KiB
        train={"checkpoint_every": 2},
    )
    step = full_disk / "run" / "checkpoints" / "step-00000002"
    with pytest.raises(DiskFullError, match=rf"checkpoint of step 2: no space left on {step} while writing"):
        run_training(run_config_from_dict(data))
    checkpoints = full_disk / "run" / "checkpoints"
    assert not (checkpoints / "latest.json").exists()  # nothing a --resume would trust
    assert not [p for p in checkpoints.rglob("*") if p.is_file()]  # no partial rank file
