"""The sharding-plan scripts refuse more tables than the dataset has, before any file is written."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["sharding_plan.py", "sharding_methods.py"])
def test_more_tables_than_the_dataset_has_is_an_error_before_any_output(tmp_path, script):
    stats = tmp_path / "tables.parquet"
    pl.DataFrame({"table": ["f0", "f1", "f2"], "rows": [10, 20, 30]}).write_parquet(stats)
    output = tmp_path / "plans" / "greedy" / "ecorec-T8-R2-G64.json"
    fake = SimpleNamespace(
        input=SimpleNamespace(stats=str(stats), calibration=[]),
        output=[str(output)],
        log=[str(tmp_path / "plan.log")],
        wildcards=SimpleNamespace(tables="8", world="2", gbatch="64", algorithm="ecorec", method="greedy"),
        params=SimpleNamespace(
            tt_min_rows=0, optimizer="sgd", memory_cap_bytes=None, seed=0, methods=["greedy"]
        ),
    )
    with pytest.raises(ValueError) as err:
        runpy.run_path(str(REPO / "workflow_scripts" / script), init_globals={"snakemake": fake})
    assert str(err.value).startswith(
        f"{stats}: 8 tables requested but the dataset's statistics list 3 tables"
    )
    assert not output.parent.exists()
