"""Data: sources -> Parquet dataset -> batches as torchrec ``KeyedJaggedTensor``.

Modules (each importable on its own; the names below are loaded on first use, so that e.g. the workflow can
read :mod:`ecorec.data.sources` without importing torchrec):

- :mod:`~ecorec.data.sources`: facts about Meta ``dlrm_datasets`` and Criteo; packaged checksums and stats.
- :mod:`~ecorec.data.download`: resumable, verified HTTP(S) downloads.
- :mod:`~ecorec.data.locality_stats`: the published locality-statistics format (read, write, total variation).
- :mod:`~ecorec.data.parquet`: the Parquet dataset format (writer, metadata, range reader, column helpers).
- :mod:`~ecorec.data.verify`: files checked against ``metadata.json`` on first read (sizes, sha256 once).
- :mod:`~ecorec.data.ingest`: bring your own data (``write_dataset`` from polars / pyarrow / CSV / Parquet,
  ``register_dataset`` for the workflow's ``source: parquet`` entries).
- :mod:`~ecorec.data.synthetic`: the calibrated synthetic default.
- :mod:`~ecorec.data.meta_dlrm`, :mod:`~ecorec.data.criteo`: converters of the real sources.
- :mod:`~ecorec.data.loader`: ``ParquetBatchLoader`` yielding :class:`Batch`.
- :mod:`~ecorec.data.split_batches`: what the loaders share (checks, batch order, resumable position).
- :mod:`~ecorec.data.random_source`: ``RandomBatchLoader``, batches generated on the fly (no files).
- :mod:`~ecorec.data.criteo_npy`, :mod:`~ecorec.data.mlperf_bin`: TorchRec npy days / MLPerf ``.bin`` files.
- :mod:`~ecorec.data.criteo_parquet`: the columns, caps, writer and command line the Criteo converters share.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DataFormatError": "errors",
    "DownloadError": "errors",
    "download_file": "download",
    "LocalityAccumulator": "locality_stats",
    "LocalityStats": "locality_stats",
    "LocalityStatsBlock": "locality_stats",
    "format_locality_stats": "locality_stats",
    "locality_source_name": "locality_stats",
    "read_locality_stats": "locality_stats",
    "total_variation": "locality_stats",
    "write_locality_stats": "locality_stats",
    "DatasetFile": "parquet",
    "DatasetMetadata": "parquet",
    "ParquetDatasetWriter": "parquet",
    "ParquetRangeReader": "parquet",
    "read_metadata": "parquet",
    "verify_dataset": "parquet",
    "VerifyReport": "verify",
    "verify_files": "verify",
    "write_parquet_dataset": "parquet",
    "SOURCES": "parquet",
    "check_source_name": "parquet",
    "check_values": "parquet",
    "column_type": "parquet",
    "dataset_schema": "parquet",
    "dense_column": "parquet",
    "resolve_splits": "parquet",
    "sparse_column": "parquet",
    "read_table_files": "ingest",
    "register_dataset": "ingest",
    "write_dataset": "ingest",
    "SyntheticConfig": "synthetic",
    "generate_synthetic_dataset": "synthetic",
    "synthetic_meta_dlrm_tensors": "synthetic",
    "synthetic_table_lookup": "synthetic",
    "convert_meta_dlrm": "meta_dlrm",
    "write_meta_dlrm_file": "meta_dlrm",
    "convert_criteo": "criteo",
    "Batch": "loader",
    "ParquetBatchLoader": "loader",
    "RandomBatchLoader": "random_source",
    "RandomSourceConfig": "random_source",
    "convert_criteo_npy": "criteo_npy",
    "convert_mlperf_bin": "mlperf_bin",
}

__all__ = [
    "SOURCES",
    "Batch",
    "DataFormatError",
    "DatasetFile",
    "DatasetMetadata",
    "DownloadError",
    "LocalityAccumulator",
    "LocalityStats",
    "LocalityStatsBlock",
    "ParquetBatchLoader",
    "ParquetDatasetWriter",
    "ParquetRangeReader",
    "RandomBatchLoader",
    "RandomSourceConfig",
    "SyntheticConfig",
    "VerifyReport",
    "check_source_name",
    "check_values",
    "column_type",
    "convert_criteo",
    "convert_criteo_npy",
    "convert_meta_dlrm",
    "convert_mlperf_bin",
    "dataset_schema",
    "dense_column",
    "download_file",
    "format_locality_stats",
    "generate_synthetic_dataset",
    "locality_source_name",
    "read_locality_stats",
    "read_metadata",
    "read_table_files",
    "register_dataset",
    "resolve_splits",
    "sparse_column",
    "synthetic_meta_dlrm_tensors",
    "synthetic_table_lookup",
    "total_variation",
    "verify_dataset",
    "verify_files",
    "write_locality_stats",
    "write_dataset",
    "write_meta_dlrm_file",
    "write_parquet_dataset",
]

if TYPE_CHECKING:
    from ecorec.data.criteo import convert_criteo
    from ecorec.data.criteo_npy import convert_criteo_npy
    from ecorec.data.download import download_file
    from ecorec.data.errors import DataFormatError, DownloadError
    from ecorec.data.ingest import read_table_files, register_dataset, write_dataset
    from ecorec.data.loader import Batch, ParquetBatchLoader
    from ecorec.data.locality_stats import (
        LocalityAccumulator,
        LocalityStats,
        LocalityStatsBlock,
        format_locality_stats,
        locality_source_name,
        read_locality_stats,
        total_variation,
        write_locality_stats,
    )
    from ecorec.data.meta_dlrm import convert_meta_dlrm, write_meta_dlrm_file
    from ecorec.data.mlperf_bin import convert_mlperf_bin
    from ecorec.data.parquet import (
        SOURCES,
        DatasetFile,
        DatasetMetadata,
        ParquetDatasetWriter,
        ParquetRangeReader,
        check_source_name,
        check_values,
        column_type,
        dataset_schema,
        dense_column,
        read_metadata,
        resolve_splits,
        sparse_column,
        verify_dataset,
        write_parquet_dataset,
    )
    from ecorec.data.random_source import RandomBatchLoader, RandomSourceConfig
    from ecorec.data.synthetic import (
        SyntheticConfig,
        generate_synthetic_dataset,
        synthetic_meta_dlrm_tensors,
        synthetic_table_lookup,
    )
    from ecorec.data.verify import VerifyReport, verify_files


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ecorec.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ecorec.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
