"""Mixed precision of the head: the loss scaler's rule by hand, and short runs whose bf16 / fp16 loss curves
stay within tolerance of the fp32 run from the same initial weights (and differ from it: autocast ran)."""

from __future__ import annotations

import math

import pytest
import torch

from ecorec.parallel.precision import DynamicLossScaler, autocast_dtype, head_autocast
from ecorec.train.config import ConfigError, run_config_from_dict
from tests.train.conftest import free_port
from tests.train.test_epochs import _random_run


def test_loss_scaler_follows_gradscaler_rule():
    scaler = DynamicLossScaler(init_scale=8.0, growth_interval=3)
    assert scaler.all_finite([torch.ones(3), None]) and not scaler.all_finite([torch.tensor([1.0, math.inf])])
    assert not scaler.all_finite([torch.tensor([math.nan])])
    scaler.update(False)  # overflow: halve, skip
    assert scaler.scale == 4.0 and scaler.skipped_steps == 1
    for _ in range(3):
        scaler.update(True)
    assert scaler.scale == 8.0  # doubled after 3 finite steps
    scaler.update(True)
    scaler.update(False)
    scaler.update(True)
    scaler.update(True)
    assert scaler.scale == 4.0  # the overflow reset the count of finite steps


def test_autocast_of_the_head_on_cpu():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with head_autocast(torch.device("cpu"), "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with head_autocast(torch.device("cpu"), "fp32"):
        assert layer(x).dtype == torch.float32
    assert layer.weight.dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast_dtype("fp8")


def test_config_checks_precision(tmp_path):
    with pytest.raises(ConfigError, match="train.precision: 'int8' is not one of"):
        run_config_from_dict(_random_run(tmp_path, precision="int8"))


@pytest.fixture(scope="module")
def curves(tmp_path_factory):
    return {}


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_short_run_loss_within_tolerance_of_fp32(tmp_path, single_process, curves, precision):  # noqa: F811
    from ecorec.train.loop import run_training

    data = _random_run(tmp_path, steps=8, precision=precision, eval_splits=[])
    data["embeddings"]["tt_min_rows"] = 100  # two TT tables (fused SGD updates), one uncompressed
    record = run_training(run_config_from_dict(data))
    assert record is not None and record["metrics"]["precision"] == precision
    curves[precision] = record["metrics"]["loss_curve"]
    if precision == "fp32":
        return
    if "fp32" not in curves:
        pytest.skip("needs the fp32 run of this module first")
    low, ref = curves[precision], curves["fp32"]
    assert record["metrics"]["skipped_steps"] == 0
    assert low != ref  # autocast really ran in lower precision
    tolerance = (
        5e-3 if precision == "bf16" else 1e-3
    )  # measured: 8e-5 and 9e-6 (bf16: 8 mantissa bits, fp16 11)
    assert max(abs(a - b) for a, b in zip(low, ref)) < tolerance, (low, ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with loss scaling on a GPU needs CUDA")
def test_fp16_run_on_cuda_within_tolerance_of_fp32(tmp_path, single_process, monkeypatch):  # noqa: F811
    from ecorec.train.loop import run_training

    losses = {}
    for precision in ("fp32", "fp16"):
        monkeypatch.setenv("MASTER_PORT", str(free_port()))
        data = _random_run(
            tmp_path / precision, steps=8, precision=precision, eval_splits=[], pin_memory=True
        )
        data["run"]["device"] = "cuda"
        record = run_training(run_config_from_dict(data))
        losses[precision] = record["metrics"]["loss_curve"]
    assert losses["fp16"] != losses["fp32"]
    assert max(abs(a - b) for a, b in zip(losses["fp16"], losses["fp32"])) < 1e-3
