"""Epoch accounting: run length and evaluation steps against hand counts, config checks, and one whole
in-process run (1 rank, random source) whose record has exactly the hand-counted steps and evaluations."""

from __future__ import annotations

import json

import pytest

from ecorec.train.config import ConfigError, run_config_from_dict
from ecorec.train.epochs import DEFAULT_STEPS, EpochPlan, steps_per_epoch


def test_steps_per_epoch_drops_the_partial_batch():
    assert steps_per_epoch(640, 64) == 10
    assert steps_per_epoch(639, 64) == 9
    assert steps_per_epoch(63, 64) == 0


def test_epochs_give_the_hand_counted_steps_and_evaluations():
    # 10 steps per epoch, 2 epochs, 3 evaluations per epoch: after ceil(10/3)=4, ceil(20/3)=7 and 10 of each.
    plan = EpochPlan.build(10, epochs=2, evals_per_epoch=3)
    assert plan.total_steps == 20
    assert plan.eval_steps() == [4, 7, 10, 14, 17, 20]
    assert plan.epochs == 2.0
    assert [plan.epoch_of(s) for s in (1, 10, 11, 20)] == [0, 0, 1, 1]


def test_eval_every_and_steps():
    plan = EpochPlan.build(7, steps=15, eval_every=4)
    assert plan.total_steps == 15
    assert plan.eval_steps() == [4, 8, 12]
    # per-epoch evaluations continue across a partial last epoch: epoch of 7, twice -> after 4 and 7
    assert EpochPlan.build(7, steps=15, evals_per_epoch=2).eval_steps() == [4, 7, 11, 14]
    assert EpochPlan.build(3, steps=4, evals_per_epoch=5).eval_steps() == [1, 2, 3, 4]  # N > E: every step
    assert EpochPlan.build(5).total_steps == DEFAULT_STEPS
    assert EpochPlan.build(5, steps=9).eval_steps() == []


def test_epoch_plan_rejects_conflicts():
    with pytest.raises(ValueError, match="not both"):
        EpochPlan.build(10, steps=3, epochs=1)
    with pytest.raises(ValueError, match="not both"):
        EpochPlan.build(10, eval_every=2, evals_per_epoch=2)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        EpochPlan.build(0, epochs=1)


def _random_run(tmp_path, **train) -> dict:
    return {
        "run": {"seed": 1, "output_dir": str(tmp_path / "run")},
        "dataset": {
            "source": "random",
            "random": {
                "num_embeddings_per_feature": [1200, 40, 300],
                "pooling": [2, 1, 3],
                "min_pooling": [0],
                "num_dense": 4,
                "train_samples": 640,
                "val_samples": 128,
                "test_samples": 0,
            },
        },
        "model": {"embedding_dim": 8, "dense_arch": [16, 8], "over_arch": [16, 1]},
        "embeddings": {"algorithm": "ecorec", "tt_ranks": [4, 4], "tt_min_rows": 1000},
        "parallel": {"mode": "dp", "world_size": 1},
        "train": {
            "global_batch_size": 64,
            "eval_batches": 1,
            "eval_splits": ["val"],
            "timing_warmup_steps": 1,
            "log_every": 0,
            **train,
        },
    }


def test_config_rejects_steps_and_epochs(tmp_path):
    with pytest.raises(ConfigError, match="train.epochs: give train.steps or train.epochs"):
        run_config_from_dict(_random_run(tmp_path, steps=3, epochs=1))
    with pytest.raises(ConfigError, match="train.evals_per_epoch"):
        run_config_from_dict(_random_run(tmp_path, eval_every=3, evals_per_epoch=1))
    with pytest.raises(ConfigError, match="train.pin_memory"):
        run_config_from_dict(_random_run(tmp_path, pin_memory=True))
    cfg = run_config_from_dict(_random_run(tmp_path, epochs=2))
    assert cfg.train.epochs == 2 and cfg.train.steps is None


def test_run_of_two_epochs_has_the_hand_counted_steps_evaluations_and_mlperf_log(
    tmp_path, single_process, monkeypatch
):
    from mlperf_logging.mllog import constants

    from ecorec.train.loop import run_training
    from ecorec.train.schedule import MLPerfSchedule

    data = _random_run(tmp_path, epochs=2, evals_per_epoch=3, mlperf_log=True, target_auc=0.99)
    # the schedule as fractions of the run: of 20 steps, warm-up 2, decay from step 10 over 10 steps
    data["lr_schedule"] = {"warmup_fraction": 0.1, "decay_start_fraction": 0.5, "decay_fraction": 0.5}
    data["lr_schedule"]["decay_end_lr"] = 0.01
    cfg = run_config_from_dict(data)
    used: dict[int, float] = {}
    rates = MLPerfSchedule.rates
    monkeypatch.setattr(MLPerfSchedule, "rates", lambda self, step: used.setdefault(step, rates(self, step)))
    record = run_training(cfg)
    assert record is not None
    # dense lr 0.1: half of it in step 0 of the warm-up, full until step 10, then
    # 0.01 + 0.09 * (remaining / 10)^2
    dense = {step: pair[0] for step, pair in used.items()}
    assert sorted(dense) == list(range(20))
    assert [dense[s] for s in (0, 1, 9, 10, 15, 19)] == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.0325, 0.0109])
    m = record["metrics"]
    # 640 samples / G=64 = 10 steps per epoch; 2 epochs = 20 steps; evaluations after 4, 7, 10, 14, 17, 20
    # plus the final one at the end of the run (random labels: the AUROC target 0.99 is never reached)
    assert m["steps"] == 20 and len(m["loss_curve"]) == 20 and not m["stopped_early"]
    assert m["steps_per_epoch"] == 10 and m["epochs"] == 2.0
    val = [e for e in m["eval"] if e["split"] == "val"]
    assert [e["step"] for e in val] == [4, 7, 10, 14, 17, 20, 20]
    assert all(e["samples"] == 64 for e in m["eval"])

    lines = (tmp_path / "run" / "mlperf.log").read_text().splitlines()
    assert lines and all(line.startswith(":::MLLOG ") for line in lines)
    events = [json.loads(line.removeprefix(":::MLLOG ")) for line in lines]
    keys = [e["key"] for e in events]
    assert keys.count(constants.EPOCH_START) == 2 and keys.count(constants.EPOCH_STOP) == 2
    evals = [e for e in events if e["key"] == constants.EVAL_ACCURACY]
    assert [e["metadata"]["epoch_num"] for e in evals] == [0.4, 0.7, 1.0, 1.4, 1.7, 2.0]
    assert [e["value"] for e in evals] == pytest.approx([e["auroc"] for e in val[:6]])
    assert keys.index(constants.RUN_START) < keys.index(constants.EPOCH_START)
    assert events[-1]["key"] == constants.RUN_STOP and events[-1]["metadata"]["status"] == "aborted"
    assert next(e["value"] for e in events if e["key"] == "global_batch_size") == 64
    header = {e["key"]: e["value"] for e in events}
    assert header["opt_learning_rate_warmup_steps"] == 2
    assert (header["opt_learning_rate_decay_start_step"], header["opt_learning_rate_decay_steps"]) == (10, 10)
