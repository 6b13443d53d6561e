"""What a run measures: iteration times in timing windows, peak memory per rank, AUROC over all ranks."""

from __future__ import annotations

import math
import resource
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torchmetrics.functional.classification import binary_auroc

from ecorec.parallel import all_gather_equal

__all__ = ["auroc", "evaluate", "gather_objects", "peak_memory", "summarize_times"]


def peak_memory(device: torch.device) -> tuple[int, str]:
    """``(bytes, kind)``: the CUDA allocator's peak on GPU, the process's peak RSS on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_memory_allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "max_rss"


def gather_objects(value: Any, group: dist.ProcessGroup | None = None) -> list[Any]:
    """``[value of rank 0, value of rank 1, ...]`` on every rank (``[value]`` without a process group)."""
    if not dist.is_available() or not dist.is_initialized():
        return [value]
    out: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, value, group=group)
    return out


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize_times(
    step_times: Sequence[float], warmup_steps: int, windows: int, global_batch_size: int, first_step: int = 0
) -> dict[str, Any]:
    """Iteration-time statistics after ``warmup_steps`` and ``windows`` consecutive timing windows.

    Args:
        step_times: seconds of each step (the slowest rank's), in order.
        warmup_steps: leading steps left out (start-up, allocator and cache warm-up).
        windows: how many consecutive, near-equal windows the remaining steps are cut into.
        global_batch_size: G, samples per step.
        first_step: the step number of ``step_times[0]`` (a resumed run starts later).

    Returns:
        ``median_s``, ``p90_s``, ``mean_s`` per iteration, ``samples_per_s`` (G / median), and ``windows``:
        ``[{first_step, num_steps, seconds, samples_per_s}]`` with their mean and standard deviation.
    """
    timed = list(step_times[warmup_steps:])
    out: dict[str, Any] = {
        "warmup_steps": warmup_steps,
        "timed_steps": len(timed),
        "per_step_s": list(step_times),
    }
    if not timed:
        return out
    median = statistics.median(timed)
    out.update(
        median_s=median,
        p90_s=_percentile(timed, 0.9),
        mean_s=statistics.fmean(timed),
        samples_per_s=global_batch_size / median if median > 0 else math.inf,
    )
    count = min(windows, len(timed))
    bounds = [round(w * len(timed) / count) for w in range(count + 1)]
    rows = []
    for w in range(count):
        chunk = timed[bounds[w] : bounds[w + 1]]
        seconds = sum(chunk)
        rows.append(
            {
                "first_step": first_step + warmup_steps + bounds[w],
                "num_steps": len(chunk),
                "seconds": seconds,
                "samples_per_s": global_batch_size * len(chunk) / seconds if seconds > 0 else math.inf,
            }
        )
    rates = [r["samples_per_s"] for r in rows]
    out["windows"] = rows
    out["window_samples_per_s_mean"] = statistics.fmean(rates)
    out["window_samples_per_s_std"] = statistics.stdev(rates) if len(rates) > 1 else 0.0
    return out


def auroc(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Binary AUROC (torchmetrics) of ``logits [n]`` against 0/1 ``labels [n]``; NaN with one class only."""
    labels = labels.long()
    if labels.numel() == 0 or labels.min() == labels.max():
        return math.nan
    return float(binary_auroc(torch.sigmoid(logits.float()), labels))


def evaluate(
    predict: Callable[[Any], torch.Tensor],
    batches: Iterable[Any],
    max_batches: int = 0,
    group: dist.ProcessGroup | None = None,
) -> dict[str, float]:
    """AUROC and mean BCE of ``predict`` over ``batches`` (at most ``max_batches``; 0 = all), predictions of
    every rank gathered (every rank must call it with the same number of equally sized batches)."""
    logits, labels = [], []
    for i, batch in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        logits.append(predict(batch).detach().float().cpu())
        labels.append(batch.labels.float().cpu())
    if not logits:
        return {"auroc": math.nan, "bce": math.nan, "samples": 0}
    all_logits = all_gather_equal(torch.cat(logits), group)
    all_labels = all_gather_equal(torch.cat(labels), group)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(all_logits, all_labels)
    return {"auroc": auroc(all_logits, all_labels), "bce": float(bce), "samples": int(all_labels.numel())}
