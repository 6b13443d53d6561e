"""The workflow's config (``config.yaml`` + overlays, validated by ``schemas/config.schema.yaml``) and what
the rules derive from it: dataset inputs, run ids, run settings, plans, figure grids, source hashes.

``rules/common.smk`` makes one :class:`WorkflowConfig` and the rules call its methods (input functions take
the job's ``wildcards``, anything with the wildcard names as attributes). Errors are ``ValueError`` naming the
config key.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecorec.config_effects import model_key_errors, parallel_key_errors
from ecorec.data.sources import CRITEO_NUM_SPARSE, META_DLRM_RELEASES
from ecorec.types import Algorithm, ParallelMode
from ecorec.workflow.bench import bench_flags
from ecorec.workflow.resources import RunResources, bench_gres
from ecorec.workflow.sources import SourceGraph

#: Path fragment of a training run below results/runs/ (``batch``: local batch per rank).
TRAIN_RUN_PATTERN = "{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}"
#: One HET-GMP partition and its runs: ``<this>/partition.{npz,json}``,
#: ``<this>/s<rate>-B<bound>/record.json``.
HETGMP_RUN_PATTERN = "results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}"
#: Keys of config ``train`` that go to the run's ``train`` section as they are.
TRAIN_LOOP_KEYS = (
    "steps",
    "epochs",
    "eval_every",
    "eval_batches",
    "eval_splits",
    "target_auc",
    "checkpoint_every",
    "timing_warmup_steps",
    "timing_windows",
    "log_every",
    "evals_per_epoch",
    "precision",
    "pin_memory",
    "mlperf_log",
)
#: ``ecorec.data.SyntheticConfig``'s default ``num_tables`` (a synthetic entry that omits the key; tested).
SYNTHETIC_DEFAULT_NUM_TABLES = 32
_RUN_WILDCARDS = ("dataset", "system", "algorithm", "tables", "world", "batch")


def _given(section: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a config section that are set (a null in an overlay means "not given": with
    ``train.model.preset``, the preset's value)."""
    return {k: v for k, v in section.items() if v is not None}


@dataclass(frozen=True)
class FigureSpec:
    """One row of the table of figures (rules/figures.smk makes one plot rule per row).

    Attributes:
        name: rule name, config section and file stem (``results/figures/<name>.{png,pdf,csv}``); its caption
            is ``report/<name>.rst``. label, what: the report's labels. kernel: drawn from kernel benchmarks
            (else from training-run records).
    """

    name: str
    label: str
    what: str
    kernel: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return {"figure": self.label, "what": self.what}


#: The paper's figures and tables, in report order.
FIGURE_TABLE = (
    FigureSpec("fig10", "10", "end to end"),
    FigureSpec("fig11", "11", "TT kernels", kernel=True),
    FigureSpec("fig12", "12", "scaling"),
    FigureSpec("fig16", "16", "ablation"),
    FigureSpec("table1", "table 1", "memory", kernel=True),
)
FIGURES = tuple(f.name for f in FIGURE_TABLE)


class WorkflowConfig:
    """The validated config dict of a Snakemake run, with the translations its rules need.

    Args:
        config: Snakemake's ``config`` (already validated against the schema).
        root: the repository (``workflow.basedir``): where ``ecorec/`` and ``workflow_scripts/`` are.
    """

    def __init__(self, config: Mapping[str, Any], root: str | os.PathLike[str]) -> None:
        self.config = config
        self.root = Path(root)
        self.sources = SourceGraph(self.root)
        if config["dataset"] not in config["datasets"]:
            raise ValueError(
                f"config: dataset {config['dataset']!r} is not an entry of datasets "
                f"{sorted(config['datasets'])}"
            )
        for index, run in enumerate(config["train"]["runs"]):
            if run["system"] not in config["systems"]:
                raise ValueError(
                    f"config train.runs[{index}].system: unknown system {run['system']!r}; the known systems "
                    f"(config `systems`) are {sorted(config['systems'])}"
                )
        errors = [
            message
            for name, system in config["systems"].items()
            for message in parallel_key_errors(system["mode"], system, where=f"systems.{name}")
        ]
        errors += model_key_errors(_given(config["train"]["model"]), where="train.model")
        if errors:  # keys that would be silently ignored (ecorec.config_effects)
            raise ValueError("config: " + "; ".join(errors))
        train = config["train"]
        if train.get("steps") is not None and train.get("epochs") is not None:
            raise ValueError(
                "config train.epochs: give train.steps or train.epochs, not both (set train.steps: null to "
                "train for epochs)"
            )

    # ---- helpers ------------------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return str(self.config["device"])

    def script(self, name: str) -> str:
        """Absolute path of a workflow script (stable across runs, unlike ``workflow.source_path``)."""
        return str(self.root / "workflow_scripts" / name)

    def src_hash(self, *entries: str) -> str:
        """Content hash of what a job executes (:class:`SourceGraph`): entries are workflow script names
        (``"plot_figure.py"``), other repository paths or ``ecorec`` module names."""
        resolved = [self.script(e) if "/" not in e and e.endswith((".py", ".sh")) else e for e in entries]
        return self.sources.hash(*resolved)

    # ---- datasets -----------------------------------------------------------------------------------------
    def dataset_settings(self, name: str) -> Mapping[str, Any]:
        """The ``datasets.<name>`` entry."""
        if name not in self.config["datasets"]:
            raise ValueError(
                f"unknown dataset {name!r}; config `datasets` has {sorted(self.config['datasets'])}"
            )
        return self.config["datasets"][name]

    def datasets_of(self, *sources: str) -> str:
        """Wildcard constraint matching exactly the names of the datasets made from these sources."""
        names = [re.escape(n) for n, s in self.config["datasets"].items() if s["source"] in sources]
        return "|".join(names) if names else "(?!)"

    def synthetic_inputs(self, wildcards: Any) -> list[str]:
        """The locality-stats file a synthetic dataset follows, when its entry names one (else none: the
        packaged one)."""
        stats_file = self.dataset_settings(wildcards.dataset).get("stats_file")
        return [stats_file] if stats_file else []

    def meta_dlrm_inputs(self, wildcards: Any) -> list[str]:
        """The downloaded ``.pt.gz`` files of a Meta dataset, in conversion order."""
        files = self.dataset_settings(wildcards.dataset)["files"]
        return [f"resources/{wildcards.dataset}/{path}" for path in files]

    def criteo_inputs(self, wildcards: Any) -> list[str]:
        """Kaggle: the dac.tar.gz archive; 1TB: the day files, in order."""
        settings = self.dataset_settings(wildcards.dataset)
        if settings["source"] == "criteo_kaggle":
            return [f"resources/{wildcards.dataset}/dac.tar.gz"]
        return [f"resources/{wildcards.dataset}/day_{day}.gz" for day in settings["days"]]

    def criteo_1tb_sha256(self, wildcards: Any) -> str | None:
        """Expected sha256 of a Criteo 1TB day file, or ``None`` when the config gives none."""
        return self.dataset_settings(wildcards.dataset).get("sha256", {}).get(f"day_{wildcards.day}.gz")

    def dataset_num_tables(self, dataset: str) -> int:
        """Tables of a dataset known from its config: synthetic ``num_tables``; a Meta release's or
        Criteo's count (``ecorec.data.sources``)."""
        settings = self.dataset_settings(dataset)
        source = settings["source"]
        if source == "parquet":  # a registered dataset: its own metadata.json says
            return self.parquet_dataset_num_tables(dataset)
        if source == "synthetic":
            return int(settings.get("num_tables", SYNTHETIC_DEFAULT_NUM_TABLES))
        if source in META_DLRM_RELEASES:
            return META_DLRM_RELEASES[source].num_tables
        return CRITEO_NUM_SPARSE

    def known_num_tables(self, dataset: str) -> tuple[int, str] | None:
        """``(tables, where the count comes from)`` of a dataset, or ``None`` when it cannot be known before
        the dataset exists (a registered Parquet folder without its ``metadata.json`` yet)."""
        settings = self.dataset_settings(dataset)
        if settings["source"] == "parquet":
            metadata = Path(settings["path"]) / "metadata.json"
            if not metadata.is_file():
                return None
            return len(json.loads(metadata.read_text())["features"]), str(metadata)
        origin = "num_tables" if settings["source"] == "synthetic" else f"the {settings['source']} source"
        return self.dataset_num_tables(dataset), f"datasets.{dataset}: {origin}"

    def check_run_tables(self, dataset: str, tables: int, where: str) -> None:
        """``ValueError`` naming ``where`` when a run asks for more tables than ``dataset`` has (checked at
        the dry run, for the runs the requested targets need)."""
        known = self.known_num_tables(dataset)
        if known is not None and tables > known[0]:
            raise ValueError(
                f"{where}: asks for the first {tables} tables but dataset {dataset!r} has {known[0]} "
                f"({known[1]}); lower `tables` in config train.runs (and the fig10 / fig12 / fig16 sections) "
                "or select another dataset"
            )

    def parquet_dataset_input(self, wildcards: Any) -> str:
        """The ``metadata.json`` of a ``source: parquet`` dataset (a change re-registers it)."""
        return str(Path(self.dataset_settings(wildcards.dataset)["path"]) / "metadata.json")

    def parquet_dataset_num_tables(self, name: str) -> int:
        """Tables (features) of the prepared dataset of ``datasets.<name>.path``."""
        path = self.dataset_settings(name)["path"]
        metadata = Path(path) / "metadata.json"
        if not metadata.is_file():
            raise ValueError(
                f"config datasets.{name}.path: {path} is not an ecorec Parquet dataset (no {metadata}); "
                "write one with ecorec.data.write_dataset"
            )
        return len(json.loads(metadata.read_text())["features"])

    def target_stats_file(self, wildcards: Any) -> str | None:
        """The locality statistics a dataset is compared with: a synthetic dataset's own target file, else
        the packaged statistics of Meta's 2022 release (``None``)."""
        settings = self.dataset_settings(wildcards.dataset)
        return settings.get("stats_file") if settings["source"] == "synthetic" else None

    # ---- placement study (rules/placement.smk, issue 17) ------------------------------------------------
    #: The ``placement`` keys that shape the measured data and the trained models (a change retrains).
    PLACEMENT_MODEL_KEYS = (
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
    )

    def placement_settings(self, *keys: str) -> dict[str, Any]:
        """The ``placement`` config keys a rule uses (plus the device), as one dict param."""
        section = self.config["placement"]
        return {key: section[key] for key in keys if key in section} | {"device": self.device}

    def placement_cluster(self) -> dict[str, Any] | None:
        """The ``cluster`` section when the placement devices are ranks of the emulated cluster (the
        ``placement_train``/``placement_eval`` scripts turn it into launcher arguments), else ``None``."""
        return dict(self.cluster) if self.cluster["emulate"] else None

    def placement_dataset(self) -> str:
        """The dataset of the placement study (``placement.dataset``, default the config's ``dataset``)."""
        return self.config["placement"].get("dataset") or self.config["dataset"]

    # ---- systems and training runs (rules/train.smk) ------------------------------------------------------
    def system(self, name: str) -> Mapping[str, Any]:
        """The ``systems.<name>`` entry."""
        if name not in self.config["systems"]:
            raise ValueError(
                f"unknown system {name!r}; config `systems` has {sorted(self.config['systems'])}"
            )
        return self.config["systems"][name]

    def system_algorithm(self, name: str) -> str:
        """The embedding algorithm a figure runs a system with (``systems.<name>.algorithm``, default
        ecorec)."""
        return Algorithm.parse(self.system(name).get("algorithm", Algorithm.ECOREC)).value

    def train_run_id(self, run: Mapping[str, Any]) -> str:
        """Path fragment of a run from a ``train.runs`` entry (dataset defaults to config ``dataset``)."""
        return TRAIN_RUN_PATTERN.format(**{"dataset": self.config["dataset"], **run})

    def train_records(self) -> list[str]:
        """The record.json of every run of config ``train.runs``."""
        return [f"results/runs/{self.train_run_id(run)}/record.json" for run in self.config["train"]["runs"]]

    def run_resources(self, wildcards: Any) -> RunResources:
        """Nodes, agents, threads and GPUs of a run (:class:`RunResources`)."""
        train = self.config["train"]
        return RunResources.of_run(
            int(wildcards.world),
            procs_per_node=int(train["procs_per_node"]),
            agents_per_node=int(train["agents_per_node"]),
            cpus_per_proc=int(train["cpus_per_proc"]),
            device=self.device,
        )

    def run_resource(self, name: str) -> Any:
        """A ``resources:`` or ``threads:`` function of rule train: one attribute of :meth:`run_resources`."""
        if name not in RunResources.__dataclass_fields__ and name not in ("mpi", "tasks"):
            raise ValueError(f"no run resource {name!r}")

        def resource(wildcards: Any) -> Any:
            return getattr(self.run_resources(wildcards), name)

        return resource

    def train_run_settings(self, wildcards: Any) -> dict[str, Any]:
        """Everything of a run's YAML that comes from config and wildcards (``ecorec.train.config``)."""
        train = self.config["train"]
        system = self.system(wildcards.system)
        world = int(wildcards.world)
        dataset = getattr(wildcards, "dataset", self.config["dataset"])
        run = TRAIN_RUN_PATTERN.format(
            **{k: getattr(wildcards, k) for k in _RUN_WILDCARDS if k != "dataset"}, dataset=dataset
        )
        self.check_run_tables(dataset, int(wildcards.tables), f"config: run results/runs/{run}")
        return {
            "run": {"seed": train["seed"], "device": self.device, "name": wildcards.system},
            "dataset": {"num_tables": int(wildcards.tables)},
            "model": _given(train["model"]),
            "embeddings": {**train["embeddings"], "algorithm": Algorithm.parse(wildcards.algorithm).value},
            "dense_optimizer": train["dense_optimizer"],
            "lr_schedule": _given(train["lr_schedule"]),
            "parallel": {**{k: v for k, v in system.items() if k != "algorithm"}, "world_size": world},
            "train": {
                **{k: train[k] for k in TRAIN_LOOP_KEYS if train.get(k) is not None},
                "global_batch_size": int(wildcards.batch) * world,
            },
        }

    # ---- statistics and plans (rules/stats.smk) -----------------------------------------------------------
    def run_plan(self, wildcards: Any) -> list[str]:
        """The planner's JSON for a run whose mode places tables with a plan (empty list otherwise)."""
        system = self.system(wildcards.system)
        if not ParallelMode(system["mode"]).needs_plan or "plan_file" in system:
            return []
        gbatch = int(wildcards.batch) * int(wildcards.world)
        algorithm = Algorithm.parse(wildcards.algorithm).value
        return [
            f"results/plans/{wildcards.dataset}/{system.get('sharding', 'greedy')}/"
            f"{algorithm}-T{wildcards.tables}-R{wildcards.world}-G{gbatch}.json"
        ]

    def calibration_input(self, wildcards: Any) -> list[str]:
        """The cost calibration the plans of a dataset use (``planner.calibration``): none (plans on predicted
        FLOPs), the one fitted from figure 11's kernel benchmarks on this device (``fit``), or the configured
        file. An input, so that a new calibration replans."""
        value = self.config["planner"]["calibration"]
        if value is None:
            return []
        if value == "fit":
            return [f"results/plans/{wildcards.dataset}/calibration-{self.device}.json"]
        return [value]

    def calibration_records(self, wildcards: Any) -> list[str]:
        """Figure 11's kernel-benchmark records of a dataset (the calibration's data)."""
        section = self.config["fig11"]
        return [
            f"results/bench/{wildcards.dataset}/kernels/K{section['largest_tables']}-b{batch}.jsonl"
            for batch in section["batch_sizes"]
        ]

    def stats_outputs(self, dataset: str) -> list[str]:
        """The statistics shown in the report for a dataset (at ``stats.batch_size``)."""
        base = f"results/stats/{dataset}/b{self.config['stats']['batch_size']}"
        return [f"{base}/summary.json", f"{base}/reuse_histogram.png"]

    def sharding_methods_report(self, dataset: str) -> str:
        """Every sharding method on all tables of a dataset, at the report layout and ``stats.batch_size``."""
        layout = self.config["planner"]["report"]
        return (
            f"results/plans/{dataset}/methods-{layout['algorithm']}-T{self.dataset_num_tables(dataset)}"
            f"-R{layout['world_size']}-G{self.config['stats']['batch_size']}.csv"
        )

    # ---- figures (rules/figures.smk) ----------------------------------------------------------------------
    def figure_runs(self, name: str) -> list[str]:
        """The record.json of every point of a training figure's grid (config section ``name``): its
        ``systems`` x ``tables`` x ``worlds`` at local batch ``batch`` (fig10/fig16 take one ``world``, fig12
        one ``tables``)."""
        section = self.config[name]
        tables = section["tables"] if isinstance(section["tables"], list) else [section["tables"]]
        worlds = section["worlds"] if "worlds" in section else [section["world"]]
        return [
            "results/runs/"
            + TRAIN_RUN_PATTERN.format(
                dataset=self.config["dataset"],
                system=system,
                algorithm=self.system_algorithm(system),
                tables=t,
                world=w,
                batch=section["batch"],
            )
            + "/record.json"
            for system in section["systems"]
            for t in tables
            for w in worlds
        ]

    def kernel_bench_records(self, name: str) -> list[str]:
        """The kernel-benchmark JSON lines of ``fig11`` (K largest tables of the dataset) or ``table1`` (one
        table of ``num_embeddings`` rows), one file per batch size."""
        section = self.config[name]
        if name == "fig11":
            return [
                f"results/bench/{self.config['dataset']}/kernels/K{section['largest_tables']}-b{batch}.jsonl"
                for batch in section["batch_sizes"]
            ]
        return [
            f"results/bench/table1/N{section['num_embeddings']}-b{batch}.jsonl"
            for batch in section["batch_sizes"]
        ]

    def figure_inputs(self, name: str) -> list[str]:
        """The result files a figure is drawn from: kernel benchmarks (fig11, table1) or run records."""
        if next(f for f in FIGURE_TABLE if f.name == name).kernel:
            return self.kernel_bench_records(name)
        return self.figure_runs(name)

    def bench_flags(self, name: str) -> str:
        """Flags of ``python -m ecorec.bench tt`` from a figure's section (:func:`bench_flags`)."""
        return bench_flags(self.config[name])

    def bench_gres(self, wildcards: Any = None) -> str | None:
        """One GPU for a kernel benchmark on cuda (unset on cpu)."""
        return bench_gres(self.device)

    # ---- emulated cluster (config `cluster`, issue 15) -----------------------------------------------------
    @property
    def cluster(self) -> Mapping[str, Any]:
        """The config's ``cluster:`` section (absent: not emulated)."""
        return self.config.get("cluster", {"emulate": False})

    def cluster_dilation_file(self) -> str:
        """The dilation record of the configured profile at its ranks per node (rule ``cluster_dilation``)."""
        c = self.cluster
        return f"results/cluster/dilation-{c['profile']}-p{c['ranks_per_node']}.json"

    def train_cluster_inputs(self, wildcards: Any = None) -> dict[str, str]:
        """``{"dilation": file}`` of a training run when emulated, else nothing."""
        return {"dilation": self.cluster_dilation_file()} if self.cluster["emulate"] else {}

    def train_emulate_arg(self, wildcards: Any, input: Any) -> str:
        """`` --emulate "..."`` of ``launch_torchrun.sh`` (with its leading space), or ``""`` when not
        emulated."""
        if not self.cluster["emulate"]:
            return ""
        from ecorec.cluster.settings import emulation_args  # torch-free

        return " --emulate " + shlex.quote(emulation_args(self.cluster, int(wildcards.world), input.dilation))

    def cluster_dilation_settings(self, wildcards: Any) -> dict[str, Any]:
        """The ``cluster`` section with the profile and ranks per node of a ``cluster_dilation`` job."""
        return {**self.cluster, "profile": wildcards.profile, "ranks_per_node": int(wildcards.ranks)}

    def cluster_src(self, wildcards: Any = None) -> str:
        """Source hash of the emulation launcher when runs are emulated (a change reruns them), else
        ``""``."""
        return self.src_hash("ecorec.cluster.__main__") if self.cluster["emulate"] else ""

    # ---- HET-GMP grid (config `hetgmp`, issue 16) --------------------------------------------------------
    @property
    def hetgmp(self) -> Mapping[str, Any]:
        """The config's ``hetgmp:`` section."""
        return self.config.get("hetgmp", {})

    def _hetgmp_runs(self) -> list[str]:
        h = self.hetgmp
        return [
            HETGMP_RUN_PATTERN.format(dataset=h["dataset"], world=h["world"], batch=h["batch"], partitioner=p)
            for p in h["partitioners"]
        ]

    def hetgmp_records(self) -> list[str]:
        """Every run record of the grid: partitioners x store rates x staleness bounds."""
        rates = [f"{float(s):g}" for s in self.hetgmp["store_rates"]]
        return [
            f"{run}/s{rate}-B{bound}/record.json"
            for run in self._hetgmp_runs()
            for rate in rates
            for bound in self.hetgmp["bounds"]
        ]

    def hetgmp_partition_headers(self) -> list[str]:
        """The partition header (JSON) of every partitioner of the grid."""
        return [f"{run}/partition.json" for run in self._hetgmp_runs()]

    def hetgmp_title(self) -> str:
        h = self.hetgmp
        return f"HET-GMP on {h.get('dataset')}, {h.get('world')} ranks, local batch {h.get('batch')}"
