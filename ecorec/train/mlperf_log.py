"""MLPerf-style run logging (``train.mlperf_log: true``): ``:::MLLOG`` lines written by ``mlperf-logging``'s
``MLLogger`` to ``<output_dir>/mlperf.log`` (rank 0), the format MLPerf's compliance checker reads.

Events (MLPerf Training rules' names): ``submission_*``, ``cache_clear``, ``init_start``, hyperparameters
(``global_batch_size``, ``opt_base_learning_rate``, ``opt_learning_rate_warmup_steps``, ...,
``train_samples``, ``eval_samples``, ``seed``), ``init_stop``, ``run_start``; per epoch ``epoch_start`` /
``epoch_stop`` (``epoch_num`` in the metadata; fractional epochs as MLPerf DLRM logs them); per evaluation
``eval_start``, ``eval_accuracy`` (val AUROC), ``eval_stop``; ``run_stop`` with ``status`` ``success`` (the
AUROC target ``train.target_auc`` was reached), else ``aborted``.

Each run has its own ``MLLogger`` on its own ``logging.Logger`` with one file handler (no process-wide
configuration: ``mllog.config`` would change a shared logger).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["MLPerfRunLog"]


class MLPerfRunLog:
    """The MLPerf log of one run; every method is a no-op when ``enabled`` is false (e.g. ranks > 0).

    Args:
        path: the log file (``<output_dir>/mlperf.log``); appended to, so a resumed run continues it.
        enabled: write at all.
        benchmark: ``submission_benchmark`` value.
    """

    def __init__(self, path: str | os.PathLike[str], enabled: bool = True, benchmark: str = "dlrm") -> None:
        self.enabled = enabled
        self.path = Path(path)
        self._handler: logging.FileHandler | None = None
        self._mllogger: Any = None
        if not enabled:
            return
        from mlperf_logging.mllog import constants, mllog

        self.constants = constants
        self.path.parent.mkdir(parents=True, exist_ok=True)
        logger = logging.getLogger(f"ecorec.mlperf.{id(self)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        self._handler = logging.FileHandler(self.path)
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(self._handler)
        self._logger = logger
        self._mllogger = mllog.MLLogger(logger=logger, default_stack_offset=2)
        self.benchmark = benchmark

    def event(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self.enabled:
            self._mllogger.event(key=key, value=value, metadata=metadata or None)

    def start(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self.enabled:
            self._mllogger.start(key=key, value=value, metadata=metadata or None)

    def end(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self.enabled:
            self._mllogger.end(key=key, value=value, metadata=metadata or None)

    def run_header(self, hyperparameters: dict[str, Any]) -> None:
        """The submission facts, ``cache_clear``, ``init_*``, hyperparameters, ``run_start``."""
        if not self.enabled:
            return
        c = self.constants
        self.event(c.SUBMISSION_BENCHMARK, self.benchmark)
        self.event(c.SUBMISSION_ORG, "EcoRec")
        self.event(c.SUBMISSION_DIVISION, "open")
        self.event(c.SUBMISSION_STATUS, "research")
        self.event(c.SUBMISSION_PLATFORM, "ecorec")
        self.event(c.CACHE_CLEAR, True)
        self.start(c.INIT_START)
        for key, value in hyperparameters.items():
            self.event(key, value)
        self.end(c.INIT_STOP)
        self.start(c.RUN_START)

    def epoch_boundary(self, step: int, steps_per_epoch: int, before: bool) -> None:
        """``epoch_start`` before the first step of an epoch (``before``), ``epoch_stop`` after its last."""
        if not self.enabled:
            return
        if before and step % steps_per_epoch == 0:
            self.start(self.constants.EPOCH_START, epoch_num=step // steps_per_epoch + 1)
        elif not before and step % steps_per_epoch == 0:
            self.end(self.constants.EPOCH_STOP, epoch_num=step // steps_per_epoch)

    def evaluation(self, run: Any, epoch_num: float) -> Any:
        """``eval_start``, then ``run()`` (an evaluation returning ``{"auroc": ...}``), ``eval_accuracy``,
        ``eval_stop``; returns ``run()``'s result."""
        if not self.enabled:
            return run()
        c = self.constants
        self.start(c.EVAL_START, epoch_num=epoch_num)
        entry = run()
        self.event(c.EVAL_ACCURACY, float(entry["auroc"]), epoch_num=epoch_num)
        self.end(c.EVAL_STOP, epoch_num=epoch_num)
        return entry

    def run_stop(self, reached_target: bool) -> None:
        """``run_stop`` with ``status`` ``success`` if the quality target was reached, else ``aborted``."""
        if self.enabled:
            c = self.constants
            self.end(c.RUN_STOP, status=c.SUCCESS if reached_target else c.ABORTED)

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()
            self._logger.removeHandler(self._handler)
            self._handler = None
