"""Transient memory: ecorec's buffers shrink with micro-batches and never reach ``nnz x D`` (spec 1.7, 1.13).

Measured on CPU with :func:`ecorec.bench.memory.measure_peak_memory` (the torch profiler's allocator events:
live bytes above the level at the start of forward + backward, plan building included), and checked op by op
with a dispatch mode that sees every tensor the lookup creates.

Sizes: ``nnz = 16384`` occurrences of ``U = 500`` rows in ``G = 100`` prefix groups (heavy reuse, as in the
paper's tables), ``D = 32``, ranks 16, float64, so ``nnz * D * itemsize = 4 MiB``. float64 keeps that bound
clear of ecorec's ``O(nnz)`` int64 index metadata (about ``4 * 8`` bytes per occurrence, spec 1.7: not
bounded by ``M``), which is also why ``M = 8`` halves the peak but does not divide it by 8.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ecorec.bench.memory import measure_peak_memory
from ecorec.tt import TTEmbeddingBag

N, D, RANK = 100_000, 32, 16  # p = (40, 50, 50)
NNZ, BAGS = 16_384, 512
NUM_GROUPS, ROWS_PER_GROUP = 100, 5
DTYPE = torch.float64
NNZ_D_BYTES = NNZ * D * torch.finfo(DTYPE).bits // 8


def _lookup() -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices (nnz,), offsets (B+1,))``: 100 prefix groups ``idx // 50`` of 5 rows each, uniformly."""
    g = torch.Generator().manual_seed(41)
    groups = torch.randperm(N // 50, generator=g)[:NUM_GROUPS]
    last = torch.stack([torch.randperm(50, generator=g)[:ROWS_PER_GROUP] for _ in range(NUM_GROUPS)])
    pool = (groups[:, None] * 50 + last).flatten()
    indices = pool[torch.randint(0, pool.numel(), (NNZ,), generator=g)]
    offsets = torch.arange(0, NNZ + 1, NNZ // BAGS)
    assert torch.unique(indices).numel() == NUM_GROUPS * ROWS_PER_GROUP
    assert torch.unique(indices // 50).numel() == NUM_GROUPS
    return indices, offsets


def _module(algorithm: str, micro_batches: int = 1) -> TTEmbeddingBag:
    return TTEmbeddingBag(
        N, D, RANK, include_last_offset=True, algorithm=algorithm, micro_batches=micro_batches, dtype=DTYPE,
        backend="torch",
    )  # fmt: skip


def _forward_backward(module: TTEmbeddingBag, indices: torch.Tensor, offsets: torch.Tensor):
    grad = torch.ones(BAGS, D, dtype=DTYPE)

    def run() -> None:
        module(indices, offsets).backward(grad)

    return run


def _peak_bytes(module: TTEmbeddingBag, indices: torch.Tensor, offsets: torch.Tensor) -> int:
    run = _forward_backward(module, indices, offsets)
    run()  # the cores' .grad exist from here on: the measured call only holds transients (and the output)
    _, peak = measure_peak_memory(run, torch.device("cpu"))
    assert peak.method.startswith("torch.profiler")
    return peak.peak_bytes


def test_peak_memory_shrinks_with_micro_batches_and_stays_below_nnz_d() -> None:
    indices, offsets = _lookup()
    peaks = {m: _peak_bytes(_module("ecorec", m), indices, offsets) for m in (1, 2, 8)}
    # Non-increasing in M (5% slack for allocator-event noise), and M = 8 at most half of M = 1.
    assert peaks[2] <= 1.05 * peaks[1] and peaks[8] <= 1.05 * peaks[2], peaks
    assert peaks[8] <= 0.5 * peaks[1], peaks
    # ecorec never holds an nnz x D buffer; EL-Rec (per-occurrence rows and expanded gradient) and TT-Rec (the
    # per-occurrence chain, one chunk of the default 20000) do.
    assert peaks[1] < NNZ_D_BYTES, (peaks[1], NNZ_D_BYTES)
    for algorithm in ("elrec", "fbtt"):
        baseline = _peak_bytes(_module(algorithm), indices, offsets)
        assert baseline > NNZ_D_BYTES, (algorithm, baseline, NNZ_D_BYTES)


class _LargestFloatTensor(TorchDispatchMode):
    """Largest number of elements of a floating-point tensor any op returns (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.largest = max(self.largest, t.numel())
        return out


def _largest_float_tensors(module: TTEmbeddingBag, indices: torch.Tensor, offsets: torch.Tensor) -> list[int]:
    """``[forward, backward]``: the largest floating-point tensor each pass creates (elements)."""
    with _LargestFloatTensor() as forward:
        out = module(indices, offsets)
    with _LargestFloatTensor() as backward:
        out.backward(torch.ones_like(out))
    return [forward.largest, backward.largest]


@pytest.mark.parametrize("micro_batches", [1, 8])
def test_ecorec_creates_no_nnz_by_d_tensor(micro_batches: int) -> None:
    indices, offsets = _lookup()
    # The detector sees both passes: EL-Rec's per-occurrence rows (forward) and expanded dY (backward).
    assert min(_largest_float_tensors(_module("elrec"), indices, offsets)) >= NNZ * D
    largest = _largest_float_tensors(_module("ecorec", micro_batches), indices, offsets)
    assert max(largest) < NNZ * D // 2, largest
