"""Model presets: resolution by name, key-by-key overrides, the published MLPerf sizes, the built head."""

from __future__ import annotations

import pytest
import torch

from ecorec.models.presets import MODEL_PRESETS, model_preset
from ecorec.train.config import ConfigError, run_config_from_dict

BASE = {
    "dataset": {"source": "random"},
    "parallel": {"mode": "dp", "world_size": 1},
    "embeddings": {"algorithm": "none"},
}


def test_mlperf_preset_is_the_official_config():
    p = model_preset("mlperf_dlrm")
    assert len(p.num_embeddings_per_feature) == 26 and sum(p.num_embeddings_per_feature) == 4_057_300
    assert p.num_embeddings_per_feature[:3] == (932209, 18814, 13624) and p.num_dense == 13
    assert p.model["dense_arch"] == [512, 256, 64] and p.model["over_arch"] == [512, 512, 256, 1]
    assert p.model["embedding_dim"] == 64 and p.notes["mlperf_round"] == "v0.7"
    assert model_preset("torchrec_dlrm").num_embeddings_per_feature == (100000,) * 26
    with pytest.raises(KeyError, match="known: mlperf_dlrm, torchrec_dlrm"):
        model_preset("bert")


def test_preset_resolution_and_override_key_by_key():
    cfg = run_config_from_dict({**BASE, "model": {"preset": "mlperf_dlrm"}}, check_paths=False)
    m = cfg.model
    assert (m.preset, m.kind, m.embedding_dim, m.interaction) == ("mlperf_dlrm", "dlrm", 64, "dot")
    assert m.dense_arch == [512, 256, 64] and m.over_arch == [512, 512, 256, 1]
    # the random source takes the preset's table sizes and dense count
    assert cfg.dataset.random.num_embeddings_per_feature == list(
        MODEL_PRESETS["mlperf_dlrm"].num_embeddings_per_feature
    )
    assert cfg.dataset.random.num_dense == 13
    # later MLPerf rounds: dim 128 and its bottom MLP, the rest from the preset
    later = run_config_from_dict(
        {**BASE, "model": {"preset": "mlperf_dlrm", "embedding_dim": 128, "dense_arch": [512, 256, 128]}},
        check_paths=False,
    )
    assert later.model.embedding_dim == 128 and later.model.dense_arch == [512, 256, 128]
    assert later.model.over_arch == [512, 512, 256, 1] and later.model.interaction == "dot"
    # an override that breaks the preset's consistency is caught by the usual checks
    with pytest.raises(ConfigError, match="model.dense_arch"):
        run_config_from_dict(
            {**BASE, "model": {"preset": "mlperf_dlrm", "embedding_dim": 32}}, check_paths=False
        )
    with pytest.raises(ConfigError, match="model.preset: unknown model preset 'mlperf'"):
        run_config_from_dict({**BASE, "model": {"preset": "mlperf"}}, check_paths=False)
    # explicit table sizes win over the preset's
    own = run_config_from_dict(
        {
            **BASE,
            "dataset": {"source": "random", "random": {"num_embeddings_per_feature": [5, 6]}},
            "model": {"preset": "torchrec_dlrm"},
        },
        check_paths=False,
    )
    assert own.dataset.random.num_embeddings_per_feature == [5, 6]


def test_preset_builds_the_mlperf_head():
    from ecorec.models import build_head
    from ecorec.train.loop import model_settings

    cfg = run_config_from_dict({**BASE, "model": {"preset": "mlperf_dlrm"}}, check_paths=False)
    head = build_head(model_settings(cfg), 13, 26, seed=0)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    # bottom 13-512-256-64; top: 64 + 27*26/2 = 415 inputs (dot interaction of 27 vectors), 512-512-256-1
    assert shapes[:3] == [(13, 512), (512, 256), (256, 64)]
    assert shapes[3:] == [(64 + 27 * 26 // 2, 512), (512, 512), (512, 256), (256, 1)]
