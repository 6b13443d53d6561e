"""Logging set-up for entry points: a file handler (every rank) plus stderr (rank 0 only)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s [rank %(rank)s] %(name)s: %(message)s"


class _RankFilter(logging.Filter):
    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


def setup_logging(
    log_file: str | os.PathLike[str] | None = None, rank: int = 0, level: int = logging.INFO
) -> logging.Logger:
    """Configure the ``ecorec`` logger: INFO to ``log_file`` (if given) and, on rank 0, to stderr.

    Returns the ``ecorec`` logger. Calling it again replaces the handlers it installed before.
    """
    logger = logging.getLogger("ecorec")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if getattr(handler, "_ecorec", False):
            logger.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    if rank == 0:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler._ecorec = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(_RankFilter(rank))
        logger.addHandler(handler)
    logger.propagate = False
    return logger
