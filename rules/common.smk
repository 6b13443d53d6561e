# Config validation and the one WorkflowConfig the rules call (ecorec.workflow: config -> jobs, resources,
# benchmark flags, source hashes from the import graph; unit-tested, and imports no torch).
import sys

from snakemake.utils import validate

# The workflow drives the ecorec package of this repository, whatever is installed.
if workflow.basedir not in sys.path:
    sys.path.insert(0, workflow.basedir)

from ecorec.config_schema import check_config  # noqa: E402
from ecorec.workflow.configfiles import check_config_files  # noqa: E402

# Every config file again, strictly, before anything else: a key written twice (two `planner:` sections, a
# second `dataset:` line) would otherwise keep only its last value without a word.
check_config_files(getattr(workflow, "configfiles", None) or [])
# One short line (file, key, rule) instead of Snakemake's ~970-line schema dump; then Snakemake's own validate
# (which also fills defaults) passes.
check_config(
    config,
    f"{workflow.basedir}/schemas/config.schema.yaml",
    getattr(workflow, "configfiles", None) or [],
)
validate(config, schema="../schemas/config.schema.yaml")

from ecorec.data.sources import join_url, lfs_object  # noqa: E402
from ecorec.types import Algorithm, ShardingMethod  # noqa: E402
from ecorec.workflow import WorkflowConfig  # noqa: E402
from ecorec.workflow.config import FIGURE_TABLE, FIGURES, TRAINING_FIGURES  # noqa: E402

WF = WorkflowConfig(config, workflow.basedir)
# The interpreter running Snakemake (the project's environment): rules launch Python through it, so a job never
# picks up another `python` from PATH.
PYTHON = sys.executable
ALGORITHMS = [a.value for a in Algorithm]
PLANNER_METHODS = [m.value for m in ShardingMethod]
