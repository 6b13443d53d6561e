"""Peak transient memory of a callable, measured from the allocator.

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (the caching allocator's own
  count of live tensor bytes), minus the bytes allocated before the call.
- CPU: there is no allocator statistic, and ``tracemalloc`` does not see torch. We run the callable under
  ``torch.profiler`` with ``profile_memory=True``: the CPU allocator then reports every allocation (+bytes)
  and free (-bytes); the running sum of those events in time order is the live-bytes curve of the call, and
  its maximum is the peak above the starting level. Tensors freed later than the call (outputs) count as live
  at the peak, like on CUDA. Memory that libraries hold outside torch's allocator (MKL scratch) is not seen.

The profiler slows the call down, so measure memory in its own run, never while timing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class PeakMemory:
    """Peak bytes allocated above the level at the start of the call, and how it was measured."""

    peak_bytes: int
    method: str


def _cpu_memory_events(prof: Any) -> list[tuple[int, int]]:
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError as exc:  # the profiler's result layout changed
        raise RuntimeError(
            "measure_peak_memory: torch.profiler no longer exposes kineto_results.events(); "
            f"update ecorec.bench.memory for torch {torch.__version__}"
        ) from exc
    out = []
    for event in events:
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU:
            out.append((event.start_ns(), int(event.nbytes())))
    out.sort(key=lambda item: item[0])
    return out


def measure_peak_memory(fn: Callable[[], Any], device: torch.device | str) -> tuple[Any, PeakMemory]:
    """Run ``fn()`` once and return ``(its result, PeakMemory)`` for allocations on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        return result, PeakMemory(int(peak), "torch.cuda.max_memory_allocated")
    if device.type != "cpu":
        raise ValueError(f"measure_peak_memory supports cpu and cuda devices, got device={device}")
    from torch.profiler import ProfilerActivity, profile

    # Kineto prints "USDT: ... profiler_start/profiler_stop" to stderr for every profiler session (two lines
    # per measurement, hundreds per benchmark); a log level above its USDT level (5) silences it, unless the
    # user chose a level. Read by kineto when a session starts.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    live = peak = 0
    for _, nbytes in _cpu_memory_events(prof):
        live += nbytes
        peak = max(peak, live)
    return result, PeakMemory(peak, "torch.profiler CPU allocator events")
