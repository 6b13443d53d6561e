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

#: Path fragment of a training run below results/runs/ (``batch``: local batch per rank; ``target``: the
#: target world whose communication an emulated run stands for, see :meth:`WorkflowConfig.target_world`).
TRAIN_RUN_PATTERN = "{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}-W{target}"
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
_RUN_WILDCARDS = ("dataset", "system", "algorithm", "tables", "world", "batch", "target")


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
#: The figures drawn from training runs (one launch rule per figure in rules/train.smk).
TRAINING_FIGURES = tuple(f.name for f in FIGURE_TABLE if not f.kernel)


@dataclass(frozen=True)
class _Point:
    """Wildcards of one training run, for settings computed outside a job."""

    system: str
    algorithm: str
    tables: int
    world: int
    batch: int


#: A run's point in its path (``T<tables>-R<world>-b<batch>-W<target>``), as one wildcard of a launch rule.
POINT_PATTERN = "T{tables}-R{world}-b{batch}-W{target}"
_POINT_RE = re.compile(r"^T(?P<tables>\d+)-R(?P<world>\d+)-b(?P<batch>\d+)-W(?P<target>\d+)$")


@dataclass(frozen=True)
class LaunchGroup:
    """Training points of the figures that one torchrun launch trains together: every ``point`` (a
    :data:`POINT_PATTERN` string) needs exactly ``systems`` (the union over the figures that share it)."""

    name: str
    systems: tuple[str, ...]
    points: tuple[str, ...]


def run_point(wildcards: Any) -> Any:
    """``tables``, ``world``, ``batch`` and ``target`` of a job: its own wildcards, or parsed from its
    ``point`` wildcard (the launch rules)."""
    point = getattr(wildcards, "point", None)
    if point is None:
        return wildcards
    match = _POINT_RE.match(str(point))
    if match is None:
        raise ValueError(f"not a training point: {point!r} (expected {POINT_PATTERN})")
    return type("Point", (), match.groupdict())


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

    def check_run_tables(self, dataset: str, tables: int, where: str, fix: str | None = None) -> None:
        """``ValueError`` naming ``where`` when a run asks for more tables than ``dataset`` has (checked at
        the dry run, for the runs the requested targets need); ``fix``: the config keys to lower."""
        known = self.known_num_tables(dataset)
        if known is not None and tables > known[0]:
            fix = fix or "`tables` in config train.runs (and the fig10 / fig12 / fig16 sections)"
            raise ValueError(
                f"{where}: asks for the first {tables} tables but dataset {dataset!r} has {known[0]} "
                f"({known[1]}); lower {fix} or select another dataset"
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
        "memory_cap_ratio",
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
        paper = {"world": run["target_world"]} if run.get("target_world") else None
        target = self.target_world(int(run["world"]), paper)
        return TRAIN_RUN_PATTERN.format(
            **{"dataset": self.config["dataset"], **{k: v for k, v in run.items() if k != "target_world"}},
            target=target,
        )

    def target_world(self, world: int, paper: Mapping[str, Any] | None = None) -> int:
        """The target world a run of ``world`` ranks stands for (the ``W`` of its path): with emulation, the
        figure's ``paper.world`` (its links are scaled for that fan-out, ``ecorec.cluster.dilation.fanout``),
        else one target node per emulated node (``nodes x gpus_per_node`` of the profile; weak scaling);
        without emulation, ``world`` itself (a real cluster is what it is)."""
        c = self.cluster
        if not c["emulate"]:
            return world
        if paper and paper.get("world"):
            return int(paper["world"])
        from ecorec.cluster.settings import emulated_nodes  # torch-free

        nodes, _ = emulated_nodes(world, int(c["ranks_per_node"]))
        return nodes * int(c["profiles"][c["profile"]]["gpus_per_node"])

    def train_records(self) -> list[str]:
        """The record.json of every run of config ``train.runs``."""
        return [f"results/runs/{self.train_run_id(run)}/record.json" for run in self.config["train"]["runs"]]

    def run_resources(self, wildcards: Any) -> RunResources:
        """Nodes, agents, threads and GPUs of a run (:class:`RunResources`)."""
        train = self.config["train"]
        return RunResources.of_run(
            int(run_point(wildcards).world),
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

    def train_run_settings(
        self, wildcards: Any, where: str | None = None, fix: str | None = None
    ) -> dict[str, Any]:
        """Everything of a run's YAML that comes from config and wildcards (``ecorec.train.config``);
        ``where`` / ``fix``: what asks for these settings and the config keys that set its tables, for the
        error when the dataset has fewer tables (default: the run's path, ``train.runs``)."""
        train = self.config["train"]
        system = self.system(wildcards.system)
        world = int(wildcards.world)
        dataset = getattr(wildcards, "dataset", self.config["dataset"])
        if where is None:
            run = TRAIN_RUN_PATTERN.format(
                **{k: getattr(wildcards, k, "?") for k in _RUN_WILDCARDS if k != "dataset"}, dataset=dataset
            )
            where = f"config: run results/runs/{run}"
        self.check_run_tables(dataset, int(wildcards.tables), where, fix)
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
                target=self.target_world(w, section.get("paper")),
            )
            + "/record.json"
            for system in section["systems"]
            for t in tables
            for w in worlds
        ]

    def launch_groups(self) -> list[LaunchGroup]:
        """The training figures' points grouped for one torchrun launch each: a point runs the union of the
        systems of every figure that has it, and points with the same systems share one launch rule (named
        after their figures). A point two figures share is one launch and one record per system."""
        systems_at: dict[str, list[str]] = {}
        figures_at: dict[str, list[str]] = {}
        for name in TRAINING_FIGURES:
            section = self.config[name]
            tables = section["tables"] if isinstance(section["tables"], list) else [section["tables"]]
            worlds = section["worlds"] if "worlds" in section else [section["world"]]
            for t in tables:
                for w in worlds:
                    point = POINT_PATTERN.format(
                        tables=t,
                        world=w,
                        batch=section["batch"],
                        target=self.target_world(w, section.get("paper")),
                    )
                    have = systems_at.setdefault(point, [])
                    have += [s for s in section["systems"] if s not in have]
                    figures_at.setdefault(point, [])
                    if name not in figures_at[point]:
                        figures_at[point].append(name)
        groups: dict[tuple[str, ...], list[str]] = {}
        names: dict[tuple[str, ...], list[str]] = {}
        for point, systems in systems_at.items():
            key = tuple(systems)
            groups.setdefault(key, []).append(point)
            names.setdefault(key, [])
            names[key] += [f for f in figures_at[point] if f not in names[key]]
        out, used = [], set()
        for key, points in groups.items():
            name = "train_" + "_".join(names[key])
            while name in used:  # the same figures with another system set at some point
                name += "_"
            used.add(name)
            out.append(LaunchGroup(name, key, tuple(points)))
        return out

    def launch_runs(self, group: LaunchGroup, suffix: str) -> list[str]:
        """The paths of every system of a launch group at one point, with the wildcards ``dataset`` and
        ``point`` (``suffix``: ``record.json`` or ``run.yaml``): the launch rule's outputs or inputs."""
        return [
            f"results/runs/{{dataset}}/{system}/{self.system_algorithm(system)}/{{point}}/{suffix}"
            for system in group.systems
        ]

    def launch_constraints(self, group: LaunchGroup) -> dict[str, str]:
        """Wildcard constraints restricting a launch rule to its group's points of the config's dataset."""
        return {"dataset": re.escape(self.config["dataset"]), "point": "|".join(map(re.escape, group.points))}

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

    def figure_named_inputs(self, name: str) -> dict[str, Any]:
        """The plot rule's inputs: ``records`` (:meth:`figure_inputs`) and, for a training figure on the
        emulated cluster with the ``mix`` dilation, the compute ``split`` its regime is modelled from."""
        inputs: dict[str, Any] = {"records": self.figure_inputs(name)}
        if name in self.regime_figures():
            inputs["regime"] = f"results/regime/{name}.json"
        return inputs

    def regime_figures(self) -> tuple[str, ...]:
        """The training figures whose regime is modelled: those on the emulated cluster (the model scales the
        measured compute split)."""
        return TRAINING_FIGURES if self.cluster["emulate"] else ()

    def bench_flags(self, name: str) -> str:
        """Flags of ``python -m ecorec.bench tt`` from a figure's section (:func:`bench_flags`)."""
        return bench_flags(self.config[name])

    def bench_gres(self, wildcards: Any = None) -> str | None:
        """One GPU for a kernel benchmark on cuda (unset on cpu)."""
        return bench_gres(self.device)

    # ---- regime table (rules/regime.smk, issue 24) -------------------------------------------------------
    #: Figures with a claim, and the CSV each is judged on.
    REGIME_FIGURES = ("fig10", "fig11", "fig12", "fig16", "table1", "hetgmp", "placement")

    def placement_figures(self) -> list[str]:
        """The placement study's figure CSV of each table kind."""
        return [
            f"results/figures/placement_{self.placement_dataset()}_{kind}.csv"
            for kind in self.config["placement"]["kinds"]
        ]

    def regime_inputs(self, wildcards: Any = None) -> dict[str, Any]:
        """The regime table's inputs: every figure's CSV and the modelled regime of each training figure."""
        return {
            "figures": [f"results/figures/{name}.csv" for name in FIGURES] + ["results/figures/hetgmp.csv"],
            "placement": self.placement_figures(),
            "regimes": [f"results/regime/{name}.json" for name in self.regime_figures()],
        }

    def figure_regime_inputs(self, wildcards: Any) -> dict[str, Any]:
        """A training figure's run records and the compute split its regime is modelled from."""
        return {"records": self.figure_runs(wildcards.figure), "split": self.compute_split_file()}

    def regime_settings(self) -> dict[str, Any]:
        """Each figure's config section, the cluster profiles and the training model (the regime script's
        params)."""
        return {
            "figures": {name: dict(self.config.get(name, {})) for name in self.REGIME_FIGURES},
            "profiles": dict(self.cluster.get("profiles", {})),
        }

    # ---- emulated cluster (config `cluster`, issue 15) -----------------------------------------------------
    @property
    def cluster(self) -> Mapping[str, Any]:
        """The config's ``cluster:`` section (absent: not emulated)."""
        return self.config.get("cluster", {"emulate": False})

    def cluster_dilation_file(
        self, world: int, target: int, *, profile: str | None = None, kernel: str | None = None
    ) -> str:
        """The dilation record (rule ``cluster_dilation``) of a run of ``world`` ranks standing for
        ``target`` GPUs of ``profile`` (default ``cluster.profile``), dilated by ``kernel`` (default
        ``cluster.kernel``)."""
        from ecorec.cluster.settings import emulated_nodes  # torch-free

        c = self.cluster
        _, per_node = emulated_nodes(world, int(c["ranks_per_node"]))
        return (
            f"results/cluster/dilation-{profile or c['profile']}-{kernel or c.get('kernel', 'tt')}"
            f"-p{per_node}-R{world}-W{target}.json"
        )

    def train_cluster_inputs(self, wildcards: Any = None) -> dict[str, str]:
        """``{"dilation": file}`` of a training run (wildcards ``world``, ``target``) when emulated, else
        nothing."""
        if not self.cluster["emulate"]:
            return {}
        point = run_point(wildcards)
        return {"dilation": self.cluster_dilation_file(int(point.world), int(point.target))}

    def study_cluster_inputs(self, section: str) -> Any:
        """Input function (``{"dilation": file}`` when emulated) of the HET-GMP (``section="hetgmp"``) or
        placement (``"placement"``) runs: the section's ``cluster`` (profile, kernel, target world; default
        ``cluster.profile``, kernel ``tt``, one target node per emulated node) at its world (``world`` or
        ``devices``)."""

        def inputs(wildcards: Any = None) -> dict[str, str]:
            if not self.cluster["emulate"]:
                return {}
            settings = self.config[section]
            world = int(settings.get("world", settings.get("devices", 1)))
            own = settings.get("cluster") or {}
            target = own.get("target_world") or self.target_world(world)
            return {
                "dilation": self.cluster_dilation_file(
                    world, int(target), profile=own.get("profile"), kernel=own.get("kernel", "tt")
                )
            }

        return inputs

    def compute_split_file(self) -> str:
        """This machine's compute split of the configured training model (``cluster.split``), which weighs
        the ``mix`` dilation."""
        split = self.cluster.get("split", {"tables": 8, "batch": 4096})
        return f"results/cluster/split-{self.config['dataset']}-T{split['tables']}-b{split['batch']}.json"

    def dilation_inputs(self, wildcards: Any) -> dict[str, str]:
        """A dilation's inputs: this machine's kernel rates with as many concurrent processes as the run has
        ranks, and the compute split of a ``mix`` dilation."""
        inputs = {"rates": f"results/cluster/rates-c{int(wildcards.world)}.json"}
        if wildcards.kernel in ("mix", "auto"):
            inputs["split"] = self.compute_split_file()
        return inputs

    def compute_split_settings(self, wildcards: Any = None) -> dict[str, Any]:
        """The run settings (``ecorec.train`` config, without paths) whose compute split is measured: the
        ``train`` model and embeddings, ``cluster.split`` tables and local batch, 2 ranks, mode dp."""
        split = self.cluster.get("split", {"tables": 8, "batch": 4096})
        point = _Point(
            system="ecorec", algorithm="ecorec", tables=split["tables"], world=2, batch=split["batch"]
        )
        settings = self.train_run_settings(
            point, "config: cluster.split (the model whose compute split is measured)", "cluster.split.tables"
        )
        return {**settings, "parallel": {"mode": "dp", "world_size": 2}}

    def split_parameter_tables(self, wildcards: Any = None) -> list[int]:
        """Every table count of the training figures and of their paper configurations (the split reports
        the head's parameters at each: the regime model's dense compute and all-reduce)."""
        counts: set[int] = set()
        for name in TRAINING_FIGURES:
            section = self.config.get(name, {})
            for value in (section.get("tables"), (section.get("paper") or {}).get("tables")):
                counts.update(int(t) for t in (value if isinstance(value, list) else [value]) if t)
        return sorted(counts)

    def train_emulate_arg(self, wildcards: Any, input: Any) -> str:
        """`` --emulate "..."`` of ``launch_torchrun.sh`` (with its leading space), or ``""`` when not
        emulated."""
        if not self.cluster["emulate"]:
            return ""
        from ecorec.cluster.settings import emulation_args  # torch-free

        world = int(run_point(wildcards).world)
        return " --emulate " + shlex.quote(emulation_args(self.cluster, world, input.dilation))

    def cluster_dilation_settings(self, wildcards: Any) -> dict[str, Any]:
        """The ``cluster`` section with the profile, kernel, ranks per node, world and target world of a
        ``cluster_dilation`` job."""
        return {
            **self.cluster,
            "profile": wildcards.profile,
            "kernel": wildcards.kernel,
            "ranks_per_node": int(wildcards.ranks),
            "world": int(wildcards.world),
            "target_world": int(wildcards.target),
        }

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

    def _hetgmp_points(self) -> list[str]:
        """``s<store_rate>-B<bound>`` of every grid point of a partitioner. Without mirrors (store rate 0)
        the bound changes nothing, so that store rate runs at the first bound only."""
        bounds = list(self.hetgmp["bounds"])
        return [
            f"s{float(rate):g}-B{bound}"
            for rate in self.hetgmp["store_rates"]
            for bound in (bounds if float(rate) > 0 else bounds[:1])
        ]

    def hetgmp_records(self) -> list[str]:
        """Every run record of the grid: partitioners x store rates x staleness bounds."""
        return [
            f"{run}/{point}/record.json" for run in self._hetgmp_runs() for point in self._hetgmp_points()
        ]

    def hetgmp_point_runs(self, suffix: str) -> list[str]:
        """One partitioner's grid points as patterns (wildcards ``dataset``, ``world``, ``batch``,
        ``partitioner``; ``suffix``: ``record.json`` or ``run.yaml``): its launch rule's outputs or inputs."""
        base = HETGMP_RUN_PATTERN.format(
            dataset="{dataset}", world="{world}", batch="{batch}", partitioner="{partitioner}"
        )
        return [f"{base}/{point}/{suffix}" for point in self._hetgmp_points()]

    def hetgmp_partition_headers(self) -> list[str]:
        """The partition header (JSON) of every partitioner of the grid."""
        return [f"{run}/partition.json" for run in self._hetgmp_runs()]

    def hetgmp_title(self) -> str:
        h = self.hetgmp
        return f"HET-GMP on {h.get('dataset')}, {h.get('world')} ranks, local batch {h.get('batch')}"
