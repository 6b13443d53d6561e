"""Atomic file output: write to a temporary name beside the target, then rename.

A reader (or Snakemake) never sees a half-written file: either the old file (or none) or the complete new one.
Also the strict JSON those writes use, and :func:`read_json`, its reader with the caller's error type.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _temp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; on success rename it to ``path``, on error remove it.

    Works for files and directories (a directory target that exists is replaced).
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
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
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
