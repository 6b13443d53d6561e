"""A prepared dataset registered in the config (`source: parquet` + `path`) becomes results/datasets/<name>/
through rule register_parquet; a bad registration fails at parse time naming the key."""

from __future__ import annotations

import re

import yaml

from ecorec.data import read_metadata, write_dataset
from tests.workflow.snakemake_cli import REPO_ROOT, run_snakemake


def _config(tmp_path, entry: dict) -> str:
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    config["datasets"]["clicks"] = entry
    config["dataset"] = "clicks"
    path = tmp_path / "clicks.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_register_parquet_rule_links_the_dataset(tmp_path):
    import polars as pl

    frame = pl.DataFrame({"y": [0, 1] * 8, "user": list(range(16)), "site": ["a", "b", "c", "d"] * 4})
    write_dataset(tmp_path / "data" / "clicks", frame, source="my_clicks", sparse=["user", "site"], label="y")
    config = _config(tmp_path, {"source": "parquet", "path": "data/clicks", "description": "sixteen clicks"})
    proc = run_snakemake("--cores", "1", "results/datasets/clicks", "--configfile", config, workdir=tmp_path)
    assert "register_parquet" in proc.stdout + proc.stderr
    meta = read_metadata(tmp_path / "results" / "datasets" / "clicks")
    assert meta.source == "my_clicks" and meta.features == ("user", "site") and meta.num_samples == 16
    assert meta.provenance["registered"]["description"] == "sixteen clicks"
    # config.yaml's runs ask for 32 tables of this 2-table dataset: the dry run says so, naming a run
    args = ("-n", "--cores", "1", "train_runs", "--configfile", config)
    proc = run_snakemake(*args, workdir=tmp_path, check=False)
    assert proc.returncode != 0
    # the first job of the DAG to ask: a run, or the compute split (the dilation's) at cluster.split's tables
    message = r"(T\d+-R\d+-b\d+-W\d+|cluster\.split \(.*\)): asks for the first \d+ tables "
    message += r"but dataset 'clicks' has 2 "
    message += r"\(data/clicks/metadata.json\)"
    assert re.search(message, proc.stdout + proc.stderr)


def test_registration_errors_name_the_key(tmp_path):
    config = _config(tmp_path, {"source": "parquet"})  # no path
    proc = run_snakemake("-n", "--cores", "1", "--configfile", config, workdir=tmp_path, check=False)
    assert proc.returncode != 0
    assert "datasets.clicks: 'path' is a required property" in proc.stdout + proc.stderr
    config = _config(tmp_path, {"source": "parquet", "path": "nowhere"})
    proc = run_snakemake("-n", "--cores", "1", "--configfile", config, workdir=tmp_path, check=False)
    assert proc.returncode != 0
    assert (
        "config datasets.clicks.path: nowhere is not an ecorec Parquet dataset" in proc.stdout + proc.stderr
    )
