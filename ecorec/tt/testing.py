"""Random lookup inputs for tests and benchmarks (torch only).

Distributions of row ids (``distribution=``):

- ``"uniform"``: uniform over ``[0, N)``;
- ``"zipf"``: bounded power law ``P(rank k) ~ k^-alpha`` (:func:`zipf_rows`), hot rows scattered over the id
  space;
- ``"hot"``: 90% of the occurrences on 3 rows (long segments), the rest uniform;
- ``"duplicates"``: every bag repeats a single row.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

DISTRIBUTIONS = ("uniform", "zipf", "hot", "duplicates")


class LookupInput(NamedTuple):
    """``indices (nnz,)`` int64, ``offsets (B+1,)`` int64 with the last offset, ``lengths (B,)`` int64,
    ``per_sample_weights (nnz,)`` or ``None``."""

    indices: torch.Tensor
    offsets: torch.Tensor
    lengths: torch.Tensor
    per_sample_weights: torch.Tensor | None


def _scatter_multiplier(num_embeddings: int) -> int:
    """An odd multiplier coprime with ``N``, so ``k -> (k * a) mod N`` is a bijection of ``[0, N)``."""
    a = int(num_embeddings * 0.6180339887) | 1
    while math.gcd(a, num_embeddings) != 1:
        a += 2
    return a % num_embeddings if num_embeddings > 1 else 0


def zipf_rows(
    n: int,
    num_embeddings: int,
    alpha: float,
    *,
    generator: torch.Generator | None = None,
    scatter: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(n,)`` int64 rows from a bounded Zipf law over ``num_embeddings`` ranks.

    Rank ``k in [1, N]`` is drawn by inverting the CDF of the continuous law ``x^-alpha`` on ``[1, N+1)`` and
    flooring (``alpha >= 0``; ``alpha = 0`` is uniform). With ``scatter`` the ranks are mapped to rows by the
    bijection ``(k - 1) * a mod N`` so hot rows do not all share TT prefixes; without it rank 1 is row 0.
    """
    if alpha < 0:
        raise ValueError(f"zipf alpha must be >= 0, got alpha={alpha}")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    top = float(num_embeddings + 1)
    if abs(alpha - 1.0) < 1e-12:
        x = torch.pow(top, u)
    else:
        e = 1.0 - alpha
        x = torch.pow((top**e - 1.0) * u + 1.0, 1.0 / e)
    ranks = x.floor().to(torch.int64).clamp_(1, num_embeddings) - 1
    if scatter:
        ranks = (ranks * _scatter_multiplier(num_embeddings)) % num_embeddings
    return ranks.to(device) if device is not None else ranks


def random_lookup(
    num_embeddings: int,
    num_bags: int,
    *,
    mean_length: float = 4.0,
    distribution: str = "uniform",
    alpha: float = 1.1,
    empty_fraction: float = 0.0,
    weighted: bool = False,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> LookupInput:
    """A random lookup of ``num_bags`` bags with lengths uniform in ``[0, 2 * mean_length]``.

    Args:
        empty_fraction: share of bags forced empty.
        weighted: also draw ``per_sample_weights`` uniform in ``[0.5, 1.5)`` of ``dtype``.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got distribution={distribution!r}")
    high = max(int(round(2 * mean_length)), 0) + 1
    lengths = torch.randint(0, high, (num_bags,), generator=generator, dtype=torch.int64)
    if empty_fraction > 0:
        lengths[torch.rand(num_bags, generator=generator) < empty_fraction] = 0
    nnz = int(lengths.sum())
    if distribution == "uniform":
        indices = torch.randint(0, num_embeddings, (nnz,), generator=generator, dtype=torch.int64)
    elif distribution == "zipf":
        indices = zipf_rows(nnz, num_embeddings, alpha, generator=generator)
    elif distribution == "hot":
        indices = torch.randint(0, num_embeddings, (nnz,), generator=generator, dtype=torch.int64)
        hot = torch.randint(0, num_embeddings, (3,), generator=generator, dtype=torch.int64)
        is_hot = torch.rand(nnz, generator=generator) < 0.9
        indices[is_hot] = hot[torch.randint(0, 3, (int(is_hot.sum()),), generator=generator)]
    else:
        per_bag = torch.randint(0, num_embeddings, (num_bags,), generator=generator, dtype=torch.int64)
        indices = torch.repeat_interleave(per_bag, lengths)
    offsets = torch.zeros(num_bags + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    weights = None
    if weighted:
        weights = (torch.rand(nnz, generator=generator, dtype=torch.float64) + 0.5).to(dtype)
    out = LookupInput(indices, offsets, lengths, weights)
    if device is not None:
        out = LookupInput(*(t.to(device) if t is not None else None for t in out))
    return out
