"""Content hashes of source trees, so that workflow rules rerun when library code changes (not on mtime)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_SOURCE_SUFFIXES = (".py", ".cu", ".cuh", ".cpp", ".h", ".txt", ".json", ".yaml")


def source_hash(*roots: str | os.PathLike[str], suffixes: tuple[str, ...] = _SOURCE_SUFFIXES) -> str:
    """Return a sha256 hex digest over the relative paths and contents of the source files under ``roots``.

    Touching a file changes nothing; editing its content, adding or removing a file changes the hash.
    ``__pycache__`` folders are skipped.
    """
    digest = hashlib.sha256()
    for root in roots:
        root_path = Path(root)
        if not root_path.exists():
            raise FileNotFoundError(f"source_hash: {root_path} does not exist")
        files = [root_path] if root_path.is_file() else sorted(root_path.rglob("*"))
        for file in files:
            if not file.is_file() or "__pycache__" in file.parts or not file.name.endswith(suffixes):
                continue
            rel = file.name if root_path.is_file() else file.relative_to(root_path).as_posix()
            digest.update(f"{root_path.name}/{rel}\0".encode())
            digest.update(file.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's content, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
