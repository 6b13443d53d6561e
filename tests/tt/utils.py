"""Shared helpers of the ecorec.tt tests: the dense oracle and tolerance checks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ecorec.tt import TTEmbeddingBag, tt_full_weight
from ecorec.tt.testing import LookupInput

ALGORITHMS = ("ecorec", "fbtt", "elrec")
# Relative tolerances of the forward/backward against the dense oracle (issue 3): float64 and float32.
REL_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def max_rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |actual - expected| / max |expected|`` (absolute error when ``expected`` is all zeros)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.numel() == 0:
        return 0.0
    scale = expected.abs().max().item()
    diff = (actual - expected).abs().max().item()
    return diff / scale if scale > 0 else diff


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    err = max_rel_error(actual.detach(), expected.detach())
    assert err <= rel, f"relative error {err:.3e} > {rel:.1e}"


def oracle_forward(module: TTEmbeddingBag, lookup: LookupInput) -> torch.Tensor:
    """``F.embedding_bag`` over the dense reconstruction ``module.full_weight()`` (differentiable)."""
    return F.embedding_bag(
        lookup.indices,
        module.full_weight(),
        lookup.offsets,
        mode=module.mode,
        per_sample_weights=lookup.per_sample_weights,
        include_last_offset=True,
    )


def oracle_forward_float64(module: TTEmbeddingBag, lookup: LookupInput) -> torch.Tensor:
    """:func:`oracle_forward` computed in float64 from the module's cores (the reference for float32 modules:
    its own rounding is far below float32's), ``Tensor[B, D]`` float64, not differentiable."""
    with torch.no_grad():
        weight = tt_full_weight([core.double() for core in module.cores], module.shapes)
        weights = lookup.per_sample_weights
        return F.embedding_bag(
            lookup.indices,
            weight,
            lookup.offsets,
            mode=module.mode,
            per_sample_weights=weights.double() if weights is not None else None,
            include_last_offset=True,
        )


def module_forward(module: TTEmbeddingBag, lookup: LookupInput) -> torch.Tensor:
    """The module's forward on ``lookup`` (offsets with or without the last one, per the module's setting)."""
    offsets = lookup.offsets if module.include_last_offset else lookup.offsets[:-1]
    return module(lookup.indices, offsets, per_sample_weights=lookup.per_sample_weights)


def core_grads(module: TTEmbeddingBag, output: torch.Tensor, grad_output: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(output, list(module.cores), grad_output))


def copy_cores(dst: TTEmbeddingBag, src: TTEmbeddingBag) -> None:
    with torch.no_grad():
        for a, b in zip(dst.cores, src.cores):
            a.copy_(b)
