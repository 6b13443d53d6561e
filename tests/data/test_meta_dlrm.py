"""Meta dlrm_datasets files -> Parquet -> KJT: exact round trips (2021/2022-shaped), validation, errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import re

import pytest
import torch

from ecorec.data.errors import DataFormatError
from ecorec.data.loader import ParquetBatchLoader
from ecorec.data.meta_dlrm import convert_meta_dlrm, write_meta_dlrm_file
from ecorec.data.synthetic import synthetic_meta_dlrm_tensors


def _assert_loader_matches(dataset, sources, batch_size, world_size=1):
    """Global batch i of the dataset (G = B) is source file i: every key's values and lengths must equal the
    source's table-major slices exactly, in both loader layouts."""
    for layout in ("global", "local"):
        loaders = [
            ParquetBatchLoader(
                dataset,
                split="train",
                global_batch_size=batch_size,
                rank=r,
                world_size=world_size,
                layout=layout,
                prefetch=1,
            )
            for r in range(world_size)
        ]
        for i, batches in enumerate(zip(*loaders)):
            indices, offsets, lengths = sources[i]
            num_tables = lengths.shape[0]
            for t in range(num_tables):
                key = f"f{t}"
                parts = [b.sparse[key] for b in batches] if layout == "local" else [batches[0].sparse[key]]
                values = torch.cat([p.values() for p in parts])
                got_lengths = torch.cat([p.lengths() for p in parts])
                expected = indices[offsets[t * batch_size] : offsets[(t + 1) * batch_size]].to(torch.int64)
                assert torch.equal(values, expected), (layout, i, key)
                assert torch.equal(got_lengths, lengths[t].to(torch.int64)), (layout, i, key)
        assert i == len(sources) - 1


@pytest.mark.parametrize(
    ("source", "num_tables", "batch_size", "index_dtype"),
    [("meta_dlrm_2021", 5, 200, torch.int64), ("meta_dlrm_2022", 7, 256, torch.int32)],
)
def test_round_trip_exact(tmp_path, source, num_tables, batch_size, index_dtype):
    sources = []
    paths = []
    for i in range(2):  # two files concatenated along samples
        indices, offsets, lengths = synthetic_meta_dlrm_tensors(
            num_tables, batch_size, rows_min=20, rows_max=3000, seed=i
        )
        indices = indices.to(index_dtype)
        paths.append(tmp_path / f"fbgemm_t{num_tables}_bs{batch_size}_{i}.pt.gz")
        write_meta_dlrm_file(paths[-1], indices, offsets, lengths)
        sources.append((indices, offsets, lengths))
    meta = convert_meta_dlrm(
        paths, tmp_path / "ds", source=source, strict_shape=False, row_group_size=96, tables_per_file=3
    )
    assert meta.num_samples == 2 * batch_size and not meta.has_labels and meta.num_dense == 0
    groups = -(-num_tables // 3)
    assert len(meta.files) == 2 * groups
    assert [f.row_start for f in meta.files] == [0] * groups + [batch_size] * groups
    for t in range(num_tables):
        largest = max(int(s[0][s[1][t * batch_size] : s[1][(t + 1) * batch_size]].max()) for s in sources)
        assert meta.num_embeddings[f"f{t}"] == largest + 1
    assert [s["sha256"] for s in meta.provenance["sources"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
    ]
    _assert_loader_matches(tmp_path / "ds", sources, batch_size, world_size=1)
    _assert_loader_matches(tmp_path / "ds", sources, batch_size, world_size=4)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".pt.gz")) == ["ds"]  # no scratch


def test_legacy_format_and_empty_tables(tmp_path):
    indices = torch.tensor([3, 1, 4, 1, 5], dtype=torch.int64)
    lengths = torch.tensor([[2, 0, 1], [0, 0, 0], [1, 1, 0]])
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.reshape(-1).cumsum(0)])
    path = tmp_path / "legacy.pt.gz"
    with gzip.open(path, "wb") as handle:
        torch.save((indices, offsets, lengths), handle, _use_new_zipfile_serialization=False)
    meta = convert_meta_dlrm([path], tmp_path / "ds", strict_shape=False, row_group_size=2)
    assert meta.num_embeddings == {"f0": 5, "f1": 1, "f2": 6}
    assert meta.provenance["tables_never_accessed"] == ["f1"]
    _assert_loader_matches(tmp_path / "ds", [(indices, offsets, lengths)], 3)


def test_release_shape_is_enforced(tmp_path):
    path = tmp_path / "small.pt.gz"
    write_meta_dlrm_file(path, *synthetic_meta_dlrm_tensors(2, 8, rows_min=5, rows_max=9))
    with pytest.raises(
        DataFormatError, match=rf"{path}: lengths has shape \(2, 8\), expected \(788, 131072\)"
    ):
        convert_meta_dlrm([path], tmp_path / "ds", source="meta_dlrm_2022")
    other = tmp_path / "other.pt.gz"
    write_meta_dlrm_file(other, *synthetic_meta_dlrm_tensors(3, 8, rows_min=5, rows_max=9))
    with pytest.raises(DataFormatError, match=rf"{other}: lengths has shape \(3, 8\), expected \(2, 8\)"):
        convert_meta_dlrm([path, other], tmp_path / "ds", strict_shape=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.pt.gz", "small.pt.gz"]


def test_a_file_named_like_a_published_one_must_have_its_checksum(tmp_path):
    path = tmp_path / "fbgemm_t788_bs131072_3.pt.gz"
    write_meta_dlrm_file(path, *synthetic_meta_dlrm_tensors(2, 8, rows_min=5, rows_max=9))
    expected = "9ae43e02f3de5de7992b1593579d0a09d5cde483949a85eb54bdff4471ee2788"  # from the packaged list
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataFormatError, match=f"^{path}: sha256 mismatch .* expected {expected}, got {got}"):
        convert_meta_dlrm([path], tmp_path / "ds", strict_shape=False)
    convert_meta_dlrm([path], tmp_path / "ds", strict_shape=False, verify_known_checksums=False)


def _gz(path, payload_bytes):
    with gzip.open(path, "wb") as handle:
        handle.write(payload_bytes)
    return path


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _valid():
    indices = torch.arange(12, dtype=torch.int64)
    lengths = torch.tensor([[1, 2, 3], [3, 2, 1]])
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.reshape(-1).cumsum(0)])
    return indices, offsets, lengths


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            lambda: _saved({"indices": torch.zeros(3)}),
            "expected a tuple (indices, offsets, lengths), got a dict",
        ),
        (lambda: _saved(_valid()[:2]), "got a tuple of length 2"),
        (lambda: b"this is not a torch file at all", "not a torch.save file of tensors"),
        (lambda: _saved((_valid()[0].float(), *_valid()[1:])), "indices: expected int32/int64"),
        (lambda: _saved((_valid()[0], _valid()[1][:-1], _valid()[2])), "expected T*B+1 = 7 entries"),
        (lambda: _saved((_valid()[0][:-1], *_valid()[1:])), "offsets must run from 0 to len(indices) = 11"),
        (
            lambda: _saved((_valid()[0], torch.tensor([0, 1, 3, 2, 9, 11, 12]), _valid()[2])),
            "offsets decrease at position 3",
        ),
        (
            lambda: _saved((_valid()[0], _valid()[1], _valid()[2].flip(1))),
            "lengths[0, 0] = 3 but the offsets",
        ),
        (lambda: _saved((-_valid()[0], *_valid()[1:])), "negative index -1 at position 1"),
    ],
)
def test_bad_payloads_name_the_file(tmp_path, payload, message):
    path = _gz(tmp_path / "bad.pt.gz", payload())
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(path))}: .*{re.escape(message)}"):
        convert_meta_dlrm([path], tmp_path / "ds", strict_shape=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt.gz"]


def test_truncated_and_corrupt_gzip_name_file_and_position(tmp_path):
    good = tmp_path / "good.pt.gz"
    write_meta_dlrm_file(good, *synthetic_meta_dlrm_tensors(2, 64, rows_min=5, rows_max=50))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        DataFormatError, match=rf"^{truncated}: truncated: the file \(\d+ bytes\) ends inside"
    ):
        convert_meta_dlrm([good, truncated], tmp_path / "ds", strict_shape=False)
    corrupt = tmp_path / "corrupt.pt.gz"
    corrupt.write_bytes(data[:100] + bytes(255 - b for b in data[100:400]) + data[400:])
    with pytest.raises(DataFormatError, match=rf"^{corrupt}: corrupt gzip data near compressed byte \d+"):
        convert_meta_dlrm([corrupt], tmp_path / "ds", strict_shape=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt.gz", "good.pt.gz", "truncated.pt.gz"]
