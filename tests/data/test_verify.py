"""A dataset's files are checked against metadata.json when first read: sizes always, content hashes once per
file (remembered by size and modification time in ``.verified.json``); a changed file is refused naming it."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import ecorec.data.verify as verify_module
from ecorec.data import DataFormatError, ParquetBatchLoader, read_metadata, verify_dataset
from ecorec.data.verify import VERIFIED_STAMP, verify_files


@pytest.fixture
def dataset(tmp_path, small_synthetic):
    path = tmp_path / "ds"
    shutil.copytree(small_synthetic, path)
    (path / VERIFIED_STAMP).unlink(missing_ok=True)
    return path


@pytest.fixture
def hash_calls(monkeypatch):
    """The files hashed, in order (the real hash still runs)."""
    calls = []
    real = verify_module.file_sha256

    def counting(path):
        calls.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(verify_module, "file_sha256", counting)
    return calls


def test_each_file_is_hashed_once_until_it_changes(dataset, hash_calls):
    meta = read_metadata(dataset)
    names = [f.path for f in meta.files]
    first = verify_files(meta)
    assert (first.files, first.hashed, first.remembered) == (len(names), len(names), 0)
    assert sorted(hash_calls) == sorted(names)
    stamp = json.loads((dataset / VERIFIED_STAMP).read_text())
    assert set(stamp["files"]) == set(names)
    hash_calls.clear()
    ParquetBatchLoader(dataset, split="train", global_batch_size=64)  # a loader checks before reading
    again = verify_files(meta)
    assert hash_calls == [] and (again.hashed, again.remembered) == (0, len(names))
    touched = dataset / names[1]
    os.utime(touched)  # a new modification time: hashed again (and still fine)
    assert verify_files(meta).hashed == 1 and hash_calls == [names[1]]


def test_flipped_labels_are_refused_naming_the_file(dataset):
    meta = verify_dataset(dataset)  # verified once: the stamp must not hide the change
    part = dataset / meta.files[0].path
    table = pq.read_table(part)
    flipped = table.set_column(0, "label", pc.subtract(1.0, table.column("label")).cast("float32"))
    pq.write_table(flipped, part, row_group_size=meta.row_group_size)  # metadata.json untouched
    with pytest.raises(DataFormatError, match=rf"^{part}: (size|sha256) mismatch.*rebuild the dataset"):
        ParquetBatchLoader(dataset, split="train", global_batch_size=64)
    loader = ParquetBatchLoader(dataset, split="train", global_batch_size=64, verify=False)
    assert loader.verification is None  # opted out: it reads the changed file


def test_an_edited_checksum_is_refused(dataset):
    verify_dataset(dataset)
    obj = json.loads((dataset / "metadata.json").read_text())
    obj["files"][2]["sha256"] = "0" * 64
    (dataset / "metadata.json").write_text(json.dumps(obj))
    part = dataset / obj["files"][2]["path"]
    with pytest.raises(DataFormatError, match=rf"^{part}: sha256 mismatch: expected 0{{64}}"):
        verify_dataset(dataset)


def test_a_dataset_without_sizes_is_verified_by_hash(dataset, hash_calls):
    obj = json.loads((dataset / "metadata.json").read_text())
    for entry in obj["files"]:
        del entry["size"]  # written before sizes were recorded
    (dataset / "metadata.json").write_text(json.dumps(obj))
    meta = read_metadata(dataset)
    assert all(f.size is None for f in meta.files)
    assert verify_files(meta).hashed == len(meta.files)
    part = dataset / meta.files[0].path
    part.write_bytes(part.read_bytes() + b"x")
    with pytest.raises(DataFormatError, match=rf"^{part}: sha256 mismatch"):
        verify_files(meta)


def test_a_feature_no_file_holds_is_named_with_the_fix(dataset):
    obj = json.loads((dataset / "metadata.json").read_text())
    obj["features"].append("f99")
    obj["num_embeddings"]["f99"] = 10
    (dataset / "metadata.json").write_text(json.dumps(obj))
    with pytest.raises(
        DataFormatError,
        match=r"metadata.json: field 'features': lists feature 'f99', but no file of 'files' holds column "
        r"'f99'.*remove it from 'features' and 'num_embeddings'",
    ):
        read_metadata(dataset)
