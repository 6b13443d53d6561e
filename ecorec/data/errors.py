"""Exceptions of ``ecorec.data``: every message names the file and the position or field at fault."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A data file (source, Parquet dataset, metadata, statistics) is malformed, truncated or inconsistent."""


class DownloadError(RuntimeError):
    """A download failed or its result did not verify (size, sha256); no partial file is left behind."""
