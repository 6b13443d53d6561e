"""Checking a dataset's files against its ``metadata.json`` when they are first read, cheaply after the first
time.

A part file that changed after the dataset was written (labels flipped, rows replaced, a file from another
build copied in), or a ``metadata.json`` whose checksum was edited, would otherwise train with no warning. So
every reader checks the files it is about to read:

- **sizes always**: each file must exist and have the size ``metadata.json`` lists (``files[i].size``; older
  datasets without sizes rely on the stamp below);
- **content once**: each file's sha256 must equal ``files[i].sha256``. A file verified once is remembered in
  the stamp ``<dataset>/.verified.json`` by its size and modification time (``{path: {"size", "mtime_ns",
  "sha256"}}``); while both are unchanged (and ``metadata.json`` still lists the same sha256) it is not
  hashed again. Rewriting a file changes its modification time, so it is hashed again.

The stamp is written atomically and merged with what other processes (ranks of one run, parallel rules)
wrote meanwhile; where the folder is read-only nothing is remembered and the files are hashed on every first
read. Opting out (``verify=False`` of the readers, ``dataset.verify: false`` of a run config) skips both
checks; a training run's record then says so.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecorec.data.errors import DataFormatError
from ecorec.utils import file_sha256, write_json_atomic

if TYPE_CHECKING:  # pragma: no cover
    from ecorec.data.parquet import DatasetMetadata

__all__ = ["VERIFIED_STAMP", "VerifyReport", "verify_files"]

VERIFIED_STAMP = ".verified.json"
_STAMP_VERSION = 1
_LOG = logging.getLogger("ecorec.data")


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_files` checked.

    Attributes:
        files: files checked (size, and content unless ``hashes`` was off).
        hashed: files whose content was hashed now. remembered: files whose earlier verification (the stamp)
            still held. bytes_hashed: their total size. stamp: the stamp file, or ``None`` if it could not be
            written (a read-only folder). hashes: whether contents were checked.
    """

    files: int
    hashed: int
    remembered: int
    bytes_hashed: int
    stamp: str | None
    hashes: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_stamp(path: Path) -> dict[str, dict[str, Any]]:
    """The stamp's entries; an unreadable or foreign stamp counts as empty (everything is hashed again)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(obj, dict)
        or obj.get("version") != _STAMP_VERSION
        or not isinstance(obj.get("files"), dict)
    ):
        return {}
    return {k: v for k, v in obj["files"].items() if isinstance(v, dict)}


def _write_stamp(path: Path, new: dict[str, dict[str, Any]]) -> str | None:
    entries = {**_read_stamp(path), **new}  # merge with other processes' entries written meanwhile
    try:
        write_json_atomic(path, {"version": _STAMP_VERSION, "files": entries})
    except OSError as err:
        _LOG.warning(
            "%s: cannot remember the verified files (%s); they will be hashed again on the next read",
            path,
            err.strerror or err,
        )
        return None
    return str(path)


def _fix(root: Path) -> str:
    return (
        f"rebuild the dataset (delete {root} and rerun the rule or conversion that wrote it); to read it "
        "anyway, turn verification off (run config `dataset.verify: false`, or `verify=False`), which the "
        "run record notes"
    )


def verify_files(
    meta: DatasetMetadata, columns: Sequence[str] | None = None, *, hashes: bool = True
) -> VerifyReport:
    """Check the files of ``meta`` holding any of ``columns`` (default: all files) against ``metadata.json``:
    existence and size always, sha256 once per file (remembered in ``<root>/.verified.json``).

    Raises ``DataFormatError`` naming the first bad file, what differs, and the fix.
    """
    if meta.root is None:
        raise ValueError("metadata has no root folder; use read_metadata(path)")
    root = Path(meta.root)
    listing = root / "metadata.json"
    wanted = None if columns is None else set(columns)
    files = [f for f in meta.files if wanted is None or wanted & set(f.columns)]
    stamp_path = root / VERIFIED_STAMP
    stamp = _read_stamp(stamp_path) if hashes else {}
    new: dict[str, dict[str, Any]] = {}
    hashed = remembered = bytes_hashed = 0
    for f in files:
        file = root / f.path
        try:
            st = os.stat(file)
        except FileNotFoundError:
            raise DataFormatError(f"{file}: listed in {listing} but missing; {_fix(root)}") from None
        size = getattr(f, "size", None)
        if size is not None and st.st_size != size:
            raise DataFormatError(
                f"{file}: size mismatch: {st.st_size} bytes, but {listing} lists {size}: the file changed "
                f"after the dataset was written (truncated, appended to or replaced); {_fix(root)}"
            )
        if not hashes:
            continue
        seen = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": f.sha256}
        if stamp.get(f.path) == seen:
            remembered += 1
            continue
        got = file_sha256(file)
        hashed += 1
        bytes_hashed += st.st_size
        if got != f.sha256:
            raise DataFormatError(
                f"{file}: sha256 mismatch: expected {f.sha256} ({listing}), got {got}: the file's content "
                f"changed after the dataset was written, or its checksum in {listing} was edited; training "
                f"on it could give silently wrong results; {_fix(root)}"
            )
        new[f.path] = seen
    written = _write_stamp(stamp_path, new) if new else (str(stamp_path) if stamp_path.is_file() else None)
    if hashed:
        _LOG.info(
            "%s: verified %d files (%d bytes hashed, %d remembered)", root, hashed, bytes_hashed, remembered
        )
    return VerifyReport(len(files), hashed, remembered, bytes_hashed, written, hashes)
