"""Per-table feature statistics of a dataset, in bounded memory.

For each sparse feature (one embedding table), over ``num_batches`` batches of ``batch_size`` samples:
rows, pooling factor (mean / p50 / p90 / p99 and the share of empty bags), indices per batch (nnz),
distinct rows per batch (U), distinct TT prefix groups per batch (G, for the table's TT shape), the distinct
prefixes of every TT level, and the mean access count of a distinct row (nnz / U). Across all tables, the
reuse histogram in the published locality-stats format (block ``<dataset>_t<T>_bs<B>``, so that the file can
be fed back to the synthetic generator as ``stats_file``), so that synthetic and real data can be compared.

Only running sums and small histograms are kept: memory does not grow with the number of batches, and
:func:`dataset_feature_stats` reads a bounded number of tables at a time (``tables_per_read``), so memory
does not grow with the number of tables either.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ecorec.data.locality_stats import LocalityAccumulator, LocalityStatsBlock, locality_source_name
from ecorec.tt import TTShapes

#: One batch: ``{table: (values [nnz] int64, lengths [B] int64)}``.
BatchLookups = Mapping[str, tuple[np.ndarray, np.ndarray]]

STATS_COLUMNS = (
    "table",
    "num_embeddings",
    "embedding_dim",
    "tt_p_shapes",
    "tt_q_shapes",
    "tt_ranks",
    "tt_parameters",
    "compression_ratio",
    "batch_size",
    "num_batches",
    "pooling_mean",
    "pooling_p50",
    "pooling_p90",
    "pooling_p99",
    "empty_bag_fraction",
    "nnz",
    "unique",
    "groups",
    "level_counts",
    "col_size_mean",
)


def _percentile_from_counts(counts: np.ndarray, q: float) -> float:
    """The ``q``-quantile (0..1, 'lower' interpolation) of integers whose histogram is ``counts``."""
    total = counts.sum()
    if total == 0:
        return 0.0
    cdf = np.cumsum(counts)
    return float(np.searchsorted(cdf, q * total, side="left"))


@dataclass
class _TableAccumulator:
    shapes: TTShapes
    length_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    nnz: int = 0
    level_counts: np.ndarray | None = None
    batches: int = 0

    def add(self, values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Add one batch; returns the access counts ``[U]`` of its distinct rows."""
        lengths = np.asarray(lengths, dtype=np.int64)
        hist = np.bincount(lengths) if lengths.size else np.zeros(1, dtype=np.int64)
        if hist.size > self.length_counts.size:
            hist[: self.length_counts.size] += self.length_counts
            self.length_counts = hist
        else:
            self.length_counts[: hist.size] += hist
        self.nnz += int(values.size)
        self.batches += 1
        uniques, counts = np.unique(values, return_counts=True)
        levels = np.array(
            [np.unique(uniques // div).size if uniques.size else 0 for div in self.shapes.prefix_divisors()],
            dtype=np.int64,
        )
        self.level_counts = levels if self.level_counts is None else self.level_counts + levels
        return counts

    def row(self, table: str, batch_size: int) -> dict[str, Any]:
        shapes, n = self.shapes, max(self.batches, 1)
        samples = int(self.length_counts.sum())
        levels = (self.level_counts if self.level_counts is not None else np.zeros(shapes.num_cores)) / n
        unique = float(levels[-1])
        return {
            "table": table,
            "num_embeddings": shapes.num_embeddings,
            "embedding_dim": shapes.embedding_dim,
            "tt_p_shapes": list(shapes.p_shapes),
            "tt_q_shapes": list(shapes.q_shapes),
            "tt_ranks": list(shapes.ranks),
            "tt_parameters": shapes.num_parameters(),
            "compression_ratio": shapes.compression_ratio(),
            "batch_size": batch_size,
            "num_batches": self.batches,
            "pooling_mean": self.nnz / samples if samples else 0.0,
            "pooling_p50": _percentile_from_counts(self.length_counts, 0.50),
            "pooling_p90": _percentile_from_counts(self.length_counts, 0.90),
            "pooling_p99": _percentile_from_counts(self.length_counts, 0.99),
            "empty_bag_fraction": float(self.length_counts[0]) / samples if samples else 0.0,
            "nnz": self.nnz / n,
            "unique": unique,
            "groups": float(levels[-2]),
            "level_counts": [float(c) for c in levels],
            "col_size_mean": self.nnz / (unique * n) if unique else 0.0,
        }


@dataclass
class FeatureStats:
    """Per-table statistics (``table``: one row per feature, columns ``STATS_COLUMNS``) and the dataset's
    reuse histogram (``locality``) in the published locality-stats format."""

    table: pl.DataFrame
    locality: LocalityStatsBlock

    def write(self, table_path: str | os.PathLike[str], locality_path: str | os.PathLike[str]) -> None:
        """Write the Parquet table and the locality-stats text, each atomically."""
        from ecorec.data.locality_stats import write_locality_stats
        from ecorec.utils import atomic_path

        with atomic_path(table_path) as tmp:
            self.table.write_parquet(tmp)
        write_locality_stats(locality_path, [self.locality])


class FeatureStatsAccumulator:
    """Running per-table statistics and the reuse histogram of batches added table by table.

    A batch may be added in several calls (``add`` with a subset of its tables each time) as long as
    :meth:`end_batch` is called once per batch: every statistic is a sum over (table, batch) pairs, so the
    result does not depend on how a batch's tables are split between calls, nor on the order of the calls.
    Tables are listed in the order they are first added.

    Args:
        num_embeddings: rows of every table (its TT shape is the one ``TTEmbeddingBag`` would use).
        embedding_dim, tt_ranks, tt_num_cores: the TT configuration whose prefix groups are counted;
            ``tt_num_cores=None``: ``len(tt_ranks) + 1`` for a rank list, 3 for a single rank.
    """

    def __init__(
        self,
        num_embeddings: Mapping[str, int],
        *,
        embedding_dim: int = 32,
        tt_ranks: Sequence[int] | int = 32,
        tt_num_cores: int | None = None,
    ) -> None:
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.tt_ranks: Sequence[int] | int = tt_ranks if isinstance(tt_ranks, int) else list(tt_ranks)
        self.tt_num_cores = tt_num_cores
        self.tables: dict[str, _TableAccumulator] = {}
        self.locality = LocalityAccumulator()

    @property
    def num_batches(self) -> int:
        """Batches ended so far."""
        return self.locality.num_batches

    def add(self, lookups: BatchLookups) -> None:
        """Add some (or all) tables of the current batch: ``{table: (values [nnz], lengths [B])}``."""
        for table, (values, lengths) in lookups.items():
            acc = self.tables.get(table)
            if acc is None:
                if table not in self.num_embeddings:
                    raise KeyError(f"compute_feature_stats: no num_embeddings for table {table!r}")
                shapes = TTShapes.from_sizes(
                    int(self.num_embeddings[table]),
                    self.embedding_dim,
                    self.tt_ranks,
                    num_cores=self.tt_num_cores,
                )
                acc = self.tables[table] = _TableAccumulator(shapes)
            values = np.asarray(values, dtype=np.int64)
            if values.size and (values.min() < 0 or values.max() >= acc.shapes.num_embeddings):
                raise ValueError(
                    f"table {table!r}: index out of range [0, {acc.shapes.num_embeddings}): "
                    f"min {values.min()}, max {values.max()}"
                )
            self.locality.add(acc.add(values, lengths))

    def end_batch(self) -> None:
        """Mark the end of one batch (once per batch, however many :meth:`add` calls it took)."""
        self.locality.end_batch()

    def result(self, *, batch_size: int, source: str = "dataset") -> FeatureStats:
        """The statistics so far; the locality block is named :func:`locality_source_name` of ``source``."""
        if self.num_batches == 0:
            raise ValueError("compute_feature_stats: no batches (is the split shorter than one batch?)")
        rows = [acc.row(table, batch_size) for table, acc in self.tables.items()]
        frame = pl.DataFrame(rows, schema_overrides={"tt_p_shapes": pl.List(pl.Int64)})
        name = locality_source_name(source, len(self.tables), batch_size)
        return FeatureStats(table=frame.select(STATS_COLUMNS), locality=self.locality.block(name, batch_size))


def compute_feature_stats(
    batches: Iterable[BatchLookups],
    num_embeddings: Mapping[str, int],
    *,
    batch_size: int,
    embedding_dim: int = 32,
    tt_ranks: Sequence[int] | int = 32,
    tt_num_cores: int | None = None,
    source: str = "dataset",
) -> FeatureStats:
    """Statistics of the given batches (see the module docstring).

    Args:
        batches: an iterable of ``{table: (values [nnz], lengths [B])}``, one per batch of ``batch_size``.
        num_embeddings: rows of every table (its TT shape is the one ``TTEmbeddingBag`` would use).
        embedding_dim, tt_ranks, tt_num_cores: the TT configuration whose prefix groups are counted
            (``tt_num_cores=None``: ``len(tt_ranks) + 1`` for a rank list, as in training; 3 for one rank).
        source: written in the locality-stats block name, as ``<source>_t<T>_bs<B>``.
    """
    acc = FeatureStatsAccumulator(
        num_embeddings, embedding_dim=embedding_dim, tt_ranks=tt_ranks, tt_num_cores=tt_num_cores
    )
    for lookups in batches:
        acc.add(lookups)
        acc.end_batch()
    return acc.result(batch_size=batch_size, source=source)


def dataset_lookups(
    dataset: str | os.PathLike[str],
    *,
    batch_size: int,
    num_batches: int,
    split: str = "train",
    features: Sequence[str] | None = None,
) -> Iterator[BatchLookups]:
    """The first ``num_batches`` batches of ``batch_size`` samples of a Parquet dataset's ``split``.

    Every batch holds all of ``features`` (default: all): ``batch_size * mean pooling * 8`` bytes per table.
    For many tables at a large batch size, :func:`dataset_feature_stats` reads them in bounded groups.
    """
    from ecorec.data import ParquetBatchLoader

    loader = ParquetBatchLoader(
        dataset, split=split, global_batch_size=batch_size, features=features, layout="global", prefetch=1
    )
    if len(loader) < num_batches:
        raise ValueError(
            f"{dataset}: split {split!r} has {len(loader)} batches of {batch_size}, fewer than the "
            f"num_batches={num_batches} requested"
        )
    for index, batch in enumerate(loader):
        if index == num_batches:
            break
        jagged = batch.sparse.to_dict()
        yield {key: (jt.values().numpy(), jt.lengths().numpy()) for key, jt in jagged.items()}


#: Default tables read at once by :func:`dataset_feature_stats`: at the paper's batch (131072 samples,
#: ~14 indices per sample and table) one read holds ~32 * 131072 * 14 * 8 B ~ 0.5 GB of indices.
DEFAULT_TABLES_PER_READ = 32


def dataset_feature_stats(
    dataset: str | os.PathLike[str],
    *,
    batch_size: int,
    num_batches: int,
    split: str = "train",
    embedding_dim: int = 32,
    tt_ranks: Sequence[int] | int = 32,
    tt_num_cores: int | None = None,
    features: Sequence[str] | None = None,
    tables_per_read: int | None = DEFAULT_TABLES_PER_READ,
) -> FeatureStats:
    """:func:`compute_feature_stats` over the first ``num_batches`` batches of a Parquet dataset, in bounded
    memory.

    The tables are read ``tables_per_read`` at a time: one pass over the batches per group of tables, so at
    most one group's columns of about two batches are in memory (the loader prefetches one). The result is
    identical to reading every table of a batch at once (see :class:`FeatureStatsAccumulator`).

    Args:
        features: the tables to describe, in this order (default: all of the dataset's).
        tt_num_cores: ``None``: ``len(tt_ranks) + 1`` for a rank list (as training does), 3 for one rank.
        tables_per_read: tables per read (``None``: all at once).
    """
    from ecorec.data import read_metadata

    meta = read_metadata(dataset)
    names = list(meta.select_features(features, f"{dataset}"))
    if not names:
        raise ValueError(f"{dataset}: no features to describe")
    if tables_per_read is None:
        tables_per_read = len(names)
    if tables_per_read < 1:
        raise ValueError(f"tables_per_read must be >= 1 or None, got {tables_per_read}")
    acc = FeatureStatsAccumulator(
        meta.num_embeddings, embedding_dim=embedding_dim, tt_ranks=tt_ranks, tt_num_cores=tt_num_cores
    )
    for first in range(0, len(names), tables_per_read):
        group = names[first : first + tables_per_read]
        for lookups in dataset_lookups(
            dataset, batch_size=batch_size, num_batches=num_batches, split=split, features=group
        ):
            acc.add(lookups)
            if first == 0:  # the batches are the same in every pass: count them once
                acc.end_batch()
    return acc.result(batch_size=batch_size, source=os.path.basename(os.path.normpath(dataset)))


def mean_col_size(stats: pl.DataFrame) -> float:
    """nnz / U over all tables (the published 'Avg col size')."""
    unique = float(stats["unique"].sum())
    return float(stats["nnz"].sum()) / unique if unique else math.nan


def read_table_stats(path: str | os.PathLike[str], num_tables: int | None = None) -> pl.DataFrame:
    """The per-table statistics file ``path`` (``dataset_feature_stats(...).table``, Parquet), limited to its
    first ``num_tables`` rows (tables in dataset order).

    Raises ``ValueError`` naming the file, the requested count and the count available when ``num_tables`` is
    not in ``[1, rows of the file]`` (asking for more tables than the dataset has must not silently plan
    fewer).
    """
    frame = pl.read_parquet(path)
    if num_tables is None:
        return frame
    if not 1 <= num_tables <= frame.height:
        raise ValueError(
            f"{path}: {num_tables} tables requested but the dataset's statistics list {frame.height} tables "
            f"(tables must be in [1, {frame.height}]); lower the table count of the run/figure or use a "
            "dataset with more tables"
        )
    return frame.head(num_tables)
