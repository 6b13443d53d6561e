"""Config keys without effect in the chosen mode / model kind / optimizer: errors naming the key, or warnings
that reach the run record; decided in one place (ecorec.config_effects)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from ecorec.config_effects import model_key_errors, parallel_key_errors, setting_warnings
from ecorec.train.config import ConfigError, RunConfig, config_warnings, run_config_from_dict
from ecorec.workflow import WorkflowConfig
from tests.workflow.snakemake_cli import REPO_ROOT

CONFIG = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())


def _run(**sections):
    data = {"dataset": {"path": "x"}, "parallel": {"world_size": 2}}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return run_config_from_dict(data, source="run.yaml", check_paths=False)


def test_parallel_keys_of_another_mode_are_errors():
    assert parallel_key_errors("twp", {"num_micro_keys": 4, "reorder": True, "sharding": "greedy"}) == []
    (message,) = parallel_key_errors("dp", {"sharding": "greedy"}, where="systems.x")
    assert message.startswith("systems.x.sharding: has no effect in mode 'dp' (read by mp, bwp, twp only)")
    assert len(parallel_key_errors("mp", {"num_micro_batches": 2, "skew_degree": 0.5})) == 2
    with pytest.raises(
        ConfigError, match="run.yaml: parallel.num_micro_batches: has no effect in mode 'twp'"
    ):
        _run(parallel={"mode": "twp", "num_micro_batches": 4})
    _run(parallel={"mode": "bwp", "num_micro_batches": 4})  # read there
    _run(parallel={"mode": "dp", "sharding": "greedy"})  # the default value counts as not set


def test_model_keys_of_another_kind_are_errors():
    assert model_key_errors({"kind": "dlrm", "interaction": "cat", "dense_arch": [8]}) == []
    with pytest.raises(ConfigError, match="model.deep_layers: has no effect with model kind 'dlrm'"):
        _run(model={"deep_layers": [8, 8]})
    with pytest.raises(ConfigError, match="model.dcn_num_layers: has no effect without interaction 'dcn'"):
        _run(model={"dcn_num_layers": 3})
    with pytest.raises(ConfigError, match="model.interaction: has no effect with model kind 'dcn'"):
        _run(model={"kind": "dcn", "interaction": "dot"})


def test_settings_kept_for_other_modes_are_warnings():
    bwp = _run(parallel={"mode": "bwp"}, embeddings={"update": "fused"})
    (warning,) = config_warnings(bwp)
    assert warning.startswith("embeddings.update: 'fused' has no effect in mode 'bwp'")
    assert config_warnings(_run(parallel={"mode": "twp"})) == []
    sgd = _run(embeddings={"optimizer": "sgd", "eps": 1e-3}, dense_optimizer={"kind": "sgd", "eps": 1e-3})
    assert [w.split(":")[0] for w in config_warnings(sgd)] == ["embeddings.eps", "dense_optimizer.eps"]
    defaults = RunConfig()
    embeddings = {**dataclasses.asdict(defaults.embeddings), "optimizer": "sgd"}
    dense = dataclasses.asdict(defaults.dense_optimizer)  # sgd
    kept = setting_warnings(mode="dp", embeddings=embeddings, dense_optimizer=dense)
    assert len(kept) == 2  # without defaults, a present key counts as set
    assert (
        setting_warnings(
            mode="dp",
            embeddings=embeddings,
            dense_optimizer=dense,
            embedding_defaults=dataclasses.asdict(defaults.embeddings),
            dense_defaults=dense,
        )
        == []
    )


def test_workflow_config_names_the_system_key():
    systems = {**CONFIG["systems"], "bad": {"mode": "dp", "num_micro_keys": 4}}
    with pytest.raises(ValueError, match="systems.bad.num_micro_keys: has no effect in mode 'dp'"):
        WorkflowConfig({**CONFIG, "systems": systems}, REPO_ROOT)
    model = {**CONFIG["train"]["model"], "cross_layers": 2}
    with pytest.raises(ValueError, match="train.model.cross_layers: has no effect with model kind 'dlrm'"):
        WorkflowConfig({**CONFIG, "train": {**CONFIG["train"], "model": model}}, REPO_ROOT)
