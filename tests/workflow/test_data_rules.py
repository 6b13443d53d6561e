"""rules/data.smk: the synthetic rule end to end, dry runs of download + conversion plans, config errors."""

from __future__ import annotations

import pytest
import yaml
from snakemake.exceptions import WorkflowError

from ecorec.data.parquet import read_metadata
from tests.workflow.snakemake_cli import REPO_ROOT, api_dry_run, dry_run_job_counts, run_snakemake

CONFIG = REPO_ROOT / "config.yaml"


def _overlay(tmp_path, name: str, overlay: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(overlay))
    return str(path)


@pytest.mark.slow  # ~15-20 s: two Snakemake runs and a job that imports torch
def test_synthetic_rule_end_to_end(tmp_path):
    tiny = _overlay(
        tmp_path,
        "tiny.yaml",
        {
            "datasets": {
                "synthetic": {
                    "num_tables": 4,
                    "num_samples": 2048,
                    "rows_min": 100,
                    "rows_max": 10000,
                    "reference_batch_size": 512,
                    "row_group_size": 512,
                }
            }
        },
    )
    target = "results/datasets/synthetic"
    run_snakemake("--cores", "1", target, "--configfile", str(CONFIG), tiny, workdir=tmp_path)
    meta = read_metadata(tmp_path / target)
    assert meta.num_samples == 2048 and len(meta.features) == 4 and meta.row_group_size == 512
    assert meta.splits == {"train": (0, 1638), "val": (1638, 1843), "test": (1843, 2048)}
    assert meta.provenance["reuse"]["col_size_total_variation"] < 0.1
    assert (tmp_path / target / "locality_stats.txt").exists()
    log = (tmp_path / "logs" / "datasets" / "synthetic.log").read_text()
    assert "synthetic: 100%" in log and "reuse TV" in log
    assert (tmp_path / "benchmarks" / "datasets" / "synthetic.tsv").exists()
    again = run_snakemake("-n", "--cores", "1", target, "--configfile", str(CONFIG), tiny, workdir=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_default_plan_builds_the_synthetic_dataset(tmp_path):
    counts = dry_run_job_counts("results/datasets/synthetic", "--configfile", str(CONFIG), workdir=tmp_path)
    assert counts == {"synthetic": 1}


def test_paper_plan_downloads_and_converts_all_2022_files(tmp_path):
    counts = dry_run_job_counts(
        "results/datasets/meta_dlrm_2022",
        "--configfile",
        str(CONFIG),
        str(REPO_ROOT / "config.paper.yaml"),
        workdir=tmp_path,
    )
    assert counts == {"download_meta_dlrm": 16, "to_parquet_meta_dlrm": 1}


def test_criteo_plans(tmp_path):
    kaggle = _overlay(tmp_path, "kaggle.yaml", {"dataset": "criteo_kaggle"})
    counts = dry_run_job_counts(
        "results/datasets/criteo_kaggle", "--configfile", str(CONFIG), kaggle, workdir=tmp_path
    )
    assert counts == {"download_criteo_kaggle": 1, "to_parquet_criteo": 1}
    terabyte = _overlay(
        tmp_path, "1tb.yaml", {"dataset": "criteo_1tb", "datasets": {"criteo_1tb": {"days": [0, 1, 23]}}}
    )
    counts = dry_run_job_counts(
        "results/datasets/criteo_1tb", "--configfile", str(CONFIG), terabyte, workdir=tmp_path
    )
    assert counts == {"download_criteo_1tb": 3, "to_parquet_criteo": 1}


def _config_error(tmp_path, overlay: dict) -> str:
    bad = _overlay(tmp_path, "bad.yaml", overlay)
    with pytest.raises((WorkflowError, ValueError)) as err:
        api_dry_run(tmp_path, [CONFIG, bad])
    return str(err.value)


def test_dataset_settings_are_validated_naming_the_key(tmp_path):
    message = _config_error(tmp_path, {"datasets": {"synthetic": {"num_tables": "many"}}})
    assert "'many' is not of type 'integer'" in message
    assert "datasets.synthetic.num_tables" in message
    message = _config_error(tmp_path, {"datasets": {"synthetic": {"rowz_min": 5}}})
    assert "Additional properties are not allowed ('rowz_min' was unexpected)" in message
    message = _config_error(
        tmp_path, {"datasets": {"meta_dlrm_2022": {"files": ["embedding_bag/2022/oops.pt.gz"]}}}
    )
    assert "'embedding_bag/2022/oops.pt.gz' does not match" in message
    message = _config_error(tmp_path, {"datasets": {"criteo_kaggle": {"num_embeddings_per_feature": [5]}}})
    assert "[5] is too short" in message
    message = _config_error(tmp_path, {"dataset": "imagenet"})
    assert "dataset 'imagenet' is not an entry of datasets" in message
