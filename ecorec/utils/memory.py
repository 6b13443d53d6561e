"""Peak memory measured from the allocator: of a callable (:func:`measure_peak_memory`, transient bytes above
the start) and of a training step (:func:`measure_step_memory`, persistent state + the step's peak).

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (the caching allocator's own
  count of live tensor bytes), minus the bytes allocated before the call.
- CPU: there is no allocator statistic, and ``tracemalloc`` does not see torch. We run the callable under
  ``torch.profiler`` with ``profile_memory=True``: the CPU allocator then reports every allocation (+bytes)
  and free (-bytes); the running sum of those events in time order is the live-bytes curve of the call, and
  its maximum is the peak above the starting level. Tensors freed later than the call (outputs) count as live
  at the peak, like on CUDA. Memory that libraries hold outside torch's allocator (MKL scratch) is not seen.

The profiler slows the call down, so measure memory in its own run, never while timing.

A training step's peak (figure 10's memory panel, as the paper's ``max_memory_allocated``): on CUDA the
allocator's absolute peak during the step; on CPU the bytes of the persistent state when the step starts
(:func:`tensor_bytes` of the model's ``state_dict()``: embedding tables or TT cores, fused optimizer state,
dense parameters and optimizer state; distinct storages counted once) plus the profiler's peak above that
level during the step (activations, gradients, communication buffers, optimizer state created by the step).
Memory outside torch's allocator (gloo's buffers, the Python runtime) is not counted: that is what max RSS
adds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
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


def tensor_bytes(state: Any) -> int:
    """Bytes of the distinct tensor storages in a nested ``state_dict`` (dicts, lists, tuples of tensors;
    sharded tensors by their local shards); a storage shared by several entries counts once."""
    seen: set[tuple[str, int]] = set()
    total = 0
    todo = [state]
    while todo:
        obj = todo.pop()
        if isinstance(obj, Mapping):
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple):
            todo.extend(obj)
        elif hasattr(obj, "local_shards") and callable(obj.local_shards):  # torch ShardedTensor
            todo.extend(shard.tensor for shard in obj.local_shards())
        elif isinstance(obj, torch.Tensor):
            if obj.is_sparse:
                todo.extend([obj._indices(), obj._values()])
                continue
            storage = obj.untyped_storage()
            key = (str(obj.device), storage.data_ptr())
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
    return total


@dataclass(frozen=True)
class StepMemory:
    """A training step's peak bytes: ``peak_bytes`` = ``state_bytes`` (live when the step starts; CPU) +
    ``step_bytes`` (the step's peak above it), and how it was measured."""

    peak_bytes: int
    state_bytes: int
    step_bytes: int
    method: str


def measure_step_memory(
    fn: Callable[[], Any], device: torch.device | str, state: Callable[[], Any]
) -> tuple[Any, StepMemory]:
    """Run one training step ``fn()`` and return ``(its result, StepMemory)``. ``state()`` returns the
    persistent state (a ``state_dict``), read before the step on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        peak = int(torch.cuda.max_memory_allocated(device))
        return result, StepMemory(peak, int(base), peak - int(base), "torch.cuda.max_memory_allocated")
    held = tensor_bytes(state())
    result, step = measure_peak_memory(fn, device)
    return result, StepMemory(
        held + step.peak_bytes, held, step.peak_bytes, f"state_dict bytes + {step.method}"
    )
