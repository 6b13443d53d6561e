"""Initialisation of TT cores.

- ``"normal"`` (the artifact's default): every core entry ~ ``N(0, std^2)`` with ``std = init_std`` or
  ``1/sqrt(N)``.
- ``"uniform"`` (the artifact's formula): every entry ~ ``U(0, s)``, with
  ``s = sqrt(2 / (N + D)) ** (1/d) * prod(ranks) ** (-1 / (2 d))`` over the full rank list
  ``[1, r_1, ..., 1]``.
- ``"sampled_gaussian"`` (TT-Rec): Gaussian cores whose product rows have a target std. With independent
  zero-mean entries of std ``s`` in every core, an entry of the reconstructed table is a sum of
  ``prod(r_1..r_{d-1})`` products of ``d`` independent entries, so its variance is
  ``prod(r_k) * s^(2d)``; we pick ``s = (target^2 / prod(r_k)) ** (1 / (2 d))`` with ``target = init_std``
  or ``1/sqrt(N)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ecorec.tt.shapes import TTShapes

WEIGHT_INITS = ("normal", "uniform", "sampled_gaussian")


def sampled_gaussian_core_std(shapes: TTShapes, target_std: float) -> float:
    """Per-core std ``s`` such that reconstructed entries have std ``target_std`` (see module docstring)."""
    inner = math.prod(shapes.ranks[1:-1])
    return (target_std**2 / inner) ** (1.0 / (2 * shapes.num_cores))


def uniform_init_bound(shapes: TTShapes) -> float:
    """Upper bound ``s`` of the artifact's ``U(0, s)`` initialisation."""
    d = shapes.num_cores
    base = math.sqrt(2.0 / (shapes.num_embeddings + shapes.embedding_dim)) ** (1.0 / d)
    return base * math.prod(shapes.ranks) ** (-1.0 / (2 * d))


@torch.no_grad()
def init_tt_cores_(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    weight_init: str = "normal",
    *,
    init_std: float | None = None,
    generator: torch.Generator | None = None,
) -> None:
    """Fill ``cores`` in place.

    Args:
        cores: ``d`` tensors of shapes ``shapes.core_shapes()``; tensors on the ``meta`` device are left
            alone. weight_init: one of :data:`WEIGHT_INITS`.
        init_std: entry std for ``"normal"``, target row std for ``"sampled_gaussian"`` (default
            ``1/sqrt(N)``);
            not accepted with ``"uniform"``.
        generator: optional RNG for reproducible initialisation.
    """
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got weight_init={weight_init!r}")
    if init_std is not None and weight_init == "uniform":
        raise ValueError(f"init_std={init_std} is not used by weight_init='uniform'; leave it None")
    if init_std is not None and not init_std > 0:
        raise ValueError(f"init_std must be > 0, got init_std={init_std}")
    default_std = 1.0 / math.sqrt(shapes.num_embeddings)
    for core in cores:
        if core.device.type == "meta":
            continue
        if weight_init == "normal":
            core.normal_(0.0, init_std if init_std is not None else default_std, generator=generator)
        elif weight_init == "uniform":
            core.uniform_(0.0, uniform_init_bound(shapes), generator=generator)
        else:
            target = init_std if init_std is not None else default_std
            core.normal_(0.0, sampled_gaussian_core_std(shapes, target), generator=generator)
