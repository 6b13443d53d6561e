"""Criteo Kaggle (``dac.tar.gz`` -> ``train.txt``) and Criteo 1TB (``day_N[.gz]``) -> Parquet dataset.

Each line: ``label``, 13 integer features, 26 categorical features (8 hex digits), tab-separated; any field
may be empty. Files are streamed with ``pyarrow.csv`` in blocks (bounded memory). Per sample:

- ``label`` (0/1; empty -> 0, as in TorchRec's reader) -> float32;
- integers: missing -> 0, negative -> 0, then ``log(1 + x)`` -> ``dense`` float32 [13];
- categoricals: hex -> int, missing -> 0, then modulo the feature's cap (TorchRec's DLRM example
  ``num_embeddings_per_feature``) -> one ``list<int64>`` of length 1 per feature ``cat_0 .. cat_25``.

A bad line (wrong number of fields, a non-numeric value, a label other than 0/1/empty, an empty line: all
fields empty) raises ``DataFormatError`` naming the file and line number. A ``.tar.gz`` is read as a stream:
its ``train.txt`` member is parsed straight out of the archive (nothing is extracted to disk), after checking
that no member has an absolute path, ``..``, or a link or device entry.
"""

from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from ecorec.data.criteo_parquet import (
    check_criteo_caps,
    criteo_dataset_writer,
    criteo_sparse_columns,
    finish_criteo_dataset,
)
from ecorec.data.errors import DataFormatError
from ecorec.data.parquet import DENSE, LABEL, DatasetMetadata, dense_column
from ecorec.data.sources import (
    CRITEO_1TB_NUM_EMBEDDINGS,
    CRITEO_DENSE_NAMES,
    CRITEO_KAGGLE_NUM_EMBEDDINGS,
    CRITEO_SPARSE_NAMES,
)

logger = logging.getLogger(__name__)

COLUMNS = (LABEL, *CRITEO_DENSE_NAMES, *CRITEO_SPARSE_NAMES)
DEFAULT_NUM_EMBEDDINGS = {
    "criteo_kaggle": CRITEO_KAGGLE_NUM_EMBEDDINGS,
    "criteo_1tb": CRITEO_1TB_NUM_EMBEDDINGS,
}


def _unsafe_member_reason(member: tarfile.TarInfo) -> str | None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith(("/", "\\")):
        return "absolute path"
    if ".." in path.parts:
        return "'..' in its path"
    if member.issym() or member.islnk():
        return f"a link (to {member.linkname!r})"
    if not (member.isfile() or member.isdir()):
        return "not a regular file or folder"
    return None


def _archive_member(stack: ExitStack, archive: Path, member_name: str) -> IO[bytes]:
    """Stream of the member named ``member_name`` (base name) in the ``.tar.gz`` ``archive``, checking every
    member seen before it; ``DataFormatError`` for an unsafe member or a missing ``member_name``."""
    try:
        tar = stack.enter_context(tarfile.open(archive, mode="r|*"))
        seen = []
        for member in tar:
            reason = _unsafe_member_reason(member)
            if reason is not None:
                raise DataFormatError(f"{archive}: refusing member {member.name!r}: {reason}")
            seen.append(member.name)
            if member.isfile() and PurePosixPath(member.name).name == member_name:
                stream = tar.extractfile(member)
                assert stream is not None
                return stream
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataFormatError(f"{archive}: not a readable tar.gz archive: {err}") from None
    raise DataFormatError(f"{archive}: no member {member_name!r} (members: {seen})")


def _open_input(stack: ExitStack, path: Path, member_name: str) -> Any:
    """A pyarrow-readable stream of the TSV text of ``path`` (plain, ``.gz``, or a ``.tar.gz`` member)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _archive_member(stack, path, member_name)
    compression = "gzip" if name.endswith(".gz") else None
    return stack.enter_context(pa.input_stream(str(path), compression=compression))


def _first_bad(mask: pl.Series) -> int:
    return int(mask.arg_true()[0])


def _convert_block(
    batch: pa.RecordBatch, where: Path, first_line: int, caps: Sequence[int]
) -> dict[str, pa.Array]:
    """One parsed block (all columns as strings) -> ``{label, dense, cat_*}`` arrays."""
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    n = frame.height

    def fail(row: int, column: str, problem: str) -> DataFormatError:
        value = frame[column][row]
        return DataFormatError(f"{where}:{first_line + row}: column '{column}' {problem}; got {value!r}")

    # pyarrow reads an empty line as 40 empty fields: refuse it rather than invent an all-missing sample.
    blank = frame.select(pl.all_horizontal(pl.col(c) == "" for c in COLUMNS)).to_series()
    if blank.any():
        row = _first_bad(blank)
        raise DataFormatError(f"{where}:{first_line + row}: empty line (all {len(COLUMNS)} fields empty)")
    # An empty label is a missing label, read as 0 like TorchRec's Criteo reader (safe_cast(label, int, 0)).
    raw_label = frame[LABEL]
    label = raw_label.str.to_integer(base=10, strict=False)
    bad = (raw_label != "") & (label.is_null() | ~label.is_in([0, 1]))
    if bad.any():
        row = _first_bad(bad)
        raise fail(row, LABEL, "must be 0, 1 or empty")
    label = label.fill_null(0)

    bases = {**dict.fromkeys(CRITEO_DENSE_NAMES, 10), **dict.fromkeys(CRITEO_SPARSE_NAMES, 16)}
    parsed = frame.select(pl.col(c).str.to_integer(base=b, strict=False) for c, b in bases.items())
    invalid = pl.DataFrame([parsed[c].is_null() & (frame[c] != "") for c in bases])
    if invalid.select(pl.any_horizontal(pl.all()).any()).item():
        for column in bases:
            if invalid[column].any():
                row = _first_bad(invalid[column])
                kind = "an integer" if column in CRITEO_DENSE_NAMES else "a hexadecimal integer"
                raise fail(row, column, f"must be {kind} or empty")
    dense = (
        parsed.select(
            pl.col(c).fill_null(0).clip(lower_bound=0).cast(pl.Float64).log1p() for c in CRITEO_DENSE_NAMES
        )
        .to_numpy()
        .astype(np.float32)
    )
    out: dict[str, pa.Array] = {
        LABEL: pa.array(label.cast(pl.Float32).to_numpy()),
        DENSE: dense_column(dense),
    }
    ids = (parsed[column].fill_null(0).to_numpy().astype(np.int64) for column in CRITEO_SPARSE_NAMES)
    out.update(criteo_sparse_columns(n, ids, caps))
    return out


def iter_criteo_blocks(
    path: str | os.PathLike[str],
    caps: Sequence[int],
    *,
    member_name: str = "train.txt",
    block_size: int = 1 << 24,
) -> Iterator[dict[str, pa.Array]]:
    """Stream one Criteo file as converted blocks ``{label, dense, cat_0 .. cat_25}`` (a few MB each)."""
    path = Path(path)
    invalid: list[pacsv.InvalidRow] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        invalid.append(row)
        return "error"

    parse = pacsv.ParseOptions(
        delimiter="\t",
        quote_char=False,
        escape_char=False,
        ignore_empty_lines=False,
        newlines_in_values=False,
        invalid_row_handler=on_invalid_row,
    )
    read = pacsv.ReadOptions(column_names=list(COLUMNS), block_size=block_size, use_threads=False)
    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in COLUMNS}, strings_can_be_null=False)
    line = 1
    with ExitStack() as stack:
        stream = _open_input(stack, path, member_name)
        try:
            reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
            for batch in reader:
                yield _convert_block(batch, path, line, caps)
                line += batch.num_rows
        except (pa.ArrowInvalid, OSError, EOFError, tarfile.TarError) as err:
            if invalid:  # a line with the wrong number of fields (pyarrow numbers rows like lines, from 1)
                row = invalid[0]
                where = f"{path}:{row.number}" if row.number is not None else f"{path}: after line {line - 1}"
                raise DataFormatError(
                    f"{where}: expected {len(COLUMNS)} tab-separated fields, got {row.actual_columns}; "
                    f"line {row.text[:80]!r}"
                ) from None
            raise DataFormatError(
                f"{path}: unreadable after line {line - 1} ({type(err).__name__}: {err})"
            ) from None


def convert_criteo(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    source: str = "criteo_kaggle",
    num_embeddings_per_feature: Sequence[int] | None = None,
    row_group_size: int = 65536,
    splits: dict[str, Any] | None = None,
    samples_per_file: int | None = None,
    member_name: str = "train.txt",
    block_size: int = 1 << 24,
    progress: bool = False,
) -> DatasetMetadata:
    """Convert Criteo files (concatenated in the given order: e.g. ``day_0 .. day_23``) to a Parquet dataset.

    Args:
        source: ``criteo_kaggle`` or ``criteo_1tb`` (picks the default caps).
        num_embeddings_per_feature: 26 hashing caps; ``None``: TorchRec's DLRM example values for ``source``.
        member_name: the member read from a ``.tar.gz`` (Kaggle: ``train.txt``).
    """
    if source not in DEFAULT_NUM_EMBEDDINGS:
        raise ValueError(f"source must be one of {sorted(DEFAULT_NUM_EMBEDDINGS)}, got {source!r}")
    caps = check_criteo_caps(num_embeddings_per_feature or None, DEFAULT_NUM_EMBEDDINGS[source])
    if not inputs:
        raise ValueError("no input files given")
    rows_per_file = []
    with criteo_dataset_writer(
        output, row_group_size=row_group_size, samples_per_file=samples_per_file
    ) as writer:
        bar = tqdm(unit=" rows", unit_scale=True, desc="criteo", disable=not progress)
        for path in inputs:
            rows = 0
            for block in iter_criteo_blocks(path, caps, member_name=member_name, block_size=block_size):
                writer.write(block)
                rows += len(block[LABEL])
                bar.update(len(block[LABEL]))
            if rows == 0:
                raise DataFormatError(f"{path}: no data lines")
            rows_per_file.append({"file": Path(path).name, "rows": rows})
            logger.info("read %s: %d rows", path, rows)
        bar.close()
        return finish_criteo_dataset(
            writer,
            source=source,
            caps=caps,
            splits=splits,
            inputs={"inputs": rows_per_file},
            transform=(
                "label: missing 0; dense: log(1 + max(x, 0)), missing 0; sparse: int(hex) mod cap, missing 0"
            ),
        )
