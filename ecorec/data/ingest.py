"""Bring your own data: a polars / pyarrow table, or CSV / Parquet files, to an ecorec Parquet dataset.

:func:`write_dataset` takes named columns and writes the dataset format of :mod:`ecorec.data.parquet`:

- ``sparse`` columns become one ``list<int64>`` feature each (one embedding table per feature): a list of
  integer ids (multi-hot), one integer id (one-hot), or strings / a list of strings (encoded to ids ``0..U-1``
  in sorted order of the distinct values). A null is an empty bag. Each string column's vocabulary (the value
  of id ``i`` at position ``i``) is stored in ``metadata.json`` (``provenance.vocabularies``); passing it back
  (``vocabularies=``) gives a second file the same ids for the same strings, its new strings the next ids.
- ``dense`` columns (numbers) become the ``dense`` vector, in the given order, as given or transformed
  (``dense_transform``: ``log1p`` of ``max(x, 0)`` as the Criteo converters do, or ``standardize`` with the
  train split's mean and std); the transform and its statistics are stored in ``metadata.json``
  (``provenance.dense_transform``), and passing that back applies the same statistics to other data.
  ``label`` is the 0/1 label.
- Table sizes (``num_embeddings``) are given, or the largest id + 1 of each feature (for a string column the
  size of its vocabulary).
- ``splits`` are consecutive sample ranges (fractions or ``[start, stop]``) in the order the rows come, after
  the optional ``shuffle`` (a seeded permutation of whole samples).

Every bad input is a ``ValueError`` (or ``FileNotFoundError``) naming the file or column, the row and the
value, raised before anything is written; the dataset appears atomically at ``path`` or not at all.

Everything is held in memory once (as Arrow); for data larger than memory, stream batches into
:class:`~ecorec.data.parquet.ParquetDatasetWriter` with the column helpers
(:func:`~ecorec.data.parquet.sparse_column`, :func:`~ecorec.data.parquet.dense_column`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ecorec.data.errors import DataFormatError
from ecorec.data.parquet import (
    DENSE,
    LABEL,
    METADATA_FILE,
    DatasetMetadata,
    check_source_name,
    dense_column,
    read_metadata,
    resolve_splits,
    verify_dataset,
    write_parquet_dataset,
)
from ecorec.utils import atomic_path, file_sha256, write_json_atomic

__all__ = ["DENSE_TRANSFORMS", "read_table_files", "register_dataset", "write_dataset"]

_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")

PathLike = str | os.PathLike[str]


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "tsv" if ".tsv" in name else "csv"
    raise ValueError(
        f"{path}: unknown file type; expected one of {list(_PARQUET_SUFFIXES + _CSV_SUFFIXES)} (or pass a "
        "polars DataFrame / pyarrow Table)"
    )


def read_table_files(paths: PathLike | Sequence[PathLike]) -> tuple[pa.Table, list[dict[str, Any]]]:
    """CSV / TSV (optionally gzipped) and Parquet files, concatenated in the given order, as one Arrow table,
    and their provenance (``file``, ``sha256``, ``rows``). Files must have the same columns and types."""
    import polars as pl

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ValueError("data: no input files given")
    tables, provenance = [], []
    first: pa.Schema | None = None
    for item in items:
        path = Path(item)
        if path.is_dir():
            raise ValueError(f"{path}: is a directory; pass its data files (e.g. sorted(dir.glob('*.csv')))")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        kind = _kind(path)
        try:
            if kind == "parquet":
                frame = pl.read_parquet(path)
            else:
                frame = pl.read_csv(path, separator="\t" if kind == "tsv" else ",", infer_schema_length=10000)
        except Exception as err:  # polars raises ComputeError / NoDataError / ...
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{path}: cannot be read as {kind}: {first_line}") from None
        table = frame.to_arrow()
        if first is None:
            first = table.schema
        elif table.schema.names != first.names:
            raise ValueError(
                f"{path}: columns {table.schema.names} differ from the first file's {first.names}"
            )
        elif not table.schema.equals(first):
            try:
                table = table.cast(first)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise ValueError(f"{path}: column types differ from the first file's: {err}") from None
        tables.append(table)
        provenance.append({"file": path.name, "sha256": file_sha256(path), "rows": table.num_rows})
    return pa.concat_tables(tables), provenance


def _as_table(data: Any) -> tuple[pa.Table, list[dict[str, Any]]]:
    if isinstance(data, pa.Table):
        return data, []
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data]), []
    if hasattr(data, "to_arrow") and hasattr(data, "columns"):  # a polars DataFrame
        return data.to_arrow(), []
    if isinstance(data, (str, os.PathLike)) or (
        isinstance(data, Sequence) and all(isinstance(d, (str, os.PathLike)) for d in data)
    ):
        return read_table_files(data)
    raise TypeError(
        f"data: expected a polars DataFrame, a pyarrow Table or file path(s), got {type(data).__name__}"
    )


def _check_names(sparse: Sequence[str], dense: Sequence[str], label: str | None) -> None:
    if isinstance(sparse, str) or isinstance(dense, str):
        raise TypeError("sparse / dense: give a list of column names, not one string")
    if not sparse:
        raise ValueError("sparse: at least one sparse (categorical) column is needed")
    for what, names in (("sparse", sparse), ("dense", dense)):
        duplicates = sorted({n for n in names if list(names).count(n) > 1})
        if duplicates:
            raise ValueError(f"{what}: duplicate column names {duplicates}")
    both = sorted(set(sparse) & set(dense))
    if both:
        raise ValueError(f"columns {both} are listed as both sparse and dense")
    if label is not None and label in (*sparse, *dense):
        raise ValueError(f"label: column {label!r} is also listed as a feature")
    reserved = sorted({LABEL, DENSE} & set(sparse))
    if reserved:
        raise ValueError(f"sparse: {reserved} are reserved column names of the dataset format; rename them")


def _first_bad(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _float64_values(column: pa.ChunkedArray, where: str, expected: str) -> np.ndarray:
    """``[n]`` float64 values of a numeric (integer, floating or boolean) column; nulls read as NaN."""
    if not (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_boolean(column.type)
    ):
        raise ValueError(f"{where}: expected {expected}, got type {column.type}")
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)


def _label_array(column: pa.ChunkedArray, name: str) -> pa.Array:
    values = _float64_values(column, f"label column {name!r}", "numbers 0/1")
    bad = ~((values == 0.0) | (values == 1.0))  # NaN and nulls (NaN here) included
    if bad.any():
        i = _first_bad(bad)
        shown = "null" if column[i].as_py() is None else repr(column[i].as_py())
        raise ValueError(
            f"label column {name!r}: row {i} is {shown}; labels must be 0 or 1 ({int(bad.sum())} bad rows)"
        )
    return pa.array(values.astype(np.float32))


def _dense_array(
    table: pa.Table,
    names: Sequence[str],
    transforms: Mapping[str, dict[str, Any]] | None = None,
    fit_rows: slice = slice(None),
) -> tuple[pa.Array, dict[str, dict[str, Any]]]:
    """The ``dense`` column ``[n, len(names)]`` (checked, then transformed) and the transforms applied."""
    columns, applied = [], {}
    for name in names:
        column = table.column(name)
        values = _float64_values(column, f"dense column {name!r}", "numbers")
        bad = ~np.isfinite(values)
        if bad.any():
            i = _first_bad(bad)
            shown = "null" if column[i].as_py() is None else repr(float(values[i]))
            raise ValueError(
                f"dense column {name!r}: row {i} is {shown}; dense features must be finite numbers "
                f"({int(bad.sum())} bad rows; fill or drop them first)"
            )
        if transforms and name in transforms:
            values, applied[name] = _apply_dense_transform(values, name, transforms[name], fit_rows)
        if np.abs(values).max(initial=0.0) > np.finfo(np.float32).max:
            raise ValueError(f"dense column {name!r}: values beyond the float32 range")
        columns.append(values)
    return dense_column(np.stack(columns, axis=1)), applied


def _sparse_array(
    column: pa.ChunkedArray, name: str, vocabulary: Sequence[str] | None = None
) -> tuple[pa.ListArray, int, list[str] | None]:
    """``(list<int64> column, largest id, vocabulary)`` of one sparse input column; ``vocabulary`` is the
    string of every id (``None`` for integer ids). A given ``vocabulary`` keeps its ids; strings it lacks get
    the next ids, in sorted order."""
    column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        lists = column
    elif (
        pa.types.is_integer(column.type)
        or pa.types.is_string(column.type)
        or pa.types.is_large_string(column.type)
    ):
        lengths = np.where(column.is_null().to_numpy(zero_copy_only=False), 0, 1)
        offsets = np.zeros(len(column) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        lists = pa.ListArray.from_arrays(pa.array(offsets), column.drop_null())
    else:
        raise ValueError(
            f"sparse column {name!r}: expected integer ids, strings, or lists of them, got type {column.type}"
        )
    lists = lists.fill_null([]) if lists.null_count else lists
    flat = lists.flatten()
    if flat.null_count:
        row = int(
            np.searchsorted(
                np.asarray(lists.offsets)[1:],
                _first_bad(flat.is_null().to_numpy(zero_copy_only=False)),
                side="right",
            )
        )
        raise ValueError(f"sparse column {name!r}: row {row} holds a null id inside its list")
    words: list[str] | None = None
    if pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type):
        words = _extend_vocabulary(name, vocabulary, pc.unique(flat).sort().to_pylist())
        flat = pc.index_in(flat, value_set=pa.array(words, type=flat.type)).cast(pa.int64())
    elif not pa.types.is_integer(flat.type):
        raise ValueError(f"sparse column {name!r}: ids must be integers or strings, got type {flat.type}")
    elif vocabulary is not None:
        raise ValueError(
            f"vocabularies[{name!r}]: column {name!r} holds integer ids (type {flat.type}); a vocabulary "
            "maps strings to ids"
        )
    ids = flat.cast(pa.int64()).to_numpy(zero_copy_only=False)
    offsets = np.asarray(lists.offsets, dtype=np.int64)
    offsets = offsets - offsets[0]
    if ids.size and ids.min() < 0:
        i = _first_bad(ids < 0)
        row = int(np.searchsorted(offsets[1:], i, side="right"))
        raise ValueError(f"sparse column {name!r}: row {row} has the negative id {int(ids[i])}")
    if offsets[-1] >= 2**31:
        raise ValueError(f"sparse column {name!r}: more than 2^31 ids; write the data in several batches")
    array = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(ids, type=pa.int64()))
    return array, int(ids.max()) if ids.size else -1, words


def _extend_vocabulary(name: str, vocabulary: Sequence[str] | None, present: list[str]) -> list[str]:
    """``vocabulary`` (checked: strings, no duplicates) followed by the ``present`` strings it lacks."""
    if vocabulary is None:
        return present
    if isinstance(vocabulary, str) or not all(isinstance(w, str) for w in vocabulary):
        raise ValueError(
            f"vocabularies[{name!r}]: expected a list of strings (the string of id i at position i)"
        )
    known, seen = list(vocabulary), set()
    for word in known:
        if word in seen:
            raise ValueError(f"vocabularies[{name!r}]: {word!r} appears twice")
        seen.add(word)
    return known + [w for w in present if w not in seen]


#: The dense transforms of :func:`write_dataset` (``dense_transform``).
DENSE_TRANSFORMS = ("log1p", "standardize")


def _dense_transforms(
    spec: str | Mapping[str, Any] | None, dense: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``{column: {"kind": ..., maybe "mean", "std"}}`` for the dense columns a ``dense_transform`` names."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        spec = {name: spec for name in dense}
    if not isinstance(spec, Mapping):
        raise TypeError(
            f"dense_transform: expected a name or a mapping of columns, got {type(spec).__name__}"
        )
    unknown = sorted(set(spec) - set(dense))
    if unknown:
        raise ValueError(f"dense_transform: {unknown} are not dense columns (dense: {list(dense)})")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in spec.items():
        if entry is None:
            continue
        item = {"kind": entry} if isinstance(entry, str) else dict(entry)
        kind = item.get("kind")
        if kind not in DENSE_TRANSFORMS:
            raise ValueError(
                f"dense_transform[{name!r}]: {kind!r} is not one of {', '.join(DENSE_TRANSFORMS)} (or null)"
            )
        given = {k for k in ("mean", "std") if k in item}
        if kind == "standardize" and given and given != {"mean", "std"}:
            raise ValueError(f"dense_transform[{name!r}]: give both mean and std, or neither")
        if kind == "standardize" and given and not float(item["std"]) > 0:
            raise ValueError(f"dense_transform[{name!r}]: std must be > 0, got {item['std']}")
        if kind == "log1p" and given:
            raise ValueError(f"dense_transform[{name!r}]: log1p takes no mean / std")
        out[name] = item
    return out


def _apply_dense_transform(
    values: np.ndarray, name: str, item: dict[str, Any], fit_rows: slice
) -> tuple[np.ndarray, dict[str, Any]]:
    """``values [n]`` transformed, and the record of the transform (statistics fitted on ``fit_rows``)."""
    if item["kind"] == "log1p":
        return np.log1p(np.maximum(values, 0.0)), {"kind": "log1p"}
    if "mean" in item:
        mean, std = float(item["mean"]), float(item["std"])
    else:
        fit = values[fit_rows]
        if not fit.size:
            raise ValueError(f"dense_transform[{name!r}]: no rows to fit the mean and std on")
        mean, std = float(fit.mean()), float(fit.std())
        std = std if std > 0 else 1.0  # a constant column: centred, not scaled
    return (values - mean) / std, {"kind": "standardize", "mean": mean, "std": std}


def write_dataset(
    path: PathLike,
    data: Any,
    *,
    source: str,
    sparse: Sequence[str],
    dense: Sequence[str] = (),
    label: str | None = "label",
    num_embeddings: Mapping[str, int] | None = None,
    splits: Mapping[str, float | Sequence[int]] | None = None,
    shuffle: bool = False,
    seed: int = 0,
    row_group_size: int = 4096,
    samples_per_file: int | None = None,
    provenance: Mapping[str, Any] | None = None,
    vocabularies: Mapping[str, Sequence[str]] | None = None,
    dense_transform: str | Mapping[str, Any] | None = None,
) -> DatasetMetadata:
    """Write ``data`` as an ecorec Parquet dataset at ``path`` (atomically) and return its metadata.

    Args:
        data: a polars ``DataFrame``, a pyarrow ``Table`` / ``RecordBatch``, or the path(s) of CSV / TSV
            (optionally ``.gz``) or Parquet files (concatenated in order; same columns).
        source: the dataset's name for where it came from (free-form: letters, digits, ``_.-``), stored in
            ``metadata.json``; describe it further in ``provenance``.
        sparse: categorical columns, one embedding table each (see the module docstring for accepted types).
        dense: numeric columns forming the ``dense`` vector (finite values only).
        label: the 0/1 label column, or ``None`` for an unlabelled dataset.
        num_embeddings: rows of each feature's table (every id must be below it); default: largest id + 1.
        splits: ``{"train": 0.8, "val": 0.1, "test": 0.1}`` or ``{"train": [0, n], ...}``; default all train.
        shuffle: permute whole samples (seeded by ``seed``) before writing. The loader's own shuffle only
            permutes whole global batches, so time-sorted data must be shuffled here (or before) unless its
            order is wanted (e.g. a time split: then leave ``shuffle=False`` and let the splits follow time).
        row_group_size: samples per Parquet row group (the loader's unit of decoding: near the rank's batch).
        samples_per_file: start a new file every so many samples (``None``: one file).
        provenance: extra facts stored in ``metadata.json`` (URL, licence, preprocessing, ...).
        vocabularies: ``{column: [string of id 0, string of id 1, ...]}`` to reuse for string columns (e.g.
            ``read_metadata(first).provenance["vocabularies"]``): known strings keep their ids, new ones get
            the next ids (sorted). Every string column's vocabulary is stored in ``metadata.json``
            (``provenance.vocabularies``) either way (a million strings make it tens of MB); its table has
            at least as many rows as the vocabulary.
        dense_transform: ``None`` (values as given), ``"log1p"`` (``log(1 + max(x, 0))``, the Criteo
            converters' transform), ``"standardize"`` (``(x - mean) / std``, the statistics of the train
            split, or of all rows without one), or ``{column: one of those | None}``; an entry may also be a
            recorded one (``{"kind": "standardize", "mean": m, "std": s}``, e.g.
            ``read_metadata(first).provenance["dense_transform"]``) to apply the same statistics. What was
            applied is stored in ``metadata.json`` (``provenance.dense_transform``).
    """
    check_source_name(source)
    sparse, dense = list(sparse), list(dense)
    _check_names(sparse, dense, label)
    if row_group_size < 1:
        raise ValueError(f"row_group_size must be >= 1, got {row_group_size}")
    table, inputs = _as_table(data)
    wanted = [*sparse, *dense, *([label] if label is not None else [])]
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise ValueError(f"data: no column(s) {missing}; the data has {table.column_names}")
    if len(set(table.column_names)) != len(table.column_names):
        raise ValueError(f"data: duplicate column names in {table.column_names}")
    if table.num_rows == 0:
        raise ValueError("data: no rows")
    if num_embeddings is not None:
        unknown = sorted(set(num_embeddings) - set(sparse))
        absent = [f for f in sparse if f not in num_embeddings]
        if unknown or absent:
            raise ValueError(
                f"num_embeddings: keys must be the sparse columns (missing {absent}, not sparse {unknown})"
            )
    if vocabularies is not None:
        unknown = sorted(set(vocabularies) - set(sparse))
        if unknown:
            raise ValueError(f"vocabularies: {unknown} are not sparse columns (sparse: {sparse})")
    transforms = _dense_transforms(dense_transform, dense)
    if shuffle:
        order = np.random.default_rng(seed).permutation(table.num_rows)
        table = table.take(pa.array(order))
    columns: dict[str, pa.Array] = {}
    if label is not None:
        columns[LABEL] = _label_array(table.column(label), label)
    applied: dict[str, dict[str, Any]] = {}
    if dense:
        train = resolve_splits(table.num_rows, splits).get("train", (0, table.num_rows))
        columns[DENSE], applied = _dense_array(table, dense, transforms, slice(*train))
    sizes: dict[str, int] = {}
    encoded: list[str] = []
    words: dict[str, list[str]] = {}
    for name in sparse:
        given = None if vocabularies is None else vocabularies.get(name)
        array, largest, vocabulary = _sparse_array(table.column(name), name, given)
        if vocabulary is not None:
            encoded.append(name)
            words[name] = vocabulary
        if num_embeddings is not None:
            rows = int(num_embeddings[name])
            if rows < 1:
                raise ValueError(f"num_embeddings[{name!r}]: must be >= 1, got {rows}")
            if largest >= rows:
                ids = array.flatten().to_numpy(zero_copy_only=False)
                i = _first_bad(ids >= rows)
                row = int(np.searchsorted(np.asarray(array.offsets)[1:], i, side="right"))
                raise ValueError(
                    f"sparse column {name!r}: row {row} has id {int(ids[i])} >= num_embeddings[{name!r}] = "
                    f"{rows}"
                )
            if vocabulary is not None and len(vocabulary) > rows:
                raise ValueError(
                    f"num_embeddings[{name!r}] = {rows} is smaller than the column's vocabulary of "
                    f"{len(vocabulary)} strings"
                )
            sizes[name] = rows
        else:  # a string column's table covers its whole vocabulary (also strings this data lacks)
            sizes[name] = max(largest + 1, len(vocabulary or ()), 1)
        columns[name] = array
    facts: dict[str, Any] = {
        "written_by": "ecorec.data.write_dataset",
        "columns": {"label": label, "dense": dense, "sparse": sparse},
        "shuffled": bool(shuffle),
        "shuffle_seed": seed if shuffle else None,
        "num_embeddings_rule": "given" if num_embeddings is not None else "largest id + 1",
        "encoded_string_features": encoded,
        "vocabularies": words,
        "dense_transform": applied,
    }
    if inputs:
        facts["inputs"] = inputs
    facts.update(provenance or {})
    return write_parquet_dataset(
        path,
        [pa.table(columns)],
        source=source,
        features=sparse,
        num_embeddings=sizes,
        num_dense=len(dense),
        has_labels=label is not None,
        row_group_size=row_group_size,
        splits=splits,
        provenance=facts,
        samples_per_file=samples_per_file,
    )


def register_dataset(
    dataset_dir: PathLike,
    output: PathLike,
    *,
    name: str,
    description: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> DatasetMetadata:
    """Make a prepared ecorec Parquet dataset (``dataset_dir``, e.g. written by :func:`write_dataset`)
    available at ``output`` under the config name ``name`` (the workflow's ``source: parquet`` entries).

    The dataset is verified first (metadata and every file's sha256; errors name the file); its files are
    hard-linked (copied across file systems), and ``metadata.json``'s provenance gains ``registered`` (the
    folder it came from, ``name``, ``description``, ``provenance``). Atomic: nothing at ``output`` on error.
    """
    source = Path(dataset_dir)
    if source.exists() and not source.is_dir():
        raise DataFormatError(f"{source}: is a file; a dataset is a folder holding {METADATA_FILE}")
    meta = verify_dataset(source)
    assert meta.root is not None
    output = Path(output)
    if output.resolve() == source.resolve():
        raise ValueError(f"{output}: the output is the dataset itself")
    with atomic_path(output) as tmp:
        tmp.mkdir(parents=True)
        for f in meta.files:
            target = tmp / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(meta.root / f.path, target)
            except OSError:
                shutil.copy2(meta.root / f.path, target)
        obj = meta.to_json()
        obj["provenance"] = {
            **obj["provenance"],
            "registered": {
                "from": str(source.resolve()),
                "name": name,
                "description": description,
                **dict(provenance or {}),
            },
        }
        write_json_atomic(tmp / METADATA_FILE, obj)
    return read_metadata(output)
