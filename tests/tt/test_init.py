"""Initialisation: entry distributions of the cores and the row std of TT-Rec's sampled Gaussian."""

from __future__ import annotations

import math

import pytest
import torch

from ecorec.tt import TTEmbeddingBag
from ecorec.tt.init import sampled_gaussian_core_std, uniform_init_bound


def test_normal_entries_have_std_one_over_sqrt_n() -> None:
    torch.manual_seed(0)
    bag = TTEmbeddingBag(40_000, 16, 8, weight_init="normal")
    entries = torch.cat([core.detach().reshape(-1) for core in bag.cores])
    assert entries.std().item() == pytest.approx(1 / math.sqrt(40_000), rel=0.05)
    assert entries.mean().abs().item() < 0.05 / math.sqrt(40_000) * 5


def test_uniform_entries_follow_the_artifact_bound() -> None:
    torch.manual_seed(0)
    bag = TTEmbeddingBag(10_000, 16, [4, 6], weight_init="uniform")
    # s = (sqrt(2 / (N + D)))^(1/3) * (1 * 4 * 6 * 1)^(-1/6)   (spec 1.4)
    expected = math.sqrt(2 / (10_000 + 16)) ** (1 / 3) * (4 * 6) ** (-1 / 6)
    assert uniform_init_bound(bag.shapes) == pytest.approx(expected)
    entries = torch.cat([core.detach().reshape(-1) for core in bag.cores])
    assert entries.min().item() >= 0 and entries.max().item() <= expected
    assert entries.mean().item() == pytest.approx(expected / 2, rel=0.05)


@pytest.mark.parametrize(("ranks", "target"), [([8, 8], None), ([16, 4], 0.05), ([6, 6, 6], 1.0)])
def test_sampled_gaussian_rows_have_the_target_std(ranks: list[int], target: float | None) -> None:
    bag = TTEmbeddingBag(
        4096, 16, ranks, num_cores=len(ranks) + 1, weight_init="sampled_gaussian", init_std=target,
        dtype=torch.float64,
    )  # fmt: skip
    want = target if target is not None else 1 / math.sqrt(4096)
    # Entries share core rows, so they are correlated: average the variance over 8 initialisations.
    variances = []
    for seed in range(8):
        bag.reset_parameters(torch.Generator().manual_seed(seed))
        variances.append(bag.full_weight().var().item())
    assert math.sqrt(sum(variances) / len(variances)) == pytest.approx(want, rel=0.12)
    core_std = sampled_gaussian_core_std(bag.shapes, want)
    assert core_std == pytest.approx((want**2 / math.prod(ranks)) ** (1 / (2 * (len(ranks) + 1))))


def test_generator_makes_initialisation_reproducible_and_meta_is_skipped() -> None:
    a = TTEmbeddingBag(1000, 8, 4)
    b = TTEmbeddingBag(1000, 8, 4)
    a.reset_parameters(torch.Generator().manual_seed(3))
    b.reset_parameters(torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a.cores, b.cores))
    meta = TTEmbeddingBag(10**9, 64, 32, device="meta")  # no memory, no initialisation
    assert meta.cores[1].device.type == "meta" and meta.shapes.p_shapes == (1000, 1000, 1000)
