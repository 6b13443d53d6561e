"""The Parquet side that every Criteo converter shares (text files, TorchRec npy days, MLPerf ``.bin``).

Each converter reads its own layout; this module turns the samples into the dataset's columns
(``label``, ``dense``, ``cat_0 .. cat_25``, ids hashed ``% cap``), checks the 26 hashing caps, opens the
writer with Criteo's columns, writes the metadata (``num_embeddings``, provenance) and runs the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ecorec.data.errors import DataFormatError
from ecorec.data.parquet import DENSE, LABEL, DatasetMetadata, ParquetDatasetWriter, dense_column
from ecorec.data.sources import CRITEO_NUM_DENSE, CRITEO_NUM_SPARSE, CRITEO_SPARSE_NAMES
from ecorec.utils import environment_record

__all__ = [
    "add_criteo_arguments",
    "check_criteo_caps",
    "criteo_block",
    "criteo_dataset_writer",
    "criteo_sparse_columns",
    "finish_criteo_dataset",
    "run_conversion",
]


def check_criteo_caps(caps: Sequence[int] | None, default: Sequence[int]) -> tuple[int, ...]:
    """The 26 hashing caps (``default`` when ``caps`` is ``None``); ``ValueError`` unless 26 integers >= 1."""
    out = tuple(int(c) for c in (caps if caps is not None else default))
    if len(out) != CRITEO_NUM_SPARSE or min(out) < 1:
        raise ValueError(
            f"num_embeddings_per_feature must be {CRITEO_NUM_SPARSE} integers >= 1, got {list(out)}"
        )
    return out


def criteo_sparse_columns(n: int, ids: Iterable[np.ndarray], caps: Sequence[int]) -> dict[str, pa.Array]:
    """One-id-per-sample ``list<int64>`` columns ``cat_0 .. cat_25`` of ``n`` samples.

    Args:
        n: samples.
        ids: per feature ``f``, its ``[n]`` int64 ids >= 0 (hashed here ``% caps[f]``).
        caps: the 26 hashing caps.
    """
    offsets = pa.array(np.arange(n + 1, dtype=np.int32))
    return {
        name: pa.ListArray.from_arrays(offsets, pa.array(np.mod(column, cap), type=pa.int64()))
        for name, column, cap in zip(CRITEO_SPARSE_NAMES, ids, caps)
    }


def criteo_block(
    labels: np.ndarray,
    dense: np.ndarray,
    sparse: np.ndarray,
    caps: Sequence[int],
    where: str,
    first_row: int,
) -> dict[str, pa.Array]:
    """One block of samples -> ``{label, dense, cat_0 .. cat_25}`` Parquet columns (ids hashed ``% cap``).

    Args:
        labels: ``[n]`` 0/1; dense: ``[n, 13]`` already transformed; sparse: ``[n, 26]`` ids >= 0.
        where / first_row: file and row of the block's first sample, for errors.
    """
    labels = np.asarray(labels).reshape(-1)
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        row = int(bad[0])
        raise DataFormatError(f"{where}: row {first_row + row}: label must be 0 or 1, got {labels[row]}")
    dense = np.asarray(dense, dtype=np.float32)
    if not np.isfinite(dense).all():
        row = int(np.flatnonzero(~np.isfinite(dense).all(axis=1))[0])
        raise DataFormatError(f"{where}: row {first_row + row}: non-finite dense value {dense[row].tolist()}")
    sparse = np.asarray(sparse, dtype=np.int64)
    if sparse.size and sparse.min() < 0:
        row = int(np.flatnonzero((sparse < 0).any(axis=1))[0])
        raise DataFormatError(
            f"{where}: row {first_row + row}: negative categorical id {sparse[row].tolist()}"
        )
    out: dict[str, pa.Array] = {LABEL: pa.array(labels.astype(np.float32)), DENSE: dense_column(dense)}
    out.update(criteo_sparse_columns(len(labels), (sparse[:, f] for f in range(sparse.shape[1])), caps))
    return out


def criteo_dataset_writer(
    output: str | os.PathLike[str], *, row_group_size: int, samples_per_file: int | None
) -> ParquetDatasetWriter:
    """A writer of a Criteo dataset at ``output``: label, 13 dense, the 26 ``cat_*`` features."""
    return ParquetDatasetWriter(
        output,
        features=CRITEO_SPARSE_NAMES,
        num_dense=CRITEO_NUM_DENSE,
        has_labels=True,
        row_group_size=row_group_size,
        samples_per_file=samples_per_file,
    )


def finish_criteo_dataset(
    writer: ParquetDatasetWriter,
    *,
    source: str,
    caps: Sequence[int],
    splits: dict[str, Any] | None,
    inputs: dict[str, Any],
    transform: str,
) -> DatasetMetadata:
    """Close ``writer`` with the metadata: ``num_embeddings`` from ``caps``; provenance ``inputs`` (what was
    read), the caps, ``transform`` (in words) and the environment record."""
    return writer.finish(
        source=source,
        num_embeddings=dict(zip(CRITEO_SPARSE_NAMES, caps)),
        splits=splits,
        provenance={
            **inputs,
            "num_embeddings_per_feature": list(caps),
            "transform": transform,
            "environment": environment_record(),
        },
    )


def add_criteo_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every converter's command line has: ``--caps`` (26 ints) and ``--row-group-size``."""
    parser.add_argument("--caps", type=int, nargs=CRITEO_NUM_SPARSE, default=None, help="26 hashing caps")
    parser.add_argument("--row-group-size", type=int, default=65536)


def run_conversion(
    convert: Callable[[], DatasetMetadata], output: str, errors: tuple[type[Exception], ...]
) -> int:
    """Run ``convert``; exit status 0 with a summary line, or 2 with ``error: ...`` for one of ``errors``."""
    try:
        meta = convert()
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{output}: {meta.num_samples} samples, splits {meta.splits}")
    return 0
