# Helpers only (no rules): config validation, the ecorec source hash, path helpers.
import re
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


# ---- datasets -------------------------------------------------------------------------------------------------
from ecorec.data.sources import join_url, lfs_object  # noqa: E402

if config["dataset"] not in config["datasets"]:
    raise ValueError(
        f"config: dataset {config['dataset']!r} is not an entry of datasets {sorted(config['datasets'])}"
    )


def dataset_settings(name):
    """The `datasets.<name>` entry of the config."""
    return config["datasets"][name]


def datasets_of(*sources):
    """Wildcard constraint matching exactly the names of the datasets made from these sources."""
    names = [
        re.escape(n) for n, s in config["datasets"].items() if s["source"] in sources
    ]
    return "|".join(names) if names else "(?!)"


def synthetic_inputs(wildcards):
    """The locality-stats file a synthetic dataset follows, when the config names one (else the packaged one)."""
    stats_file = dataset_settings(wildcards.dataset).get("stats_file")
    return [stats_file] if stats_file else []


def meta_dlrm_inputs(wildcards):
    """The downloaded .pt.gz files of a Meta dataset, in conversion order."""
    files = dataset_settings(wildcards.dataset)["files"]
    return [f"resources/{wildcards.dataset}/{path}" for path in files]


def criteo_inputs(wildcards):
    """Kaggle: the dac.tar.gz archive; 1TB: the day files, in order."""
    settings = dataset_settings(wildcards.dataset)
    if settings["source"] == "criteo_kaggle":
        return [f"resources/{wildcards.dataset}/dac.tar.gz"]
    return [f"resources/{wildcards.dataset}/day_{day}.gz" for day in settings["days"]]


def criteo_1tb_sha256(wildcards):
    """Expected sha256 of a Criteo 1TB day file, or None when the config gives none."""
    return (
        dataset_settings(wildcards.dataset)
        .get("sha256", {})
        .get(f"day_{wildcards.day}.gz")
    )
