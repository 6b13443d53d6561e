"""The Snakefile's layer: config -> jobs (paths, run settings, resources, benchmark flags), the source hashes
that make results stale, and the helper every ``workflow_scripts/*.py`` starts with.

Like PyPSA-Eur's ``_helpers.py``, but importable and unit-tested. Nothing here imports torch (nor any module
that does): the workflow imports this package on every parse, dry runs included (tested). Modules:

- :mod:`~ecorec.workflow.config`: :class:`WorkflowConfig`, the validated ``config`` dict with the
  translations the rules call (dataset inputs, run ids and run settings, plans, figure grids);
- :mod:`~ecorec.workflow.resources`: :class:`RunResources`, the SLURM/torchrun arithmetic of a run;
- :mod:`~ecorec.workflow.bench`: the kernel-benchmark flags of a figure's config section;
- :mod:`~ecorec.workflow.sources`: :class:`SourceGraph`, what a job executes (import graph);
- :mod:`~ecorec.workflow.script`: :func:`script_context`, log to ``snakemake.log[0]``, exception hook.
"""

from ecorec.workflow.bench import BENCH_FLAGS, bench_flags
from ecorec.workflow.config import WorkflowConfig
from ecorec.workflow.resources import RunResources
from ecorec.workflow.script import ScriptContext, script_context
from ecorec.workflow.sources import SourceGraph

__all__ = [
    "BENCH_FLAGS",
    "RunResources",
    "ScriptContext",
    "SourceGraph",
    "WorkflowConfig",
    "bench_flags",
    "script_context",
]
