# Helpers only (no rules): config validation, the ecorec source hash, path helpers.
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

# The workflow drives the ecorec package of this repository, whatever is installed.
if workflow.basedir not in sys.path:
    sys.path.insert(0, workflow.basedir)

from ecorec.utils.hashing import source_hash  # noqa: E402


def src_hash(*subpackages):
    """Content hash of ecorec/utils plus the named ecorec subpackages (and kernels/ for "kernels").

    Passed as a param, so that editing one of these sources reruns the jobs using it (touching does not).
    """
    root = Path(workflow.basedir)
    paths = [root / "ecorec" / "utils", root / "ecorec" / "__init__.py"]
    for name in subpackages:
        paths.append(root / name if name == "kernels" else root / "ecorec" / name)
    return source_hash(*paths)


def script_path(name):
    """Absolute path of a workflow script (stable across runs, unlike workflow.source_path)."""
    return f"{workflow.basedir}/workflow_scripts/{name}"
