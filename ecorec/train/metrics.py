"""What a run measures: iteration times in timing windows, peak memory per rank, AUROC over all ranks."""

from __future__ import annotations

import logging
import math
import resource
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torchmetrics.functional.classification import binary_auroc

from ecorec.parallel import CommSample, all_gather_equal

_LOG = logging.getLogger("ecorec.train")

__all__ = ["auroc", "comm_metrics", "evaluate", "gather_objects", "peak_memory", "summarize_times"]


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


def comm_metrics(
    samples: Sequence[Sequence[CommSample]],
    step_times: Sequence[float],
    warmup_steps: int,
    ranks_per_node: int,
) -> dict[str, Any] | None:
    """The communication of the timed steps, from every rank's :class:`~ecorec.parallel.CommSample` per step.

    Args:
        samples: ``samples[r][s]``: rank ``r``'s sample of step ``s``.
        step_times: seconds of each step (the slowest rank's), in order; the first ``warmup_steps`` are left
            out, as in :func:`summarize_times`.
        ranks_per_node: ranks sharing a node (bytes to them do not cross the inter-node link).

    Returns:
        ``None`` without metered steps, else the medians over timed steps of: ``exposed_ms`` (time blocked in
        collectives, mean over ranks) and ``exposed_share`` (that / the step time); ``bytes_per_rank`` (bytes
        a rank sends to other ranks, mean over ranks) and ``bytes_off_node`` (to other nodes, the busiest
        rank: the link's load); ``wait_ms_by_kind`` and ``bytes_by_kind`` (mean over ranks).
    """
    world = len(samples)
    steps = min((len(s) for s in samples), default=0)
    timed = range(warmup_steps, min(steps, len(step_times)))
    if world == 0 or not timed:
        return None
    exposed, shares, sent, off_node = [], [], [], []
    kinds = sorted({k for rank in samples for s in rank for k in (*s.wait_s, *s.bytes_by_kind)})
    wait_by_kind: dict[str, list[float]] = {k: [] for k in kinds}
    bytes_by_kind: dict[str, list[float]] = {k: [] for k in kinds}
    for step in timed:
        per_rank = [samples[r][step] for r in range(world)]
        exposed_s = statistics.fmean(s.exposed_s for s in per_rank)
        exposed.append(exposed_s * 1e3)
        shares.append(exposed_s / step_times[step] if step_times[step] > 0 else 0.0)
        sent.append(statistics.fmean(sum(s.bytes_to) for s in per_rank))
        off_node.append(max(s.bytes_off_node(ranks_per_node, r) for r, s in enumerate(per_rank)))
        for k in kinds:
            wait_by_kind[k].append(statistics.fmean(s.wait_s.get(k, 0.0) for s in per_rank) * 1e3)
            bytes_by_kind[k].append(statistics.fmean(s.bytes_by_kind.get(k, 0) for s in per_rank))
    return {
        "timed_steps": len(timed),
        "ranks_per_node": ranks_per_node,
        "exposed_ms": statistics.median(exposed),
        "exposed_share": statistics.median(shares),
        "bytes_per_rank": statistics.median(sent),
        "bytes_off_node": statistics.median(off_node),
        "wait_ms_by_kind": {k: statistics.median(v) for k, v in wait_by_kind.items()},
        "bytes_by_kind": {k: statistics.median(v) for k, v in bytes_by_kind.items()},
        "definition": (
            "exposed: time blocked waiting for collectives (mean over ranks; synchronisation skew included); "
            "bytes: sent to other ranks per step (all-reduce counted as a ring, 2(W-1)/W of the buffer)"
        ),
    }


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


def auroc(logits: torch.Tensor, labels: torch.Tensor, where: str = "evaluation") -> float | None:
    """Binary AUROC (torchmetrics) of ``logits [n]`` against 0/1 ``labels [n]``.

    ``None`` (undefined, with a warning) when the labels hold one class only or there are none; a
    ``FloatingPointError`` naming ``where`` and the count when a logit is NaN or infinite (a diverged model
    has no AUROC).
    """
    finite = torch.isfinite(logits)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        first = int(torch.nonzero(~finite)[0, 0])
        raise FloatingPointError(
            f"{where}: {bad} of {logits.numel()} logits are not finite (first: sample {first}, "
            f"{float(logits[first])}); AUROC is undefined for a diverged model"
        )
    labels = labels.long()
    if labels.numel() == 0 or labels.min() == labels.max():
        only = "no samples" if labels.numel() == 0 else f"only label {int(labels[0])}"
        _LOG.warning(
            "%s: AUROC is undefined (reported as null): %s among %d samples", where, only, labels.numel()
        )
        return None
    return float(binary_auroc(torch.sigmoid(logits.float()), labels))


def evaluate(
    predict: Callable[[Any], torch.Tensor],
    batches: Iterable[Any],
    max_batches: int = 0,
    group: dist.ProcessGroup | None = None,
    where: str = "evaluation",
) -> dict[str, Any]:
    """AUROC and mean BCE of ``predict`` over ``batches`` (at most ``max_batches``; 0 = all), predictions of
    every rank gathered (every rank must call it with the same number of equally sized batches).

    A batch with a ``mask`` (``[b]`` bool, False for padding: the loader's ``pad_last``) contributes only its
    real samples, so padding the last batch of a split to full size scores every sample exactly once.
    Returns ``{"auroc": float | None, "bce": float | None, "samples": int}`` (``None``: undefined).
    """
    logits, labels, masks = [], [], []
    for i, batch in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        out = predict(batch).detach().float().cpu()
        logits.append(out)
        labels.append(batch.labels.float().cpu())
        mask = getattr(batch, "mask", None)
        masks.append(torch.ones(out.shape[0], dtype=torch.bool) if mask is None else mask.bool().cpu())
    if not logits:
        _LOG.warning("%s: no batch to evaluate; AUROC and BCE are undefined (null)", where)
        return {"auroc": None, "bce": None, "samples": 0}
    keep = all_gather_equal(torch.cat(masks).to(torch.uint8), group).bool()
    all_logits = all_gather_equal(torch.cat(logits), group)[keep]
    all_labels = all_gather_equal(torch.cat(labels), group)[keep]
    value = auroc(all_logits, all_labels, where)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(all_logits, all_labels)
    return {"auroc": value, "bce": float(bce), "samples": int(all_labels.numel())}
