"""MLPerf DLRM's preprocessed Criteo Terabyte (``terabyte_processed_{train,val,test}.bin``) -> Parquet.

The layout written by the DLRM reference's ``data_loader_terabyte.numpy_to_binary`` (what MLPerf DLRM and
the DeepSparkHub model zoo read with ``--dataset_type bin``): no header; records of 40 little-endian int32,
one per sample: the label (0/1), the 13 integer features, the 26 categorical ids (already contiguous per
feature). The reader (``CriteoBinDataset``) turns them into ``dense = log(x + 1)`` float32 and ``ids`` (hashed
``% num_embeddings`` with ``hash_indices``, as the official config sets); integers below 0 read as 0.

Files are memory-mapped and streamed ``chunk_rows`` records at a time (bounded memory). Splits are the files:
``train``, then ``val``, then ``test`` (any may be absent).

Checks, each a ``DataFormatError`` naming the file: missing file, a size that is not a multiple of the
160-byte record (truncated), an empty file, a label other than 0/1, a negative categorical id (with the
record number).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ecorec.data.criteo_parquet import (
    add_criteo_arguments,
    check_criteo_caps,
    criteo_block,
    criteo_dataset_writer,
    finish_criteo_dataset,
    run_conversion,
)
from ecorec.data.errors import DataFormatError
from ecorec.data.parquet import DatasetMetadata
from ecorec.data.sources import CRITEO_NUM_DENSE, CRITEO_NUM_SPARSE, MLPERF_DLRM_NUM_EMBEDDINGS

__all__ = [
    "MLPERF_DLRM_NUM_EMBEDDINGS",
    "MLPERF_RECORD_BYTES",
    "MLPERF_RECORD_INTS",
    "convert_mlperf_bin",
    "read_mlperf_bin",
]

logger = logging.getLogger(__name__)

MLPERF_RECORD_INTS = 1 + CRITEO_NUM_DENSE + CRITEO_NUM_SPARSE  # 40
MLPERF_RECORD_BYTES = 4 * MLPERF_RECORD_INTS  # 160


def read_mlperf_bin(path: str | os.PathLike[str]) -> np.ndarray:
    """The records of one ``.bin`` file, memory-mapped: int32 ``[n, 40]`` (label, 13 integers, 26 ids)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    size = path.stat().st_size
    if size % MLPERF_RECORD_BYTES:
        raise DataFormatError(
            f"{path}: truncated or not an MLPerf .bin file: {size} bytes is not a multiple of the "
            f"{MLPERF_RECORD_BYTES}-byte record ({MLPERF_RECORD_INTS} int32); {size % MLPERF_RECORD_BYTES} "
            "bytes left over"
        )
    if size == 0:
        raise DataFormatError(f"{path}: empty file (no records)")
    return np.memmap(path, dtype="<i4", mode="r", shape=(size // MLPERF_RECORD_BYTES, MLPERF_RECORD_INTS))


def convert_mlperf_bin(
    files: Mapping[str, str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    num_embeddings_per_feature: Sequence[int] | None = None,
    row_group_size: int = 65536,
    samples_per_file: int | None = None,
    chunk_rows: int = 1 << 20,
) -> DatasetMetadata:
    """Convert ``{"train": path, "val": path, "test": path}`` (any subset, train needed) to a Parquet dataset.

    Args:
        num_embeddings_per_feature: 26 caps (ids are hashed ``% cap``); default
            :data:`MLPERF_DLRM_NUM_EMBEDDINGS`.
        chunk_rows: records converted at a time (memory ~ 400 bytes x chunk_rows).
    """
    unknown = sorted(set(files) - {"train", "val", "test"})
    if unknown or "train" not in files:
        raise ValueError(f"files: a train file and optionally val / test, got splits {sorted(files)}")
    caps = check_criteo_caps(num_embeddings_per_feature, MLPERF_DLRM_NUM_EMBEDDINGS)
    order = [s for s in ("train", "val", "test") if s in files]
    records = {s: read_mlperf_bin(files[s]) for s in order}  # checks every file before writing
    splits, start = {}, 0
    for s in order:
        splits[s] = [start, start + len(records[s])]
        start += len(records[s])
    with criteo_dataset_writer(
        output, row_group_size=row_group_size, samples_per_file=samples_per_file
    ) as writer:
        for s in order:
            data, where = records[s], str(files[s])
            for lo in range(0, len(data), chunk_rows):
                chunk = np.asarray(data[lo : lo + chunk_rows])
                ints = np.maximum(chunk[:, 1 : 1 + CRITEO_NUM_DENSE], 0).astype(np.float64)
                writer.write(
                    criteo_block(
                        chunk[:, 0], np.log1p(ints), chunk[:, 1 + CRITEO_NUM_DENSE :], caps, where, lo
                    )
                )
            logger.info("read %s: %d records", where, len(data))
        return finish_criteo_dataset(
            writer,
            source="mlperf_bin",
            caps=caps,
            splits=splits,
            inputs={"inputs": {s: {"file": str(files[s]), "rows": len(records[s])} for s in order}},
            transform="label as is; dense: log(1 + max(x, 0)); sparse: id mod cap",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ecorec.data.mlperf_bin OUTPUT --train FILE [--val FILE] [--test FILE] [--caps ...]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ecorec.data.mlperf_bin", description=__doc__.splitlines()[0]
    )
    parser.add_argument("output", help="Parquet dataset folder to create")
    parser.add_argument("--train", required=True, help="terabyte_processed_train.bin")
    parser.add_argument("--val", help="terabyte_processed_val.bin")
    parser.add_argument("--test", help="terabyte_processed_test.bin")
    add_criteo_arguments(parser)
    args = parser.parse_args(argv)
    files = {s: getattr(args, s) for s in ("train", "val", "test") if getattr(args, s)}
    return run_conversion(
        lambda: convert_mlperf_bin(
            files, args.output, num_embeddings_per_feature=args.caps, row_group_size=args.row_group_size
        ),
        args.output,
        (DataFormatError, ValueError),
    )


if __name__ == "__main__":
    sys.exit(main())
