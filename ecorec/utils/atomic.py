"""Atomic file output: write to a temporary name beside the target, then rename.

A reader (or Snakemake) never sees a half-written file: either the old file (or none) or the complete new one.
A write that fails because the file system is full raises :class:`DiskFullError` ("no space left on
<folder> while writing <file>"), whatever the writer said (Python's ``OSError`` without a path, or torch's
``[enforce fail at inline_container.cc] unexpected pos``), after removing the partial file.
Also the strict JSON those writes use, and :func:`read_json`, its reader with the caller's error type.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: Below this many free bytes a failed write counts as "disk full" even if the writer's error does not say so.
_FULL_BYTES = 64 * 1024


class DiskFullError(OSError):
    """A write failed because its file system is full (or the quota is spent); ``path`` is the target. The
    message names the folder, the file, the free space and the fix."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(errno.ENOSPC, message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return self.message


def _free_bytes(folder: Path) -> int | None:
    """Bytes this process may still write to ``folder``'s file system (root may use the reserved blocks)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    blocks = st.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else st.f_bavail
    return int(blocks * st.f_frsize)


def _disk_full(err: BaseException, folder: Path) -> bool:
    """Whether ``err`` (raised while the partial file still exists) comes from a full file system."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(err, (OSError, RuntimeError)):  # e.g. torch.save: "unexpected pos", no errno
        free = _free_bytes(folder)
        return free is not None and free < _FULL_BYTES
    return False


def disk_full_error(target: Path) -> DiskFullError:
    """The :class:`DiskFullError` of a failed write of ``target`` (the partial file already removed)."""
    return DiskFullError(
        target,
        f"no space left on {target.parent} while writing {target.name} (the partial output was removed: "
        "nothing half-written is left): free space on that file system, or write to another disk",
    )


def _temp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; on success rename it to ``path``, on error remove it.

    Works for files and directories (a directory target that exists is replaced). A failure caused by a full
    file system is raised as :class:`DiskFullError` naming the folder and the file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    if tmp.is_dir():
        shutil.rmtree(tmp)
    elif tmp.exists():
        tmp.unlink()
    try:
        yield tmp
        if tmp.is_dir() and target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException as err:
        full = not isinstance(err, DiskFullError) and _disk_full(err, target.parent)
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        if full:
            raise disk_full_error(target) from err
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; rename it to ``path`` when the block ends without error."""
    if "r" in mode or "a" in mode:
        raise ValueError(f"atomic_write needs a write mode ('w', 'wb', 'x'), got mode={mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def strict_json(obj: Any) -> Any:
    """``obj`` with every NaN / infinite float (Python or numpy scalar) replaced by ``None`` (JSON ``null``),
    recursively through dicts, lists and tuples, so that ``json.dumps(..., allow_nan=False)`` succeeds and
    strict parsers accept the result. Other values are returned as they are."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return strict_json(obj.item())
    return obj


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict_json` ``(obj)`` with ``allow_nan=False`` (``NaN`` never appears)."""
    kwargs.setdefault("default", str)
    return json.dumps(strict_json(obj), allow_nan=False, **kwargs)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as strict JSON to ``path`` atomically (sorted keys, trailing newline; NaN and infinities
    become ``null``: :func:`strict_json`)."""
    with atomic_write(path) as handle:
        handle.write(dumps_strict(obj, indent=indent, sort_keys=True))
        handle.write("\n")


def read_json(path: str | os.PathLike[str], error: type[Exception]) -> Any:
    """The JSON value in ``path`` (the counterpart of :func:`write_json_atomic`); invalid JSON raises
    ``error("<path>: invalid JSON (<detail>)")``."""
    with open(path) as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as err:
            raise error(f"{path}: invalid JSON ({err})") from err
