"""The Parquet dataset format: writer (fixed row groups, several files, feature groups, atomicity), metadata
validation, the range reader."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecorec.data.errors import DataFormatError
from ecorec.data.parquet import (
    ParquetDatasetWriter,
    ParquetRangeReader,
    dense_column,
    read_metadata,
    resolve_splits,
    sparse_column,
    verify_dataset,
    write_parquet_dataset,
)

N = 1000


@pytest.fixture(scope="module")
def columns():
    """Per-sample data: lengths and values of two features (with empty bags), dense [N, 3], labels."""
    rng = np.random.default_rng(0)
    lengths = {f: rng.integers(0, 5, size=N) for f in ("a", "b")}
    values = {f: rng.integers(0, 100, size=int(lengths[f].sum())) for f in ("a", "b")}
    return (
        lengths,
        values,
        rng.standard_normal((N, 3)).astype(np.float32),
        rng.integers(0, 2, N).astype(np.float32),
    )


def _batches(columns, sizes):
    lengths, values, dense, labels = columns
    offsets = {f: np.concatenate([[0], np.cumsum(lengths[f])]) for f in lengths}
    start = 0
    for size in sizes:
        stop = min(start + size, N)
        batch = {"label": pa.array(labels[start:stop]), "dense": dense_column(dense[start:stop])}
        for f in lengths:
            batch[f] = sparse_column(lengths[f][start:stop], values[f][offsets[f][start] : offsets[f][stop]])
        yield batch
        start = stop
        if start == N:
            return


def _write(path, columns, **kwargs):
    return write_parquet_dataset(
        path,
        _batches(columns, [137] * 8),
        source="synthetic",
        features=["a", "b"],
        num_embeddings={"a": 100, "b": 100},
        num_dense=3,
        has_labels=True,
        row_group_size=64,
        **kwargs,
    )


def test_round_trip_across_files_and_row_groups(tmp_path, columns):
    meta = _write(tmp_path / "ds", columns, samples_per_file=300, splits={"train": 0.8, "test": 0.2})
    assert [(f.row_start, f.num_samples) for f in meta.files] == [(0, 320), (320, 320), (640, 320), (960, 40)]
    assert meta.splits == {"train": (0, 800), "test": (800, 1000)}
    for f in meta.files:
        pf = pq.ParquetFile(tmp_path / "ds" / f.path)
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
        assert sizes[:-1] == [64] * (len(sizes) - 1) and 0 < sizes[-1] <= 64
        assert pf.schema_arrow.field("dense").type == pa.list_(pa.float32(), 3)
        assert pf.schema_arrow.field("label").type == pa.float32()
        assert pa.types.is_list(pf.schema_arrow.field("a").type)
    assert read_metadata(tmp_path / "ds") == meta
    lengths, values, dense, labels = columns
    with ParquetRangeReader(meta, ["label", "dense", "a", "b"]) as reader:
        for start, stop in [(0, 1000), (300, 700), (319, 321), (960, 1000), (5, 5)]:
            got = reader.read(start, stop)
            np.testing.assert_array_equal(got["label"].to_numpy(), labels[start:stop])
            np.testing.assert_array_equal(got["dense"].flatten().to_numpy().reshape(-1, 3), dense[start:stop])
            for f in ("a", "b"):
                offsets = np.concatenate([[0], np.cumsum(lengths[f])])
                np.testing.assert_array_equal(
                    got[f].flatten().to_numpy(), values[f][offsets[start] : offsets[stop]]
                )
                np.testing.assert_array_equal(np.diff(got[f].offsets.to_numpy()), lengths[f][start:stop])


def _writer(path, features, row_group_size):
    return ParquetDatasetWriter(
        path, features=features, num_dense=3, has_labels=True, row_group_size=row_group_size
    )


def test_feature_groups_and_reading_only_needed_files(tmp_path, columns):
    with _writer(tmp_path / "ds", ["a", "b"], 100) as writer:
        first = writer.open_part(["label", "dense", "a"])
        second = writer.open_part(["b"])
        for batch in _batches(columns, [250] * 4):
            first.write(batch)
            second.write(batch)
        meta = writer.finish(source="synthetic", num_embeddings={"a": 100, "b": 100})
    assert [f.columns for f in meta.files] == [("label", "dense", "a"), ("b",)]
    os.remove(tmp_path / "ds" / meta.files[0].path)  # a reader of "b" never opens the first file
    with ParquetRangeReader(meta, ["b"]) as reader:
        assert len(reader.read(0, N)["b"]) == N


def test_failed_or_unfinished_writes_leave_nothing(tmp_path, columns):
    with pytest.raises(RuntimeError, match="boom"):
        with _writer(tmp_path / "ds", ["a", "b"], 64) as writer:
            writer.write(next(_batches(columns, [100])))
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="without finish"):
        with _writer(tmp_path / "ds", ["a", "b"], 64) as writer:
            writer.write(next(_batches(columns, [100])))
    assert list(tmp_path.iterdir()) == []
    # An existing dataset is replaced only by a complete new one.
    _write(tmp_path / "ds", columns)
    before = (tmp_path / "ds" / "metadata.json").read_text()
    with pytest.raises(ValueError, match="lacks columns"):
        with _writer(tmp_path / "ds", ["a", "b", "c"], 64) as writer:
            writer.write(next(_batches(columns, [100])))
    assert (tmp_path / "ds" / "metadata.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.fixture()
def dataset(tmp_path, columns):
    _write(tmp_path / "ds", columns, samples_per_file=500)
    return tmp_path / "ds"


def _mutate(dataset, change):
    path = dataset / "metadata.json"
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m.update(num_samples="1000"), "num_samples"),
        (lambda m: m.update(format_version=2), "format_version"),
        (lambda m: m.update(source="no such/name"), "source"),
        (lambda m: m["splits"].update(train=[0, 5000]), "splits.train"),
        (lambda m: m["num_embeddings"].pop("b"), "num_embeddings"),
        (lambda m: m["num_embeddings"].update(a=0), "num_embeddings.a"),
        (lambda m: m["files"][0].update(columns=["label", "x"]), "files[0].columns"),
        (lambda m: m["files"][1].update(path="/etc/passwd.parquet"), "files[1].path"),
        (lambda m: m["files"][1].update(sha256="abc"), "files[1].sha256"),
        (lambda m: m["files"][1].update(row_start=400), "files"),
        (lambda m: m.update(has_labels=False), "has_labels"),
        (lambda m: m.pop("features"), "features"),
    ],
)
def test_bad_metadata_names_file_and_field(dataset, change, field):
    path = _mutate(dataset, change)
    with pytest.raises(DataFormatError) as err:
        read_metadata(dataset)
    assert str(err.value).startswith(f"{path}: field '{field}'")


def test_missing_or_unparsable_metadata(tmp_path, dataset):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        read_metadata(tmp_path / "nowhere")
    (dataset / "metadata.json").write_text('{"format_version": 1,\n "source": }')
    with pytest.raises(DataFormatError, match=rf"{dataset / 'metadata.json'}:2:\d+: invalid JSON"):
        read_metadata(dataset)


def test_checksums_and_damaged_files_are_reported(dataset):
    meta = verify_dataset(dataset)
    damaged = dataset / meta.files[1].path
    data = damaged.read_bytes()
    assert meta.files[1].size == len(data)
    damaged.write_bytes(data[: len(data) // 2])  # truncated: the size says so, without hashing
    with pytest.raises(
        DataFormatError, match=rf"{damaged}: size mismatch: {len(data) // 2} bytes, but .*metadata.json lists"
    ):
        verify_dataset(dataset)
    damaged.write_bytes(data[:-8] + bytes(8))  # the same size, another content
    with pytest.raises(
        DataFormatError, match=rf"{damaged}: sha256 mismatch: expected {meta.files[1].sha256}"
    ):
        verify_dataset(dataset)
    with pytest.raises(DataFormatError, match="sha256 mismatch"):
        ParquetRangeReader(meta, ["a"])  # a reader checks its files first
    damaged.write_bytes(data[: len(data) // 2])
    with ParquetRangeReader(meta, ["a"], verify=False) as reader:  # without: the reader's own checks
        reader.read(0, 10)  # the first file is fine
        with pytest.raises(DataFormatError, match=str(damaged)):
            reader.read(600, 610)


def test_reader_checks_rows_against_metadata(dataset):
    meta = read_metadata(dataset)
    other = dataset / meta.files[0].path
    table = pq.read_table(other).slice(0, 499)
    pq.write_table(table, other, row_group_size=64)
    with pytest.raises(DataFormatError, match=f"{other}: size mismatch"):
        ParquetRangeReader(meta, ["a"])
    with (
        ParquetRangeReader(meta, ["a"], verify=False) as reader,
        pytest.raises(DataFormatError, match="holds 499 rows"),
    ):
        reader.read(0, 10)


def test_resolve_splits():
    assert resolve_splits(10, {"test": 0.2, "train": 0.6, "val": 0.2}) == {
        "train": (0, 6),
        "val": (6, 8),
        "test": (8, 10),
    }
    assert resolve_splits(10, None) == {"train": (0, 10)}
    assert resolve_splits(10, {"train": [0, 4], "holdout": [4, 10]}) == {"train": (0, 4), "holdout": (4, 10)}
    with pytest.raises(ValueError, match="sum to <= 1"):
        resolve_splits(10, {"train": 0.9, "test": 0.2})
    with pytest.raises(ValueError, match="splits.train"):
        resolve_splits(10, {"train": [0, 11]})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lengths=st.lists(st.integers(0, 4), min_size=1, max_size=120),
    row_group_size=st.integers(1, 40),
    samples_per_file=st.one_of(st.none(), st.integers(1, 90)),
    batch_size=st.integers(1, 50),
    data=st.data(),
)
def test_any_layout_reads_back_exactly(
    tmp_path_factory, lengths, row_group_size, samples_per_file, batch_size, data
):
    n = len(lengths)
    lengths = np.array(lengths)
    values = np.arange(int(lengths.sum()), dtype=np.int64) * 7
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    batches = (
        {
            "f": sparse_column(
                lengths[a : a + batch_size], values[offsets[a] : offsets[min(a + batch_size, n)]]
            )
        }
        for a in range(0, n, batch_size)
    )
    path = tmp_path_factory.mktemp("prop") / "ds"
    meta = write_parquet_dataset(
        path,
        batches,
        source="synthetic",
        features=["f"],
        num_embeddings={"f": 7 * len(values) + 1},
        num_dense=0,
        has_labels=False,
        row_group_size=row_group_size,
        samples_per_file=samples_per_file,
    )
    assert meta.num_samples == n
    start = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(start, n))
    with ParquetRangeReader(read_metadata(path), ["f"]) as reader:
        column = reader.read(start, stop)["f"]
    np.testing.assert_array_equal(column.flatten().to_numpy(), values[offsets[start] : offsets[stop]])
    np.testing.assert_array_equal(np.diff(column.offsets.to_numpy()), lengths[start:stop])
