"""Measuring: wall time per repeat (CUDA events on GPUs), peak memory, FLOPs and modelled traffic against
reference rates measured in the same run; one :class:`ecorec.records.BenchRecord` per (batch size, table,
variant)."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ecorec.bench.memory import measure_peak_memory
from ecorec.bench.tt.config import BenchError, TTBenchConfig
from ecorec.bench.tt.sources import INDEX_SOURCES, BenchTable, resolve_tables
from ecorec.bench.tt.variants import Variant, make_variants
from ecorec.records import BenchRecord, timing_summary
from ecorec.tt import tt_gemm_flops, tt_level_counts
from ecorec.tt.costs import tt_level_flops, tt_memory_traffic
from ecorec.tt.shapes import TTShapes
from ecorec.tt.testing import LookupInput
from ecorec.utils import environment_record

logger = logging.getLogger("ecorec.bench.tt")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_ms(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall time of ``fn()`` in ms: CUDA events on the current stream on GPUs, ``perf_counter`` on CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    start_s = time.perf_counter()
    fn()
    return (time.perf_counter() - start_s) * 1e3


def bmm_reference_gflops(
    shapes: TTShapes, level_counts: Sequence[int], device: torch.device, repeats: int, dtype: torch.dtype
) -> float:
    """GFLOP/s of ``torch.bmm`` on this lookup's level products with pre-gathered contiguous operands:
    ``n_k`` products ``(Q_{k-1} x r_k) @ (r_k x q_k r_{k+1})`` for ``k = 1..d-1`` (median over repeats)."""
    r, q = shapes.ranks, shapes.q_shapes
    dims = shapes.level_dims()
    flops = tt_level_flops(shapes)
    operands = []
    for k in range(1, shapes.num_cores):
        n = max(level_counts[k], 1)
        left = torch.randn(n, dims[k - 1], r[k], device=device, dtype=dtype)
        right = torch.randn(n, r[k], q[k] * r[k + 1], device=device, dtype=dtype)
        operands.append((left, right, n * flops[k - 1]))
    total_flops = sum(f for _, _, f in operands)

    def run() -> None:
        for left, right, _ in operands:
            torch.bmm(left, right)

    run()
    times = [_time_ms(run, device) for _ in range(max(repeats, 3))]
    return total_flops / (statistics.median(times) * 1e-3) / 1e9


def copy_bandwidth_gbps(device: torch.device, num_bytes: int, repeats: int) -> float:
    """GB/s of a device-to-device copy of ``num_bytes`` (read plus written bytes; median over repeats)."""
    numel = max(num_bytes // 4, 1)
    src = torch.empty(numel, device=device, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = [_time_ms(lambda: dst.copy_(src), device) for _ in range(max(repeats, 3))]
    return 2 * numel * 4 / (statistics.median(times) * 1e-3) / 1e9


def embedding_bag_traffic(
    nnz: int, num_bags: int, num_uniques: int, dim: int, element_bytes: int = 4
) -> tuple[int, int]:
    """``(forward_bytes, backward_bytes)`` of the uncompressed baseline: rows and indices read, output
    written; backward: one ``dY`` row per occurrence into the sparse gradient (written and read by the
    update), and the touched rows read and written."""
    forward = nnz * (dim * element_bytes + 8) + (num_bags + 1) * 8 + num_bags * dim * element_bytes
    backward = 3 * nnz * dim * element_bytes + nnz * 16 + 2 * num_uniques * dim * element_bytes
    return forward, backward


def _time_variants(
    variants: Sequence[Variant],
    batches: Sequence[LookupInput],
    grads: Sequence[torch.Tensor],
    config: TTBenchConfig,
    device: torch.device,
    description: str,
    progress: bool,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Warm-ups, then ``config.repeats`` timed repeats, the variants interleaved (their order rotated each
    repeat); repeat ``i`` uses batch and gradient ``i % len(batches)`` for every variant.

    Returns:
        ``(forward_ms, step_ms)``: per variant name, the ms of each repeat in repeat order.
    """
    from tqdm import tqdm

    for variant in variants:
        for i in range(config.warmup):
            batch = batches[i % len(batches)]
            variant.forward(batch.indices, batch.offsets)
            variant.train_step(batch.indices, batch.offsets, grads[i % len(grads)])
    forward_ms: dict[str, list[float]] = {v.name: [] for v in variants}
    step_ms: dict[str, list[float]] = {v.name: [] for v in variants}
    loop = tqdm(range(config.repeats), desc=description, disable=not progress, file=sys.stderr, leave=False)
    for rep in loop:
        batch, grad = batches[rep % len(batches)], grads[rep % len(grads)]
        shift = rep % len(variants)  # rotate the order so no variant always runs first
        for variant in [*variants[shift:], *variants[:shift]]:
            forward_ms[variant.name].append(
                _time_ms(lambda v=variant, b=batch: v.forward(b.indices, b.offsets), device)
            )
            step_ms[variant.name].append(
                _time_ms(lambda v=variant, b=batch, g=grad: v.train_step(b.indices, b.offsets, g), device)
            )
    return forward_ms, step_ms


def benchmark_table(
    config: TTBenchConfig,
    table: BenchTable,
    batch_size: int,
    *,
    copy_bandwidth: float,
    environment: dict[str, Any],
    progress: bool = True,
) -> list[BenchRecord]:
    """Measure every variant on one table at one batch size; one record per variant (none if every variant
    is skipped). The modules and batches are freed when it returns."""
    device = torch.device(config.device)
    table_config = dataclasses.replace(config, num_embeddings=table.num_embeddings)
    label = f"B={batch_size}" + (f" {table.name}" if table.name is not None else "")
    batches = [
        LookupInput(*(t.to(device) if t is not None else None for t in batch))
        for batch in INDEX_SOURCES[config.indices](table_config, table.name, batch_size)
    ]
    variants = make_variants(table_config)
    if not variants:
        logger.warning("%s: no variant to run (see the messages above); skipped", label)
        return []
    shapes = TTShapes.from_sizes(table.num_embeddings, config.embedding_dim, config.tt_ranks)
    grads = [
        torch.randn(batch_size, config.embedding_dim, generator=torch.Generator().manual_seed(i)).to(device)
        * 1e-3
        for i in range(len(batches))
    ]
    level_counts = [tt_level_counts(batch.indices, shapes) for batch in batches]
    nnz = statistics.mean(batch.indices.numel() for batch in batches)
    mean_counts = [statistics.mean(c[k] for c in level_counts) for k in range(shapes.num_cores)]
    num_uniques, num_groups = mean_counts[-1], mean_counts[-2]
    logger.info(
        "%s: N=%d nnz=%.0f U=%.0f G=%.0f (mean of %d batches)",
        label,
        table.num_embeddings,
        nnz,
        num_uniques,
        num_groups,
        len(batches),
    )
    forward_ms, step_ms = _time_variants(variants, batches, grads, config, device, label, progress)
    reference = bmm_reference_gflops(
        shapes, [round(c) for c in mean_counts], device, config.repeats, torch.float32
    )
    config_dict = dataclasses.asdict(table_config)
    records = []
    for variant in variants:
        metrics: dict[str, Any] = {
            "batch_size": batch_size,
            "variant": variant.name,
            "table": table.name,
            "num_embeddings": table.num_embeddings,
            **timing_summary("forward_ms", forward_ms[variant.name]),
            **timing_summary("forward_backward_ms", step_ms[variant.name]),
            "param_bytes": variant.param_bytes,
            "optimizer_state_bytes": variant.state_bytes,
            "compression_ratio": table.num_embeddings * config.embedding_dim * 4 / variant.param_bytes,
            "nnz": nnz,
            "num_uniques": num_uniques,
            "num_groups": num_groups,
            "bmm_reference_gflops": reference,
            "copy_bandwidth_gbps": copy_bandwidth,
        }
        if variant.algorithm is not None:
            traffic = [
                tt_memory_traffic(shapes, batch.indices.numel(), batch_size, counts, variant.algorithm)
                for batch, counts in zip(batches, level_counts)
            ]
        else:
            traffic = [
                embedding_bag_traffic(batch.indices.numel(), batch_size, counts[-1], config.embedding_dim)
                for batch, counts in zip(batches, level_counts)
            ]
        forward_bytes = statistics.mean(f for f, _ in traffic)
        backward_bytes = statistics.mean(b for _, b in traffic)
        achieved_bandwidth = (
            (forward_bytes + backward_bytes) / (metrics["forward_backward_ms_median"] * 1e-3) / 1e9
        )
        metrics.update(
            forward_traffic_bytes=forward_bytes,
            backward_traffic_bytes=backward_bytes,
            achieved_gbps=achieved_bandwidth,
            bandwidth_fraction=achieved_bandwidth / copy_bandwidth,
        )
        if variant.algorithm is not None:
            flops = [
                tt_gemm_flops(
                    shapes,
                    batch.indices.numel(),
                    counts[-1],
                    counts[-2],
                    variant.algorithm,
                    level_counts=counts,
                )
                for batch, counts in zip(batches, level_counts)
            ]
            forward_flops = statistics.mean(f for f, _ in flops)
            backward_flops = statistics.mean(b for _, b in flops)
            achieved = (forward_flops + backward_flops) / (metrics["forward_backward_ms_median"] * 1e-3) / 1e9
            metrics.update(
                forward_gflop=forward_flops / 1e9,
                backward_gflop=backward_flops / 1e9,
                achieved_gflops=achieved,
                efficiency_vs_bmm=achieved / reference,
            )
        if config.measure_memory:
            batch, grad = batches[0], grads[0]
            _, forward_peak = measure_peak_memory(
                lambda v=variant, b=batch: v.forward(b.indices, b.offsets), device
            )
            _, step_peak = measure_peak_memory(
                lambda v=variant, b=batch, g=grad: v.train_step(b.indices, b.offsets, g), device
            )
            metrics.update(
                peak_forward_bytes=forward_peak.peak_bytes,
                peak_forward_backward_bytes=step_peak.peak_bytes,
                memory_method=step_peak.method,
            )
        records.append(BenchRecord(config=config_dict, environment=environment, metrics=metrics))
        logger.debug("%s", json.dumps(metrics, sort_keys=True))
    return records


def run_benchmark(
    config: TTBenchConfig, progress: bool = True, tables: Sequence[BenchTable] | None = None
) -> list[BenchRecord]:
    """Measure every variant on every table at every batch size; one record per (batch size, table, variant).

    For each batch size the tables run one after the other, each with only its own modules and batches alive
    (so peak memory is per table); ``tables`` defaults to :func:`resolve_tables` ``(config)``.
    """
    if config.indices not in INDEX_SOURCES:
        raise ValueError(f"--indices must be one of {sorted(INDEX_SOURCES)}, got {config.indices!r}")
    tables = resolve_tables(config) if tables is None else list(tables)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    environment = environment_record(device)
    records: list[BenchRecord] = []
    for batch_size in config.batch_sizes:
        bandwidth = copy_bandwidth_gbps(device, config.copy_bytes, config.repeats)
        for table in tables:
            records.extend(
                benchmark_table(
                    config,
                    table,
                    batch_size,
                    copy_bandwidth=bandwidth,
                    environment=environment,
                    progress=progress,
                )
            )
            gc.collect()  # the previous table's modules are gone before the next one is built
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if not records:
        raise BenchError("no variant to run (see the messages above)")
    return records
