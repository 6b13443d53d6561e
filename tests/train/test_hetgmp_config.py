"""The run config's ``hetgmp`` section: checked, and rejected where it has no effect."""

from __future__ import annotations

import pytest

from ecorec.train.config import ConfigError, run_config_from_dict


def _cfg(**changes):
    data = {
        "dataset": {"path": "/data"},
        "embeddings": {"algorithm": "none", "optimizer": "sgd"},
        "parallel": {"mode": "hetgmp", "world_size": 2},
        "hetgmp": {"partition": "/p.npz", "store_rate": 0.01, "bound": 10},
        "train": {"global_batch_size": 8},
    }
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    return run_config_from_dict(data, "run.yaml", check_paths=False)


def test_valid_hetgmp_config():
    cfg = _cfg()
    assert cfg.hetgmp.bound == 10 and cfg.hetgmp.store_rate == 0.01 and cfg.parallel.mode == "hetgmp"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hetgmp": {"partition": None}}, "run.yaml: hetgmp.partition: required"),
        ({"hetgmp": {"store_rate": 1.5}}, "run.yaml: hetgmp.store_rate: must be in"),
        ({"hetgmp": {"bound": -1}}, "run.yaml: hetgmp.bound: must be >= 0"),
        ({"embeddings": {"algorithm": "ecorec"}}, "run.yaml: embeddings.algorithm: mode 'hetgmp'"),
        ({"embeddings": {"optimizer": "adagrad"}}, "run.yaml: embeddings.optimizer: mode 'hetgmp'"),
        ({"parallel": {"mode": "dp"}}, "run.yaml: hetgmp: set, but parallel.mode is 'dp'"),
    ],
)
def test_bad_hetgmp_config(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _cfg(**changes)
