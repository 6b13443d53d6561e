"""Benchmark of the TT-EmbeddingBag algorithms against uncompressed baselines: ``python -m ecorec.bench tt``.

Variants (on each table of ``N`` rows, ``D`` columns, TT ranks ``r``, the same index batches for all):

- ``ecorec`` (``ecorec_m<M>`` for ``M > 1`` micro-batches), ``fbtt``, ``elrec``: :class:`TTEmbeddingBag`
  on the pure-torch backend with the same cores, the same ``--product-strategy`` and a fused SGD update in
  backward;
- ``ecorec_cuda`` (``ecorec_cuda_m<M>``): the same module on the CUDA kernels of ``kernels/``
  (``backend="cuda"``; CUDA devices only; built on first use);
- ``nn_embedding_bag``: ``nn.EmbeddingBag(sparse=True)`` + ``torch.optim.SGD`` (skipped above
  ``--max-dense-bytes``);
- ``fbgemm_tbe``: fbgemm's ``SplitTableBatchedEmbeddingBagsCodegen`` on HOST/CPU with ``EXACT_SGD`` (CPU only;
  skipped with a message where ``fbgemm_gpu`` is missing).

Defaults follow the device: on CPU every variant but ``ecorec_cuda`` at batch 4096; on CUDA
``ecorec_cuda``, ``ecorec``, ``fbtt``, ``elrec`` and ``nn_embedding_bag`` at batches 2048 ... 131072 (the
paper's figure 11 grid; ``N = 10^6``, ``D = 32``, ranks 32); indices from the calibrated ``synthetic``
generator where numpy and pyarrow are installed, else ``zipf`` (:func:`default_indices`).

Per batch size, table and variant: forward ms and forward+backward(+update) ms (median, p10, p90 and the
per-repeat samples of ``--repeats`` repeats after ``--warmup`` warm-ups, CUDA events on GPUs; the variants are
timed side by side, interleaved, in one process; repeat ``i`` uses batch ``i % --num-batches`` for every
variant and every table, so the sum over tables of repeat ``i`` is the paper's "all tables" time of that
repeat, :func:`sum_over_tables`), peak transient memory of one forward and of one training step
(:mod:`ecorec.bench.memory`), parameter and optimizer-state bytes, compression ratio, ``nnz``, ``U``, ``G``,
and two efficiency figures, each against a rate measured on the same device in the same run:

- GEMM: the TT FLOPs (:func:`ecorec.tt.tt_gemm_flops`) per second against ``torch.bmm`` on the same small GEMM
  shapes with pre-gathered operands (``efficiency_vs_bmm``);
- memory: the modelled traffic (:func:`ecorec.tt.costs.tt_memory_traffic`; for ``nn_embedding_bag`` the rows
  read and written) per second against a large device-to-device copy (``bandwidth_fraction``).

Rows go to ``--out`` as JSON lines (``{"config", "environment", "metrics"}``; the metrics name the ``table``
and its ``num_embeddings``, and the config holds that table's ``num_embeddings``), then a table, the
all-tables sums (several tables) and the ratios the paper claims are printed.

Index sources (``--indices``, :data:`INDEX_SOURCES`):

- ``zipf``: one table of ``--num-embeddings`` rows, bounded Zipf rows, hot rows scattered, bag lengths
  uniform in ``[0, 2 L]`` (:func:`ecorec.tt.testing.random_lookup`);
- ``synthetic``: one table of ``--num-embeddings`` rows from ``ecorec.data``'s calibrated generator
  (:func:`ecorec.data.synthetic_table_lookup`: reuse and pooling of ``--stats-file``, default the packaged
  Meta statistics; needs numpy and pyarrow);
- ``dataset``: the tables ``--tables`` (or the ``--largest-tables K`` with the most rows,
  :func:`largest_tables`; neither: all) of the Parquet dataset ``--dataset``, each with its own rows, on the
  first ``--num-batches`` batches of ``--split``. For every batch size the tables run one after the other,
  only one table's modules alive at a time, so peak memory is per table. Needs pyarrow (not torchrec).

The paper's figure 11 (27 largest tables, D = 32, ranks 32, B = 2048 ... 131072) is ``--indices dataset
--dataset DIR --largest-tables 27``; its table 1 (one table of 10^8 rows, ``nn.EmbeddingBag`` against TT) is
``--indices synthetic --num-embeddings 100000000`` (the dense baseline is skipped above
``--max-dense-bytes``). The module imports with torch alone; ``ecorec.data`` is imported by the sources that
need it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import importlib.util
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecorec.bench.memory import measure_peak_memory
from ecorec.records import BenchRecord, sum_over_tables, timing_summary
from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig, tt_gemm_flops, tt_level_counts
from ecorec.tt.costs import tt_level_flops, tt_memory_traffic
from ecorec.tt.primitives import PRODUCT_STRATEGIES
from ecorec.tt.shapes import TTShapes
from ecorec.tt.testing import LookupInput, random_lookup
from ecorec.types import BenchVariant, IndexSource
from ecorec.utils import atomic_write, environment_record, setup_logging

logger = logging.getLogger("ecorec.bench.tt")

TT_ALGORITHMS = tuple(v.value for v in BenchVariant.tt())
CUDA_VARIANTS = (BenchVariant.ECOREC_CUDA.value,)
BASELINES = tuple(v.value for v in BenchVariant.baselines())
CPU_BATCH_SIZES = (4096,)
CUDA_BATCH_SIZES = (2048, 4096, 8192, 16384, 32768, 65536, 131072)


def default_algorithms(device: str) -> tuple[str, ...]:
    """The variants run when ``--algorithms`` is not given."""
    if torch.device(device).type == "cuda":
        return (*CUDA_VARIANTS, *TT_ALGORITHMS, "nn_embedding_bag")
    return TT_ALGORITHMS + BASELINES


def default_batch_sizes(device: str) -> tuple[int, ...]:
    """The batch sizes run when ``--batch-sizes`` is not given."""
    return CUDA_BATCH_SIZES if torch.device(device).type == "cuda" else CPU_BATCH_SIZES


def default_indices() -> str:
    """The index source run when ``--indices`` is not given: ``synthetic`` (the calibrated generator) where
    ``ecorec.data`` can run it (numpy and pyarrow installed), else ``zipf`` (torch alone, e.g. a GPU box)."""
    has_data_deps = all(importlib.util.find_spec(name) is not None for name in ("numpy", "pyarrow"))
    return IndexSource.SYNTHETIC.value if has_data_deps else IndexSource.ZIPF.value


@dataclass(frozen=True)
class TTBenchConfig:
    """Options of the benchmark (the CLI flags, see :func:`build_parser`)."""

    device: str = "cpu"
    batch_sizes: tuple[int, ...] = (4096,)
    num_embeddings: int = 1_000_000
    embedding_dim: int = 32
    tt_ranks: int = 32
    algorithms: tuple[str, ...] = TT_ALGORITHMS + BASELINES  # see default_algorithms(device)
    micro_batches: tuple[int, ...] = (1, 4)
    fbtt_chunk_size: int = 20000
    product_strategies: tuple[str, ...] = ("auto",)
    repeats: int = 10
    warmup: int = 3
    num_batches: int = 4
    indices: str = "zipf"
    stats_file: str | None = None
    dataset: str | None = None
    tables: tuple[str, ...] = ()
    largest_tables: int = 0
    split: str = "train"
    zipf_alpha: float = 1.05
    pooling: float = 16.0
    mode: str = "sum"
    learning_rate: float = 0.01
    seed: int = 0
    threads: int | None = None
    max_dense_bytes: int = 4 << 30
    measure_memory: bool = True
    copy_bytes: int = 1 << 30


# --------------------------------------------------------------------------------------------- index sources


@dataclass(frozen=True)
class BenchTable:
    """One table to benchmark: its feature name in a dataset (``None`` for generated indices), its rows N."""

    name: str | None
    num_embeddings: int


#: An index source: ``(config, table name, batch size) -> the config.num_batches batches of that table``. The
#: config it gets has ``num_embeddings`` set to the table's N.
IndexSourceFn = Callable[[TTBenchConfig, str | None, int], list[LookupInput]]


def _lookup(indices: torch.Tensor, offsets: torch.Tensor) -> LookupInput:
    """A :class:`LookupInput` from ``indices [nnz]`` and ``offsets [B+1]`` (int64)."""
    return LookupInput(indices, offsets, offsets[1:] - offsets[:-1], None)


def zipf_source(config: TTBenchConfig, batch_size: int, batch_index: int) -> LookupInput:
    """One batch of Zipf rows (bag lengths uniform in ``[0, 2 * pooling]``)."""
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + batch_size * 101 + batch_index)
    return random_lookup(
        config.num_embeddings,
        batch_size,
        mean_length=config.pooling,
        distribution="zipf",
        alpha=config.zipf_alpha,
        generator=generator,
    )


def synthetic_source(config: TTBenchConfig, batch_size: int, batch_index: int) -> LookupInput:
    """One batch of ``ecorec.data``'s synthetic generator (:func:`ecorec.data.synthetic_table_lookup`).

    The reuse (access counts of the unique rows) and the mean pooling follow ``config.stats_file`` (``None``:
    the packaged Meta statistics) at this batch size; hot rows persist across ``batch_index`` (they depend on
    ``config.seed`` only). ``--pooling`` and ``--zipf-alpha`` do not apply. Needs numpy and pyarrow (imported
    here, so that this module imports with torch alone).
    """
    try:
        from ecorec.data.synthetic import synthetic_table_lookup
    except ImportError as exc:
        raise SystemExit(
            f"--indices synthetic needs ecorec.data, which does not import here ({exc}); use --indices zipf"
        ) from exc
    indices, offsets = synthetic_table_lookup(
        config.num_embeddings,
        batch_size,
        seed=config.seed,
        batch_index=batch_index,
        stats_file=config.stats_file,
    )
    return _lookup(indices, offsets)


def generated_batches(
    source: Callable[[TTBenchConfig, int, int], LookupInput],
    config: TTBenchConfig,
    table: str | None,
    batch_size: int,
) -> list[LookupInput]:
    """Batches ``0 .. config.num_batches - 1`` of a per-batch generator (``table`` is unused: the generated
    table has ``config.num_embeddings`` rows)."""
    return [source(config, batch_size, index) for index in range(config.num_batches)]


def dataset_source(config: TTBenchConfig, table: str | None, batch_size: int) -> list[LookupInput]:
    """The first ``config.num_batches`` batches of ``batch_size`` samples of ``config.split`` of the Parquet
    dataset ``config.dataset``, column ``table`` only: batch ``i`` is samples ``[i B, (i+1) B)`` of the split,
    as :class:`ecorec.data.ParquetBatchLoader` reads them (``layout="global"``). Read with
    :class:`ecorec.data.ParquetRangeReader` (imported here; needs pyarrow, not torchrec). Check the split's
    length first (:func:`resolve_tables`)."""
    if config.dataset is None or table is None:
        raise ValueError("dataset_source needs config.dataset and a table name (see resolve_tables)")
    import pyarrow.compute as pc

    from ecorec.data.parquet import ParquetRangeReader

    metadata = _dataset_metadata(config.dataset)
    split_start, split_stop = metadata.splits[config.split]
    batches = []
    with ParquetRangeReader(metadata, [table]) as reader:
        for index in range(config.num_batches):
            start = split_start + index * batch_size
            if start + batch_size > split_stop:  # resolve_tables checks this first
                raise ValueError(
                    f"--split {config.split!r} of {config.dataset} has {index} batches of {batch_size} "
                    f"samples, fewer than --num-batches {config.num_batches}"
                )
            column = reader.read(start, start + batch_size)[table]
            lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
            values = column.flatten().to_numpy(zero_copy_only=False)
            lengths_t = torch.from_numpy(lengths.astype(np.int64))
            offsets = torch.zeros(batch_size + 1, dtype=torch.int64)
            torch.cumsum(lengths_t, 0, out=offsets[1:])
            batches.append(LookupInput(torch.from_numpy(values.astype(np.int64)), offsets, lengths_t, None))
    return batches


INDEX_SOURCES: dict[str, IndexSourceFn] = {
    IndexSource.ZIPF: functools.partial(generated_batches, zipf_source),
    IndexSource.SYNTHETIC: functools.partial(generated_batches, synthetic_source),
    IndexSource.DATASET: dataset_source,
}


def _dataset_metadata(dataset_dir: str | os.PathLike[str]) -> Any:
    """The validated metadata (:class:`ecorec.data.DatasetMetadata`) of a Parquet dataset folder."""
    try:
        from ecorec.data.parquet import read_metadata
    except ImportError as exc:
        raise SystemExit(
            f"--indices dataset needs ecorec.data.parquet, which does not import here ({exc}; pyarrow?)"
        ) from exc
    path = Path(dataset_dir)
    if not path.is_dir():
        raise ValueError(f"--dataset {path}: no such directory")
    try:
        return read_metadata(path)
    except FileNotFoundError as exc:
        raise ValueError(f"--dataset {path}: {exc}") from exc


def _largest(metadata: Any, k: int, where: str) -> list[str]:
    features = list(metadata.features)
    if k < 1:
        raise ValueError(f"--largest-tables must be >= 1, got {k}")
    if k > len(features):
        raise ValueError(
            f"--largest-tables {k}: {where} has only {len(features)} tables ('features' of its metadata.json)"
        )
    return sorted(features, key=lambda name: -metadata.num_embeddings[name])[:k]  # stable: ties by column


def largest_tables(dataset_dir: str | os.PathLike[str], k: int) -> list[str]:
    """The ``k`` tables of a Parquet dataset with the most rows (``num_embeddings`` of its metadata), largest
    first, ties in column order (the paper's figure 11 used the 27 largest). ``ValueError`` naming the
    dataset and the field if there is no dataset there or ``k`` is not in ``[1, number of tables]``."""
    return _largest(_dataset_metadata(dataset_dir), k, str(dataset_dir))


def resolve_tables(config: TTBenchConfig) -> list[BenchTable]:
    """The tables to benchmark, with their row counts, after checking the source options.

    Generated indices (``zipf``, ``synthetic``): one table of ``config.num_embeddings`` rows. ``dataset``:
    ``config.tables``, or the ``config.largest_tables`` largest, or (neither given) every table of the
    dataset, each with its own rows; the split must hold ``config.num_batches`` batches of every batch
    size. Every failure is a ``ValueError`` naming the flag (and the dataset folder where there is one).
    """
    if config.indices != IndexSource.DATASET:
        if config.dataset is not None or config.tables or config.largest_tables:
            raise ValueError(
                "--dataset, --tables and --largest-tables need --indices dataset, "
                f"got --indices {config.indices}"
            )
        return [BenchTable(None, config.num_embeddings)]
    if config.dataset is None:
        raise ValueError("--indices dataset needs --dataset DIR (a Parquet dataset folder)")
    if config.tables and config.largest_tables:
        raise ValueError("--tables and --largest-tables exclude each other: give one of them")
    if config.largest_tables < 0:
        raise ValueError(f"--largest-tables must be >= 0, got {config.largest_tables}")
    where = str(config.dataset)
    metadata = _dataset_metadata(config.dataset)
    if config.largest_tables:
        names = _largest(metadata, config.largest_tables, where)
    elif config.tables:
        names = list(dict.fromkeys(config.tables))
        unknown = [name for name in names if name not in metadata.num_embeddings]
        if unknown:
            known = list(metadata.features)
            shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
            raise ValueError(
                f"--tables: {where} has no table {', '.join(map(repr, unknown))} "
                f"('features' of its metadata.json: {shown})"
            )
    else:
        names = list(metadata.features)
    if config.split not in metadata.splits:
        raise ValueError(
            f"--split {config.split!r}: {where} has no such split ('splits' of its metadata.json: "
            f"{sorted(metadata.splits)})"
        )
    start, stop = metadata.splits[config.split]
    for batch_size in config.batch_sizes:
        available = (stop - start) // batch_size
        if available < config.num_batches:
            raise ValueError(
                f"--split {config.split!r} of {where} has {available} batches of {batch_size} samples "
                f"({stop - start} samples), fewer than --num-batches {config.num_batches}"
            )
    return [BenchTable(name, int(metadata.num_embeddings[name])) for name in names]


# -------------------------------------------------------------------------------------------------- variants


@dataclass
class Variant:
    """One thing to time: its forward and its training step on a batch (indices, offsets with last offset)."""

    name: str
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    train_step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]
    param_bytes: int
    state_bytes: int
    algorithm: str | None = None  # TT algorithm, for the FLOP and traffic counts


def _tensor_bytes(tensors: Sequence[torch.Tensor | None]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def make_tt_variant(
    config: TTBenchConfig,
    algorithm: str,
    micro_batches: int = 1,
    product_strategy: str = "auto",
    backend: str = "torch",
) -> Variant:
    """A :class:`TTEmbeddingBag` with fused SGD (index validation off, as in the uncompressed baselines)."""
    module = TTEmbeddingBag(
        config.num_embeddings,
        config.embedding_dim,
        config.tt_ranks,
        mode=config.mode,
        include_last_offset=True,
        algorithm=algorithm,
        micro_batches=micro_batches,
        fbtt_chunk_size=config.fbtt_chunk_size,
        product_strategy=product_strategy,
        optimizer=TTOptimizerConfig("sgd", config.learning_rate),
        validate_indices=False,
        backend=backend,
        device=config.device,
    )
    module.reset_parameters(torch.Generator(device=config.device).manual_seed(config.seed))

    def train_step(indices: torch.Tensor, offsets: torch.Tensor, grad: torch.Tensor) -> None:
        module(indices, offsets).backward(grad)

    name = algorithm if backend == "torch" else f"{algorithm}_{backend}"
    if micro_batches != 1:
        name = f"{name}_m{micro_batches}"
    if len(config.product_strategies) > 1 and backend == "torch":
        name = f"{name}/{product_strategy}"
    return Variant(
        name,
        lambda indices, offsets: module(indices, offsets),
        train_step,
        _tensor_bytes(list(module.cores)),
        _tensor_bytes(module.optimizer_states()),
        algorithm,
    )


def make_embedding_bag_variant(config: TTBenchConfig) -> Variant:
    """Uncompressed ``nn.EmbeddingBag`` with sparse gradients and ``torch.optim.SGD``."""
    module = nn.EmbeddingBag(
        config.num_embeddings,
        config.embedding_dim,
        mode=config.mode,
        sparse=True,
        include_last_offset=True,
        device=config.device,
    )
    optimizer = torch.optim.SGD(module.parameters(), lr=config.learning_rate)

    def train_step(indices: torch.Tensor, offsets: torch.Tensor, grad: torch.Tensor) -> None:
        module(indices, offsets).backward(grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return Variant(
        "nn_embedding_bag",
        lambda indices, offsets: module(indices, offsets),
        train_step,
        _tensor_bytes([module.weight]),
        0,
    )


def make_tbe_variant(config: TTBenchConfig) -> Variant | None:
    """fbgemm's CPU TBE with ``EXACT_SGD``, or ``None`` (with a log message) where it cannot run."""
    if torch.device(config.device).type != "cpu":
        logger.warning("fbgemm_tbe: the CPU TBE runs on cpu only; skipped on %s", config.device)
        return None
    try:
        from fbgemm_gpu.split_embedding_configs import EmbOptimType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import (
            ComputeDevice,
            EmbeddingLocation,
            PoolingMode,
        )
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            SplitTableBatchedEmbeddingBagsCodegen,
        )
    except ImportError as exc:
        logger.warning("fbgemm_tbe: fbgemm_gpu is not importable (%s); skipped", exc)
        return None
    module = SplitTableBatchedEmbeddingBagsCodegen(
        embedding_specs=[
            (config.num_embeddings, config.embedding_dim, EmbeddingLocation.HOST, ComputeDevice.CPU)
        ],
        optimizer=EmbOptimType.EXACT_SGD,
        learning_rate=config.learning_rate,
        pooling_mode=PoolingMode.SUM if config.mode == "sum" else PoolingMode.MEAN,
    )

    def train_step(indices: torch.Tensor, offsets: torch.Tensor, grad: torch.Tensor) -> None:
        module(indices, offsets).backward(grad)

    weights = module.split_embedding_weights()
    return Variant(
        "fbgemm_tbe",
        lambda indices, offsets: module(indices, offsets),
        train_step,
        _tensor_bytes(weights),
        0,
    )


def make_variants(config: TTBenchConfig) -> list[Variant]:
    """The variants selected by ``config.algorithms`` (and ``micro_batches`` for ``ecorec``)."""
    variants: list[Variant] = []
    dense_bytes = config.num_embeddings * config.embedding_dim * 4
    for name in config.algorithms:
        if name == "ecorec":
            variants.extend(
                make_tt_variant(config, "ecorec", m, strategy)
                for strategy in config.product_strategies
                for m in config.micro_batches
            )
        elif name == "ecorec_cuda":
            if torch.device(config.device).type != "cuda":
                logger.warning(
                    "ecorec_cuda: the CUDA kernels run on CUDA devices only; skipped on %s", config.device
                )
                continue
            variants.extend(
                make_tt_variant(config, "ecorec", m, backend="cuda") for m in config.micro_batches
            )
        elif name in TT_ALGORITHMS:
            variants.extend(make_tt_variant(config, name, 1, s) for s in config.product_strategies)
        elif dense_bytes > config.max_dense_bytes:
            logger.warning(
                "%s: the dense table needs %.2f GiB > --max-dense-bytes; skipped", name, dense_bytes / 2**30
            )
        elif name == "nn_embedding_bag":
            variants.append(make_embedding_bag_variant(config))
        else:
            tbe = make_tbe_variant(config)
            if tbe is not None:
                variants.append(tbe)
    return variants


# ------------------------------------------------------------------------------------------------- measuring


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
        raise SystemExit("no variant to run (see the messages above)")
    return records


# ------------------------------------------------------------------------------------------------- reporting


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A readable table of the records."""
    header = (
        f"{'B':>6} {'table':<8} {'variant':<18} {'fwd ms':>8} {'fwd+bwd ms':>10} {'p90':>8} {'peak MiB':>9} "
        f"{'params MiB':>10} {'compr.':>8} {'U':>8} {'G':>8} {'GFLOP/s':>8} {'eff.':>6} "
        f"{'GB/s':>8} {'bw.':>5}"
    )
    lines = [header, "-" * len(header)]
    for record in records:
        m = record["metrics"]
        peak = m.get("peak_forward_backward_bytes")
        lines.append(
            f"{m['batch_size']:>6} {m.get('table') or '-':<8} {m['variant']:<18} "
            f"{m['forward_ms_median']:>8.2f} "
            f"{m['forward_backward_ms_median']:>10.2f} {m['forward_backward_ms_p90']:>8.2f} "
            f"{(peak / 2**20 if peak is not None else float('nan')):>9.2f} {m['param_bytes'] / 2**20:>10.2f} "
            f"{m['compression_ratio']:>8.1f} {m['num_uniques']:>8.0f} {m['num_groups']:>8.0f} "
            f"{m.get('achieved_gflops', float('nan')):>8.2f} "
            f"{m.get('efficiency_vs_bmm', float('nan')):>6.2f} "
            f"{m['achieved_gbps']:>8.2f} {m['bandwidth_fraction']:>5.2f}"
        )
    return "\n".join(lines)


def format_all_tables(summaries: Sequence[dict[str, Any]]) -> str:
    """A table of :func:`sum_over_tables`: times summed over tables, peak memory the largest table's."""
    header = (
        f"{'B':>6} {'tables':>6} {'variant':<18} {'fwd ms':>9} {'fwd+bwd ms':>10} {'p10':>9} {'p90':>9} "
        f"{'mean':>9} {'max peak MiB':>12} {'params MiB':>10}"
    )
    lines = ["all tables (per-repeat times summed over tables, then median over repeats)", header]
    lines.append("-" * len(header))
    for m in summaries:
        peak = m.get("peak_forward_backward_bytes")
        lines.append(
            f"{m['batch_size']:>6} {m['num_tables']:>6} {m['variant']:<18} {m['forward_ms_median']:>9.2f} "
            f"{m['forward_backward_ms_median']:>10.2f} {m['forward_backward_ms_p10']:>9.2f} "
            f"{m['forward_backward_ms_p90']:>9.2f} {m['forward_backward_ms_mean']:>9.2f} "
            f"{(peak / 2**20 if peak is not None else float('nan')):>12.2f} {m['param_bytes'] / 2**20:>10.2f}"
        )
    return "\n".join(lines)


def format_ratios(records: Sequence[dict[str, Any]]) -> str:
    """The paper's claims, measured: ecorec's fwd+bwd speed-up over fbtt and elrec (targets >= 3x and
    >= 1.3x) and its peak transient memory relative to fbtt's (target <= 1/4 at batch 16384), each ecorec
    variant against the baselines run with the same product strategy; ``ecorec_cuda`` also against the torch
    ``ecorec`` of the same micro-batching and ``nn_embedding_bag``. With several tables, over all tables
    (:func:`sum_over_tables`); with one, per record."""
    if len({record["metrics"].get("table") for record in records}) > 1:
        rows_in = sum_over_tables(records)
    else:
        rows_in = [record["metrics"] for record in records]
    lines = []
    by_batch: dict[int, dict[str, dict[str, Any]]] = {}
    for m in rows_in:
        by_batch.setdefault(m["batch_size"], {})[m["variant"]] = m
    for batch_size, rows in by_batch.items():
        for name, m in rows.items():
            if not name.startswith("ecorec"):
                continue
            suffix = name[name.index("/") :] if "/" in name else ""
            baselines = ["fbtt" + suffix, "elrec" + suffix]
            if name.startswith("ecorec_cuda"):  # the kernels against the same algorithm in torch
                baselines = [name.replace("ecorec_cuda", "ecorec", 1), *baselines, "nn_embedding_bag"]
            parts = []
            for baseline in baselines:
                other = rows.get(baseline)
                if other is not None:
                    speedup = other["forward_backward_ms_median"] / m["forward_backward_ms_median"]
                    forward = other["forward_ms_median"] / m["forward_ms_median"]
                    parts.append(f"{speedup:.2f}x faster fwd+bwd ({forward:.2f}x fwd) than {baseline}")
            fbtt = rows.get("fbtt" + suffix)
            if (
                fbtt is not None
                and m.get("peak_forward_backward_bytes")
                and fbtt.get("peak_forward_backward_bytes")
            ):
                ratio = m["peak_forward_backward_bytes"] / fbtt["peak_forward_backward_bytes"]
                parts.append(f"peak transient memory {ratio:.3f} of {'fbtt' + suffix}'s")
            scope = f" (all {m['num_tables']} tables)" if m.get("table") == "all" else ""
            lines.append(f"B={batch_size}{scope} {name}: " + "; ".join(parts))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    d = TTBenchConfig()
    p = argparse.ArgumentParser(
        prog="python -m ecorec.bench tt", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    p.add_argument("--device", default=d.device, help="cpu or cuda[:i] (default %(default)s)")
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=None,
        help=f"bags per batch (default: {list(CPU_BATCH_SIZES)} on cpu, {list(CUDA_BATCH_SIZES)} on cuda)",
    )
    p.add_argument("--num-embeddings", type=int, default=d.num_embeddings, help="table rows N")
    p.add_argument("--embedding-dim", type=int, default=d.embedding_dim, help="D")
    p.add_argument("--tt-ranks", type=int, default=d.tt_ranks, help="every inner TT rank")
    p.add_argument(
        "--algorithms",
        nargs="+",
        default=None,
        choices=[v.value for v in BenchVariant],
        help=f"variants to run (default: {list(default_algorithms('cpu'))} on cpu, "
        f"{list(default_algorithms('cuda'))} on cuda)",
    )
    p.add_argument(
        "--micro-batches",
        type=int,
        nargs="+",
        default=list(d.micro_batches),
        help="M for ecorec and ecorec_cuda",
    )
    p.add_argument(
        "--fbtt-chunk-size", type=int, default=d.fbtt_chunk_size, help="fbtt occurrences per chunk"
    )
    p.add_argument(
        "--product-strategy",
        nargs="+",
        default=list(d.product_strategies),
        choices=list(PRODUCT_STRATEGIES),
        help="how the TT variants run their small GEMMs (ecorec.tt.primitives.resolve_product_strategy); "
        "'slices' keeps the per-item core-gradient slices of the published CUDA kernels",
    )
    p.add_argument("--repeats", type=int, default=d.repeats, help="timed repeats per variant")
    p.add_argument("--warmup", type=int, default=d.warmup, help="untimed repeats per variant")
    p.add_argument("--num-batches", type=int, default=d.num_batches, help="distinct batches cycled through")
    p.add_argument(
        "--indices",
        default=default_indices(),
        choices=[s.value for s in IndexSource],
        help="index source: zipf (--zipf-alpha, --pooling), synthetic (ecorec.data's calibrated generator, "
        "--stats-file) or dataset (--dataset with --tables or --largest-tables, --split); default: synthetic "
        "where numpy and pyarrow are installed, else zipf",
    )
    p.add_argument(
        "--stats-file",
        default=None,
        help="locality-stats file the synthetic source follows (default: the packaged Meta statistics)",
    )
    p.add_argument("--dataset", default=None, help="Parquet dataset folder (--indices dataset)")
    p.add_argument(
        "--tables",
        nargs="+",
        default=[],
        help="tables (features) of --dataset to run, each with its own rows",
    )
    p.add_argument(
        "--largest-tables",
        type=int,
        default=d.largest_tables,
        metavar="K",
        help="run the K tables of --dataset with the most rows (ties by column order); 0: --tables, or all",
    )
    p.add_argument("--split", default=d.split, help="split of --dataset to read (default %(default)s)")
    p.add_argument("--zipf-alpha", type=float, default=d.zipf_alpha, help="Zipf exponent")
    p.add_argument("--pooling", type=float, default=d.pooling, help="mean bag length L (pooling factor)")
    p.add_argument("--mode", default=d.mode, choices=["sum", "mean"], help="pooling mode")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help="SGD learning rate")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument(
        "--max-dense-bytes", type=int, default=d.max_dense_bytes, help="skip dense baselines above"
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument(
        "--copy-bytes", type=int, default=d.copy_bytes, help="size of the bandwidth-reference device copy"
    )
    p.add_argument("--out", type=Path, default=None, help="JSON-lines output file (written atomically)")
    p.add_argument("--jsonl-stdout", action="store_true", help="also print the JSON lines to stdout")
    p.add_argument("--log-file", type=Path, default=None, help="log file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TTBenchConfig:
    if args.batch_sizes is None:
        args.batch_sizes = list(default_batch_sizes(args.device))
    if args.algorithms is None:
        args.algorithms = list(default_algorithms(args.device))
    for name in ("batch_sizes", "micro_batches"):
        if any(v < 1 for v in getattr(args, name)):
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("num_embeddings", "embedding_dim", "tt_ranks", "repeats", "num_batches", "copy_bytes"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return TTBenchConfig(
        device=args.device,
        batch_sizes=tuple(args.batch_sizes),
        num_embeddings=args.num_embeddings,
        embedding_dim=args.embedding_dim,
        tt_ranks=args.tt_ranks,
        algorithms=tuple(dict.fromkeys(args.algorithms)),
        micro_batches=tuple(dict.fromkeys(args.micro_batches)),
        fbtt_chunk_size=args.fbtt_chunk_size,
        product_strategies=tuple(dict.fromkeys(args.product_strategy)),
        repeats=args.repeats,
        warmup=args.warmup,
        num_batches=args.num_batches,
        indices=args.indices,
        stats_file=args.stats_file,
        dataset=args.dataset,
        tables=tuple(args.tables),
        largest_tables=args.largest_tables,
        split=args.split,
        zipf_alpha=args.zipf_alpha,
        pooling=args.pooling,
        mode=args.mode,
        learning_rate=args.learning_rate,
        seed=args.seed,
        threads=args.threads,
        max_dense_bytes=args.max_dense_bytes,
        measure_memory=not args.no_memory,
        copy_bytes=args.copy_bytes,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    setup_logging(args.log_file)
    try:
        tables = resolve_tables(config)
    except ValueError as exc:  # bad flags or dataset: a message, not a traceback
        raise SystemExit(f"python -m ecorec.bench tt: {exc}") from exc
    records = run_benchmark(config, progress=not args.no_progress, tables=tables)
    lines = [record.to_json() for record in records]
    if args.out is not None:
        with atomic_write(args.out) as handle:
            handle.write("\n".join(lines) + "\n")
        logger.info("wrote %d records to %s", len(records), args.out)
    if args.jsonl_stdout:
        print("\n".join(lines))
    print(format_table(records))
    if len({record["metrics"]["table"] for record in records}) > 1:
        print(format_all_tables(sum_over_tables(records)))
    print(format_ratios(records))
    return 0
