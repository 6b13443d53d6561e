"""Bad data is refused through the real entry points, naming the file / row group / field / value, and leaves
nothing behind: scratch folders, non-finite dense features, labels outside {0, 1}, truncated gzip, padding of
the last evaluation batch."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pytest
import torch

from ecorec.data.errors import DataFormatError
from ecorec.data.loader import ParquetBatchLoader
from ecorec.data.meta_dlrm import convert_meta_dlrm, write_meta_dlrm_file
from ecorec.data.parquet import dense_column, read_metadata, sparse_column, write_parquet_dataset
from ecorec.data.synthetic import synthetic_meta_dlrm_tensors


def _dataset(path, labels, dense, row_group_size=4):
    """A labelled dataset of ``len(labels)`` samples, one feature ``f0`` (sample i looks up row i % 5)."""
    n = len(labels)
    table = {
        "label": pa.array(np.asarray(labels, dtype=np.float32)),
        "dense": dense_column(np.asarray(dense, dtype=np.float32).reshape(n, -1)),
        "f0": sparse_column(np.ones(n, dtype=np.int64), np.arange(n, dtype=np.int64) % 5),
    }
    write_parquet_dataset(
        path,
        [table],
        source="synthetic",
        features=["f0"],
        num_embeddings={"f0": 5},
        num_dense=np.asarray(dense).reshape(n, -1).shape[1],
        has_labels=True,
        row_group_size=row_group_size,
        splits={"train": 1.0},
    )
    return path


# -- convert_meta_dlrm(scratch_dir=...) ---------------------------------------------------------------------


def test_scratch_dir_keeps_the_callers_files(tmp_path):
    """The caller's scratch folder and an unrelated file in it survive a good and a failed conversion."""
    source = tmp_path / "small.pt.gz"
    write_meta_dlrm_file(source, *synthetic_meta_dlrm_tensors(2, 16, rows_min=5, rows_max=9))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "precious.txt").write_text("keep me")
    convert_meta_dlrm([source], tmp_path / "ds", strict_shape=False, scratch_dir=scratch)
    assert read_metadata(tmp_path / "ds").num_samples == 16
    assert sorted(p.name for p in scratch.iterdir()) == ["precious.txt"]
    assert (scratch / "precious.txt").read_text() == "keep me"
    bad = tmp_path / "bad.pt.gz"
    bad.write_bytes(gzip.compress(b"not a torch file"))
    with pytest.raises(DataFormatError, match=rf"^{bad}: not a torch.save file"):
        convert_meta_dlrm([bad], tmp_path / "ds2", strict_shape=False, scratch_dir=scratch)
    assert sorted(p.name for p in scratch.iterdir()) == ["precious.txt"]
    assert not (tmp_path / "ds2").exists()


def test_tiny_truncated_gzip_says_truncated_and_how_big(tmp_path):
    path = tmp_path / "fbgemm_t2_bs8_0.pt.gz"
    path.write_bytes(gzip.compress(b"x" * 1000)[:12])  # a download cut off after 12 bytes
    with pytest.raises(DataFormatError) as err:
        convert_meta_dlrm([path], tmp_path / "ds", strict_shape=False)
    message = str(err.value)
    assert message.startswith(f"{path}: truncated: the file (12 bytes) ends inside the gzip stream")
    assert "download it again" in message and "0 decompressed" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


# -- values the loader refuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "dense", "message"),
    [
        ([0, 1, 0, 1, 1, 0, np.nan, 1], np.zeros(8), "column 'label': sample 6 has label nan"),
        ([0, 1, 0, 1, 2, 0, 1, 1], np.zeros(8), "column 'label': sample 4 has label 2.0"),
        ([0, 1, 0, 1, 0.5, 0, 1, 1], np.zeros(8), "column 'label': sample 4 has label 0.5"),
        ([0, 1] * 4, [0, 0, 0, 0, 0, np.inf, 0, 0], "dense feature 0 of sample 5 is inf"),
        ([0, 1] * 4, np.r_[np.zeros(13), np.nan, np.zeros(2)], "dense feature 1 of sample 6 is nan"),
    ],
    ids=["nan-label", "label-2", "label-half", "inf-dense", "nan-dense"],
)
def test_loader_refuses_non_finite_dense_and_bad_labels(tmp_path, labels, dense, message):
    path = _dataset(tmp_path / "ds", labels, dense)
    meta = read_metadata(path)
    loader = ParquetBatchLoader(path, split="train", global_batch_size=4)
    with pytest.raises(DataFormatError) as err:
        list(loader)
    text = str(err.value)
    assert text.startswith(f"{path / meta.files[0].path}: row group 1: ")  # samples 4..7
    assert message in text


def test_null_label_is_refused(tmp_path):
    table = {
        "label": pa.array([0.0, None, 1.0, 0.0], type=pa.float32()),
        "f0": sparse_column(np.ones(4, dtype=np.int64), np.arange(4, dtype=np.int64)),
    }
    write_parquet_dataset(
        tmp_path / "ds",
        [table],
        source="synthetic",
        features=["f0"],
        num_embeddings={"f0": 4},
        num_dense=0,
        has_labels=True,
        row_group_size=4,
    )
    with pytest.raises(DataFormatError, match=r"row group 0: column 'label': sample 1 has label null"):
        ParquetBatchLoader(tmp_path / "ds", global_batch_size=2, prefetch=0).batch(0)


# -- the last evaluation batch, padded -----------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["local", "global"])
def test_pad_last_scores_every_sample_once(tmp_path, layout):
    """10 samples, G = 4 on 2 ranks: batches of 4, 4 and 2 (+2 padding); the real samples of all ranks are
    exactly the split, in order; padding has empty bags, zero dense, and mask False."""
    n, world = 10, 2
    dense = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    path = _dataset(tmp_path / "ds", [i % 2 for i in range(n)], dense, row_group_size=3)
    seen_dense, seen_ids = [], []
    for rank in range(world):
        loader = ParquetBatchLoader(
            path,
            global_batch_size=4,
            rank=rank,
            world_size=world,
            layout=layout,
            drop_last=False,
            pad_last=True,
            prefetch=0,
        )
        assert len(loader) == 3
        for i, batch in enumerate(loader):
            assert batch.dense.shape == (2, 2) and batch.labels.shape == (2,)
            mask = torch.ones(2, dtype=torch.bool) if batch.mask is None else batch.mask
            assert batch.sparse.stride() == (2 if layout == "local" else 4)
            seen_dense.append((i, rank, batch.dense[mask]))
            assert (batch.dense[~mask] == 0).all() and (batch.labels[~mask] == 0).all()
            lengths = batch.sparse["f0"].lengths()
            if layout == "local":
                assert (lengths[~mask] == 0).all() and (lengths[mask] == 1).all()
                seen_ids.append((i, rank, batch.sparse["f0"].values()))
    order = sorted(seen_dense, key=lambda x: (x[0], x[1]))
    np.testing.assert_array_equal(torch.cat([d for _, _, d in order]).numpy(), dense)
    if layout == "local":
        ids = torch.cat([v for _, _, v in sorted(seen_ids, key=lambda x: (x[0], x[1]))])
        np.testing.assert_array_equal(ids.numpy(), np.arange(n) % 5)


def test_pad_last_needs_drop_last_false(tmp_path):
    path = _dataset(tmp_path / "ds", [0, 1, 0, 1], np.zeros(4))
    with pytest.raises(ValueError, match="pad_last=True needs drop_last=False"):
        ParquetBatchLoader(path, global_batch_size=2, pad_last=True)


def test_loader_refuses_ids_outside_the_declared_table(tmp_path):
    table = {
        "label": pa.array(np.zeros(6, dtype=np.float32)),
        "f0": sparse_column(np.ones(6, dtype=np.int64), np.arange(6, dtype=np.int64)),  # ids 0..5
    }
    write_parquet_dataset(
        tmp_path / "ds",
        [table],
        source="synthetic",
        features=["f0"],
        num_embeddings={"f0": 4},  # but ids 4 and 5 occur
        num_dense=0,
        has_labels=True,
        row_group_size=3,
    )
    meta = read_metadata(tmp_path / "ds")
    with pytest.raises(DataFormatError) as err:
        list(ParquetBatchLoader(tmp_path / "ds", global_batch_size=2, prefetch=0))
    file = tmp_path / "ds" / meta.files[0].path
    assert str(err.value).startswith(f"{file}: row group 1: feature 'f0': sample 4 has id 4, outside [0, 4)")
