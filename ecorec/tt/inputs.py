"""Validation and normalisation of ``nn.EmbeddingBag``-style inputs at the module boundary.

Accepted forms (as ``nn.EmbeddingBag``): ``indices`` 2-D ``(B, L)`` (fixed-length bags, no offsets/lengths),
or 1-D ``(nnz,)`` with exactly one of ``offsets`` (``(B,)``, or ``(B+1,)`` ending at ``nnz`` when
``include_last_offset``) and ``lengths`` (``(B,)``). Everything is turned into int64 ``indices (nnz,)`` and
``offsets (B+1,)`` with the last offset, plus optional ``per_sample_weights (nnz,)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class BagInput(NamedTuple):
    """Normalised lookup input.

    Attributes:
        indices: ``(nnz,)`` int64 row ids.
        offsets: ``(B+1,)`` int64 bag boundaries into ``indices``; ``offsets[0] == 0``, ``offsets[-1] ==
            nnz``. per_sample_weights: ``(nnz,)`` float weights, or ``None``.
        num_bags: ``B``.
    """

    indices: torch.Tensor
    offsets: torch.Tensor
    per_sample_weights: torch.Tensor | None
    num_bags: int


_INDEX_DTYPES = (torch.int32, torch.int64)


def _check_int_tensor(name: str, t: torch.Tensor, device: torch.device) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _INDEX_DTYPES:
        raise ValueError(f"{name} must be int32 or int64, got {name}.dtype={t.dtype}")
    if t.device != device:
        raise ValueError(
            f"{name} is on {t.device} but the TT cores are on {device}; move it with .to({device})"
        )


def normalize_bag_input(
    indices: torch.Tensor,
    offsets: torch.Tensor | None,
    lengths: torch.Tensor | None,
    per_sample_weights: torch.Tensor | None,
    *,
    num_embeddings: int,
    include_last_offset: bool,
    mode: str,
    device: torch.device,
    dtype: torch.dtype,
    validate_values: bool = True,
) -> BagInput:
    """Check the lookup arguments and return them as :class:`BagInput`.

    Raises ``ValueError`` naming the argument and the bad value for: wrong types/dtypes/devices/ranks, both
    or neither of ``offsets``/``lengths`` for 1-D indices, offsets/lengths with 2-D indices,
    ``per_sample_weights`` with ``mode="mean"`` or of the wrong shape/dtype, and (when ``validate_values``)
    indices outside ``[0, num_embeddings)`` (with the offending min/max), negative lengths, and offsets that
    do not start at 0, decrease, or do not end at ``len(indices)``. ``validate_values=False`` skips the checks
    that read tensor data (they cost O(nnz) work and, on CUDA, a device sync).
    """
    _check_int_tensor("indices", indices, device)
    if indices.dim() == 2:
        if offsets is not None or lengths is not None:
            raise ValueError(
                "offsets and lengths must be None when indices is 2-D (B, L) (fixed-length bags), got "
                f"indices.shape={tuple(indices.shape)} with "
                f"{'offsets' if offsets is not None else 'lengths'} given"
            )
        num_bags, bag_len = indices.shape
        flat = indices.reshape(-1)
        offsets_full = torch.arange(
            0, num_bags * bag_len + 1, max(bag_len, 1), device=device, dtype=torch.int64
        )
        if bag_len == 0:
            offsets_full = torch.zeros(num_bags + 1, device=device, dtype=torch.int64)
    elif indices.dim() == 1:
        flat = indices
        if (offsets is None) == (lengths is None):
            raise ValueError(
                "pass exactly one of offsets or lengths with 1-D indices, got "
                + ("both" if offsets is not None else "neither")
            )
        if offsets is not None:
            _check_int_tensor("offsets", offsets, device)
            if offsets.dim() != 1:
                raise ValueError(f"offsets must be 1-D, got offsets.shape={tuple(offsets.shape)}")
            offsets64 = offsets.to(torch.int64)
            if include_last_offset:
                if offsets64.numel() == 0:
                    raise ValueError("offsets must have at least one entry (0) when include_last_offset=True")
                offsets_full = offsets64
            else:
                end = torch.tensor([flat.numel()], device=device, dtype=torch.int64)
                offsets_full = torch.cat([offsets64, end])
            num_bags = offsets_full.numel() - 1
            if validate_values and offsets_full.numel() > 0:
                _check_offsets(offsets64, offsets_full, flat.numel(), include_last_offset)
        else:
            assert lengths is not None
            _check_int_tensor("lengths", lengths, device)
            if lengths.dim() != 1:
                raise ValueError(f"lengths must be 1-D, got lengths.shape={tuple(lengths.shape)}")
            lengths64 = lengths.to(torch.int64)
            if validate_values and lengths64.numel() > 0:
                min_len = int(lengths64.min())
                if min_len < 0:
                    bad = int(torch.nonzero(lengths64 < 0)[0, 0])
                    raise ValueError(f"lengths must be >= 0, got lengths[{bad}]={int(lengths64[bad])}")
                total = int(lengths64.sum())
                if total != flat.numel():
                    raise ValueError(
                        f"lengths must sum to len(indices)={flat.numel()}, got sum(lengths)={total}"
                    )
            num_bags = lengths64.numel()
            offsets_full = torch.zeros(num_bags + 1, device=device, dtype=torch.int64)
            torch.cumsum(lengths64, 0, out=offsets_full[1:])
    else:
        raise ValueError(
            f"indices must be 1-D (nnz,) or 2-D (B, L), got indices.shape={tuple(indices.shape)}"
        )

    if validate_values and flat.numel() > 0:
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= num_embeddings:
            raise ValueError(
                f"indices must be in [0, num_embeddings={num_embeddings}), got min(indices)={lo}, "
                f"max(indices)={hi}"
            )

    weights = None
    if per_sample_weights is not None:
        if mode != "sum":
            raise ValueError(f"per_sample_weights is only supported with mode='sum', got mode={mode!r}")
        if not isinstance(per_sample_weights, torch.Tensor):
            raise ValueError(
                f"per_sample_weights must be a torch.Tensor, got {type(per_sample_weights).__name__}"
            )
        if per_sample_weights.shape != indices.shape:
            raise ValueError(
                f"per_sample_weights must have the shape of indices {tuple(indices.shape)}, got "
                f"per_sample_weights.shape={tuple(per_sample_weights.shape)}"
            )
        if per_sample_weights.dtype != dtype:
            raise ValueError(
                f"per_sample_weights must have the dtype of the TT cores ({dtype}), got "
                f"per_sample_weights.dtype={per_sample_weights.dtype}"
            )
        if per_sample_weights.device != device:
            raise ValueError(
                f"per_sample_weights is on {per_sample_weights.device} but the TT cores are on {device}"
            )
        weights = per_sample_weights.reshape(-1)
    return BagInput(flat.to(torch.int64), offsets_full, weights, num_bags)


def _check_offsets(
    offsets: torch.Tensor, offsets_full: torch.Tensor, nnz: int, include_last_offset: bool
) -> None:
    first = int(offsets_full[0])
    if first != 0:
        raise ValueError(f"offsets must start at 0, got offsets[0]={first}")
    if not include_last_offset and offsets.numel() > 0 and int(offsets[-1]) > nnz:
        raise ValueError(f"offsets must not exceed len(indices)={nnz}, got offsets[-1]={int(offsets[-1])}")
    steps = offsets_full[1:] - offsets_full[:-1]
    if steps.numel() > 0 and int(steps.min()) < 0:
        bad = int(torch.nonzero(steps < 0)[0, 0])
        raise ValueError(
            f"offsets must be non-decreasing, got offsets[{bad}]={int(offsets_full[bad])} > "
            f"offsets[{bad + 1}]={int(offsets_full[bad + 1])}"
        )
    last = int(offsets_full[-1])
    if include_last_offset and last != nnz:
        raise ValueError(
            f"offsets must end at len(indices)={nnz} when include_last_offset=True, got offsets[-1]={last}"
        )
