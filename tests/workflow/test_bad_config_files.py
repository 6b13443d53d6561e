"""Config files the workflow reads are read strictly, through Snakemake's own command line: a key written
twice (last-wins, silently) and a syntax error name the file, the line and the column (or key) before anything
runs. Every workflow script logs through ``script_context``, so a script's error lands in the rule's log."""

from __future__ import annotations

import ast
import subprocess
import sys

import polars as pl
import pytest
import yaml

from ecorec.workflow.__main__ import main as workflow_main
from tests.workflow.snakemake_cli import REPO_ROOT, run_snakemake, snakemake_env

CONFIG_TEXT = (REPO_ROOT / "config.yaml").read_text()


def _line_of(text: str, prefix: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(prefix))


def _tabbed(text: str) -> str:
    """config.yaml with its `dataset:` line indented by a tab."""
    return text.replace("\ndataset:", "\n\tdataset:", 1)


@pytest.mark.parametrize(
    ("config_yaml", "expected"),
    [
        # a second `dataset:` appended to config.yaml would silently switch the whole pipeline's dataset
        (
            CONFIG_TEXT + "\ndataset: criteo_kaggle\n",
            rf"config.yaml:{len(CONFIG_TEXT.splitlines()) + 2}:1: key 'dataset' appears twice in this "
            rf"mapping (first at line {_line_of(CONFIG_TEXT, 'dataset:')})",
        ),
        # a `cluster:` section written twice used to say "'ranks_per_node' is a required property"
        (
            CONFIG_TEXT + "\ncluster:\n  emulate: false\n",
            "key 'cluster' appears twice in this mapping "
            f"(first at line {_line_of(CONFIG_TEXT, 'cluster:')})",
        ),
        (
            _tabbed(CONFIG_TEXT),
            f"config.yaml:{_line_of(CONFIG_TEXT, 'dataset:')}:1: not valid YAML",
        ),
    ],
    ids=["duplicate-dataset", "duplicate-cluster-section", "tab-indent"],
)
def test_config_yaml_is_read_strictly(tmp_path, config_yaml, expected):
    (tmp_path / "config.yaml").write_text(config_yaml)  # the Snakefile's `configfile: "config.yaml"`
    proc = run_snakemake("-n", "--cores", "1", workdir=tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in output, output
    assert "required property" not in output and "Config file is not valid JSON or YAML" not in output
    assert len(output.splitlines()) < 15, output


def test_an_overlay_with_two_planner_sections_is_refused(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("planner:\n  memory_cap_bytes: 1000000\nplanner:\n  seed: 3\n")
    proc = run_snakemake(
        "-n", "--cores", "1", "--configfile", str(REPO_ROOT / "config.yaml"), str(overlay),
        workdir=tmp_path, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{overlay}:3:1: key 'planner' appears twice in this mapping (first at line 1)" in output, output


def test_check_config_names_an_overlays_syntax_error(tmp_path, capsys):
    """Snakemake's command line reads overlays itself and names no file; check-config does."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("train:\n  steps: 3\n\teval_every: 1\n")
    assert workflow_main(["check-config", str(REPO_ROOT / "config.yaml"), str(overlay)]) == 2
    err = capsys.readouterr().err
    assert f"{overlay}:3:1: not valid YAML" in err and "replace the tab(s)" in err
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  steps: 3\n")
    assert workflow_main(["check-config", str(REPO_ROOT / "config.yaml"), str(good)]) == 0
    good.write_text("train:\n  steps: -3\n")
    assert workflow_main(["check-config", str(REPO_ROOT / "config.yaml"), str(good)]) == 2
    assert "train.steps: -3 is less than the minimum of 1" in capsys.readouterr().err


def test_every_workflow_script_starts_with_script_context():
    for script in sorted((REPO_ROOT / "workflow_scripts").glob("*.py")):
        calls = [
            node
            for node in ast.walk(ast.parse(script.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "script_context"
        ]
        assert calls, f"{script.name} does not call script_context(snakemake)"


DRIVER = """
import runpy
from types import SimpleNamespace
snakemake = SimpleNamespace(
    rule="placement_tasks", input=SimpleNamespace(tables={tables!r}), output=[{output!r}], log=[{log!r}],
    wildcards=SimpleNamespace(), params=SimpleNamespace(tasks={tasks!r}), config={config!r},
    scriptdir={scriptdir!r},
)
runpy.run_path({script!r}, init_globals={{"snakemake": snakemake}}, run_name="__main__")
"""


def test_placement_tasks_error_lands_in_the_rule_log(tmp_path):
    tables = tmp_path / "tables.parquet"
    pl.DataFrame({"table": [f"f{i}" for i in range(6)]}).write_parquet(tables)
    config = yaml.safe_load(CONFIG_TEXT)
    tasks = {**config["placement"]["tasks"], "tables_per_task": 8}
    log, output = tmp_path / "tasks.log", tmp_path / "tasks.json"
    code = DRIVER.format(
        tables=str(tables),
        output=str(output),
        log=str(log),
        tasks=tasks,
        config=config,
        scriptdir=str(REPO_ROOT / "workflow_scripts"),
        script=str(REPO_ROOT / "workflow_scripts" / "placement_tasks.py"),
    )
    proc = subprocess.run([sys.executable, "-c", code], env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode != 0
    text = log.read_text()
    expected = f"TaskError: config placement.tasks (6 tables in {tables}): the train pool has 3 tables"
    assert expected in text, text
    assert "lower tables_per_task to <= 3" in text and "Traceback" in text
    assert not output.exists()
