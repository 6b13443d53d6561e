"""Selecting bags (samples) out of jagged ``(values, offsets)`` pairs, without a Python loop over bags."""

from __future__ import annotations

import torch

__all__ = ["select_bags"]


def select_bags(
    values: torch.Tensor,
    offsets: torch.Tensor,
    bags: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Keep the bags ``bags`` (in that order) of a jagged feature.

    Args:
        values: ``[nnz]`` indices; ``offsets``: ``[B + 1]``; ``bags``: ``[B']`` int64 bag ids in ``[0, B)``;
        weights: optional ``[nnz]`` per-sample weights.

    Returns:
        ``(values [nnz'], offsets [B' + 1], weights [nnz'] | None)`` of the selected bags.
    """
    starts = offsets[bags]
    lengths = offsets[bags + 1] - starts
    new_offsets = torch.zeros(bags.numel() + 1, dtype=offsets.dtype, device=offsets.device)
    torch.cumsum(lengths, 0, out=new_offsets[1:])
    total = int(new_offsets[-1])
    # position j of the output comes from starts[bag(j)] + (j - new_offsets[bag(j)])
    shift = torch.repeat_interleave(starts - new_offsets[:-1], lengths, output_size=total)
    index = torch.arange(total, dtype=offsets.dtype, device=offsets.device) + shift
    return values[index], new_offsets, (weights[index] if weights is not None else None)
