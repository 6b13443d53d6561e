"""Timing windows, percentiles and AUROC against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ecorec.train.metrics import auroc, peak_memory, summarize_times


def test_timing_windows_after_warmup():
    times = [5.0, 4.0, 1.0, 1.0, 2.0, 2.0, 1.0, 3.0, 1.0]
    out = summarize_times(times, warmup_steps=2, windows=3, global_batch_size=10, first_step=100)
    assert out["timed_steps"] == 7
    assert out["median_s"] == 1.0
    assert out["samples_per_s"] == 10.0
    # 7 steps in 3 near-equal windows: [1, 1], [2, 2, 1], [3, 1]
    assert [w["num_steps"] for w in out["windows"]] == [2, 3, 2]
    assert [w["first_step"] for w in out["windows"]] == [102, 104, 107]
    assert [w["samples_per_s"] for w in out["windows"]] == pytest.approx([10.0, 6.0, 5.0])
    assert out["window_samples_per_s_mean"] == pytest.approx(7.0)
    assert out["window_samples_per_s_std"] == pytest.approx(math.sqrt(7.0))
    # p90 of sorted [1,1,1,1,2,2,3] at position 5.4: 2 + 0.4 * (3 - 2)
    assert out["p90_s"] == pytest.approx(2.4)


def test_auroc_is_the_pair_ordering_probability():
    logits = torch.tensor([0.1, 0.4, 0.35, 0.8, -1.0])
    labels = torch.tensor([0, 0, 1, 1, 0])
    # positive/negative pairs ordered correctly: (0.35 > 0.1, -1.0) and (0.8 > all): 5 of 6
    assert auroc(logits, labels) == pytest.approx(5 / 6)
    assert auroc(logits, torch.zeros(5)) is None  # one class: undefined


def test_peak_memory_on_cpu_is_the_rss_high_water_mark():
    value, kind = peak_memory(torch.device("cpu"))
    assert kind == "max_rss" and value > 10 * 2**20
