"""The random source (determinism per seed and rank, shapes, ranges, layouts) and the binary Criteo sources
(TorchRec npy days, MLPerf .bin): tiny files written in the published layouts read back exactly; truncated or
corrupt files are rejected naming the file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ecorec.data import ParquetBatchLoader
from ecorec.data.criteo_npy import convert_criteo_npy
from ecorec.data.errors import DataFormatError
from ecorec.data.mlperf_bin import MLPERF_DLRM_NUM_EMBEDDINGS, convert_mlperf_bin
from ecorec.data.random_source import RandomBatchLoader, RandomSourceConfig, random_metadata
from ecorec.data.sources import CRITEO_1TB_NUM_EMBEDDINGS

ROWS = [1000, 7, 300]
RANDOM = RandomSourceConfig(
    ROWS, pooling=[3, 1, 5], min_pooling=[0, 1, 2], num_dense=4, num_samples={"train": 512, "val": 96}
)


def _same(a, b) -> bool:
    return (
        torch.equal(a.sparse.values(), b.sparse.values())
        and torch.equal(a.sparse.lengths(), b.sparse.lengths())
        and torch.equal(a.dense, b.dense)
        and torch.equal(a.labels, b.labels)
    )


def test_random_batches_same_for_same_seed_and_rank_and_differ_across_ranks():
    def loader(rank, seed=3, **kw):
        return RandomBatchLoader(RANDOM, global_batch_size=128, rank=rank, world_size=2, seed=seed, **kw)

    first = list(loader(0))
    assert len(first) == 4
    assert all(_same(a, b) for a, b in zip(first, loader(0)))
    # the same batch whatever the visiting order (shuffled epochs) and in a second epoch
    shuffled = loader(0, shuffle=True)
    order = shuffled.batch_order(0)
    assert all(_same(b, first[int(i)]) for b, i in zip(shuffled, order))
    assert all(not _same(a, b) for a, b in zip(first, loader(1)))
    assert not _same(first[0], loader(0, seed=4).batch(0))
    assert not _same(first[0], first[1])


def test_random_batches_shapes_and_ranges():
    batch = RandomBatchLoader(RANDOM, global_batch_size=128, rank=1, world_size=2).batch(2)
    b = 64
    assert batch.dense.shape == (b, 4) and batch.dense.dtype == torch.float32
    assert float(batch.dense.min()) >= 0.0 and float(batch.dense.max()) < 1.0
    assert set(batch.labels.tolist()) == {0.0, 1.0}
    per_key = batch.sparse.to_dict()
    assert list(per_key) == ["f0", "f1", "f2"]
    for (name, jt), rows, lo, hi in zip(per_key.items(), ROWS, [0, 1, 2], [3, 1, 5]):
        lengths = jt.lengths()
        assert lengths.shape == (b,) and int(lengths.min()) >= lo and int(lengths.max()) <= hi, name
        assert int(lengths.sum()) == jt.values().numel()
        assert int(jt.values().min()) >= 0 and int(jt.values().max()) < rows
    assert int(per_key["f1"].lengths().sum()) == b  # one-hot
    # lengths really vary over their whole range on 64 samples
    assert int(per_key["f0"].lengths().min()) == 0 and int(per_key["f0"].lengths().max()) == 3


def test_random_global_layout_is_every_ranks_local_batch():
    glob = RandomBatchLoader(RANDOM, global_batch_size=128, rank=1, world_size=2, layout="global").batch(1)
    parts = [RandomBatchLoader(RANDOM, global_batch_size=128, rank=r, world_size=2).batch(1) for r in (0, 1)]
    for f in ("f0", "f1", "f2"):
        g = glob.sparse[f]
        assert torch.equal(g.lengths(), torch.cat([p.sparse[f].lengths() for p in parts]))
        assert torch.equal(g.values(), torch.cat([p.sparse[f].values() for p in parts]))
    assert torch.equal(glob.dense, parts[1].dense)


def test_random_metadata_and_partial_batches():
    meta = random_metadata(RANDOM)
    assert meta.splits == {"train": (0, 512), "val": (512, 608)} and meta.num_embeddings["f2"] == 300
    val = RandomBatchLoader(RANDOM, split="val", global_batch_size=64, world_size=2, rank=1, drop_last=False)
    assert [b.dense.shape[0] for b in val] == [32, 16]  # 96 = 64 + 32, the last split 16 / 16
    with pytest.raises(ValueError, match="pooling"):
        RandomSourceConfig([10, 10], pooling=[1, 2, 3])


# -- TorchRec npy days ---------------------------------------------------------------------------------------


def _criteo_day(rng, n):
    dense = np.log(rng.integers(1, 1000, size=(n, 13)).astype(np.float32) + 2).astype(np.float32)
    sparse = rng.integers(0, 2**40, size=(n, 26), dtype=np.int64)
    labels = rng.integers(0, 2, size=(n, 1), dtype=np.int32)
    return dense, sparse, labels


def _write_days(folder, days):
    folder.mkdir(parents=True, exist_ok=True)
    for d, (dense, sparse, labels) in enumerate(days):
        np.save(folder / f"day_{d}_dense.npy", dense)
        np.save(folder / f"day_{d}_sparse.npy", sparse)
        np.save(folder / f"day_{d}_labels.npy", labels)


def _read_all(path, split, n_dense=13):
    loader = ParquetBatchLoader(path, split=split, global_batch_size=1, prefetch=0, drop_last=False)
    rows = [loader.batch(i) for i in range(len(loader))]
    dense = np.concatenate([b.dense.numpy() for b in rows])
    labels = np.concatenate([b.labels.numpy() for b in rows])
    sparse = np.stack([b.sparse.values().numpy() for b in rows])  # one id per feature per sample
    return dense, sparse, labels


def test_criteo_npy_days_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    days = [_criteo_day(rng, 40), _criteo_day(rng, 30), _criteo_day(rng, 25)]
    _write_days(tmp_path / "npy", days)
    meta = convert_criteo_npy(tmp_path / "npy", tmp_path / "out", row_group_size=16, chunk_rows=17)
    # TorchRec's split: days 0-1 train, day 2's first ceil(25/2)=13 val, the other 12 test
    assert meta.splits == {"train": (0, 70), "val": (70, 83), "test": (83, 95)}
    assert meta.source == "criteo_npy" and meta.num_embeddings["cat_0"] == CRITEO_1TB_NUM_EMBEDDINGS[0]
    dense = np.concatenate([d[0] for d in days])
    sparse = np.concatenate([d[1] for d in days]) % np.array(CRITEO_1TB_NUM_EMBEDDINGS)
    labels = np.concatenate([d[2] for d in days]).reshape(-1)
    for split, (a, b) in meta.splits.items():
        got_dense, got_sparse, got_labels = _read_all(tmp_path / "out", split)
        np.testing.assert_array_equal(got_dense, dense[a:b])
        np.testing.assert_array_equal(got_sparse, sparse[a:b])
        np.testing.assert_array_equal(got_labels, labels[a:b].astype(np.float32))


def test_criteo_npy_truncated_or_corrupt_files_are_named(tmp_path):
    rng = np.random.default_rng(1)
    _write_days(tmp_path / "npy", [_criteo_day(rng, 20)])
    sparse = tmp_path / "npy" / "day_0_sparse.npy"
    data = sparse.read_bytes()
    sparse.write_bytes(data[:-8])
    with pytest.raises(DataFormatError, match=r"day_0_sparse\.npy: truncated"):
        convert_criteo_npy(tmp_path / "npy", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    sparse.write_bytes(data)
    dense, _, labels = _criteo_day(rng, 20)
    labels[7] = 2
    np.save(tmp_path / "npy" / "day_0_labels.npy", labels)
    with pytest.raises(DataFormatError, match=r"day_0_\*\.npy: row 7: label must be 0 or 1"):
        convert_criteo_npy(tmp_path / "npy", tmp_path / "out")
    np.save(tmp_path / "npy" / "day_0_labels.npy", labels[:19])
    with pytest.raises(DataFormatError, match="disagree on the number of samples"):
        convert_criteo_npy(tmp_path / "npy", tmp_path / "out")
    np.save(tmp_path / "npy" / "day_0_dense.npy", dense[:, :12])
    with pytest.raises(DataFormatError, match=r"day_0_dense\.npy: shape \(20, 12\)"):
        convert_criteo_npy(tmp_path / "npy", tmp_path / "out")


# -- MLPerf .bin ---------------------------------------------------------------------------------------------


def _bin_records(rng, n):
    records = np.empty((n, 40), dtype="<i4")
    records[:, 0] = rng.integers(0, 2, size=n)
    records[:, 1:14] = rng.integers(0, 5000, size=(n, 13))
    records[:, 14:] = rng.integers(0, 2**31 - 1, size=(n, 26))
    return records


def test_mlperf_bin_reads_back_exactly(tmp_path):
    rng = np.random.default_rng(2)
    parts = {"train": _bin_records(rng, 50), "val": _bin_records(rng, 11), "test": _bin_records(rng, 9)}
    files = {}
    for split, records in parts.items():
        files[split] = tmp_path / f"terabyte_processed_{split}.bin"
        files[split].write_bytes(records.tobytes())
    meta = convert_mlperf_bin(files, tmp_path / "out", row_group_size=16, chunk_rows=13)
    assert meta.splits == {"train": (0, 50), "val": (50, 61), "test": (61, 70)}
    assert sum(meta.num_embeddings.values()) == 4_057_300
    for split, records in parts.items():
        dense, sparse, labels = _read_all(tmp_path / "out", split)
        np.testing.assert_array_equal(labels, records[:, 0].astype(np.float32))
        expected = np.log1p(records[:, 1:14].astype(np.float64)).astype(np.float32)
        np.testing.assert_array_equal(dense, expected)
        np.testing.assert_array_equal(sparse, records[:, 14:] % np.array(MLPERF_DLRM_NUM_EMBEDDINGS))
        assert math.isclose(float(dense[0, 0]), math.log(1 + int(records[0, 1])), rel_tol=1e-6)


def test_mlperf_bin_truncated_or_corrupt_file_is_named(tmp_path):
    rng = np.random.default_rng(3)
    records = _bin_records(rng, 10)
    train = tmp_path / "terabyte_processed_train.bin"
    train.write_bytes(records.tobytes()[:-4])
    with pytest.raises(DataFormatError, match=r"terabyte_processed_train\.bin: truncated"):
        convert_mlperf_bin({"train": train}, tmp_path / "out")
    records[4, 20] = -5
    train.write_bytes(records.tobytes())
    with pytest.raises(DataFormatError, match=r"terabyte_processed_train\.bin: row 4: negative categorical"):
        convert_mlperf_bin({"train": train}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_loaders_pin_batches(tmp_path):
    batch = RandomBatchLoader(RANDOM, global_batch_size=64, pin_memory=True).batch(0)
    assert batch.dense.is_pinned() and batch.labels.is_pinned() and batch.sparse.values().is_pinned()
    records = _bin_records(np.random.default_rng(4), 20)
    (tmp_path / "train.bin").write_bytes(records.tobytes())
    convert_mlperf_bin({"train": tmp_path / "train.bin"}, tmp_path / "out")
    loader = ParquetBatchLoader(tmp_path / "out", global_batch_size=8, pin_memory=True, prefetch=1)
    assert all(b.dense.is_pinned() and b.sparse.values().is_pinned() for b in loader)


def test_converter_commands(tmp_path, capsys):
    from ecorec.data import criteo_npy, mlperf_bin

    records = _bin_records(np.random.default_rng(5), 30)
    (tmp_path / "train.bin").write_bytes(records.tobytes())
    (tmp_path / "val.bin").write_bytes(records[:7].tobytes())
    assert mlperf_bin.main([str(tmp_path / "bin"), "--train", str(tmp_path / "train.bin"),
                            "--val", str(tmp_path / "val.bin")]) == 0  # fmt: skip
    assert "37 samples" in capsys.readouterr().out
    (tmp_path / "bad.bin").write_bytes(records.tobytes()[:100])
    assert mlperf_bin.main([str(tmp_path / "bad"), "--train", str(tmp_path / "bad.bin")]) == 2
    assert "bad.bin: truncated" in capsys.readouterr().err
    _write_days(tmp_path / "npy", [_criteo_day(np.random.default_rng(6), 12)])
    assert criteo_npy.main([str(tmp_path / "npy"), str(tmp_path / "days"), "--days", "0"]) == 0
    assert "12 samples" in capsys.readouterr().out
