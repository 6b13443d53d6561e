"""The start of every ``workflow_scripts/*.py``: log to ``snakemake.log[0]``, every traceback in the log, and
the job's settings as one typed object.

    ctx = script_context(snakemake)   # noqa: F821 (Snakemake injects ``snakemake``)
    ctx.logger.info("...")
    do_work(ctx.input.dataset, ctx.output[0], **ctx.params)

After :func:`script_context`, ``sys.stderr`` is the log file (line-buffered; progress bars and warnings land
there too), the ``ecorec`` logger writes to it, and an exception hook logs any uncaught exception with its
traceback before the script exits non-zero (Snakemake then reports the job failed and names the log).
"""

from __future__ import annotations

import logging
import sys
import types
from dataclasses import dataclass
from typing import Any

from ecorec.utils.logs import setup_logging
from ecorec.workflow.config import WorkflowConfig


@dataclass(frozen=True)
class ScriptContext:
    """What a workflow script works from (Snakemake's ``snakemake`` object, typed).

    Attributes:
        rule: the rule's name. input, output, params, wildcards, resources: Snakemake's named lists.
        threads: the job's threads. log_file: ``snakemake.log[0]`` (or ``None`` when the rule has no log).
        config: the workflow's :class:`WorkflowConfig`. logger: the ``ecorec`` logger, writing to the log.
    """

    rule: str
    input: Any
    output: Any
    params: Any
    wildcards: Any
    resources: Any
    threads: int
    log_file: str | None
    config: WorkflowConfig
    logger: logging.Logger


def _log_uncaught(logger: logging.Logger, previous: Any) -> Any:
    def hook(kind: type[BaseException], value: BaseException, tb: types.TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, value, tb)
            return
        logger.critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
        for handler in logger.handlers:
            handler.flush()

    return hook


def script_context(snakemake: Any) -> ScriptContext:
    """Set up logging for a workflow script and return its :class:`ScriptContext`.

    ``snakemake`` is the object Snakemake injects into the script (``script:`` directive); anything with its
    attributes works (tests pass a ``types.SimpleNamespace``).
    """
    log_file = str(snakemake.log[0]) if len(snakemake.log) else None
    if log_file is not None:
        sys.stderr = open(log_file, "w", buffering=1)  # noqa: SIM115 (lives as long as the script)
    logger = setup_logging(None)  # one handler, on sys.stderr: the log file
    sys.excepthook = _log_uncaught(logger, sys.excepthook)
    root = getattr(snakemake, "scriptdir", None)
    basedir = _repository_root(root)
    return ScriptContext(
        rule=str(getattr(snakemake, "rule", "")),
        input=snakemake.input,
        output=snakemake.output,
        params=snakemake.params,
        wildcards=snakemake.wildcards,
        resources=getattr(snakemake, "resources", None),
        threads=int(getattr(snakemake, "threads", 1)),
        log_file=log_file,
        config=WorkflowConfig(snakemake.config, basedir),
        logger=logger,
    )


def _repository_root(scriptdir: str | None) -> str:
    """The repository root: the parent of ``workflow_scripts/`` (where the script lives), else the package's
    parent."""
    from pathlib import Path

    if scriptdir:
        return str(Path(scriptdir).resolve().parent)
    return str(Path(__file__).resolve().parents[2])
