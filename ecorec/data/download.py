"""Resumable, verified HTTP(S) downloads with the standard library.

``download_file(url, dest, expected_sha256=..., expected_size=...)`` streams into ``<dest>.part``; an
interrupted transfer is retried with a ``Range`` request from the part's size (and a later call resumes it
too); the finished file's size and sha256 are checked and only then renamed to ``dest``. A file that does not
verify (wrong size, wrong checksum, a server that reports another size) is deleted and ``DownloadError`` names
the file, the expected and the actual value.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ecorec.data.errors import DownloadError
from ecorec.utils import file_sha256

logger = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_FATAL_HTTP = {400, 401, 403, 404, 405, 410, 451}
USER_AGENT = "ecorec-data/0.1 (urllib)"


class _Retry(Exception):
    """A transient failure: retry (resuming from the part file)."""


def _verify(file: Path, dest: Path, expected_size: int | None, expected_sha256: str | None) -> None:
    """Raise ``DownloadError`` (after deleting ``file``) unless it has the expected size and sha256."""
    size = file.stat().st_size
    if expected_size is not None and size != expected_size:
        file.unlink(missing_ok=True)
        raise DownloadError(
            f"{dest}: size mismatch: expected {expected_size} bytes, got {size}; partial removed"
        )
    if expected_sha256 is not None:
        got = file_sha256(file)
        if got != expected_sha256.lower():
            file.unlink(missing_ok=True)
            raise DownloadError(
                f"{dest}: sha256 mismatch: expected {expected_sha256.lower()}, got {got}; removed"
            )


def _transfer(
    url: str,
    part: Path,
    dest: Path,
    expected_size: int | None,
    chunk_size: int,
    timeout: float,
    progress: bool,
) -> None:
    """One request: append to ``part`` from its current size. Raises ``_Retry`` on a transient failure."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have == expected_size:
        return
    if expected_size is not None and have > expected_size:
        part.unlink()
        have = 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the part may be complete; verification decides
            return
        if err.code in _FATAL_HTTP:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{dest}: {url} answered HTTP {err.code} {err.reason}") from None
        raise _Retry(f"HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise _Retry(f"{type(err).__name__}: {err}") from None
    with response:
        total: int | None = None
        if have and response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != have:
                have = 0  # a range we did not ask for: start over
            elif match.group(3) != "*":
                total = int(match.group(3))
        else:
            have = 0  # the server ignored the range (200): start over
        length = response.headers.get("Content-Length")
        if total is None and length is not None:
            total = have + int(length)
        if expected_size is not None and total is not None and total != expected_size:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{dest}: size mismatch: expected {expected_size} bytes, the server reports {total}; "
                "partial removed"
            )
        if have == 0 and response.status == 206:
            raise _Retry("unexpected partial content for a full request")
        bar = tqdm(
            total=total,
            initial=have,
            unit="B",
            unit_scale=True,
            desc=dest.name,
            disable=not progress,
            mininterval=1,
        )
        received = have
        try:
            with open(part, "ab" if have else "wb") as out:
                while True:
                    try:
                        block = response.read(chunk_size)
                    except (http.client.IncompleteRead, OSError) as err:
                        raise _Retry(
                            f"transfer interrupted after {received} bytes: {type(err).__name__}"
                        ) from None
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
        if total is not None and received < total:
            raise _Retry(f"transfer ended after {received} of {total} bytes")


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    max_attempts: int = 5,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` (resumable through ``<dest>.part``, verified, renamed into place).

    Args:
        expected_sha256 / expected_size: checked on the complete file; a mismatch deletes it and raises
            ``DownloadError`` naming the file, the expected and the actual value.
        max_attempts: requests tried for transient failures (connection errors, 5xx, a transfer cut short),
            each resuming where the last stopped; waits ``retry_wait * 2**attempt`` s (at most 60) between.
    Returns:
        ``dest``. If ``dest`` already exists and verifies, nothing is downloaded.
    Raises:
        DownloadError: on a fatal HTTP status, a verification failure, or after ``max_attempts`` transient
            failures (then the part file is kept, so the next call resumes).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            _verify(dest, dest, expected_size, expected_sha256)
            logger.info("%s exists and verifies; not downloaded again", dest)
            return dest
        except DownloadError:
            logger.warning("%s exists but does not verify; downloading it again", dest)
    part = dest.with_name(dest.name + ".part")
    last_error = ""
    for attempt in range(max_attempts):
        try:
            _transfer(url, part, dest, expected_size, chunk_size, timeout, progress)
            break
        except _Retry as err:
            last_error = str(err)
            logger.warning("%s: attempt %d/%d failed: %s", url, attempt + 1, max_attempts, err)
            if attempt + 1 < max_attempts:
                time.sleep(min(retry_wait * 2**attempt, 60.0))
    else:
        size = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"{dest}: download from {url} failed after {max_attempts} attempts ({last_error}); "
            f"{part} ({size} bytes) is kept so the next attempt resumes"
        )
    _verify(part, dest, expected_size, expected_sha256)
    os.replace(part, dest)
    logger.info("downloaded %s -> %s (%d bytes)", url, dest, dest.stat().st_size)
    return dest
