"""The MLPerf DLRM learning-rate schedule against hand-computed values."""

from __future__ import annotations

import pytest

from ecorec.train import MLPerfSchedule, mlperf_lr
from ecorec.train.config import ConfigError, LRScheduleSection, run_config_from_dict
from ecorec.train.schedule import schedule_steps


def test_warmup_hold_poly_decay_and_end():
    # base 1.0, warm-up 4, decay from step 6 over 4 steps to 0.2, power 2
    got = [mlperf_lr(s, 1.0, 4, 6, 4, 0.2) for s in range(12)]
    expected = [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 0.2 + 0.8 * 0.5625, 0.2 + 0.8 * 0.25, 0.2 + 0.8 * 0.0625]
    expected += [0.2, 0.2]
    assert got == pytest.approx(expected)


def test_no_schedule_is_constant_and_negative_steps_fail():
    assert [mlperf_lr(s, 0.3) for s in range(3)] == [0.3, 0.3, 0.3]
    with pytest.raises(ValueError):
        mlperf_lr(-1, 0.3)


def test_dense_and_embedding_rates_follow_the_same_curve():
    schedule = MLPerfSchedule(
        dense_lr=0.1, embedding_lr=0.4, warmup_steps=2, decay_start_step=2, decay_steps=2, decay_end_lr=0.01
    )
    for step in range(6):
        dense, emb = schedule.rates(step)
        assert emb == pytest.approx(4 * dense)
    assert schedule.rates(10) == pytest.approx((0.01, 0.04))


def test_fractions_of_the_run_become_steps():
    """Each length is a fraction of the run's steps, rounded half up (hand-counted), or given in steps."""
    assert schedule_steps(20, warmup_fraction=0.15, decay_start_fraction=0.5, decay_fraction=0.5) == (
        3,
        10,
        10,
    )
    assert schedule_steps(300, warmup_fraction=0.15, decay_start_fraction=0.5, decay_fraction=0.5) == (
        45,
        150,
        150,
    )
    assert schedule_steps(7, warmup_fraction=0.5) == (4, 0, 0)  # 3.5 rounds up, on every platform
    assert schedule_steps(50, warmup_steps=5, decay_start_fraction=0.6, decay_fraction=0.4) == (5, 30, 20)
    assert schedule_steps(50, warmup_steps=5, decay_start_step=9, decay_steps=4) == (5, 9, 4)  # as given
    with pytest.raises(ValueError, match="warmup: give steps or a fraction"):
        schedule_steps(50, warmup_steps=5, warmup_fraction=0.1)
    with pytest.raises(ValueError, match="decay_fraction must be in"):
        schedule_steps(50, decay_fraction=1.5)


def _cfg(schedule: dict) -> dict:
    return {"dataset": {"path": "x"}, "lr_schedule": schedule}


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            {"warmup_steps": 3, "warmup_fraction": 0.1},
            "lr_schedule.warmup_fraction: give lr_schedule.warmup_steps",
        ),
        (
            {"decay_fraction": 2.0, "decay_end_lr": 0.1},
            r"lr_schedule.decay_fraction: a fraction .* in \[0, 1\]",
        ),
        (
            {"warmup_fraction": 0.5, "decay_start_fraction": 0.2, "decay_fraction": 0.2, "decay_end_lr": 0.1},
            "lr_schedule.decay_start_fraction: decay must start after the warm-up",
        ),
        ({"decay_fraction": 0.5}, "lr_schedule.decay_end_lr: fused TT updates"),
    ],
)
def test_bad_fractions_name_the_field(schedule, message):
    with pytest.raises(ConfigError, match=message):
        run_config_from_dict(_cfg(schedule), check_paths=False)


def test_a_mixed_schedule_whose_decay_starts_in_the_warm_up_fails_at_its_length():
    """Steps and fractions may mix; whether the decay starts after the warm-up is known once the run's length
    is: checked then, naming the field."""
    section = LRScheduleSection(
        warmup_steps=30, decay_start_fraction=0.5, decay_fraction=0.5, decay_end_lr=0.1
    )
    assert section.resolve(100) == (30, 50, 50)
    with pytest.raises(
        ConfigError, match="run.yaml: lr_schedule.decay_start_step: with 40 steps the decay starts"
    ):
        section.resolve(40, "run.yaml: lr_schedule")
