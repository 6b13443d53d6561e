"""Run configurations: a bad one fails at load time with the file and the field in the message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ecorec.train import ConfigError, load_run_config, run_config_from_dict


@pytest.fixture
def dataset_dir(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "metadata.json").write_text("{}")
    return folder


def _base(dataset_dir) -> dict:
    return {
        "run": {"seed": 1, "output_dir": "out"},
        "dataset": {"path": str(dataset_dir)},
        "parallel": {"mode": "twp", "world_size": 2, "num_micro_keys": 2},
        "train": {"global_batch_size": 64, "steps": 3},
    }


def _load(tmp_path, data) -> object:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_run_config(path)


def test_valid_config_loads_with_defaults(tmp_path, dataset_dir):
    cfg = _load(tmp_path, _base(dataset_dir))
    assert cfg.parallel.mode == "twp" and cfg.parallel.num_micro_keys == 2
    assert cfg.model.kind == "dlrm" and cfg.embeddings.algorithm == "ecorec"
    assert cfg.to_dict()["train"]["global_batch_size"] == 64
    assert cfg.features_of(["a", "b"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        (
            "parallel",
            "mode",
            "pipeline",
            "parallel.mode: 'pipeline' is not one of dp, mp, bwp, twp, torchrec",
        ),
        ("parallel", "stages", 3, "parallel.stages: unknown field"),
        ("train", "steps", "ten", "train.steps: expected an integer"),
        ("train", "steps", 0, "train.steps: must be >= 1"),
        (
            "parallel",
            "world_size",
            3,
            "train.global_batch_size: 64 is not divisible by parallel.world_size=3",
        ),
        ("parallel", "skew_degree", 1.5, "parallel.skew_degree: must be in [0, 1]"),
        ("embeddings", "tt_ranks", [8, "x"], "embeddings.tt_ranks[1]: expected an integer"),
        ("embeddings", "update", "lazy", "embeddings.update: 'lazy' is not one of fused, plain"),
        ("model", "interaction", "attention", "model.interaction"),
        ("dense_optimizer", "kind", "lamb", "dense_optimizer.kind"),
        ("run", "device", "tpu", "run.device"),
        ("train", "target_auc", 0.8, "train.target_auc: needs 'val'"),
        ("model", "over_arch", [64, 2], "model.over_arch: needs >= 2 positive layer sizes ending in 1"),
        (
            "model",
            "dense_arch",
            [64, 8],
            "model.dense_arch: positive layer sizes ending in model.embedding_dim=16",
        ),
    ],
)
def test_bad_fields_are_named(tmp_path, dataset_dir, section, key, value, message):
    data = _base(dataset_dir)
    data.setdefault(section, {})[key] = value
    if key == "target_auc":
        data["train"]["eval_splits"] = ["test"]
    with pytest.raises(ConfigError, match=f"run.yaml: {message}".replace("[", r"\[").replace("]", r"\]")):
        _load(tmp_path, data)


def test_unknown_section_and_missing_dataset(tmp_path, dataset_dir):
    data = _base(dataset_dir)
    data["trainer"] = {}
    with pytest.raises(ConfigError, match="run.yaml: trainer: unknown section"):
        _load(tmp_path, data)
    data = _base(dataset_dir)
    data["dataset"]["path"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="dataset.path: .*nowhere is not a dataset folder"):
        _load(tmp_path, data)
    with pytest.raises(ConfigError, match="cannot read the run config"):
        load_run_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"parallel": {"mode": "torchrec"}, "embeddings": {"algorithm": "ecorec", "update": "plain"}},
            "embeddings.update: mode 'torchrec' always fuses",
        ),
        (
            {"parallel": {"mode": "twp", "num_micro_uidx": 4}, "embeddings": {"algorithm": "fbtt"}},
            "num_micro_uidx",
        ),
        (
            {"parallel": {"mode": "bwp", "num_micro_batches": 5}},
            "parallel.num_micro_batches: the local batch 32",
        ),
        ({"lr_schedule": {"warmup_steps": 10, "decay_start_step": 5, "decay_steps": 5}}, "decay_start_step"),
        (
            {"lr_schedule": {"decay_steps": 5, "decay_end_lr": 0.0}},
            "lr_schedule.decay_end_lr: fused TT updates",
        ),
        ({"dataset": {"num_tables": 3, "features": ["a"]}}, "dataset.num_tables: give either"),
        (
            {"embeddings": {"tt_init": "xavier"}},
            "embeddings.tt_init: 'xavier' is not one of sampled_gaussian",
        ),
        ({"embeddings": {"tt_init": "uniform", "tt_init_std": 0.1}}, "embeddings.tt_init_std: not used"),
        ({"embeddings": {"tt_init_std": -1.0}}, "embeddings.tt_init_std: must be > 0"),
    ],
)
def test_inconsistent_settings_are_named(dataset_dir, changes, message):
    data = _base(dataset_dir)
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    with pytest.raises(ConfigError, match=message):
        run_config_from_dict(data, "cfg")


@pytest.mark.parametrize("algorithm", ["none", "ecorec"])
def test_torchrec_mode_takes_uncompressed_and_tt_tables(dataset_dir, algorithm):
    # none: TorchRec's EBC (the torchrec system); a TT algorithm: its DMP over TT tables (torchrec_tt)
    data = {**_base(dataset_dir), "parallel": {"mode": "torchrec", "world_size": 2}}
    data["embeddings"] = {"algorithm": algorithm}
    cfg = run_config_from_dict(data, "cfg")
    assert (cfg.parallel.mode, cfg.embeddings.algorithm) == ("torchrec", algorithm)


def test_features_subset_checks_the_dataset(dataset_dir):
    cfg = run_config_from_dict({**_base(dataset_dir), "dataset": {"path": str(dataset_dir), "num_tables": 2}})
    assert cfg.features_of(["a", "b", "c"]) == ["a", "b"]
    with pytest.raises(ConfigError, match="dataset.num_tables: 2 but the dataset has 1 tables"):
        cfg.features_of(["a"])
    cfg = run_config_from_dict(
        {**_base(dataset_dir), "dataset": {"path": str(dataset_dir), "features": ["z"]}}
    )
    with pytest.raises(ConfigError, match=r"dataset.features: not in the dataset: \['z'\]"):
        cfg.features_of(["a"])


def test_the_readme_run_config_is_valid():
    """The README's run.yaml (section "Training") is a valid run config, with the schedule as fractions."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Training", 1)[1]
    text = re.search(r"```yaml\n(run: \{seed: 0.*?)```", section, re.S).group(1)
    cfg = run_config_from_dict(yaml.safe_load(text), "README.md run.yaml", check_paths=False)
    assert cfg.lr_schedule.resolve(cfg.train.steps) == (5, 15, 15)  # 15 % (4.5 rounds up) / 50 % / 50 % of 30
    assert cfg.train.eval_batches == 0 and cfg.train.eval_splits == ["val", "test"]
    with pytest.raises(
        ConfigError, match="parallel.mode: 'pipeline' is not one of dp, mp, bwp, twp, torchrec, hetgmp"
    ):
        run_config_from_dict(
            {**yaml.safe_load(text), "parallel": {"mode": "pipeline"}}, "run.yaml", check_paths=False
        )
