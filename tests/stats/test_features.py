"""Feature statistics against hand-computed values on a hand-made dataset."""

import numpy as np
import pyarrow as pa
import pytest

from ecorec.data import read_locality_stats, write_parquet_dataset
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
