"""The sharding script (rules `sharding_plan` and `sharding_methods`) refuses more tables than the dataset
has, before any file is written, and the error names the statistics file."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest
import yaml

from tests.workflow.snakemake_cli import REPO_ROOT, snakemake_env

DRIVER = """
import runpy
from types import SimpleNamespace
snakemake = SimpleNamespace(
    rule={rule!r},
    input=SimpleNamespace(stats={stats!r}, calibration=[]),
    output=[{output!r}],
    log=[{log!r}],
    wildcards=SimpleNamespace(tables="8", world="2", gbatch="64", algorithm="ecorec", method="greedy"),
    params=SimpleNamespace(
        tt_min_rows=0, tt_min_compression=1.0, optimizer="sgd", memory_cap_bytes=None, seed=0,
        methods=["greedy"],
    ),
    config={config!r},
    scriptdir={scriptdir!r},
)
runpy.run_path({script!r}, init_globals={{"snakemake": snakemake}}, run_name="__main__")
"""


@pytest.mark.parametrize("rule", ["sharding_plan", "sharding_methods"])
def test_more_tables_than_the_dataset_has_is_an_error_before_any_output(tmp_path, rule):
    stats = tmp_path / "tables.parquet"
    pl.DataFrame({"table": ["f0", "f1", "f2"], "rows": [10, 20, 30]}).write_parquet(stats)
    output = tmp_path / "plans" / "greedy" / "ecorec-T8-R2-G64.json"
    log = tmp_path / "plan.log"
    code = DRIVER.format(
        rule=rule,
        stats=str(stats),
        output=str(output),
        log=str(log),
        config=yaml.safe_load((REPO_ROOT / "config.yaml").read_text()),
        scriptdir=str(REPO_ROOT / "workflow_scripts"),
        script=str(REPO_ROOT / "workflow_scripts" / "sharding.py"),
    )
    proc = subprocess.run([sys.executable, "-c", code], env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode != 0
    text = log.read_text()
    assert f"ValueError: {stats}: 8 tables requested but the dataset's statistics list 3 tables" in text, text
    assert not output.parent.exists()
