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

    A name may also be a file below ecorec/ (e.g. "bench/tt.py"). Passed as a param, so that editing one of
    these sources reruns the jobs using it (touching does not).
    """
    root = Path(workflow.basedir)
    paths = [root / "ecorec" / "utils", root / "ecorec" / "__init__.py"]
    for name in subpackages:
        paths.append(root / name if name == "kernels" else root / "ecorec" / name)
    return source_hash(*paths)


# The interpreter running Snakemake (the project's environment): rules launch Python through it, so a job never
# picks up another `python` from PATH.
PYTHON = sys.executable


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


# ---- training runs (rules/train.smk) -------------------------------------------------------------------------
# One run = (dataset, system, algorithm, tables, world, batch); a system (config `systems:`) fixes the parallel
# mode and its knobs. A run's resources follow from its world size, `train.procs_per_node` (ranks per node, GPUs
# per node on cuda) and `train.agents_per_node` (torchrun agents per node, usually 1): several agents are
# launched with srun (the MPI mode of the SLURM executor plugin), GPUs are requested per node with gres.

TRAIN_RUN_PATTERN = "{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}"
# Subpackages a training run executes (their content hash reruns the runs when they change).
TRAIN_SUBPACKAGES = [
    name
    for name in ("models", "parallel", "train", "planner", "tt", "data")
    if (Path(workflow.basedir) / "ecorec" / name).is_dir()
]


def train_run_id(run):
    """Path fragment of a run from a `train.runs` entry (dataset defaults to config["dataset"])."""
    return TRAIN_RUN_PATTERN.format(
        dataset=run.get("dataset", config["dataset"]), **run
    )


def train_records():
    """The record.json of every run listed in config `train.runs`."""
    return [
        f"results/runs/{train_run_id(run)}/record.json"
        for run in config["train"]["runs"]
    ]


def train_nodes(wildcards):
    """Nodes of a run: world / procs_per_node (at least 1)."""
    world, per_node = int(wildcards.world), config["train"]["procs_per_node"]
    if world > per_node and world % per_node:
        raise ValueError(
            f"world size {world} is not a multiple of train.procs_per_node={per_node} (multi-node runs)"
        )
    return max(1, world // per_node)


def train_agents(wildcards):
    """torchrun agents of a run: agents_per_node on each node (1: one agent per node)."""
    per_node = min(config["train"]["agents_per_node"], int(wildcards.world))
    return train_nodes(wildcards) * per_node


def train_procs_per_agent(wildcards):
    world, agents = int(wildcards.world), train_agents(wildcards)
    if world % agents:
        raise ValueError(
            f"world size {world} does not split over {agents} torchrun agents"
        )
    return world // agents


def train_threads(wildcards):
    """CPUs of one torchrun agent (the job's --cpus-per-task)."""
    return train_procs_per_agent(wildcards) * config["train"]["cpus_per_proc"]


def train_mpi(wildcards):
    """'srun' when a run has several torchrun agents (the rule's shell runs its own srun), else unset."""
    return "srun" if train_agents(wildcards) > 1 else None


def train_tasks(wildcards):
    return train_agents(wildcards) if train_agents(wildcards) > 1 else None


def train_gres(wildcards):
    """GPUs per node on cuda (gres), unset on cpu."""
    if config["device"] != "cuda":
        return None
    return f"gpu:{min(int(wildcards.world), config['train']['procs_per_node'])}"


def train_run_settings(wildcards):
    """Everything of the run's YAML that comes from config and wildcards (see ecorec.train.config)."""
    train = config["train"]
    if wildcards.system not in config["systems"]:
        raise ValueError(
            f"unknown system {wildcards.system!r}; config `systems` has {sorted(config['systems'])}"
        )
    world = int(wildcards.world)
    return {
        "run": {
            "seed": train["seed"],
            "device": config["device"],
            "name": wildcards.system,
        },
        "dataset": {"num_tables": int(wildcards.tables)},
        "model": train["model"],
        "embeddings": {**train["embeddings"], "algorithm": wildcards.algorithm},
        "dense_optimizer": train["dense_optimizer"],
        "lr_schedule": train["lr_schedule"],
        "parallel": {
            **{
                k: v
                for k, v in config["systems"][wildcards.system].items()
                if k != "algorithm"
            },
            "world_size": world,
        },
        "train": {
            **{k: train[k] for k in TRAIN_LOOP_KEYS if k in train},
            "global_batch_size": int(wildcards.batch) * world,
        },
    }


TRAIN_LOOP_KEYS = (
    "steps",
    "eval_every",
    "eval_batches",
    "eval_splits",
    "target_auc",
    "checkpoint_every",
    "timing_warmup_steps",
    "timing_windows",
    "log_every",
)


# ---- statistics and plans (rules/stats.smk) ------------------------------------------------------------------
from ecorec.planner.sharding import ShardingMethod  # noqa: E402

PLANNER_METHODS = [method.value for method in ShardingMethod]
# Modes whose runs place tables on ranks with a sharding plan (dp replicates, torchrec plans for itself).
PLANNED_MODES = ("mp", "bwp", "twp")


def target_stats_file(wildcards):
    """The locality statistics a dataset is compared with: a synthetic dataset's own target file, else the
    packaged statistics of Meta's 2022 release (None)."""
    settings = dataset_settings(wildcards.dataset)
    return settings.get("stats_file") if settings["source"] == "synthetic" else None


def calibration_input(wildcards):
    """The cost calibration the plans of a dataset use (`planner.calibration`): none (null: plans on
    predicted FLOPs), the one fitted from figure 11's kernel benchmarks on this device ("fit"), or the
    configured file. An input, so that a new calibration replans."""
    value = config["planner"]["calibration"]
    if value is None:
        return []
    if value == "fit":
        return [
            f"results/plans/{wildcards.dataset}/calibration-{config['device']}.json"
        ]
    return [value]


def calibration_records(wildcards):
    """Figure 11's kernel-benchmark records of a dataset (the calibration's data)."""
    section = config["fig11"]
    return [
        f"results/bench/{wildcards.dataset}/kernels/K{section['largest_tables']}-b{batch}.jsonl"
        for batch in section["batch_sizes"]
    ]


def stats_outputs(dataset):
    """The statistics shown in the report for a dataset (at `stats.batch_size`)."""
    base = f"results/stats/{dataset}/b{config['stats']['batch_size']}"
    return [f"{base}/summary.json", f"{base}/reuse_histogram.png"]


def sharding_methods_report(dataset):
    """Every sharding method on all tables of a dataset, at the report layout and `stats.batch_size`."""
    layout = config["planner"]["report"]
    tables = dataset_num_tables(dataset)
    return (
        f"results/plans/{dataset}/methods-{layout['algorithm']}-T{tables}-R{layout['world_size']}"
        f"-G{config['stats']['batch_size']}.csv"
    )


def dataset_num_tables(dataset):
    """Number of tables of a dataset known from its config (synthetic: num_tables; Meta: the release's)."""
    settings = dataset_settings(dataset)
    source = settings["source"]
    if source == "synthetic":
        return settings.get("num_tables", 32)
    if source.startswith("meta_dlrm"):
        return {"meta_dlrm_2021": 856, "meta_dlrm_2022": 788}[source]
    return 26


def run_plan(wildcards):
    """The planner's JSON for a run whose mode needs one (empty list otherwise)."""
    system = config["systems"][wildcards.system]
    if system["mode"] not in PLANNED_MODES or "plan_file" in system:
        return []
    algorithm = "uncompressed" if wildcards.algorithm == "none" else wildcards.algorithm
    gbatch = int(wildcards.batch) * int(wildcards.world)
    return [
        f"results/plans/{wildcards.dataset}/{system.get('sharding', 'greedy')}/"
        f"{algorithm}-T{wildcards.tables}-R{wildcards.world}-G{gbatch}.json"
    ]


# ---- figures (rules/figures.smk) -----------------------------------------------------------------------------
FIGURES = ["fig10", "fig11", "fig12", "fig16", "table1"]
# What `python -m ecorec.bench tt` executes besides ecorec.tt and kernels/ (not ecorec/bench/train.py).
BENCH_TT_SOURCES = [
    "bench/__init__.py",
    "bench/__main__.py",
    "bench/tt.py",
    "bench/memory.py",
]
# Options of `python -m ecorec.bench tt` that a figure's config section sets (section key -> flag).
BENCH_FLAGS = {
    "variants": "--algorithms",
    "micro_batches": "--micro-batches",
    "embedding_dim": "--embedding-dim",
    "tt_ranks": "--tt-ranks",
    "repeats": "--repeats",
    "warmup": "--warmup",
    "num_batches": "--num-batches",
    "fbtt_chunk_size": "--fbtt-chunk-size",
    "product_strategy": "--product-strategy",
    "max_dense_bytes": "--max-dense-bytes",
    "copy_bytes": "--copy-bytes",
    "seed": "--seed",
}


def bench_flags(section):
    """Command-line flags of the kernel benchmark from a figure's config section (fig11, table1)."""
    flags = []
    for key, flag in BENCH_FLAGS.items():
        if key in section:
            value = section[key]
            values = value if isinstance(value, list) else [value]
            flags.append(" ".join([flag, *map(str, values)]))
    return " ".join(flags)


def bench_gres(wildcards):
    """One GPU for a kernel benchmark on cuda (unset on cpu)."""
    return "gpu:1" if config["device"] == "cuda" else None


def system_algorithm(system):
    """The embedding algorithm a figure runs a system with (`systems.<name>.algorithm`, default ecorec)."""
    if system not in config["systems"]:
        raise ValueError(
            f"unknown system {system!r} in a figure section; config `systems` has {sorted(config['systems'])}"
        )
    return config["systems"][system].get("algorithm", "ecorec")


def figure_runs(name):
    """The record.json of every point of a training figure's grid (config section `name`): its `systems` x
    `tables` x `worlds` at local batch `batch` (fig10/fig16 take one `world`, fig12 one `tables`).
    """
    section = config[name]
    tables = (
        section["tables"]
        if isinstance(section["tables"], list)
        else [section["tables"]]
    )
    worlds = section["worlds"] if "worlds" in section else [section["world"]]
    run_ids = (
        TRAIN_RUN_PATTERN.format(
            dataset=config["dataset"],
            system=system,
            algorithm=system_algorithm(system),
            tables=t,
            world=w,
            batch=section["batch"],
        )
        for system in section["systems"]
        for t in tables
        for w in worlds
    )
    return [f"results/runs/{run_id}/record.json" for run_id in run_ids]


# ---- placement study (rules/placement.smk, issue 17) ----------------------------------------------------------


def placement_settings(*keys):
    """The `placement` config keys a rule uses (plus the device), as one dict param."""
    section = config["placement"]
    return {key: section[key] for key in keys if key in section} | {
        "device": config["device"]
    }


PLACEMENT_MODEL_KEYS = [
    "kind",
    "devices",
    "batch_size",
    "split",
    "memory_cap_bytes",
    "features",
    "bench",
    "training",
    "tt_ranks",
    "tt_min_rows",
    "algorithm",
]


def placement_dataset():
    return config["placement"].get("dataset") or config["dataset"]
