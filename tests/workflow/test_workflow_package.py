"""ecorec.workflow: config -> jobs, resources, benchmark flags, source hashes from the import graph, the
script helper; and that a dry run of the default target imports no torch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ecorec.workflow import RunResources, SourceGraph, WorkflowConfig, bench_flags
from ecorec.workflow.config import FIGURE_TABLE, FIGURES
from tests.workflow.snakemake_cli import REPO_ROOT, snakemake_env

CONFIG = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())


@pytest.fixture(scope="module")
def wf() -> WorkflowConfig:
    return WorkflowConfig(CONFIG, REPO_ROOT)


def _wc(**kw):
    return SimpleNamespace(**kw)


def test_run_settings_translate_system_and_wildcards(wf):
    system = next(name for name, s in CONFIG["systems"].items() if s["mode"] == "twp")
    settings = wf.train_run_settings(
        _wc(system=system, algorithm="uncompressed", tables="8", world="2", batch="64")
    )
    assert settings["parallel"]["world_size"] == 2 and settings["parallel"]["mode"] == "twp"
    assert "algorithm" not in settings["parallel"]
    assert settings["embeddings"]["algorithm"] == "none"  # the one name of uncompressed tables
    assert settings["train"]["global_batch_size"] == 128 and settings["dataset"] == {"num_tables": 8}
    assert settings["train"]["steps"] == CONFIG["train"]["steps"]
    # the run configuration accepts exactly what the translation writes
    from ecorec.train import run_config_from_dict

    data = {**settings, "dataset": {**settings["dataset"], "path": "x"}}
    run_config_from_dict(data, source="test", check_paths=False)


def test_plans_only_for_planned_modes(wf):
    modes = {name: s["mode"] for name, s in CONFIG["systems"].items()}
    for name, mode in modes.items():
        plan = wf.run_plan(
            _wc(system=name, dataset="synthetic", algorithm="none", tables="4", world="2", batch="8")
        )
        planned = mode in ("mp", "bwp", "twp") and "plan_file" not in CONFIG["systems"][name]
        assert bool(plan) == planned, name
        if plan:
            method = CONFIG["systems"][name].get("sharding", "greedy")
            assert plan == [f"results/plans/synthetic/{method}/none-T4-R2-G16.json"]
    with pytest.raises(ValueError, match="unknown system 'nope'"):
        wf.run_plan(
            _wc(system="nope", dataset="synthetic", algorithm="ecorec", tables="4", world="2", batch="8")
        )


def test_figure_grids_and_inputs(wf):
    fig12 = CONFIG["fig12"]
    runs = wf.figure_runs("fig12")
    assert len(runs) == len(fig12["systems"]) * len(fig12["worlds"])
    first = fig12["systems"][0]
    algorithm = CONFIG["systems"][first].get("algorithm", "ecorec")
    # weak scaling: each emulated node stands for one node of the profile (its GPUs are the target world)
    gpus = CONFIG["cluster"]["profiles"][CONFIG["cluster"]["profile"]]["gpus_per_node"]
    w0 = fig12["worlds"][0]
    assert runs[0] == (
        f"results/runs/{CONFIG['dataset']}/{first}/{algorithm}/T{fig12['tables']}-R{w0}"
        f"-b{fig12['batch']}-W{w0 * gpus}/record.json"
    )
    # fig10 and fig16 stand for their paper's world (the links scaled for its fan-out)
    for name in ("fig10", "fig16"):
        world = CONFIG[name]["paper"]["world"]
        assert all(r.endswith(f"-W{world}/record.json") for r in wf.figure_runs(name))
    # one launch per point: its systems' records are the outputs of one rule
    groups = {g.name: g for g in wf.launch_groups()}
    fig16 = next(g for g in groups.values() if "fig16" in g.name)
    assert set(CONFIG["fig16"]["systems"]) <= set(fig16.systems)
    point = wf.launch_runs(fig16, "record.json")
    assert len(point) == len(fig16.systems) and all("{point}" in p for p in point)
    assert re.fullmatch(wf.launch_constraints(fig16)["point"], wf.figure_runs("fig16")[0].split("/")[-2])
    # every figure point is in exactly one launch group
    points = [p for g in groups.values() for p in g.points]
    assert len(points) == len(set(points))
    assert wf.figure_inputs("table1") == [
        f"results/bench/table1/N{CONFIG['table1']['num_embeddings']}-b{b}.jsonl"
        for b in CONFIG["table1"]["batch_sizes"]
    ]
    assert wf.figure_inputs("fig11") == wf.calibration_records(_wc(dataset=CONFIG["dataset"]))
    assert FIGURES == tuple(f.name for f in FIGURE_TABLE) and set(FIGURES) <= set(CONFIG)
    assert all((REPO_ROOT / "report" / f"{name}.rst").is_file() for name in FIGURES)


def test_dataset_table_counts_come_from_the_sources():
    from ecorec.data.synthetic import SyntheticConfig
    from ecorec.workflow.config import SYNTHETIC_DEFAULT_NUM_TABLES

    config = {**CONFIG, "datasets": {**CONFIG["datasets"], "s": {"source": "synthetic"}}}
    wf = WorkflowConfig(config, REPO_ROOT)
    assert wf.dataset_num_tables("s") == SYNTHETIC_DEFAULT_NUM_TABLES == SyntheticConfig().num_tables
    assert wf.dataset_num_tables("meta_dlrm_2022") == 788 and wf.dataset_num_tables("criteo_kaggle") == 26
    with pytest.raises(ValueError, match="dataset 'x' is not an entry of datasets"):
        WorkflowConfig({**CONFIG, "dataset": "x"}, REPO_ROOT)


@pytest.mark.parametrize(
    ("world", "per_node", "agents_per_node", "expect"),
    [
        (1, 8, 1, dict(nodes=1, agents=1, procs_per_agent=1, threads=2, mpi=None, tasks=None)),
        (4, 8, 1, dict(nodes=1, agents=1, procs_per_agent=4, threads=8, mpi=None, tasks=None)),
        (16, 8, 1, dict(nodes=2, agents=2, procs_per_agent=8, threads=16, mpi="srun", tasks=2)),
        (16, 8, 2, dict(nodes=2, agents=4, procs_per_agent=4, threads=8, mpi="srun", tasks=4)),
    ],
)
def test_run_resources(world, per_node, agents_per_node, expect):
    res = RunResources.of_run(
        world, procs_per_node=per_node, agents_per_node=agents_per_node, cpus_per_proc=2, device="cuda"
    )
    assert {k: getattr(res, k) for k in expect} == expect
    assert res.gres == f"gpu:{min(world, per_node)}"
    assert res.nodes * res.procs_per_agent * (res.agents // res.nodes) == world


def test_run_resources_errors_name_the_key():
    with pytest.raises(ValueError, match="train.procs_per_node=8"):
        RunResources.of_run(12, procs_per_node=8, agents_per_node=1, cpus_per_proc=1, device="cpu")
    with pytest.raises(ValueError, match="train.agents_per_node=3"):
        RunResources.of_run(4, procs_per_node=4, agents_per_node=3, cpus_per_proc=1, device="cpu")
    assert (
        RunResources.of_run(2, procs_per_node=4, agents_per_node=1, cpus_per_proc=1, device="cpu").gres
        is None
    )


def test_bench_flags():
    section = {
        "variants": ["ecorec", "fbtt"],
        "repeats": 3,
        "batch_sizes": [1],
        "largest_tables": 2,
        "seed": 0,
    }
    assert bench_flags(section) == "--algorithms ecorec fbtt --repeats 3 --seed 0"
    with pytest.raises(ValueError, match="'typo'"):
        bench_flags({**section, "typo": 1})
    # every flag exists in the benchmark's CLI
    from ecorec.bench.tt import build_parser
    from ecorec.workflow import BENCH_FLAGS

    options = {s for a in build_parser()._actions for s in a.option_strings}
    assert set(BENCH_FLAGS.values()) <= options


def _package(tmp_path: Path) -> SourceGraph:
    """A small ecorec tree: a -> b (lazy package c resolved at run time), data folder, kernels/."""
    files = {
        "ecorec/__init__.py": "",
        "ecorec/a.py": "import os\nfrom ecorec.b import thing\n",
        "ecorec/b.py": "def f():\n    from ecorec.c import name  # lazy\n",
        "ecorec/c/__init__.py": "def __getattr__(name):\n    pass\n",
        "ecorec/c/x.py": "from . import y\n",
        "ecorec/c/y.py": "",
        "ecorec/c/res/table.tsv": "1\n",
        "ecorec/d.py": "import ecorec.kernels.k\n",
        "ecorec/kernels/__init__.py": "",
        "ecorec/kernels/k.py": "",
        "ecorec/workflow/__init__.py": "",
        "ecorec/e.py": "from ecorec.workflow import x\n",
        "kernels/op.cu": "// cuda\n",
        "workflow_scripts/s.py": "from ecorec.a import g\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return SourceGraph(tmp_path)


def test_source_graph_follows_imports(tmp_path):
    g = _package(tmp_path)
    rel = lambda paths: sorted(p.relative_to(tmp_path).as_posix() for p in paths)  # noqa: E731
    assert rel(g.files("workflow_scripts/s.py")) == [
        "ecorec/__init__.py",
        "ecorec/a.py",
        "ecorec/b.py",
        "ecorec/c/__init__.py",
        "ecorec/c/res",
        "ecorec/c/x.py",
        "ecorec/c/y.py",
        "workflow_scripts/s.py",
    ]
    assert rel(g.files("ecorec.d")) == [
        "ecorec/__init__.py",
        "ecorec/d.py",
        "ecorec/kernels/__init__.py",
        "ecorec/kernels/k.py",
        "kernels",
    ]
    assert g.modules("ecorec.e") == ["ecorec", "ecorec.e"]  # ecorec.workflow computes params, not results
    with pytest.raises(FileNotFoundError, match="ecorec.nope"):
        g.files("ecorec.nope")


def test_source_hash_changes_with_content_of_what_is_imported_only(tmp_path):
    g = _package(tmp_path)
    before = g.hash("workflow_scripts/s.py")
    (tmp_path / "ecorec/d.py").write_text("# not imported by s\n")
    assert SourceGraph(tmp_path).hash("workflow_scripts/s.py") == before
    (tmp_path / "ecorec/c/res/table.tsv").write_text("2\n")
    assert SourceGraph(tmp_path).hash("workflow_scripts/s.py") != before
    os.utime(tmp_path / "ecorec/a.py")  # touching changes nothing


def test_real_graph_has_what_the_old_hand_lists_missed(wf):
    bench = wf.sources.modules("ecorec.bench.__main__", "ecorec.bench.tt")
    assert (
        "ecorec.data.synthetic" in bench and "ecorec.tt.ops" in bench
    )  # the kernel benchmarks read ecorec.data
    assert "ecorec.bench.train" not in bench and not any(m.startswith("ecorec.workflow") for m in bench)
    assert "ecorec.plots.figures" in wf.sources.modules(wf.script("plot_figure.py"))
    assert not any(m.startswith("ecorec.tt") for m in wf.sources.modules(wf.script("plot_figure.py")))


SCRIPT = """
from types import SimpleNamespace
from ecorec.workflow import script_context
import warnings
snakemake = SimpleNamespace(
    log=[{log!r}], input=[], output=[], params=SimpleNamespace(), wildcards=SimpleNamespace(), rule="r",
    config={config!r}, scriptdir={scriptdir!r},
)
ctx = script_context(snakemake)
ctx.logger.info("working in %s", ctx.rule)
warnings.warn("a warning")
assert ctx.config.dataset_num_tables("synthetic") > 0
raise RuntimeError("boom in the library")
"""


def test_script_context_logs_every_traceback(tmp_path):
    log = tmp_path / "logs" / "job.log"
    log.parent.mkdir()
    code = SCRIPT.format(log=str(log), config=CONFIG, scriptdir=str(REPO_ROOT / "workflow_scripts"))
    proc = subprocess.run([sys.executable, "-c", code], env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode != 0
    text = log.read_text()
    assert "working in r" in text and "a warning" in text
    assert "Traceback" in text and "RuntimeError: boom in the library" in text


IMPORT_PROBE = """
import atexit, json, os, sys
def _report():
    with open(os.environ["ECOREC_IMPORT_PROBE"], "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(_report)
"""


def test_dry_run_of_the_default_target_imports_no_torch(tmp_path):
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "sitecustomize.py").write_text(textwrap.dedent(IMPORT_PROBE))
    report = tmp_path / "modules.json"
    env = snakemake_env()
    env["PYTHONPATH"] = os.pathsep.join([str(probe_dir), env["PYTHONPATH"]])
    env["ECOREC_IMPORT_PROBE"] = str(report)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO_ROOT / "Snakefile"),
        "-n",
        "--cores",
        "2",
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    modules = set(json.loads(report.read_text()))
    assert {"snakemake", "ecorec.workflow", "ecorec.types"} <= modules  # the probe saw the workflow's parse
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}
    assert "torchrec" not in modules and "fbgemm_gpu" not in modules  # (numpy, pyarrow: Snakemake loads them)


CONFIG_WRITERS = """
import sys, yaml
from types import SimpleNamespace
from ecorec.train import run_config_from_dict
from ecorec.train.hetgmp import hetgmp_run_dict
from ecorec.workflow import WorkflowConfig

config = yaml.safe_load(open("config.yaml"))
wf = WorkflowConfig(config, ".")
wc = SimpleNamespace(dataset="synthetic", system="ecorec", algorithm="ecorec", tables="16", world="2",
                     batch="4096", target="32")
run = {**wf.train_run_settings(wc)}
run["dataset"] = {**run["dataset"], "path": "d"}
run["run"] = {**run["run"], "output_dir": "o"}
run_config_from_dict(run, source="train_config", check_paths=False)
point = hetgmp_run_dict(config["hetgmp"], partitioner="metis", store_rate=0.05, bound=100, dataset_path="d",
                        partition_path="p.npz", output_dir="o")
run_config_from_dict(point, source="hetgmp_config", check_paths=False)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchrec", "fbgemm_gpu")))
"""


def test_config_writing_jobs_import_no_torch():
    """train_config and hetgmp_config (23 + 12 jobs of the default pipeline) validate run configs without
    torch: its import (~4 s) would be paid by every one of them."""
    proc = subprocess.run(
        [sys.executable, "-c", CONFIG_WRITERS], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_train_rule_resource_functions(wf):
    wc = _wc(world="2")
    assert wf.run_resource("threads")(wc) == wf.run_resources(wc).threads
    assert wf.run_resource("mpi")(wc) is None
    with pytest.raises(ValueError, match="'gpus'"):
        wf.run_resource("gpus")


def _run_config(wf: WorkflowConfig, **wildcards):
    """The validated run config a train_config job would write for these wildcards."""
    from ecorec.train import run_config_from_dict

    wc = {
        "dataset": "synthetic",
        "system": "dp",
        "algorithm": "ecorec",
        "tables": "8",
        "world": "1",
        "target": "1",
    }
    settings = wf.train_run_settings(_wc(**{**wc, "batch": "64", **wildcards}))
    data = {**settings, "dataset": {**settings["dataset"], "path": "x"}}
    return run_config_from_dict(data, source="test", check_paths=False)


def test_epochs_and_model_preset_reach_the_run_configs():
    """train.epochs replaces train.steps, and train.model.preset gives the run its model: the preset's values
    (oracle: ecorec.models.presets) where train.model sets a key to null, the given keys elsewhere."""
    from ecorec.models.presets import MODEL_PRESETS

    model = {"preset": "torchrec_dlrm", "kind": None, "interaction": None, "dense_arch": [512, 256, 64]}
    model |= {"embedding_dim": None, "over_arch": [32, 1]}
    train = {**CONFIG["train"], "steps": None, "epochs": 2, "model": model}
    cfg = _run_config(WorkflowConfig({**CONFIG, "train": train}, REPO_ROOT))
    assert cfg.train.epochs == 2 and cfg.train.steps is None
    preset = MODEL_PRESETS["torchrec_dlrm"].model
    assert cfg.model.preset == "torchrec_dlrm"
    assert (cfg.model.embedding_dim, cfg.model.interaction) == (
        preset["embedding_dim"],
        preset["interaction"],
    )
    assert cfg.model.over_arch == [32, 1] and cfg.model.dense_arch == [512, 256, 64]
    with pytest.raises(ValueError, match="config train.epochs: give train.steps or train.epochs, not both"):
        WorkflowConfig({**CONFIG, "train": {**train, "steps": 20}}, REPO_ROOT)
    # the schema knows exactly the presets ecorec has (and the pipeline's default config validates)
    schema = yaml.safe_load((REPO_ROOT / "schemas" / "config.schema.yaml").read_text())
    enum = schema["properties"]["train"]["properties"]["model"]["properties"]["preset"]["enum"]
    assert set(enum) == set(MODEL_PRESETS) | {None}
    from ecorec.config_schema import check_config

    check_config({**CONFIG, "train": train}, str(REPO_ROOT / "schemas" / "config.schema.yaml"), [])


def test_default_runs_evaluate_whole_val_and_test_splits(wf):
    """config.yaml and the run config agree: every run scores the whole val and test splits at its end."""
    from ecorec.train.config import TrainSection

    cfg = _run_config(wf)
    assert cfg.train.eval_batches == 0 == TrainSection().eval_batches
    assert cfg.train.eval_splits == ["val", "test"] == TrainSection().eval_splits


def test_lr_schedule_of_the_default_runs_follows_their_length(wf):
    """config.yaml's schedule is given as fractions of the run: at the default 20 steps it is the MLPerf
    curve it always was (warm-up 3, decay over steps 10-20); at 10x the steps every length is 10x."""
    s = CONFIG["train"]["lr_schedule"]
    cfg = _run_config(wf)
    assert cfg.lr_schedule.resolve(20) == (3, 10, 10)
    assert cfg.lr_schedule.resolve(200) == (30, 100, 100)
    assert cfg.lr_schedule.decay_end_lr == s["decay_end_lr"]


def test_a_run_asking_for_more_tables_than_its_dataset_has_is_named(tmp_path, monkeypatch):
    """The table count comes from the synthetic entry, or from a registered folder's metadata.json (unknown,
    so not checked, before the folder exists)."""
    import polars as pl

    from ecorec.data import write_dataset

    wf = WorkflowConfig(CONFIG, REPO_ROOT)
    tables = CONFIG["datasets"]["synthetic"]["num_tables"]
    _run_config(wf, tables=str(tables))
    with pytest.raises(
        ValueError, match=rf"T{tables + 1}-R1-b64-W1: asks for the first {tables + 1} tables but"
    ):
        _run_config(wf, tables=str(tables + 1))
    monkeypatch.chdir(tmp_path)
    datasets = {**CONFIG["datasets"], "clicks": {"source": "parquet", "path": "data/clicks"}}
    wf = WorkflowConfig({**CONFIG, "datasets": datasets, "dataset": "clicks"}, REPO_ROOT)
    assert wf.known_num_tables("clicks") is None
    _run_config(wf, dataset="clicks", tables="3")  # nothing to check against yet
    frame = pl.DataFrame({"y": [0, 1] * 4, "user": list(range(8)), "site": ["a", "b"] * 4})
    write_dataset("data/clicks", frame, source="clicks", sparse=["user", "site"], label="y")
    _run_config(wf, dataset="clicks", tables="2")
    with pytest.raises(ValueError, match=r"dataset 'clicks' has 2 \(data/clicks/metadata.json\)"):
        _run_config(wf, dataset="clicks", tables="3")


def _deep_merge(base: dict, overlay: dict) -> dict:
    """Snakemake's merge of config files: mappings merge, everything else is replaced."""
    out = dict(base)
    for key, value in overlay.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _deep_merge(base[key], value) if both else value
    return out


def test_overlays_keep_their_schedules():
    """config.paper.yaml's schedule is the 20 / 100 / 100 steps of its 200 it always was; an overlay may give
    steps instead of config.yaml's fractions by setting those to null (without: an error saying so)."""
    from ecorec.train import ConfigError

    paper = _deep_merge(CONFIG, yaml.safe_load((REPO_ROOT / "config.paper.yaml").read_text()))
    cfg = _run_config(WorkflowConfig(paper, REPO_ROOT), dataset=paper["dataset"])
    assert cfg.lr_schedule.resolve(paper["train"]["steps"]) == (20, 100, 100)
    steps = {"warmup_steps": 2, "decay_start_step": 5, "decay_steps": 5}
    nulls = {"warmup_fraction": None, "decay_start_fraction": None, "decay_fraction": None}
    mine = _deep_merge(CONFIG, {"train": {"lr_schedule": {**steps, **nulls}}})
    assert _run_config(WorkflowConfig(mine, REPO_ROOT)).lr_schedule.resolve(20) == (2, 5, 5)
    mine = _deep_merge(CONFIG, {"train": {"lr_schedule": steps}})
    with pytest.raises(ConfigError, match="give lr_schedule.warmup_steps or warmup_fraction, not both"):
        _run_config(WorkflowConfig(mine, REPO_ROOT))
