"""The Parquet dataset: one folder, one row per sample, fixed row groups, and a ``metadata.json``.

Layout (format_version 1)::

    <dataset>/
      metadata.json
      part-00000.parquet     columns: label float32, dense fixed_size_list<float32>[num_dense],
      part-00001.parquet              one list<int64> column per sparse feature (row ids of its table)
      ...

Every file covers a contiguous range of samples ``[row_start, row_start + num_samples)`` and a subset of the
columns; for each column the files holding it tile ``[0, num_samples)`` exactly. The simple writers put every
column in each file; the Meta conversion writes feature groups (files with a few tables each), so that a
worker reads only the files of its tables and conversion memory stays bounded. Inside a file all row groups
hold ``row_group_size`` samples except the last. Splits are sample ranges.

Writes are atomic: everything goes to a temporary folder that is renamed onto ``<dataset>`` when complete.

Size (~800 lines, above the ~500 guideline): one module per on-disk format; the metadata parser, the writers
and the range reader share its invariants (column coverage, row groups, splits) and are tested together.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ecorec.data.errors import DataFormatError
from ecorec.data.verify import verify_files
from ecorec.utils import atomic_path, file_sha256, write_json_atomic

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
LABEL = "label"
DENSE = "dense"
#: The sources this package converts itself; a dataset written with :func:`ecorec.data.write_dataset` (or any
#: writer here) may name its own source freely (``SOURCE_NAME``), e.g. ``avazu`` or ``my_clicks``.
SOURCES = (
    "synthetic",
    "meta_dlrm_2021",
    "meta_dlrm_2022",
    "criteo_kaggle",
    "criteo_1tb",
    "criteo_npy",  # TorchRec npy days (ecorec.data.criteo_npy)
    "mlperf_bin",  # MLPerf terabyte_processed_*.bin (ecorec.data.mlperf_bin)
)
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SPLIT_ORDER = ("train", "val", "test")

# ------------------------------------------------------------------------------------------------------------
# Metadata


@dataclass(frozen=True)
class DatasetFile:
    """One Parquet file of a dataset: samples ``[row_start, row_start + num_samples)`` of ``columns``;
    ``size`` in bytes (``None`` in datasets written before sizes were recorded)."""

    path: str
    row_start: int
    num_samples: int
    columns: tuple[str, ...]
    sha256: str
    size: int | None = None

    @property
    def row_stop(self) -> int:
        return self.row_start + self.num_samples

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "row_start": self.row_start,
            "num_samples": self.num_samples,
            "columns": list(self.columns),
            "sha256": self.sha256,
        }
        if self.size is not None:
            out["size"] = self.size
        return out


@dataclass(frozen=True)
class DatasetMetadata:
    """Contents of ``metadata.json`` (see the module docstring); ``root`` is the dataset folder."""

    source: str
    features: tuple[str, ...]
    num_embeddings: dict[str, int]
    num_dense: int
    has_labels: bool
    num_samples: int
    row_group_size: int
    splits: dict[str, tuple[int, int]]
    files: tuple[DatasetFile, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    root: Path | None = field(default=None, compare=False)

    @property
    def columns(self) -> tuple[str, ...]:
        """All columns: ``label`` (if labelled), ``dense`` (if ``num_dense > 0``), then the features."""
        return (*((LABEL,) if self.has_labels else ()), *((DENSE,) if self.num_dense else ()), *self.features)

    def select_features(self, features: Sequence[str] | None, where: str) -> tuple[str, ...]:
        """``features`` in the given order (``None``: all, in dataset order); ``ValueError`` naming ``where``
        for a feature the dataset does not have."""
        names = tuple(self.features if features is None else features)
        unknown = [f for f in names if f not in self.num_embeddings]
        if unknown:
            raise ValueError(f"{where}: unknown features {unknown}; the dataset has {list(self.features)}")
        return names

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "source": self.source,
            "features": list(self.features),
            "num_embeddings": {f: self.num_embeddings[f] for f in self.features},
            "num_dense": self.num_dense,
            "has_labels": self.has_labels,
            "num_samples": self.num_samples,
            "row_group_size": self.row_group_size,
            "splits": {name: list(bounds) for name, bounds in self.splits.items()},
            "files": [f.to_json() for f in self.files],
            "provenance": self.provenance,
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = "metadata.json", root: Path | None = None) -> DatasetMetadata:
        """Validate and build from parsed JSON (``DataFormatError`` naming ``where`` and the field)."""
        return _parse_metadata(obj, where, root)


def check_source_name(source: Any) -> str:
    """``source`` if it is a valid dataset source name (``SOURCE_NAME``), else ``ValueError`` naming it."""
    if not isinstance(source, str) or not SOURCE_NAME.match(source):
        raise ValueError(
            "source: a dataset's source name must be 1-128 letters, digits, '_', '.' or '-' (starting "
            f"with a letter or digit), got {source!r}"
        )
    return source


def _fail(where: str, field_name: str, problem: str) -> DataFormatError:
    return DataFormatError(f"{where}: field '{field_name}': {problem}")


def _get(
    obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, prefix: str = ""
) -> Any:
    name = f"{prefix}{key}"
    if key not in obj:
        raise _fail(where, name, "missing")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise _fail(where, name, f"expected {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
    if not isinstance(value, kinds):
        raise _fail(
            where, name, f"expected {'/'.join(k.__name__ for k in kinds)}, got {type(value).__name__}"
        )
    return value


def _nonneg_int(obj: Mapping[str, Any], key: str, where: str, prefix: str = "", minimum: int = 0) -> int:
    value = _get(obj, key, int, where, prefix)
    if value < minimum:
        raise _fail(where, f"{prefix}{key}", f"must be >= {minimum}, got {value}")
    return value


def _parse_metadata(obj: Any, where: str, root: Path | None) -> DatasetMetadata:
    if not isinstance(obj, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    version = _get(obj, "format_version", int, where)
    if version != FORMAT_VERSION:
        raise _fail(
            where, "format_version", f"unsupported version {version} (this ecorec reads {FORMAT_VERSION})"
        )
    source = _get(obj, "source", str, where)
    if not SOURCE_NAME.match(source):
        raise _fail(
            where,
            "source",
            f"must be a name of letters, digits, '_', '.', '-' (built in: {list(SOURCES)}), got {source!r}",
        )
    features = _get(obj, "features", list, where)
    if not features or not all(isinstance(f, str) and f for f in features):
        raise _fail(where, "features", "must be a non-empty list of names")
    if len(set(features)) != len(features) or {LABEL, DENSE} & set(features):
        raise _fail(where, "features", f"names must be unique and not '{LABEL}'/'{DENSE}'")
    num_embeddings = _get(obj, "num_embeddings", dict, where)
    if set(num_embeddings) != set(features):
        missing = sorted(set(features) - set(num_embeddings))
        extra = sorted(set(num_embeddings) - set(features))
        raise _fail(
            where, "num_embeddings", f"keys must equal the features (missing {missing}, extra {extra})"
        )
    for name in features:
        _nonneg_int(num_embeddings, name, where, "num_embeddings.", minimum=1)
    num_dense = _nonneg_int(obj, "num_dense", where)
    has_labels = _get(obj, "has_labels", bool, where)
    num_samples = _nonneg_int(obj, "num_samples", where, minimum=1)
    row_group_size = _nonneg_int(obj, "row_group_size", where, minimum=1)
    splits_obj = _get(obj, "splits", dict, where)
    splits: dict[str, tuple[int, int]] = {}
    for name, bounds in splits_obj.items():
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
            or not 0 <= bounds[0] <= bounds[1] <= num_samples
        ):
            raise _fail(
                where, f"splits.{name}", f"must be [start, stop] with 0 <= start <= stop <= {num_samples}"
            )
        splits[name] = (bounds[0], bounds[1])
    files_obj = _get(obj, "files", list, where)
    if not files_obj:
        raise _fail(where, "files", "must list at least one file")
    allowed = {LABEL, DENSE, *features}
    files: list[DatasetFile] = []
    for i, entry in enumerate(files_obj):
        prefix = f"files[{i}]."
        if not isinstance(entry, dict):
            raise _fail(where, f"files[{i}]", "expected an object")
        path = _get(entry, "path", str, where, prefix)
        if Path(path).is_absolute() or ".." in Path(path).parts or not path.endswith(".parquet"):
            raise _fail(
                where, f"{prefix}path", f"must be a relative '.parquet' path inside the dataset, got {path!r}"
            )
        columns = _get(entry, "columns", list, where, prefix)
        unknown = [c for c in columns if c not in allowed]
        if not columns or unknown:
            raise _fail(
                where, f"{prefix}columns", f"must be a non-empty list of known columns, unknown {unknown}"
            )
        sha = _get(entry, "sha256", str, where, prefix)
        if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
            raise _fail(where, f"{prefix}sha256", f"must be 64 lowercase hex digits, got {sha!r}")
        files.append(
            DatasetFile(
                path=path,
                row_start=_nonneg_int(entry, "row_start", where, prefix),
                num_samples=_nonneg_int(entry, "num_samples", where, prefix, minimum=1),
                columns=tuple(columns),
                sha256=sha,
                size=_nonneg_int(entry, "size", where, prefix) if "size" in entry else None,
            )
        )
    provenance = obj.get("provenance", {})
    if not isinstance(provenance, dict):
        raise _fail(where, "provenance", "expected an object")
    meta = DatasetMetadata(
        source=source,
        features=tuple(features),
        num_embeddings={f: int(num_embeddings[f]) for f in features},
        num_dense=num_dense,
        has_labels=has_labels,
        num_samples=num_samples,
        row_group_size=row_group_size,
        splits=splits,
        files=tuple(files),
        provenance=provenance,
        format_version=version,
        root=root,
    )
    if not has_labels and any(LABEL in f.columns for f in files):
        raise _fail(where, "has_labels", f"is false but a file holds '{LABEL}'")
    if num_dense == 0 and any(DENSE in f.columns for f in files):
        raise _fail(where, "num_dense", f"is 0 but a file holds '{DENSE}'")
    _check_coverage(meta, where)
    return meta


def _check_coverage(meta: DatasetMetadata, where: str) -> None:
    """Each column's files must tile [0, num_samples) without gaps or overlaps."""
    for column in meta.columns:
        spans = sorted((f.row_start, f.row_stop, f.path) for f in meta.files if column in f.columns)
        if not spans:
            field_name, what = (
                ("features", f"feature '{column}'")
                if column in meta.features
                else (
                    ("has_labels", "the label column")
                    if column == LABEL
                    else ("num_dense", "the dense column")
                )
            )
            raise _fail(
                where,
                field_name,
                f"lists {what}, but no file of 'files' holds column '{column}' (no Parquet file has it): "
                f"remove it from '{field_name}'"
                + (" and 'num_embeddings'" if column in meta.features else "")
                + f", or add '{column}' to the 'columns' of the files that hold it",
            )
        position = 0
        for start, stop, path in spans:
            if start != position:
                problem = (
                    "overlaps the previous file"
                    if start < position
                    else f"leaves samples [{position}, {start})"
                )
                raise _fail(where, "files", f"column '{column}': {path} starts at {start} and {problem}")
            position = stop
        if position != meta.num_samples:
            raise _fail(
                where,
                "files",
                f"column '{column}' covers samples [0, {position}), not [0, {meta.num_samples})",
            )


def read_metadata(path: str | os.PathLike[str]) -> DatasetMetadata:
    """Read and validate ``<dataset>/metadata.json`` (``path`` is the folder or the file itself).

    Raises ``FileNotFoundError`` if there is no dataset there and ``DataFormatError`` (naming the file and the
    field) if the metadata is malformed or inconsistent.
    """
    path = Path(path)
    file = path if path.name == METADATA_FILE or path.is_file() else path / METADATA_FILE
    if not file.exists():
        raise FileNotFoundError(
            f"{file}: no such file; {file.parent} is not an ecorec Parquet dataset (not built?)"
        )
    try:
        obj = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{file}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{file}: not UTF-8 text (byte {err.start})") from None
    return DatasetMetadata.from_json(obj, str(file), root=file.parent)


def verify_dataset(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> DatasetMetadata:
    """Read the metadata and check the files holding ``columns`` (default: every file) against it: size
    always, sha256 once per file (remembered by size and modification time in ``<dataset>/.verified.json``;
    :func:`ecorec.data.verify.verify_files`). ``DataFormatError`` names the first bad file and the fix."""
    meta = read_metadata(path)
    verify_files(meta, columns)
    return meta


# ------------------------------------------------------------------------------------------------------------
# Schema and splits


def column_type(column: str, num_dense: int) -> pa.DataType:
    """Arrow type: ``label`` float32, ``dense`` fixed_size_list<float32>[num_dense], else list<int64>."""
    if column == LABEL:
        return pa.float32()
    if column == DENSE:
        return pa.list_(pa.float32(), num_dense)
    return pa.list_(pa.int64())


def dataset_schema(columns: Sequence[str], num_dense: int) -> pa.Schema:
    return pa.schema([pa.field(c, column_type(c, num_dense)) for c in columns])


def sparse_column(lengths: np.ndarray, values: np.ndarray) -> pa.ListArray:
    """A list<int64> column from per-sample lengths ``[n]`` and the concatenated values ``[sum(lengths)]``."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] != len(values):
        raise ValueError(f"lengths sum to {offsets[-1]} but there are {len(values)} values")
    if offsets[-1] < 2**31:
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values, type=pa.int64()))
    raise ValueError(f"a column chunk of {offsets[-1]} values is too large; write smaller batches")


def jagged_arrays(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(values [nnz] int64, lengths [n] int64)`` of a list<int64> column (null lists: length 0); the inverse
    of :func:`sparse_column`. The loader builds its KJTs from these, the kernel benchmark its lookups."""
    import pyarrow.compute as pc

    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return values, lengths


def dense_column(dense: np.ndarray) -> pa.FixedSizeListArray:
    """A fixed_size_list<float32>[D] column from a float array ``[n, D]``."""
    dense = np.ascontiguousarray(dense, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(dense.reshape(-1)), dense.shape[1])


def resolve_splits(
    num_samples: int, splits: Mapping[str, float | Sequence[int]] | None
) -> dict[str, tuple[int, int]]:
    """Turn fractions (``{"train": 0.8, "val": 0.1, "test": 0.1}``, consecutive in train/val/test order, the
    rest in the given order) or explicit ``[start, stop]`` ranges into sample ranges. ``None``: all train."""
    if not splits:
        return {"train": (0, num_samples)}
    names = [n for n in SPLIT_ORDER if n in splits] + [n for n in splits if n not in SPLIT_ORDER]
    fractions = {n: v for n, v in splits.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if fractions and len(fractions) != len(splits):
        raise ValueError(f"splits: give all as fractions or all as [start, stop], got {dict(splits)}")
    result: dict[str, tuple[int, int]] = {}
    if fractions:
        if any(v < 0 for v in fractions.values()) or sum(fractions.values()) > 1 + 1e-9:
            raise ValueError(f"splits: fractions must be >= 0 and sum to <= 1, got {dict(splits)}")
        cumulative = 0.0
        for name in names:
            start = round(cumulative * num_samples)
            cumulative += fractions[name]
            result[name] = (start, min(num_samples, round(cumulative * num_samples)))
        return result
    for name in names:
        bounds = splits[name]
        if len(bounds) != 2 or not 0 <= int(bounds[0]) <= int(bounds[1]) <= num_samples:  # type: ignore[arg-type]
            raise ValueError(f"splits.{name}: expected [start, stop] within [0, {num_samples}], got {bounds}")
        result[name] = (int(bounds[0]), int(bounds[1]))  # type: ignore[index]
    return result


# ------------------------------------------------------------------------------------------------------------
# Writing


class ParquetPartWriter:
    """Writes one Parquet file of a dataset in row groups of exactly ``row_group_size`` samples (the last may
    be shorter): incoming tables are buffered until a row group is full. Obtain from
    :meth:`ParquetDatasetWriter.open_part`."""

    def __init__(
        self,
        file: Path,
        relpath: str,
        schema: pa.Schema,
        row_start: int,
        row_group_size: int,
        compression: str,
    ) -> None:
        self.file = file
        self.relpath = relpath
        self.schema = schema
        self.row_start = row_start
        self.row_group_size = row_group_size
        self.num_samples = 0  # accepted so far (written or buffered)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        sparse = [f.name for f in schema if f.name not in (LABEL, DENSE)]
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            file, schema, compression=compression, use_dictionary=[c for c in schema.names if c not in sparse]
        )

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)

    def write(self, data: pa.Table | pa.RecordBatch | Mapping[str, pa.Array]) -> None:
        """Append samples; ``data`` must hold this file's columns (others are ignored)."""
        if self._writer is None:
            raise RuntimeError(f"{self.relpath}: already closed")
        if isinstance(data, Mapping):
            table = pa.table({c: data[c] for c in self.schema.names})
        else:
            table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
            missing = [c for c in self.schema.names if c not in table.column_names]
            if missing:
                raise ValueError(f"{self.relpath}: data lacks columns {missing}")
            table = table.select(self.schema.names)
        table = table.cast(self.schema)
        if table.num_rows == 0:
            return
        self.num_samples += table.num_rows
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.row_group_size:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        assert self._writer is not None
        if not self._pending:
            return
        table = pa.concat_tables(self._pending) if len(self._pending) > 1 else self._pending[0]
        full = (table.num_rows // self.row_group_size) * self.row_group_size
        for start in range(0, full, self.row_group_size):
            self._writer.write_table(
                table.slice(start, self.row_group_size), row_group_size=self.row_group_size
            )
        rest = table.slice(full)
        if final and rest.num_rows:
            self._writer.write_table(rest, row_group_size=self.row_group_size)
            rest = rest.slice(rest.num_rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> None:
        """Write the last (possibly short) row group and close the file."""
        if self._writer is None:
            return
        try:
            self._flush(final=True)
        finally:
            self._writer.close()
            self._writer = None

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None


class ParquetDatasetWriter:
    """Builds a dataset folder atomically.

    Example::

        with ParquetDatasetWriter(out, features=["f0", "f1"], num_dense=13, has_labels=True,
                                  row_group_size=4096) as writer:
            for batch in batches:                         # pa.RecordBatch / pa.Table with every column
                writer.write(batch)
            writer.finish(source="synthetic", num_embeddings={"f0": 10, "f1": 20}, splits={"train": 1.0})

    :meth:`open_part` writes files holding a subset of the columns (feature groups) instead.

    On an exception inside the block, or without :meth:`finish`, nothing appears at ``out``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        features: Sequence[str],
        num_dense: int,
        has_labels: bool,
        row_group_size: int,
        samples_per_file: int | None = None,
        compression: str = "zstd",
    ) -> None:
        if samples_per_file is not None and samples_per_file < 1:
            raise ValueError(f"samples_per_file must be >= 1, got {samples_per_file}")
        if row_group_size < 1:
            raise ValueError(f"row_group_size must be >= 1, got {row_group_size}")
        if num_dense < 0:
            raise ValueError(f"num_dense must be >= 0, got {num_dense}")
        if len(set(features)) != len(features) or not features or {LABEL, DENSE} & set(features):
            raise ValueError(
                f"features must be unique, non-empty and not '{LABEL}'/'{DENSE}', got {list(features)}"
            )
        self.path = Path(path)
        self.features = tuple(features)
        self.num_dense = num_dense
        self.has_labels = has_labels
        self.row_group_size = row_group_size
        self.compression = compression
        self.samples_per_file = (
            None
            if samples_per_file is None
            else math.ceil(samples_per_file / row_group_size) * row_group_size
        )
        self._stack = contextlib.ExitStack()
        self._tmp: Path | None = None
        self._parts: list[ParquetPartWriter] = []
        self._sequential: ParquetPartWriter | None = None
        self._finished: DatasetMetadata | None = None

    @property
    def all_columns(self) -> tuple[str, ...]:
        return (*((LABEL,) if self.has_labels else ()), *((DENSE,) if self.num_dense else ()), *self.features)

    @property
    def temp_dir(self) -> Path:
        """The temporary folder being filled (scratch files placed here vanish with it on failure)."""
        if self._tmp is None:
            raise RuntimeError("use ParquetDatasetWriter as a context manager")
        return self._tmp

    def __enter__(self) -> ParquetDatasetWriter:
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        self._tmp.mkdir(parents=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        for part in self._parts:
            part.abort()
        if exc_type is None and self._finished is None:
            err = RuntimeError(f"{self.path}: ParquetDatasetWriter closed without finish(); nothing written")
            self._stack.__exit__(RuntimeError, err, None)
            raise err
        return bool(self._stack.__exit__(exc_type, exc, tb))

    def open_part(self, columns: Sequence[str] | None = None, row_start: int = 0) -> ParquetPartWriter:
        """Start the next file, holding ``columns`` (default: all) for samples from ``row_start`` on."""
        cols = self.all_columns if columns is None else tuple(columns)
        unknown = [c for c in cols if c not in self.all_columns]
        if unknown or not cols:
            raise ValueError(f"unknown columns {unknown}; this dataset has {list(self.all_columns)}")
        ordered = tuple(c for c in self.all_columns if c in cols)
        relpath = f"part-{len(self._parts):05d}.parquet"
        part = ParquetPartWriter(
            self.temp_dir / relpath,
            relpath,
            dataset_schema(ordered, self.num_dense),
            row_start,
            self.row_group_size,
            self.compression,
        )
        self._parts.append(part)
        return part

    def write(self, data: pa.Table | pa.RecordBatch | Mapping[str, pa.Array]) -> None:
        """Append samples holding every column to the sequential files (``part-*.parquet``, a new one every
        ``samples_per_file`` samples)."""
        table = _as_table(data)
        start = 0
        while start < table.num_rows:
            part = self._sequential
            if part is None or (
                self.samples_per_file is not None and part.num_samples >= self.samples_per_file
            ):
                row_start = 0 if part is None else part.row_start + part.num_samples
                if part is not None:
                    part.close()
                part = self._sequential = self.open_part(row_start=row_start)
            room = table.num_rows - start
            if self.samples_per_file is not None:
                room = min(room, self.samples_per_file - part.num_samples)
            part.write(table.slice(start, room))
            start += room

    def finish(
        self,
        *,
        source: str,
        num_embeddings: Mapping[str, int],
        splits: Mapping[str, float | Sequence[int]] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> DatasetMetadata:
        """Close all files, hash them and write ``metadata.json``; the folder is renamed into place when the
        ``with`` block ends. Returns the metadata (validated exactly as :func:`read_metadata` would)."""
        check_source_name(source)
        files = []
        for part in self._parts:
            part.close()
            if part.num_samples == 0:
                part.file.unlink()
                continue
            files.append(
                DatasetFile(
                    path=part.relpath,
                    row_start=part.row_start,
                    num_samples=part.num_samples,
                    columns=part.columns,
                    sha256=file_sha256(part.file),
                    size=part.file.stat().st_size,
                )
            )
        num_samples = max((f.row_stop for f in files), default=0)
        obj = DatasetMetadata(
            source=source,
            features=self.features,
            num_embeddings={f: int(num_embeddings[f]) for f in self.features if f in num_embeddings},
            num_dense=self.num_dense,
            has_labels=self.has_labels,
            num_samples=num_samples,
            row_group_size=self.row_group_size,
            splits=resolve_splits(num_samples, splits),
            files=tuple(files),
            provenance=dict(provenance or {}),
        ).to_json()
        where = str(self.path / METADATA_FILE)
        metadata = DatasetMetadata.from_json(obj, where, root=self.path)
        write_json_atomic(self.temp_dir / METADATA_FILE, obj)
        self._finished = metadata
        return metadata


def write_parquet_dataset(
    path: str | os.PathLike[str],
    batches: Iterable[pa.Table | pa.RecordBatch | Mapping[str, pa.Array]],
    *,
    source: str,
    features: Sequence[str],
    num_embeddings: Mapping[str, int],
    num_dense: int,
    has_labels: bool,
    row_group_size: int,
    splits: Mapping[str, float | Sequence[int]] | None = None,
    provenance: Mapping[str, Any] | None = None,
    samples_per_file: int | None = None,
) -> DatasetMetadata:
    """Write a dataset from a stream of batches (each holding every column), atomically.

    Args:
        batches: tables / record batches / ``{column: array}`` with ``label`` (if ``has_labels``),
            ``dense`` (if ``num_dense``) and every feature; any number of samples each.
        samples_per_file: start a new file after this many samples (rounded up to whole row groups); ``None``:
            one file.
    Returns:
        The metadata written.
    """
    check_source_name(source)  # before any file is written
    missing = [f for f in features if f not in num_embeddings]
    if missing:
        raise ValueError(f"num_embeddings: no table size for features {missing[:10]}")
    with ParquetDatasetWriter(
        path,
        features=features,
        num_dense=num_dense,
        has_labels=has_labels,
        row_group_size=row_group_size,
        samples_per_file=samples_per_file,
    ) as writer:
        for batch in batches:
            writer.write(batch)
        return writer.finish(
            source=source, num_embeddings=num_embeddings, splits=splits, provenance=provenance
        )


def _as_table(batch: pa.Table | pa.RecordBatch | Mapping[str, pa.Array]) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    return pa.table(dict(batch))


# ------------------------------------------------------------------------------------------------------------
# Reading


def check_values(
    table: pa.Table,
    file: str | os.PathLike[str],
    row_group: int,
    first_sample: int,
    num_embeddings: Mapping[str, int] | None = None,
) -> None:
    """Refuse values a model would silently train on wrongly: a ``label`` that is not exactly 0 or 1 (NaN,
    null, 0.5, 2, ...), a ``dense`` value that is NaN, infinite or null, and (with ``num_embeddings``) a
    sparse id outside ``[0, num_embeddings[feature])``.

    Vectorised over one decoded row group (``table``, whose row 0 is dataset sample ``first_sample``). Raises
    ``DataFormatError`` naming the file, the row group, the column (and dense feature index), the first bad
    sample and value, and how many values are bad.
    """
    if LABEL in table.column_names:
        column = table.column(LABEL)
        labels = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        bad = ~((labels == 0.0) | (labels == 1.0))
        if column.null_count:
            bad |= np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if bad.any():
            i = int(np.argmax(bad))
            value = "null" if column[i].as_py() is None else repr(float(labels[i]))
            raise DataFormatError(
                f"{file}: row group {row_group}: column '{LABEL}': sample {first_sample + i} has label "
                f"{value}; labels must be 0 or 1 ({int(bad.sum())} bad label(s) in this row group)"
            )
    if DENSE in table.column_names:
        column = table.column(DENSE)
        width = column.type.list_size
        flat = pa.chunked_array([c.flatten() for c in column.chunks], type=column.type.value_type)
        values = flat.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        bad = ~np.isfinite(values)  # nulls become NaN
        if column.null_count:
            rows = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            i = int(np.argmax(rows))
            raise DataFormatError(
                f"{file}: row group {row_group}: column '{DENSE}': sample {first_sample + i} has no dense "
                f"features (null)"
            )
        if bad.any():
            pos = int(np.argmax(bad))
            raise DataFormatError(
                f"{file}: row group {row_group}: column '{DENSE}': dense feature {pos % width} of sample "
                f"{first_sample + pos // width} is {float(values[pos])!r}; dense features must be finite "
                f"({int(bad.sum())} non-finite value(s) in this row group)"
            )
    for name in table.column_names:
        rows = (num_embeddings or {}).get(name)
        if rows is None:
            continue
        column = table.column(name)
        ids = pa.chunked_array([c.flatten() for c in column.chunks], type=pa.int64())
        if not len(ids):
            continue
        ids_np = ids.to_numpy()
        lo, hi = int(ids_np.min()), int(ids_np.max())
        if lo < 0 or hi >= rows:
            pos = int(np.argmax((ids_np < 0) | (ids_np >= rows)))
            lengths = np.concatenate([c.value_lengths().fill_null(0).to_numpy() for c in column.chunks])
            sample = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
            raise DataFormatError(
                f"{file}: row group {row_group}: feature '{name}': sample {first_sample + sample} has id "
                f"{int(ids_np[pos])}, outside [0, {rows}) (num_embeddings of '{name}' in metadata.json; "
                f"ids in this row group span {lo}..{hi})"
            )


class ParquetRangeReader:
    """Reads sample ranges of some columns of a dataset, row group by row group, with a small cache.

    Only the files holding the requested columns are opened, and only the requested columns are decoded. Not
    thread-safe: use one reader per thread. ``verify``: check those files against ``metadata.json`` first
    (size always, sha256 once per file: :func:`ecorec.data.verify.verify_files`); a caller that verified
    them already passes ``False``.
    """

    def __init__(
        self,
        metadata: DatasetMetadata,
        columns: Sequence[str],
        cache_row_groups: int = 4,
        *,
        verify: bool = True,
    ) -> None:
        unknown = [c for c in columns if c not in metadata.columns]
        if unknown:
            raise ValueError(
                f"{metadata.root}: unknown columns {unknown}; the dataset has {list(metadata.columns)}"
            )
        if metadata.root is None:
            raise ValueError("metadata has no root folder; use read_metadata(path)")
        self.metadata = metadata
        self.columns = tuple(columns)
        self._files = [f for f in metadata.files if set(f.columns) & set(self.columns)]
        if verify:
            verify_files(metadata, self.columns)
        self._open: dict[str, pq.ParquetFile] = {}
        self._cache: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._cache_size = max(1, cache_row_groups) * max(1, len({f.columns for f in self._files}))

    def _parquet(self, f: DatasetFile) -> pq.ParquetFile:
        handle = self._open.get(f.path)
        if handle is None:
            assert self.metadata.root is not None
            file = self.metadata.root / f.path
            try:
                handle = pq.ParquetFile(file)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"{file}: listed in {self.metadata.root / METADATA_FILE} but missing"
                ) from None
            except (pa.ArrowInvalid, OSError) as err:
                raise DataFormatError(f"{file}: not a readable Parquet file: {err}") from None
            meta = handle.metadata
            if meta.num_rows != f.num_samples:
                raise DataFormatError(
                    f"{file}: holds {meta.num_rows} rows, metadata.json says {f.num_samples}"
                )
            size = self.metadata.row_group_size
            for i in range(meta.num_row_groups):
                rows = meta.row_group(i).num_rows
                if rows != size and not (i == meta.num_row_groups - 1 and rows < size):
                    raise DataFormatError(f"{file}: row group {i} holds {rows} rows, expected {size}")
            missing = [c for c in f.columns if c not in handle.schema_arrow.names]
            if missing:
                raise DataFormatError(f"{file}: lacks columns {missing} listed in metadata.json")
            self._open[f.path] = handle
        return handle

    def _row_group(self, f: DatasetFile, index: int) -> pa.Table:
        key = (f.path, index)
        table = self._cache.get(key)
        if table is not None:
            self._cache.move_to_end(key)
            return table
        cols = [c for c in f.columns if c in self.columns]
        try:
            table = self._parquet(f).read_row_group(index, columns=cols)
        except (pa.ArrowInvalid, OSError) as err:
            raise DataFormatError(
                f"{self.metadata.root / f.path}: row group {index} unreadable: {err}"
            ) from None
        check_values(
            table,
            self.metadata.root / f.path,
            index,
            f.row_start + index * self.metadata.row_group_size,
            self.metadata.num_embeddings,
        )
        self._cache[key] = table
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return table

    def read(self, start: int, stop: int, columns: Sequence[str] | None = None) -> dict[str, pa.Array]:
        """Samples ``[start, stop)`` of ``columns`` (default: all of this reader's) as ``{column: array}``."""
        cols = self.columns if columns is None else tuple(columns)
        if not 0 <= start <= stop <= self.metadata.num_samples:
            raise IndexError(f"sample range [{start}, {stop}) outside [0, {self.metadata.num_samples})")
        if start == stop:
            return {c: pa.array([], type=column_type(c, self.metadata.num_dense)) for c in cols}
        pieces: dict[str, list[pa.Array]] = {c: [] for c in cols}
        size = self.metadata.row_group_size
        for f in self._files:
            wanted = [c for c in cols if c in f.columns]
            if not wanted or f.row_start >= stop or f.row_stop <= start:
                continue
            lo, hi = max(start, f.row_start) - f.row_start, min(stop, f.row_stop) - f.row_start
            for group in range(lo // size, (hi - 1) // size + 1):
                g0 = group * size
                table = self._row_group(f, group)
                a, b = max(lo, g0) - g0, min(hi, g0 + size) - g0
                for c in wanted:
                    pieces[c].extend(table.column(c).slice(a, b - a).chunks)
        out = {}
        for c, chunks in pieces.items():
            array = pa.chunked_array(chunks, type=chunks[0].type) if chunks else None
            if array is None or len(array) != stop - start:
                raise DataFormatError(
                    f"{self.metadata.root}: column '{c}' does not cover samples [{start}, {stop})"
                )
            out[c] = array.combine_chunks()
        return out

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()
        self._cache.clear()

    def __enter__(self) -> ParquetRangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
