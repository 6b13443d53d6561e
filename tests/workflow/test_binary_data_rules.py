"""rules/binary_data.smk: TorchRec npy days and MLPerf .bin files the user brings -> Parquet datasets, through
Snakemake end to end (one run, both rules), and their config entries validated by the schema."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from snakemake.exceptions import WorkflowError

from ecorec.data.parquet import read_metadata
from tests.workflow.snakemake_cli import REPO_ROOT, api_dry_run, run_snakemake

CONFIG = REPO_ROOT / "config.yaml"


@pytest.mark.slow  # ~20-30 s: one Snakemake run with two jobs that import torch
def test_binary_sources_convert_through_the_workflow(tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 300), ("val", 40), ("test", 30)):
        records = np.empty((n, 40), dtype="<i4")
        records[:, 0] = rng.integers(0, 2, n)
        records[:, 1:14] = rng.integers(0, 100, (n, 13))
        records[:, 14:] = rng.integers(0, 10**6, (n, 26))
        files[split] = str(tmp_path / f"terabyte_processed_{split}.bin")
        (tmp_path / f"terabyte_processed_{split}.bin").write_bytes(records.tobytes())
    npy = tmp_path / "npy"
    npy.mkdir()
    for day, n in ((0, 50), (1, 21)):
        np.save(npy / f"day_{day}_dense.npy", rng.random((n, 13), dtype=np.float32))
        np.save(npy / f"day_{day}_sparse.npy", rng.integers(0, 10**9, (n, 26)))
        np.save(npy / f"day_{day}_labels.npy", rng.integers(0, 2, (n, 1)).astype(np.int32))
    overlay = tmp_path / "over.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "datasets": {
                    "mlperf_bin": {"source": "mlperf_bin", "files": files, "row_group_size": 64},
                    "criteo_npy": {"source": "criteo_npy", "folder": str(npy), "days": [0, 1]},
                }
            }
        )
    )
    targets = ["results/datasets/mlperf_bin", "results/datasets/criteo_npy"]
    run_snakemake("--cores", "1", *targets, "--configfile", str(CONFIG), str(overlay), workdir=tmp_path)
    bin_meta = read_metadata(tmp_path / targets[0])
    assert bin_meta.source == "mlperf_bin"
    assert bin_meta.splits == {"train": (0, 300), "val": (300, 340), "test": (340, 370)}
    npy_meta = read_metadata(tmp_path / targets[1])
    assert npy_meta.source == "criteo_npy"
    assert npy_meta.splits == {"train": (0, 50), "val": (50, 61), "test": (61, 71)}  # day 1: ceil(21/2) val


def test_binary_source_settings_are_validated(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"datasets": {"mine": {"source": "mlperf_bin", "files": {"val": "x.bin"}}}})
    )
    with pytest.raises((WorkflowError, ValueError)) as err:
        api_dry_run(tmp_path, [CONFIG, bad])
    assert "'train' is a required property" in str(err.value)
