"""rules/figures.smk: the figures' DAG on the default and paper configs, one real run of the whole pipeline on
a tiny overlay, and what a change reruns afterwards (dry runs with the default rerun triggers)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from ecorec.workflow.configfiles import merge_config
from tests.workflow.snakemake_cli import REPO_ROOT, dry_run_job_counts, run_snakemake

# What the workflow reads from the repository: copied, so that a test can edit the copy's ecorec sources.
WORKFLOW_PARTS = [
    "Snakefile",
    "rules",
    "workflow_scripts",
    "schemas",
    "report",
    "profiles",
    "ecorec",
    "kernels",
]
WORKFLOW_PARTS += ["config.yaml", "config.paper.yaml"]

#: The tests' small shapes (the default config keeps the paper's per-worker shapes).
TINY = yaml.safe_load((REPO_ROOT / "tests" / "config.test.yaml").read_text())
FIGURE_RULES = {"fig10", "fig11", "fig12", "fig16", "table1"}
AGGREGATES = ("all", "figures", "hetgmp", "placement", "regime")


def _overlay(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _jobs(workdir: Path, *overlays: str) -> dict[str, int]:
    """{rule: jobs} a dry run of the default target would run, without the aggregate rules."""
    counts = dry_run_job_counts("--configfile", str(workdir / "config.yaml"), *overlays, workdir=workdir)
    return {rule: n for rule, n in counts.items() if rule not in AGGREGATES}


def _edit(path: Path) -> str:
    """Append a comment to a source file (its content hash changes); returns the old text."""
    old = path.read_text()
    path.write_text(old + "\n# edited by tests/workflow/test_figures.py\n")
    return old


def _training_points(cfg: dict) -> set[tuple]:
    """(system, tables, world, local batch, target world) of every training point of figures 10, 12 and 16:
    the target is the figure's paper world (fig10, fig16) or one target node per emulated node (fig12)."""
    emulated = cfg["cluster"]["emulate"]
    gpus = cfg["cluster"]["profiles"][cfg["cluster"]["profile"]]["gpus_per_node"]
    points = set()
    for name in ("fig10", "fig16"):
        section = cfg[name]
        target = section["paper"]["world"] if emulated else section["world"]
        points |= {
            (s, t, section["world"], section["batch"], target)
            for s in section["systems"]
            for t in section["tables"]
        }
    section = cfg["fig12"]
    points |= {
        (s, section["tables"], w, section["batch"], w * gpus if emulated else w)
        for s in section["systems"]
        for w in section["worlds"]
    }
    return points


def _launches(counts: dict[str, int]) -> int:
    """Jobs of the launch rules (one torchrun launch per figure point: rules/train.smk)."""
    return sum(n for rule, n in counts.items() if rule.startswith("train_fig"))


def _assert_one_job_per_point(counts: dict[str, int], cfg: dict) -> None:
    points = _training_points(cfg)
    assert counts["train_config"] == len(points)  # a point two figures share runs once
    assert _launches(counts) == len({p[1:] for p in points})  # one launch per (tables, world, batch, target)
    assert "train" not in counts
    assert counts["bench_kernels"] == len(cfg["fig11"]["batch_sizes"])
    assert counts["bench_memory"] == len(cfg["table1"]["batch_sizes"])
    assert all(counts[rule] == 1 for rule in FIGURE_RULES)


def test_default_and_paper_dry_runs_have_one_job_per_grid_point(tmp_path):
    default = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    (tmp_path / "results" / "datasets" / default["dataset"]).mkdir(parents=True)
    counts = dry_run_job_counts("figures", "--configfile", str(REPO_ROOT / "config.yaml"), workdir=tmp_path)
    _assert_one_job_per_point(counts, default)
    # fig10: 5 systems (torchrec_tt: EcoRec's TT sharder in TorchRec) x 2 table counts; fig12: 3 systems x 3
    # worlds; fig16: 4 systems
    assert len(_training_points(default)) == 10 + 9 + 4 and _launches(counts) == 2 + 3 + 1

    paper = merge_config(default, yaml.safe_load((REPO_ROOT / "config.paper.yaml").read_text()))
    paper_dir = tmp_path / "paper"
    (paper_dir / "results" / "datasets" / paper["dataset"]).mkdir(parents=True)
    counts = dry_run_job_counts(
        "figures",
        "--workflow-profile",
        str(REPO_ROOT / "profiles" / "slurm"),
        "--configfile",
        str(REPO_ROOT / "config.yaml"),
        str(REPO_ROOT / "config.paper.yaml"),
        workdir=paper_dir,
    )
    _assert_one_job_per_point(counts, paper)
    # fig10: 4 systems x Meta-788/480/240 at 32 GPUs; fig12: 3 systems x 3 more world sizes (its 32 GPUs are
    # fig10's point); fig16: 4 x 3 at 16 GPUs
    assert len(_training_points(paper)) == 12 + 9 + 12 and _launches(counts) == 3 + 3 + 3
    assert len(paper["fig11"]["batch_sizes"]) == 7 and paper["table1"]["batch_sizes"] == [10000, 20000]


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    """The whole default target, run for real once on the tiny overlay, in a copy of the workflow."""
    root = tmp_path_factory.mktemp("pipeline")
    for part in WORKFLOW_PARTS:
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(
                source, root / part, ignore=shutil.ignore_patterns("__pycache__", "*.so", "build")
            )
        else:
            shutil.copy2(source, root / part)
    tiny = _overlay(root / "tiny.yaml", TINY)
    # timings do not matter here: timed jobs may overlap (the cores still bound them)
    args = ("--cores", "2", "--resources", "timed_jobs=2", "--configfile", str(root / "config.yaml"), tiny)
    run_snakemake(*args, workdir=root, timeout=900)
    return root, tiny


@pytest.mark.slow  # ~2-3 min: six 2-rank training runs, four kernel benchmarks, the report
def test_figures_and_what_a_change_reruns(tiny_pipeline):
    root, tiny = tiny_pipeline
    for name in FIGURE_RULES:
        assert (root / "results" / "figures" / f"{name}.png").stat().st_size > 0
        assert (root / "results" / "figures" / f"{name}.pdf").exists()
        assert len((root / "results" / "figures" / f"{name}.csv").read_text().splitlines()) > 1
    assert _jobs(root, tiny) == {}

    # mtime only: nothing reruns
    later = time.time() + 5
    for path in (root / "ecorec" / "plots" / "figures.py", root / "ecorec" / "tt" / "__init__.py"):
        os.utime(path, (later, later))
    assert _jobs(root, tiny) == {}

    # one figure's settings: only its new points and the plots of the figures that share them (a point is one
    # launch: a new system at fig16's point, which figures 10 and 12 share, reruns that launch)
    fig16 = _overlay(root / "fig16.yaml", {"fig16": {**TINY["fig16"], "systems": ["bwp", "twp", "ecorec"]}})
    assert _jobs(root, tiny, fig16) == {
        "train_config": 1,
        "train_fig10_fig12_fig16": 1,
        "fig16": 1,
        "fig10": 1,
        "fig12": 1,
        "regime_table": 1,
    }
    # fig16 moves to a new point: its launch (two new runs and twp's plan), and the point it leaves keeps
    # figures 10 and 12's systems only: a launch with another set of systems (inputs changed), so it reruns
    new_point = _overlay(root / "new.yaml", {"fig16": {**TINY["fig16"], "batch": 32}})
    assert _jobs(root, tiny, new_point) == {
        "train_config": 2,
        "sharding_plan": 1,
        "train_fig16": 1,
        "train_fig10_fig12": 1,
        "fig16": 1,
        "fig10": 1,
        "fig12": 1,
        "regime_table": 1,
    }
    fig11 = _overlay(root / "fig11.yaml", {"fig11": {**TINY["fig11"], "batch_sizes": [128, 256, 512]}})
    assert _jobs(root, tiny, fig11) == {"bench_kernels": 1, "fig11": 1, "regime_table": 1}
    fig12 = _overlay(root / "fig12.yaml", {"fig12": {**TINY["fig12"], "worlds": [2]}})
    assert _jobs(root, tiny, fig12) == {"fig12": 1, "regime_table": 1}  # a point dropped: only the plots

    # a plotting function: only the plots that import it (the source hash follows the import graph:
    # reuse_histogram draws with ecorec.plots.stats and .style, not .figures)
    plots = root / "ecorec" / "plots" / "figures.py"
    old = _edit(plots)
    assert _jobs(root, tiny) == {rule: 1 for rule in FIGURE_RULES | {"regime_table"}}
    plots.write_text(old)
    assert _jobs(root, tiny) == {}
    style = root / "ecorec" / "plots" / "style.py"
    old = _edit(style)
    expected = FIGURE_RULES | {"reuse_histogram", "regime_table", "hetgmp_figure", "placement_figure"}
    assert _jobs(root, tiny) == {rule: 1 for rule in expected}
    style.write_text(old)
    assert _jobs(root, tiny) == {}

    # the training benchmark (python -m ecorec.bench train) is no input of any result
    bench_train = root / "ecorec" / "bench" / "train.py"
    old = _edit(bench_train)
    assert _jobs(root, tiny) == {}
    bench_train.write_text(old)

    # the TT library: kernel benchmarks, training runs and their figures, never the dataset or the environment
    tt = root / "ecorec" / "tt" / "__init__.py"
    old = _edit(tt)
    jobs = _jobs(root, tiny)
    tt.write_text(old)
    assert jobs["bench_kernels"] == 2 and jobs["bench_memory"] == 2 and _launches(jobs) == 3
    assert FIGURE_RULES <= set(jobs)
    assert "synthetic" not in jobs and "environment" not in jobs
    assert _jobs(root, tiny) == {}


@pytest.mark.slow
def test_report_has_every_figure(tiny_pipeline):
    root, tiny = tiny_pipeline
    run_snakemake("--configfile", str(root / "config.yaml"), tiny, "--report", "report.html", workdir=root)
    html = (root / "report.html").read_text()
    for name in FIGURE_RULES:
        assert f"{name}.png" in html
    assert "The paper" in html


@pytest.mark.slow
def test_cost_calibration_fitted_from_the_kernel_benchmarks(tiny_pipeline):
    from ecorec.planner import CostCalibration

    root, tiny = tiny_pipeline
    fit = _overlay(root / "fit.yaml", {"planner": {"calibration": "fit"}})
    target = "results/plans/synthetic/calibration-cpu.json"
    run_snakemake(target, "--cores", "1", "--configfile", str(root / "config.yaml"), tiny, fit, workdir=root)
    calibration = CostCalibration.load(root / target)
    assert set(calibration.fits) == {"ecorec", "fbtt", "none"}  # TINY's figure 11 variants
    assert all(a > 0 and b >= 0 for a, b in calibration.fits.values())
    # the plans now depend on it: they (and the runs that read them) are out of date, nothing else is
    jobs = _jobs(root, tiny, fit)
    assert jobs["sharding_plan"] >= 1 and "bench_kernels" not in jobs and "synthetic" not in jobs
