"""Shared fixtures of the data tests: small datasets made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

#: A small synthetic dataset spread over several files, with a short last row group in each file.
SMALL_SYNTHETIC = SyntheticConfig(
    num_tables=6, num_samples=3000, rows_min=50, rows_max=5000, reference_batch_size=512, num_dense=5, seed=7
)


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("datasets") / "small_synthetic"
    generate_synthetic_dataset(
        path,
        SMALL_SYNTHETIC,
        row_group_size=256,
        samples_per_file=1100,
        splits={"train": 0.7, "val": 0.15, "test": 0.15},
    )
    return path
