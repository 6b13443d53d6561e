"""Feature statistics against hand-computed values on a hand-made dataset."""

import math

import numpy as np
import pyarrow as pa
import pytest

from ecorec.data import read_locality_stats, read_metadata, write_parquet_dataset
from ecorec.stats import compute_feature_stats, dataset_feature_stats

# Two tables, batch size 4, two batches. Table "a" has 100 rows: TT shape p = [4, 5, 5] (group = idx // 5).
# Table "b" has 1000 rows: p = [10, 10, 10] (prefix group = idx // 10).
A = [[0, 1], [1], [], [7, 1, 0], [99], [99, 99], [3], [12]]
B = [[5], [5], [5], [5], [0, 10, 11], [], [999], [20, 21]]


def _dataset(tmp_path):
    def column(bags):
        return pa.array(bags, type=pa.list_(pa.int64()))

    batch = {"label": pa.array([0.0] * 8, pa.float32()), "a": column(A), "b": column(B)}
    path = tmp_path / "hand"
    write_parquet_dataset(
        path,
        [batch],
        source="synthetic",
        features=["a", "b"],
        num_embeddings={"a": 100, "b": 1000},
        num_dense=0,
        has_labels=True,
        row_group_size=4,
        splits={"train": [0, 8]},
    )
    return path


def test_statistics_of_a_hand_made_dataset(tmp_path):
    stats = dataset_feature_stats(
        _dataset(tmp_path), batch_size=4, num_batches=2, embedding_dim=4, tt_ranks=2
    )
    rows = {row["table"]: row for row in stats.table.iter_rows(named=True)}
    a, b = rows["a"], rows["b"]
    assert a["tt_p_shapes"] == [4, 5, 5] and b["tt_p_shapes"] == [10, 10, 10]
    # Batch 0 of "a": [0,1],[1],[],[7,1,0] -> nnz 6, uniques {0,1,7} (U=3), groups {0,1} (G=2).
    # Batch 1 of "a": [99],[99,99],[3],[12] -> nnz 5, uniques {3,12,99} (U=3), groups {0,2,19} (G=3).
    assert a["nnz"] == pytest.approx((6 + 5) / 2)
    assert a["unique"] == pytest.approx(3.0)
    assert a["groups"] == pytest.approx(2.5)
    # level 0 (idx // 25): batch 0 {0}, batch 1 {0, 3} -> 1.5
    assert a["level_counts"] == pytest.approx([1.5, 2.5, 3.0])
    # Batch 0 of "b": 5 x4 -> nnz 4, U 1, G 1.
    # Batch 1: [0,10,11],[],[999],[20,21] -> nnz 6, U 6, G {0,1,2,99} = 4.
    assert b["nnz"] == pytest.approx(5.0)
    assert b["unique"] == pytest.approx(3.5)
    assert b["groups"] == pytest.approx(2.5)
    # pooling: lengths of "a" are 2,1,0,3,1,2,1,1 -> mean 11/8, median (lower) 1, empty 1/8
    assert a["pooling_mean"] == pytest.approx(11 / 8)
    assert a["pooling_p50"] == 1.0
    assert a["pooling_p99"] == 3.0
    assert a["empty_bag_fraction"] == pytest.approx(1 / 8)
    assert b["empty_bag_fraction"] == pytest.approx(1 / 8)
    # Reuse histogram over both tables and batches: access counts of distinct rows per batch:
    # a0: 0->2, 1->3, 7->1; a1: 99->3, 3->1, 12->1; b0: 5->4; b1: six rows once each.
    counts = [2, 3, 1, 3, 1, 1, 4, 1, 1, 1, 1, 1, 1]
    buckets = {"(0, 1]": 9, "(1, 2]": 1, "(2, 4]": 3}
    block = stats.locality
    assert block.avg_indices == pytest.approx(sum(counts) / 2)
    assert block.avg_unique == pytest.approx(len(counts) / 2)
    assert block.col_size_hist[:3] == pytest.approx([n / len(counts) for n in buckets.values()])
    assert sum(block.col_size_hist[3:]) == 0
    assert block.index_ratio[:3] == pytest.approx([9 / 21, 2 / 21, 10 / 21])


def test_written_outputs_round_trip(tmp_path):
    stats = dataset_feature_stats(
        _dataset(tmp_path), batch_size=4, num_batches=2, embedding_dim=4, tt_ranks=2
    )
    stats.write(tmp_path / "features.parquet", tmp_path / "locality_stats.txt")
    import polars as pl

    assert pl.read_parquet(tmp_path / "features.parquet").equals(stats.table)
    back = read_locality_stats(tmp_path / "locality_stats.txt").blocks[0]
    assert abs(back.avg_unique - stats.locality.avg_unique) <= 0.5  # the format writes whole numbers
    assert back.col_size_hist == pytest.approx(stats.locality.col_size_hist, abs=5e-4)


def test_bad_inputs(tmp_path):
    path = _dataset(tmp_path)
    with pytest.raises(ValueError, match="has 2 batches of 4, fewer than the num_batches=3"):
        dataset_feature_stats(path, batch_size=4, num_batches=3, embedding_dim=4, tt_ranks=2)
    with pytest.raises(ValueError, match=r"table 'x': index out of range \[0, 10\): min 0, max 10"):
        compute_feature_stats(
            [{"x": (np.array([0, 10]), np.array([2]))}], {"x": 10}, batch_size=1, embedding_dim=4, tt_ranks=2
        )
    with pytest.raises(KeyError, match="no num_embeddings for table 'y'"):
        compute_feature_stats([{"y": (np.array([0]), np.array([1]))}], {}, batch_size=1)
    with pytest.raises(ValueError, match="no batches"):
        compute_feature_stats([], {}, batch_size=1)


def test_three_ranks_give_four_cores_like_training(tmp_path):
    from ecorec.tt import TTEmbeddingBag

    path = _dataset(tmp_path)
    ranks = [2, 3, 2]
    derived = dataset_feature_stats(path, batch_size=4, num_batches=2, embedding_dim=4, tt_ranks=ranks)
    explicit = dataset_feature_stats(
        path, batch_size=4, num_batches=2, embedding_dim=4, tt_ranks=ranks, tt_num_cores=len(ranks) + 1
    )
    assert derived.table.equals(explicit.table)
    rows = {row["table"]: row for row in derived.table.iter_rows(named=True)}
    for name, num_rows, bags in (("a", 100, A), ("b", 1000, B)):
        row = rows[name]
        # The shape a training run builds for this table (TTEmbeddingBag with the same rank list).
        training = TTEmbeddingBag(num_rows, 4, ranks).shapes
        assert row["tt_p_shapes"] == list(training.p_shapes) and len(row["tt_p_shapes"]) == 4
        assert row["tt_ranks"] == [1, 2, 3, 2, 1]
        # Independent oracle: distinct prefixes idx // (p_{k+1} * ... * p_3) of each batch, for k = 0..3.
        p = row["tt_p_shapes"]
        assert math.prod(p) >= num_rows
        divisors = [math.prod(p[k + 1 :]) for k in range(4)]
        per_batch = []
        for start in (0, 4):
            ids = [i for bag in bags[start : start + 4] for i in bag]
            per_batch.append([len({i // div for i in ids}) for div in divisors])
        expected = np.mean(per_batch, axis=0)
        assert row["level_counts"] == pytest.approx(list(expected))
        assert row["groups"] == pytest.approx(expected[-2])
    with pytest.raises(ValueError, match="inconsistent number of cores"):
        dataset_feature_stats(
            path, batch_size=4, num_batches=2, embedding_dim=4, tt_ranks=ranks, tt_num_cores=3
        )


def _many_tables_dataset(tmp_path, num_tables=7, num_samples=60):
    """Random tables (some bags empty, one table never used) spread over several files."""
    rng = np.random.default_rng(4)
    rows = [int(r) for r in rng.integers(5, 3000, size=num_tables)]
    features = [f"t{i}" for i in range(num_tables)]
    columns = {"label": pa.array(np.zeros(num_samples, np.float32))}
    for name, n in zip(features, rows):
        lengths = rng.integers(0, 6, size=num_samples)
        if name == "t3":
            lengths[:] = 0
        hot = rng.integers(0, n, size=4)
        bags = [
            [
                int(hot[rng.integers(0, 4)]) if rng.random() < 0.5 else int(rng.integers(0, n))
                for _ in range(k)
            ]
            for k in lengths
        ]
        columns[name] = pa.array(bags, type=pa.list_(pa.int64()))
    path = tmp_path / "many"
    write_parquet_dataset(
        path,
        [columns],
        source="synthetic",
        features=features,
        num_embeddings=dict(zip(features, rows)),
        num_dense=0,
        has_labels=True,
        row_group_size=8,
        splits={"train": [0, num_samples]},
        samples_per_file=24,
    )
    return path, features


def test_reading_tables_in_groups_gives_identical_statistics(tmp_path, monkeypatch):
    import ecorec.stats.features as features_module
    from ecorec.stats import dataset_lookups

    path, features = _many_tables_dataset(tmp_path)
    kwargs = dict(batch_size=16, num_batches=3, embedding_dim=8, tt_ranks=4)
    # The all-at-once path: every table of a batch in one read.
    reference = compute_feature_stats(
        dataset_lookups(path, batch_size=16, num_batches=3, features=features),
        {f: read_metadata(path).num_embeddings[f] for f in features},
        batch_size=16,
        embedding_dim=8,
        tt_ranks=4,
        source="many",
    )
    reads: list[int] = []

    def counting_lookups(*args, **kw):
        for lookups in dataset_lookups(*args, **kw):
            reads.append(len(lookups))
            yield lookups

    monkeypatch.setattr(features_module, "dataset_lookups", counting_lookups)
    for tables_per_read, widest in ((1, 1), (3, 3), (len(features), len(features)), (None, len(features))):
        reads.clear()
        stats = dataset_feature_stats(path, tables_per_read=tables_per_read, **kwargs)
        assert max(reads) == widest  # no read holds more tables than asked
        assert sum(reads) == 3 * len(features)  # every table of every batch read exactly once
        assert stats.table["table"].to_list() == features
        assert stats.table.equals(reference.table), tables_per_read
        assert stats.locality == reference.locality, tables_per_read
        assert stats.locality.num_batches == 3
    with pytest.raises(ValueError, match="tables_per_read must be >= 1"):
        dataset_feature_stats(path, tables_per_read=0, **kwargs)


def test_locality_block_name_carries_tables_and_batch_size(tmp_path):
    stats = dataset_feature_stats(
        _dataset(tmp_path), batch_size=4, num_batches=2, embedding_dim=4, tt_ranks=2
    )
    block = stats.locality
    assert block.source == "hand_t2_bs4"
    assert block.reference_num_tables == 2
    # nnz over both tables and batches is 11 + 10 = 21: 10.5 per batch of 4 samples and 2 tables.
    assert block.mean_pooling() == pytest.approx(21 / 2 / (2 * 4))
    stats.write(tmp_path / "f.parquet", tmp_path / "l.txt")
    assert read_locality_stats(tmp_path / "l.txt").blocks[0].reference_num_tables == 2


def test_stats_rule_output_can_be_fed_back_to_the_generator(tmp_path, caplog):
    import logging

    from ecorec.data.synthetic import SyntheticConfig, SyntheticDatasetGenerator, generate_synthetic_dataset

    config = SyntheticConfig(
        num_tables=4, num_samples=4096, rows_min=20_000, rows_max=200_000, reference_batch_size=1024, seed=2
    )
    generate_synthetic_dataset(tmp_path / "syn", config, row_group_size=1024)
    stats = dataset_feature_stats(
        tmp_path / "syn", batch_size=1024, num_batches=4, embedding_dim=8, tt_ranks=4
    )
    stats.write(tmp_path / "features.parquet", tmp_path / "locality_stats.txt")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ecorec.data.synthetic"):
        generator = SyntheticDatasetGenerator(
            SyntheticConfig(
                num_tables=3,
                num_samples=1024,
                rows=(1000, 1000, 1000),
                stats_file=str(tmp_path / "locality_stats.txt"),
                reference_batch_size=1024,
            )
        )
    assert caplog.text == ""
    # avg indices per batch over the 4 tables of the measured dataset (not the 3 of the new config)
    assert generator.mean_pooling == pytest.approx(float(stats.table["nnz"].sum()) / (4 * 1024), rel=1e-4)
