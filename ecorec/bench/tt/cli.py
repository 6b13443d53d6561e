"""``python -m ecorec.bench tt``: flags -> :class:`TTBenchConfig` -> run -> JSON lines + report. The only
place that exits (status 2 with a message on bad flags or a :class:`BenchError`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ecorec.bench.tt.config import (
    CPU_BATCH_SIZES,
    CUDA_BATCH_SIZES,
    DESCRIPTION,
    BenchError,
    TTBenchConfig,
    default_algorithms,
    default_batch_sizes,
    default_indices,
)
from ecorec.bench.tt.measure import run_benchmark
from ecorec.bench.tt.report import format_all_tables, format_ratios, format_table
from ecorec.bench.tt.sources import resolve_tables
from ecorec.records import sum_over_tables
from ecorec.tt.primitives import PRODUCT_STRATEGIES
from ecorec.types import BenchVariant, IndexSource
from ecorec.utils import atomic_write, setup_logging

logger = logging.getLogger("ecorec.bench.tt")


def build_parser() -> argparse.ArgumentParser:
    d = TTBenchConfig()
    p = argparse.ArgumentParser(prog="python -m ecorec.bench tt", description=DESCRIPTION, allow_abbrev=False)
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
    # flags named like the config's fields go over as they are; lists become tuples without repeats
    same = {f.name: getattr(args, f.name) for f in dataclasses.fields(TTBenchConfig) if hasattr(args, f.name)}
    for name in ("batch_sizes", "tables"):
        same[name] = tuple(same[name])
    for name in ("algorithms", "micro_batches"):
        same[name] = tuple(dict.fromkeys(same[name]))
    return TTBenchConfig(
        **same,
        product_strategies=tuple(dict.fromkeys(args.product_strategy)),
        measure_memory=not args.no_memory,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    setup_logging(args.log_file)
    try:
        tables = resolve_tables(config)
        records = run_benchmark(config, progress=not args.no_progress, tables=tables)
    except (ValueError, BenchError) as exc:  # bad flags, dataset or environment: a message, not a traceback
        print(f"python -m ecorec.bench tt: {exc}", file=sys.stderr)
        return 2
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
