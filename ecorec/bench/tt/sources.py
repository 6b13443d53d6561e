"""Index sources of the kernel benchmark (``--indices``): per table, the batches every variant runs on;
and the tables to run (:func:`resolve_tables`)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ecorec.bench.tt.config import BenchError, TTBenchConfig
from ecorec.tt.testing import LookupInput, random_lookup
from ecorec.types import IndexSource


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
        raise BenchError(
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
    from ecorec.data.parquet import ParquetRangeReader, jagged_arrays

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
            values, lengths = jagged_arrays(reader.read(start, start + batch_size)[table])
            lengths_t = torch.from_numpy(lengths)
            offsets = torch.zeros(batch_size + 1, dtype=torch.int64)
            torch.cumsum(lengths_t, 0, out=offsets[1:])
            batches.append(LookupInput(torch.from_numpy(values), offsets, lengths_t, None))
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
        raise BenchError(
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


#: Options that only some index sources read (``TTBenchConfig`` field -> the sources reading it). A value
#: other than the default with another source is an error: the benchmark would measure something else.
SOURCE_ONLY_OPTIONS: dict[str, tuple[IndexSource, ...]] = {
    "num_embeddings": (IndexSource.ZIPF, IndexSource.SYNTHETIC),
    "pooling": (IndexSource.ZIPF,),
    "zipf_alpha": (IndexSource.ZIPF,),
    "stats_file": (IndexSource.SYNTHETIC,),
    "split": (IndexSource.DATASET,),
}


def check_source_options(config: TTBenchConfig) -> None:
    """``ValueError`` naming the flag when an option is set (not its default) that ``config.indices`` ignores
    (:data:`SOURCE_ONLY_OPTIONS`)."""
    source = IndexSource(config.indices)
    defaults = TTBenchConfig()
    for name, sources in SOURCE_ONLY_OPTIONS.items():
        if source not in sources and getattr(config, name) != getattr(defaults, name):
            flag = "--" + name.replace("_", "-")
            raise ValueError(
                f"{flag} {getattr(config, name)} has no effect with --indices {source.value} (read by "
                f"--indices {' / '.join(s.value for s in sources)} only); drop it or change --indices"
            )


def resolve_tables(config: TTBenchConfig) -> list[BenchTable]:
    """The tables to benchmark, with their row counts, after checking the source options.

    Generated indices (``zipf``, ``synthetic``): one table of ``config.num_embeddings`` rows. ``dataset``:
    ``config.tables``, or the ``config.largest_tables`` largest, or (neither given) every table of the
    dataset, each with its own rows; the split must hold ``config.num_batches`` batches of every batch
    size. Every failure is a ``ValueError`` naming the flag (and the dataset folder where there is one),
    including an option the source ignores (:func:`check_source_options`).
    """
    check_source_options(config)
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
