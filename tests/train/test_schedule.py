"""The MLPerf DLRM learning-rate schedule against hand-computed values."""

from __future__ import annotations

import pytest

from ecorec.train import MLPerfSchedule, mlperf_lr


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
