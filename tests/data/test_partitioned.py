"""PartitionedBatchLoader: a step's batch equals the samples read one by one, in the schedule's order."""

from __future__ import annotations

import numpy as np
import pytest

from ecorec.data.parquet import DENSE, LABEL, ParquetRangeReader, jagged_arrays, read_metadata
from ecorec.data.partitioned import PartitionedBatchLoader, rank_step_samples
from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("part") / "ds"
    config = SyntheticConfig(num_tables=3, num_samples=640, rows_min=50, rows_max=500, num_dense=2, seed=1)
    generate_synthetic_dataset(path, config, row_group_size=64, splits={"train": 0.75, "val": 0.25})
    return path


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_equal_the_samples_read_one_by_one(dataset, shuffle):
    meta = read_metadata(dataset)
    start, stop = meta.splits["train"]
    samples = np.random.default_rng(0).choice(stop - start, size=150, replace=False)  # across row groups
    loader = PartitionedBatchLoader(
        dataset, split="train", samples=samples, local_batch_size=32, steps_per_epoch=6, rank=1, seed=7,
        shuffle=shuffle,
    )  # fmt: skip
    batches = list(loader)
    assert len(batches) == 6
    with ParquetRangeReader(meta, (LABEL, DENSE, *meta.features)) as reader:
        for step, batch in enumerate(batches):
            ids = rank_step_samples(samples, 32, step, rank=1, seed=7, shuffle=shuffle) + start
            rows = [reader.read(int(s), int(s) + 1) for s in ids]
            labels = np.concatenate([r[LABEL].to_numpy() for r in rows])
            dense = np.stack([r[DENSE].flatten().to_numpy() for r in rows])
            np.testing.assert_array_equal(batch.labels.numpy(), labels)
            np.testing.assert_array_equal(batch.dense.numpy(), dense.reshape(32, meta.num_dense))
            for f in meta.features:
                expect = [jagged_arrays(r[f]) for r in rows]
                np.testing.assert_array_equal(
                    batch.sparse[f].values().numpy(), np.concatenate([v for v, _ in expect])
                )
                np.testing.assert_array_equal(
                    batch.sparse[f].lengths().numpy(), np.concatenate([n for _, n in expect])
                )
