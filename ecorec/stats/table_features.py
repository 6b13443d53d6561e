"""DreamShard's per-table features measured from real batches.

DreamShard (NeurIPS'22) describes a table by 21 numbers: ``[dim, rows, pooling_factor, size, bin_0..bin_16]``.
``dim`` is the embedding dim a task gives the table, ``size = rows * dim``; the other 19 come from the data:

- ``rows``: the table's number of rows (the dataset's ``num_embeddings``);
- ``pooling_factor``: mean bag length (indices per sample) over all batches read (a float; DreamShard
  truncates it to an int);
- ``bin_0..bin_16``: the access-count histogram of the distinct rows of a batch: a distinct row accessed ``c``
  times falls in ``bin_0`` for ``c in (0, 1]``, ``bin_j`` for ``c in (2^(j-1), 2^j]`` (``j = 1..15``) and
  ``bin_16`` for ``c > 2^15`` (the buckets of Meta's published locality statistics); the bins are fractions
  of the distinct rows, summed over batches (so they add up to 1 for a table with any index).

:func:`table_reuse_features` computes them from batches (``{table: (values [nnz], lengths [B])}``, as
:func:`ecorec.stats.dataset_lookups` yields); :func:`dataset_table_features` reads a Parquet dataset.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from ecorec.data.locality_stats import DEFAULT_EDGES, bucket_of
from ecorec.stats.features import BatchLookups, dataset_lookups

#: Number of reuse bins: the 17 buckets of the published locality statistics.
NUM_REUSE_BINS = len(DEFAULT_EDGES)
REUSE_BIN_COLUMNS = tuple(f"bin_{k}" for k in range(NUM_REUSE_BINS))
#: Columns of :func:`table_reuse_features` (``dim`` and ``size`` depend on the task and are added there).
TABLE_FEATURE_COLUMNS = ("table", "rows", "pooling_factor", *REUSE_BIN_COLUMNS, "batch_size", "num_batches")


def reuse_bins(values: np.ndarray) -> np.ndarray:
    """Counts ``[17]`` of the distinct values of ``values`` per access-count bucket (bin_0..bin_16)."""
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return np.zeros(NUM_REUSE_BINS, dtype=np.int64)
    _, counts = np.unique(values, return_counts=True)
    return np.bincount(bucket_of(counts), minlength=NUM_REUSE_BINS).astype(np.int64)


def table_reuse_features(
    batches: Iterable[BatchLookups], num_embeddings: Mapping[str, int], *, batch_size: int
) -> pl.DataFrame:
    """DreamShard's data features of every table in ``batches`` (columns ``TABLE_FEATURE_COLUMNS``).

    Args:
        batches: ``{table: (values [nnz] int, lengths [B] int)}`` per batch (same tables in each).
        num_embeddings: rows of every table.
        batch_size: B (recorded in the result).
    """
    nnz: dict[str, int] = {}
    samples: dict[str, int] = {}
    bins: dict[str, np.ndarray] = {}
    num_batches = 0
    for lookups in batches:
        num_batches += 1
        for table, (values, lengths) in lookups.items():
            if table not in num_embeddings:
                raise KeyError(f"table_reuse_features: no num_embeddings for table {table!r}")
            values = np.asarray(values)
            if values.size and (values.min() < 0 or values.max() >= num_embeddings[table]):
                raise ValueError(
                    f"table {table!r}: index out of range [0, {num_embeddings[table]}): "
                    f"min {values.min()}, max {values.max()}"
                )
            nnz[table] = nnz.get(table, 0) + int(values.size)
            samples[table] = samples.get(table, 0) + int(np.asarray(lengths).size)
            bins[table] = bins.get(table, np.zeros(NUM_REUSE_BINS, dtype=np.int64)) + reuse_bins(values)
    if num_batches == 0:
        raise ValueError("table_reuse_features: no batches")
    rows = []
    for table in nnz:
        total = bins[table].sum()
        fractions = bins[table] / total if total else np.zeros(NUM_REUSE_BINS)
        row: dict[str, object] = {
            "table": table,
            "rows": int(num_embeddings[table]),
            "pooling_factor": nnz[table] / samples[table] if samples[table] else 0.0,
        }
        row.update({name: float(f) for name, f in zip(REUSE_BIN_COLUMNS, fractions, strict=True)})
        row.update({"batch_size": int(batch_size), "num_batches": num_batches})
        rows.append(row)
    return pl.DataFrame(rows).select(TABLE_FEATURE_COLUMNS)


def dataset_table_features(
    dataset: str | os.PathLike[str],
    *,
    batch_size: int,
    num_batches: int,
    split: str = "train",
    features: Sequence[str] | None = None,
    tables_per_read: int = 32,
) -> pl.DataFrame:
    """:func:`table_reuse_features` of the first ``num_batches`` batches of a Parquet dataset's ``split``,
    reading ``tables_per_read`` tables at a time (bounded memory)."""
    from ecorec.data import read_metadata

    meta = read_metadata(dataset)
    names = list(meta.select_features(features, f"{dataset}"))
    if tables_per_read < 1:
        raise ValueError(f"tables_per_read must be >= 1, got {tables_per_read}")
    frames = []
    for first in range(0, len(names), tables_per_read):
        group = names[first : first + tables_per_read]
        lookups = dataset_lookups(
            dataset, batch_size=batch_size, num_batches=num_batches, split=split, features=group
        )
        frames.append(table_reuse_features(lookups, meta.num_embeddings, batch_size=batch_size))
    return pl.concat(frames)
