"""ParquetBatchLoader: sample-to-rank assignment in both layouts, order, shuffle, resume, prefetch thread."""

from __future__ import annotations

import itertools
import shutil
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ecorec.data.errors import DataFormatError
from ecorec.data.loader import ParquetBatchLoader
from ecorec.data.meta_dlrm import convert_meta_dlrm, write_meta_dlrm_file
from ecorec.data.parquet import read_metadata
from ecorec.data.synthetic import synthetic_meta_dlrm_tensors

FEATURES = ["f3", "f0", "f5"]


@pytest.fixture(scope="module")
def raw(small_synthetic):
    """The whole small dataset as one Arrow table, read with pyarrow directly (the oracle)."""
    meta = read_metadata(small_synthetic)
    return pa.concat_tables([pq.read_table(small_synthetic / f.path) for f in meta.files])


def _expected(raw: pa.Table, start: int, stop: int, features) -> dict[str, np.ndarray]:
    out = {"labels": raw.column("label").slice(start, stop - start).to_numpy()}
    out["dense"] = raw.column("dense").slice(start, stop - start).combine_chunks().flatten().to_numpy()
    for f in features:
        column = raw.column(f).slice(start, stop - start).combine_chunks()
        out[f] = column.flatten().to_numpy()
        out[f + ".lengths"] = np.diff(column.offsets.to_numpy())
    return out


def test_unshuffled_batches_are_the_consecutive_samples(small_synthetic, raw):
    loader = ParquetBatchLoader(small_synthetic, split="val", global_batch_size=128, features=FEATURES)
    start, stop = read_metadata(small_synthetic).splits["val"]
    assert len(loader) == (stop - start) // 128
    for i, batch in enumerate(loader):
        want = _expected(raw, start + i * 128, start + (i + 1) * 128, FEATURES)
        assert batch.sparse.keys() == FEATURES and batch.sparse.stride() == 128
        assert batch.sparse.values().dtype == torch.int64 and batch.sparse.lengths().dtype == torch.int64
        np.testing.assert_array_equal(batch.labels.numpy(), want["labels"])
        np.testing.assert_array_equal(batch.dense.numpy().reshape(-1), want["dense"])
        assert batch.dense.shape == (128, 5)
        for f in FEATURES:
            np.testing.assert_array_equal(batch.sparse[f].values().numpy(), want[f])
            np.testing.assert_array_equal(batch.sparse[f].lengths().numpy(), want[f + ".lengths"])
    assert i == len(loader) - 1


@pytest.mark.parametrize("shuffle", [False, True])
def test_local_ranks_reassemble_the_global_layout(small_synthetic, shuffle):
    world, G = 4, 200
    make = lambda rank, layout: ParquetBatchLoader(  # noqa: E731
        small_synthetic,
        split="train",
        global_batch_size=G,
        rank=rank,
        world_size=world,
        features=FEATURES,
        layout=layout,
        shuffle=shuffle,
        seed=3,
        prefetch=2,
    )
    local = [make(r, "local") for r in range(world)]
    global_ = [make(r, "global") for r in range(world)]
    single = ParquetBatchLoader(
        small_synthetic, split="train", global_batch_size=G, features=FEATURES, shuffle=shuffle, seed=3
    )
    b = G // world
    for batches in zip(*local, *global_, single):
        locals_, globals_, whole = batches[:world], batches[world : 2 * world], batches[-1]
        for f in FEATURES:
            values = torch.cat([lb.sparse[f].values() for lb in locals_])
            lengths = torch.cat([lb.sparse[f].lengths() for lb in locals_])
            for gb in globals_:
                assert torch.equal(gb.sparse[f].values(), values) and torch.equal(
                    gb.sparse[f].lengths(), lengths
                )
            assert torch.equal(whole.sparse[f].values(), values)
        for r in range(world):
            assert locals_[r].sparse.stride() == b and globals_[r].sparse.stride() == G
            for mine in (locals_[r], globals_[r]):  # dense and labels: always the rank's own b samples
                assert torch.equal(mine.dense, whole.dense[r * b : (r + 1) * b])
                assert torch.equal(mine.labels, whole.labels[r * b : (r + 1) * b])


def test_shuffle_is_a_seeded_permutation_per_epoch(small_synthetic):
    def first_labels_per_batch(loader):
        return [tuple(batch.dense[0].tolist()) for batch in loader]

    plain = first_labels_per_batch(ParquetBatchLoader(small_synthetic, global_batch_size=100))
    shuffled = ParquetBatchLoader(small_synthetic, global_batch_size=100, shuffle=True, seed=9)
    epoch0, epoch1 = first_labels_per_batch(shuffled), first_labels_per_batch(shuffled)
    again = first_labels_per_batch(
        ParquetBatchLoader(small_synthetic, global_batch_size=100, shuffle=True, seed=9)
    )
    assert sorted(epoch0) == sorted(plain) == sorted(epoch1)
    assert epoch0 != plain and epoch0 != epoch1 and again == epoch0
    assert shuffled.epoch == 2


def test_resume_gives_the_same_remaining_batches(small_synthetic):
    def make():
        return ParquetBatchLoader(small_synthetic, global_batch_size=150, shuffle=True, seed=1, prefetch=3)

    reference = make()
    epochs = [[b.sparse.values() for b in reference] for _ in range(2)]
    interrupted = make()
    list(interrupted)  # epoch 0
    iterator = iter(interrupted)
    seen = [b.sparse.values() for b in itertools.islice(iterator, 5)]
    iterator.close()  # stops the prefetch thread; position = batches handed out
    state = interrupted.state_dict()
    assert (state["epoch"], state["batch"]) == (1, 5)
    resumed = make()
    resumed.load_state_dict(state)
    rest = [b.sparse.values() for b in resumed]
    assert len(seen) + len(rest) == len(epochs[1])
    assert all(torch.equal(a, b) for a, b in zip(seen + rest, epochs[1]))
    assert resumed.state_dict()["epoch"] == 2
    with pytest.raises(ValueError, match="'global_batch_size' is 150 but this loader has 300"):
        ParquetBatchLoader(small_synthetic, global_batch_size=300).load_state_dict(state)


def test_last_partial_batch_split_over_ranks(small_synthetic, raw):
    start, stop = read_metadata(small_synthetic).splits["val"]  # 450 samples: 200 + 200 + 50
    loaders = [
        ParquetBatchLoader(
            small_synthetic, split="val", global_batch_size=200, rank=r, world_size=4, drop_last=False
        )
        for r in range(4)
    ]
    assert len(loaders[0]) == 3
    last = [list(loader)[-1] for loader in loaders]
    assert [b.labels.numel() for b in last] == [13, 13, 13, 11]
    np.testing.assert_array_equal(
        torch.cat([b.labels for b in last]).numpy(), _expected(raw, start + 400, stop, [])["labels"]
    )


def test_prefetch_errors_propagate_and_threads_stop(small_synthetic, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_synthetic, copy)
    loader = ParquetBatchLoader(copy, global_batch_size=100, prefetch=2)
    before = threading.active_count()
    iterator = iter(loader)
    next(iterator)
    iterator.close()
    assert threading.active_count() == before
    meta = read_metadata(copy)
    (copy / meta.files[1].path).write_bytes(b"not parquet")
    with pytest.raises(DataFormatError, match=str(copy / meta.files[1].path)):
        list(loader)
    assert threading.active_count() == before


def test_reads_only_the_files_of_the_requested_tables(tmp_path):
    path = tmp_path / "m.pt.gz"
    indices, offsets, lengths = synthetic_meta_dlrm_tensors(6, 64, rows_min=10, rows_max=100)
    write_meta_dlrm_file(path, indices, offsets, lengths)
    meta = convert_meta_dlrm(
        [path], tmp_path / "ds", strict_shape=False, tables_per_file=2, row_group_size=16
    )
    for f in meta.files:
        if "f2" not in f.columns:
            (tmp_path / "ds" / f.path).unlink()
    batch = next(iter(ParquetBatchLoader(tmp_path / "ds", global_batch_size=64, features=["f2"])))
    assert torch.equal(batch.sparse["f2"].values(), indices[offsets[2 * 64] : offsets[3 * 64]])
    assert batch.dense.shape == (64, 0) and not bool(batch.labels.any())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"global_batch_size": 100, "world_size": 3}, "multiple of world_size"),
        ({"global_batch_size": 100, "rank": 2, "world_size": 2}, "rank must be in"),
        ({"global_batch_size": 100, "features": ["f1", "f99"]}, "unknown or repeated features"),
        ({"global_batch_size": 100, "split": "holdout"}, "no split 'holdout'"),
        ({"global_batch_size": 100, "layout": "row"}, "layout must be"),
    ],
)
def test_argument_errors(small_synthetic, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ParquetBatchLoader(small_synthetic, **kwargs)
