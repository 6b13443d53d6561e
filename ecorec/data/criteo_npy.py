"""TorchRec's preprocessed Criteo 1TB days (``day_N_{dense,sparse,labels}.npy``) -> Parquet dataset.

The layout written by ``torchrec.datasets.criteo.BinaryCriteoUtils.tsv_to_npys`` (its ``npy_preproc_criteo``
script), read by TorchRec's DLRM example through ``--in_memory_binary_criteo_path``:

- ``day_N_dense.npy``: float32 ``[n, 13]``, already transformed (``log(x - min + 2)``, min over the day);
- ``day_N_sparse.npy``: int64 ``[n, 26]`` (int32 after torchrec's contiguous preprocessing), the raw
  categorical ids, hashed by the reader: ``id % num_embeddings_per_feature[f]``;
- ``day_N_labels.npy``: int32 ``[n, 1]``, 0 or 1.

The days are memory-mapped (``np.load(mmap_mode="r")``) and streamed ``chunk_rows`` samples at a time through
the Parquet writer (bounded memory). Default splits, as in TorchRec's example: every day but the last trains;
the last day's first ``ceil(n / 2)`` samples are ``val``, the rest ``test``.

Checks, each a ``DataFormatError`` naming the file: missing file; not an ``.npy`` file; a shape other than the
above or days whose three files disagree on ``n``; a file size other than header + ``n x row x itemsize``
(truncated or trailing bytes); a label other than 0/1, a negative id, a non-finite dense value (with the row).
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

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
from ecorec.data.sources import (
    CRITEO_1TB_NUM_EMBEDDINGS,
    CRITEO_NUM_DENSE,
    CRITEO_NUM_SPARSE,
)

__all__ = [
    "convert_criteo_npy",
    "criteo_block",
    "criteo_npy_days",
    "open_npy",
    "read_criteo_npy_day",
]

logger = logging.getLogger(__name__)
_DAY_FILE = re.compile(r"^day_(\d+)_dense\.npy$")


def open_npy(path: str | os.PathLike[str], columns: int, kinds: str, what: str) -> np.ndarray:
    """Memory-map an ``.npy`` file of shape ``[n, columns]`` (``[n]`` accepted for ``columns == 1``) whose
    dtype kind is one of ``kinds`` (numpy kind letters), after checking the header against the file size."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file ({what})")
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            readers = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }
            if version not in readers:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, fortran, dtype = readers[version](handle)
            offset = handle.tell()
    except (ValueError, OSError, SyntaxError) as err:
        raise DataFormatError(f"{path}: not a readable .npy file ({err})") from None
    if dtype.kind not in kinds or dtype.hasobject:
        raise DataFormatError(f"{path}: dtype {dtype} is not a {what} type (kinds {kinds!r})")
    ok_shape = (len(shape) == 2 and shape[1] == columns) or (columns == 1 and len(shape) == 1)
    if not ok_shape or fortran:
        raise DataFormatError(
            f"{path}: shape {shape} (fortran order {fortran}); expected [n, {columns}] {what}"
        )
    expected = offset + math.prod(shape) * dtype.itemsize
    if size != expected:
        problem = "truncated" if size < expected else "trailing bytes"
        raise DataFormatError(
            f"{path}: {problem}: {size} bytes, but its header {shape} {dtype} needs {expected} bytes"
        )
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return array.reshape(shape[0], columns)


def read_criteo_npy_day(
    folder: str | os.PathLike[str], day: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The memory-mapped ``(dense [n, 13], sparse [n, 26], labels [n, 1])`` of ``day_<day>_*.npy``."""
    folder = Path(folder)
    dense = open_npy(folder / f"day_{day}_dense.npy", CRITEO_NUM_DENSE, "f", "dense float")
    sparse = open_npy(folder / f"day_{day}_sparse.npy", CRITEO_NUM_SPARSE, "iu", "sparse integer")
    labels = open_npy(folder / f"day_{day}_labels.npy", 1, "iuf", "label")
    if not len(dense) == len(sparse) == len(labels):
        raise DataFormatError(
            f"{folder}/day_{day}_*.npy: the files disagree on the number of samples: dense {len(dense)}, "
            f"sparse {len(sparse)}, labels {len(labels)}"
        )
    return dense, sparse, labels


def criteo_npy_days(folder: str | os.PathLike[str]) -> list[int]:
    """The days present in ``folder`` (``day_N_dense.npy``), sorted."""
    found = [int(m.group(1)) for p in Path(folder).iterdir() if (m := _DAY_FILE.match(p.name))]
    return sorted(found)


def _day_blocks(
    folder: Path, day: int, caps: Sequence[int], chunk_rows: int
) -> Iterator[dict[str, pa.Array]]:
    dense, sparse, labels = read_criteo_npy_day(folder, day)
    where = str(folder / f"day_{day}_*.npy")
    for start in range(0, len(dense), chunk_rows):
        stop = min(start + chunk_rows, len(dense))
        yield criteo_block(labels[start:stop], dense[start:stop], sparse[start:stop], caps, where, start)


def convert_criteo_npy(
    folder: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    days: Sequence[int] | None = None,
    num_embeddings_per_feature: Sequence[int] | None = None,
    row_group_size: int = 65536,
    samples_per_file: int | None = None,
    splits: Mapping[str, Any] | None = None,
    chunk_rows: int = 1 << 20,
) -> DatasetMetadata:
    """Convert TorchRec's npy days in ``folder`` to a Parquet dataset at ``output`` (days in the given order).

    Args:
        days: the days to read (default: every ``day_N_dense.npy`` in ``folder``, ascending).
        num_embeddings_per_feature: 26 hashing caps (default: TorchRec's Criteo 1TB defaults).
        splits: fractions or ``[start, stop]`` ranges; ``None``: TorchRec's (all days but the last train, the
            last day halved into val / test; one day: all train).
        chunk_rows: samples converted at a time (memory ~ 200 bytes x chunk_rows).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected day_N_{{dense,sparse,labels}}.npy)")
    caps = check_criteo_caps(num_embeddings_per_feature, CRITEO_1TB_NUM_EMBEDDINGS)
    days = list(criteo_npy_days(folder) if days is None else days)
    if not days:
        raise DataFormatError(f"{folder}: no day_N_dense.npy files")
    counts = [len(read_criteo_npy_day(folder, d)[0]) for d in days]  # checks every file before writing
    if splits is None and len(days) > 1:
        train = sum(counts[:-1])
        half = math.ceil(counts[-1] / 2)
        splits = {"train": [0, train], "val": [train, train + half], "test": [train + half, sum(counts)]}
    with criteo_dataset_writer(
        output, row_group_size=row_group_size, samples_per_file=samples_per_file
    ) as writer:
        for day in days:
            for block in _day_blocks(folder, day, caps, chunk_rows):
                writer.write(block)
            logger.info("read day %d of %s", day, folder)
        return finish_criteo_dataset(
            writer,
            source="criteo_npy",
            caps=caps,
            splits=splits,
            inputs={"folder": str(folder), "inputs": [{"day": d, "rows": n} for d, n in zip(days, counts)]},
            transform="label as is; dense as is (torchrec's log transform); sparse: id mod cap",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ecorec.data.criteo_npy FOLDER OUTPUT [--days 0 1 ...] [--caps 26 ints]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ecorec.data.criteo_npy", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folder", help="folder of day_N_{dense,sparse,labels}.npy")
    parser.add_argument("output", help="Parquet dataset folder to create")
    parser.add_argument(
        "--days", type=int, nargs="+", default=None, help="days in order (default: all found)"
    )
    add_criteo_arguments(parser)
    args = parser.parse_args(argv)
    return run_conversion(
        lambda: convert_criteo_npy(
            args.folder,
            args.output,
            days=args.days,
            num_embeddings_per_feature=args.caps,
            row_group_size=args.row_group_size,
        ),
        args.output,
        (DataFormatError, FileNotFoundError, ValueError),
    )


if __name__ == "__main__":
    sys.exit(main())
