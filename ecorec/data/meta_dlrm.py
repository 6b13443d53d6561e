"""Meta ``dlrm_datasets`` files (``.pt.gz``) -> Parquet dataset, in bounded memory.

A file is a gzip'd ``torch.save`` of ``(indices, offsets, lengths)``: ``lengths [T, B]``, ``offsets [T*B+1]``
table-major (bag ``(t, b)`` is ``indices[offsets[t*B+b] : offsets[t*B+b+1]]``), ``indices [nnz]`` (1.4e9 of
them, 11 GB as int64, in a 2022 file).

Conversion never holds a whole tensor: the file is gunzipped (streamed) to a scratch file; its structure
(dtypes, shapes, byte offsets of the tensor data) is read with ``torch.load(map_location="meta",
weights_only=True)``, which reads no tensor data, and validated before anything is allocated; then each row
group of each feature group (``tables_per_file`` tables) is read with positioned reads of exactly the needed
bytes. Peak memory is about one row group of one feature group plus the Parquet encoder's buffers (measured:
``tests/data/bench_meta_dlrm_memory.py``). Files saved in torch's legacy (pre-1.6, non-zip) format are still
read, but whole, into memory (with a warning).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from ecorec.data.errors import DataFormatError
from ecorec.data.parquet import DatasetMetadata, ParquetDatasetWriter
from ecorec.data.sources import META_DLRM_RELEASES, lfs_objects
from ecorec.utils import atomic_path, environment_record

logger = logging.getLogger(__name__)

_NAMES = ("indices", "offsets", "lengths")
_INT_DTYPES = {torch.int32: np.int32, torch.int64: np.int64}
_CHUNK = 1 << 22


def write_meta_dlrm_file(
    path: str | os.PathLike[str],
    indices: torch.Tensor,
    offsets: torch.Tensor,
    lengths: torch.Tensor,
    *,
    compresslevel: int = 6,
) -> None:
    """Write ``(indices, offsets, lengths)`` as a Meta-format ``.pt.gz`` (gzip'd ``torch.save``), atomically.

    Args:
        indices: ``[nnz]`` int. offsets: ``[T*B+1]`` int, table-major. lengths: ``[T, B]`` int.
    """
    if lengths.dim() != 2 or offsets.dim() != 1 or indices.dim() != 1:
        raise ValueError(
            f"expected indices [nnz], offsets [T*B+1], lengths [T, B]; got shapes {tuple(indices.shape)}, "
            f"{tuple(offsets.shape)}, {tuple(lengths.shape)}"
        )
    if offsets.numel() != lengths.numel() + 1 or int(offsets[-1]) != indices.numel():
        raise ValueError("offsets must have T*B+1 entries and end at len(indices)")
    with atomic_path(path) as tmp, gzip.open(tmp, "wb", compresslevel=compresslevel) as handle:
        torch.save((indices, offsets, lengths), handle)


# ------------------------------------------------------------------------------------------------------------
# Reading one file


class _HashingReader:
    """Read-only file wrapper that hashes every byte read and counts them (for positions in errors)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        self.position += len(data)
        return data

    def readable(self) -> bool:
        return True


def _gzip_problem(source: Path, err: BaseException, position: int, total: int, written: int) -> str:
    """A message that says what is wrong with a gzip file and what to do about it."""
    if isinstance(err, EOFError):
        done = f", {written} bytes decompressed before that" if written else ""
        return (
            f"{source}: truncated: the file ({total} bytes) ends inside the gzip stream{done} (an "
            "interrupted or incomplete download? delete it and download it again)"
        )
    return (
        f"{source}: corrupt gzip data near compressed byte {position} of {total} (after {written} "
        f"decompressed bytes): {err}; is it a gzip file? delete it and download it again"
    )


def gunzip_file(source: Path, target: Path, progress: bool = False) -> tuple[str, int]:
    """Stream-decompress ``source`` to ``target``; returns ``(sha256 of source, decompressed bytes)``.

    A corrupt or truncated gzip raises ``DataFormatError`` naming the file and the compressed byte position.
    """
    written = 0
    with open(source, "rb") as raw, open(target, "wb") as out:
        reader = _HashingReader(raw)
        total = os.fstat(raw.fileno()).st_size
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"gunzip {source.name}", disable=not progress)
        with gzip.GzipFile(fileobj=reader, mode="rb") as stream:  # type: ignore[call-overload]
            while True:
                before = reader.position
                try:
                    block = stream.read(_CHUNK)
                except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
                    raise DataFormatError(
                        _gzip_problem(source, err, reader.position, total, written)
                    ) from None
                if not block:
                    break
                out.write(block)
                written += len(block)
                bar.update(reader.position - before)
        bar.close()
    return reader.sha256.hexdigest(), written


class _TensorSlices:
    """Positioned reads of 1-D/2-D tensors saved by ``torch.save`` (zip format), without loading them."""

    def __init__(self, file: Path, tensors: Sequence[torch.Tensor]) -> None:
        self.file = file
        self._handle = open(file, "rb")
        self._layout = {}
        for name, t in zip(_NAMES, tensors):
            storage = t.untyped_storage()
            if not hasattr(storage, "_checkpoint_offset"):
                raise RuntimeError("this torch does not expose checkpoint offsets (needs torch >= 2.6)")
            offset = int(storage._checkpoint_offset) + t.storage_offset() * t.element_size()
            self._layout[name] = (offset, _INT_DTYPES[t.dtype])

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Elements ``[start, stop)`` of the flattened tensor ``name`` as int64."""
        offset, dtype = self._layout[name]
        out = np.empty(stop - start, dtype=dtype)
        buffer = memoryview(out).cast("B")
        self._handle.seek(offset + start * out.itemsize)
        got = self._handle.readinto(buffer)
        if got != len(buffer):
            raise DataFormatError(
                f"{self.file}: {name} data truncated at element {start + got // out.itemsize}"
            )
        return out.astype(np.int64, copy=False)

    def close(self) -> None:
        self._handle.close()


class _InMemorySlices:
    """The same interface over tensors already in memory (legacy-format files)."""

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self._arrays = {name: t.reshape(-1).numpy() for name, t in zip(_NAMES, tensors)}

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        return self._arrays[name][start:stop].astype(np.int64, copy=False)

    def close(self) -> None:
        self._arrays.clear()


class MetaDlrmFile:
    """One decompressed Meta-format file, validated, read in slices.

    Attributes:
        num_tables: T. batch_size: B. num_indices: nnz. sha256 / compressed_bytes: of the ``.pt.gz``.
    """

    def __init__(self, source: str | os.PathLike[str], scratch_dir: Path, progress: bool = False) -> None:
        self.source = Path(source)
        if not self.source.is_file():
            raise FileNotFoundError(f"{self.source}: no such file")
        scratch_dir.mkdir(parents=True, exist_ok=True)
        self.scratch = scratch_dir / (self.source.name.removesuffix(".gz") + ".tmp")
        self.sha256, decompressed = gunzip_file(self.source, self.scratch, progress)
        self.compressed_bytes = self.source.stat().st_size
        self._reader: _TensorSlices | _InMemorySlices
        try:
            tensors = self._load_structure(decompressed)
            self._validate(tensors)
            if tensors[0].device.type == "meta":
                self._reader = _TensorSlices(self.scratch, tensors)
            else:
                self._reader = _InMemorySlices(tensors)
            self._check_offset_ends()
        except BaseException:
            self.close()
            raise

    def _load_structure(self, decompressed: int) -> Sequence[torch.Tensor]:
        with open(self.scratch, "rb") as handle:
            magic = handle.read(4)
        legacy = magic != b"PK\x03\x04"
        if not legacy:
            with zipfile.ZipFile(self.scratch) as archive:
                order = [n for n in archive.namelist() if n.endswith("/byteorder")]
                if order and archive.read(order[0]).decode().strip() != sys.byteorder:
                    raise DataFormatError(f"{self.source}: saved with a different byte order; not supported")
        else:
            logger.warning(
                "%s: legacy (non-zip) torch.save format: loading it whole into memory (%d bytes)",
                self.source,
                decompressed,
            )
        try:
            if legacy:
                obj = torch.load(self.scratch, weights_only=True)
            else:
                obj = torch.load(self.scratch, map_location="meta", weights_only=True)
        except Exception as err:  # torch raises RuntimeError / UnpicklingError / ... for non-torch payloads
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataFormatError(
                f"{self.source}: not a torch.save file of tensors (decompressed {decompressed} bytes): "
                f"{first_line}"
            ) from None
        if not isinstance(obj, (tuple, list)) or len(obj) != 3:
            kind = (
                f"{type(obj).__name__} of length {len(obj)}"
                if isinstance(obj, (tuple, list))
                else type(obj).__name__
            )
            raise DataFormatError(
                f"{self.source}: expected a tuple (indices, offsets, lengths), got a {kind}"
            )
        return obj

    def _validate(self, tensors: Sequence[Any]) -> None:
        for name, t in zip(_NAMES, tensors):
            if not isinstance(t, torch.Tensor):
                raise DataFormatError(f"{self.source}: {name}: expected a tensor, got {type(t).__name__}")
            if t.dtype not in _INT_DTYPES:
                raise DataFormatError(f"{self.source}: {name}: expected int32/int64, got {t.dtype}")
            if not t.is_contiguous():
                raise DataFormatError(f"{self.source}: {name}: not contiguous (strides {t.stride()})")
        indices, offsets, lengths = tensors
        if indices.dim() != 1 or offsets.dim() != 1 or lengths.dim() != 2:
            raise DataFormatError(
                f"{self.source}: expected indices [nnz], offsets [T*B+1], lengths [T, B]; got shapes "
                f"{tuple(indices.shape)}, {tuple(offsets.shape)}, {tuple(lengths.shape)}"
            )
        self.num_tables, self.batch_size = (int(s) for s in lengths.shape)
        self.num_indices = int(indices.numel())
        if offsets.numel() != self.num_tables * self.batch_size + 1:
            raise DataFormatError(
                f"{self.source}: offsets: expected T*B+1 = {self.num_tables * self.batch_size + 1} entries "
                f"for lengths [{self.num_tables}, {self.batch_size}], got {offsets.numel()}"
            )

    def _check_offset_ends(self) -> None:
        first = int(self.read_offsets(0, 1)[0])
        last = int(
            self.read_offsets(self.num_tables * self.batch_size, self.num_tables * self.batch_size + 1)[0]
        )
        if first != 0 or last != self.num_indices:
            raise DataFormatError(
                f"{self.source}: offsets must run from 0 to len(indices) = {self.num_indices}, "
                f"got {first} .. {last}"
            )

    def read_offsets(self, start: int, stop: int) -> np.ndarray:
        """``offsets[start:stop]`` int64."""
        return self._reader.read("offsets", start, stop)

    def read_lengths(self, table: int, start: int, stop: int) -> np.ndarray:
        """``lengths[table, start:stop]`` int64."""
        base = table * self.batch_size
        return self._reader.read("lengths", base + start, base + stop)

    def read_indices(self, start: int, stop: int) -> np.ndarray:
        """``indices[start:stop]`` int64."""
        return self._reader.read("indices", start, stop)

    def close(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()
        self.scratch.unlink(missing_ok=True)

    def __enter__(self) -> MetaDlrmFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------------------
# Conversion


def _table_rows(meta_file: MetaDlrmFile, table: int, start: int, stop: int) -> tuple[pa.ListArray, int]:
    """Bags of ``table`` for samples ``[start, stop)`` as a list<int64> array, and their largest index (-1 if
    none). Validates offsets (non-decreasing), lengths (= offset differences) and indices (>= 0)."""
    base = table * meta_file.batch_size
    offsets = meta_file.read_offsets(base + start, base + stop + 1)
    steps = np.diff(offsets)
    if (steps < 0).any():
        bad = int(np.argmax(steps < 0))
        raise DataFormatError(
            f"{meta_file.source}: offsets decrease at position {base + start + bad + 1} "
            f"(table {table}, sample {start + bad}): {offsets[bad]} -> {offsets[bad + 1]}"
        )
    lengths = meta_file.read_lengths(table, start, stop)
    if not np.array_equal(lengths, steps):
        bad = int(np.argmax(lengths != steps))
        raise DataFormatError(
            f"{meta_file.source}: lengths[{table}, {start + bad}] = {lengths[bad]} "
            f"but the offsets give {steps[bad]}"
        )
    values = meta_file.read_indices(int(offsets[0]), int(offsets[-1]))
    largest = -1
    if values.size:
        if values.min() < 0:
            bad = int(np.argmax(values < 0))
            raise DataFormatError(
                f"{meta_file.source}: negative index {values[bad]} at position {int(offsets[0]) + bad} "
                f"(table {table})"
            )
        largest = int(values.max())
    rel = offsets - offsets[0]
    if rel[-1] >= 2**31:
        raise DataFormatError(f"{meta_file.source}: table {table}: more than 2^31 indices in one row group")
    array = pa.ListArray.from_arrays(pa.array(rel.astype(np.int32)), pa.array(values, type=pa.int64()))
    return array, largest


def convert_meta_dlrm(
    sources: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    source: str = "meta_dlrm_2022",
    row_group_size: int = 4096,
    tables_per_file: int = 32,
    splits: dict[str, Any] | None = None,
    strict_shape: bool = True,
    verify_known_checksums: bool = True,
    scratch_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> DatasetMetadata:
    """Convert Meta ``.pt.gz`` files (concatenated along samples, in the given order) to a Parquet dataset.

    Feature ``f{t}`` holds table ``t``. Each source file becomes one Parquet file per feature group of
    ``tables_per_file`` tables (written one after the other, so one writer is open at a time). There are no
    labels and no dense features (``has_labels`` false). ``num_embeddings`` of a table is its largest index
    + 1 over the converted files (1 for a table never accessed; listed in the provenance).

    Args:
        source: ``meta_dlrm_2021`` or ``meta_dlrm_2022``.
        strict_shape: require the release's ``(T, B)`` (856 x 65536 or 788 x 131072); otherwise any shape,
            the same for all files (tests use small files).
        verify_known_checksums: a file named like a published ``dlrm_datasets`` file must have its sha256
            (from the packaged list; checked while decompressing).
        scratch_dir: where the decompressed file goes (as large as the tensors: ~13 GB for a 2022 file);
            default: beside ``output``. The conversion creates a private sub-folder there and removes only
            that; the folder itself and any other file in it are left alone.
    """
    if source not in META_DLRM_RELEASES:
        raise ValueError(f"source must be one of {sorted(META_DLRM_RELEASES)}, got {source!r}")
    if not sources:
        raise ValueError("no source files given")
    if tables_per_file < 1 or row_group_size < 1:
        raise ValueError(
            f"tables_per_file and row_group_size must be >= 1, got {tables_per_file}, {row_group_size}"
        )
    release = META_DLRM_RELEASES[source]
    known = {Path(path).name: obj for path, obj in lfs_objects().items()}
    output = Path(output)
    # A private folder created here (inside scratch_dir when given) and the only thing removed at the end:
    # the caller's folder and anything else in it are never touched.
    scratch_parent = Path(scratch_dir) if scratch_dir is not None else output.parent
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.scratch-", dir=scratch_parent))
    writer: ParquetDatasetWriter | None = None
    provenance_sources: list[dict[str, Any]] = []
    largest = np.zeros(0, dtype=np.int64)
    groups: list[range] = []
    first_shape: tuple[int, int] | None = None
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        for i, path in enumerate(sources):
            meta_file = stack.enter_context(MetaDlrmFile(path, scratch, progress))
            published = known.get(meta_file.source.name) if verify_known_checksums else None
            if published is not None and published.sha256 != meta_file.sha256:
                raise DataFormatError(
                    f"{meta_file.source}: sha256 mismatch with the published {published.path}: expected "
                    f"{published.sha256}, got {meta_file.sha256}"
                )
            shape = (meta_file.num_tables, meta_file.batch_size)
            if first_shape is None:
                expected = (release.num_tables, release.batch_size) if strict_shape else shape
                if shape != expected:
                    raise DataFormatError(
                        f"{meta_file.source}: lengths has shape {shape}, expected {expected} for {source}"
                    )
                first_shape = shape
                features = [f"f{t}" for t in range(meta_file.num_tables)]
                writer = stack.enter_context(
                    ParquetDatasetWriter(
                        output,
                        features=features,
                        num_dense=0,
                        has_labels=False,
                        row_group_size=row_group_size,
                    )
                )
                groups = [
                    range(g, min(g + tables_per_file, meta_file.num_tables))
                    for g in range(0, meta_file.num_tables, tables_per_file)
                ]
                largest = np.full(meta_file.num_tables, -1, dtype=np.int64)
            elif shape != first_shape:
                raise DataFormatError(
                    f"{meta_file.source}: lengths has shape {shape}, expected {first_shape} as the first file"
                )
            row_groups = range(0, meta_file.batch_size, row_group_size)
            bar = tqdm(
                total=len(groups) * len(row_groups),
                unit="row group",
                desc=f"convert {meta_file.source.name}",
                disable=not progress,
            )
            for group in groups:  # one file per (source, feature group), one open at a time: bounded memory
                part = writer.open_part([f"f{t}" for t in group], row_start=i * meta_file.batch_size)
                for start in row_groups:
                    stop = min(start + row_group_size, meta_file.batch_size)
                    columns = {}
                    for t in group:
                        columns[f"f{t}"], top = _table_rows(meta_file, t, start, stop)
                        largest[t] = max(largest[t], top)
                    part.write(columns)
                    bar.update()
                part.close()
            bar.close()
            provenance_sources.append(
                {
                    "file": meta_file.source.name,
                    "sha256": meta_file.sha256,
                    "compressed_bytes": meta_file.compressed_bytes,
                    "num_tables": meta_file.num_tables,
                    "batch_size": meta_file.batch_size,
                    "num_indices": meta_file.num_indices,
                    "row_start": i * meta_file.batch_size,
                }
            )
            logger.info("converted %s (%d indices)", meta_file.source, meta_file.num_indices)
            meta_file.close()  # frees the scratch file before the next source is decompressed
        assert writer is not None
        features = list(writer.features)
        return writer.finish(
            source=source,
            num_embeddings={f: max(int(m) + 1, 1) for f, m in zip(features, largest)},
            splits=splits,
            provenance={
                "sources": provenance_sources,
                "num_embeddings_rule": "largest index + 1 over the converted files (1 if never accessed)",
                "tables_never_accessed": [features[t] for t in np.flatnonzero(largest < 0)],
                "tables_per_file": tables_per_file,
                "row_group_size": row_group_size,
                "environment": environment_record(),
            },
        )
    raise AssertionError("unreachable")
