"""Bring your own data: write_dataset from polars / pyarrow / CSV / Parquet, the README example, bad inputs
refused before anything is written, and register_dataset (the workflow's `source: parquet`)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from ecorec.data import (
    DataFormatError,
    ParquetBatchLoader,
    read_metadata,
    register_dataset,
    write_dataset,
)

REPO = Path(__file__).resolve().parents[2]


def _frame(n: int = 12) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "y": [i % 2 for i in range(n)],
            "x1": [float(i) / 2 for i in range(n)],
            "x2": [float(-i) for i in range(n)],
            "uid": [(7 * i) % 5 for i in range(n)],
            "tags": [list(range(i % 3)) for i in range(n)],
            "site": [["b", "a", "c"][i % 3] for i in range(n)],
        }
    )


def _all_rows(path, features):
    """Every sample of every split, in dataset order, through the real loader: (labels, dense, {f: bags})."""
    meta = read_metadata(path)
    labels, dense, bags = [], [], {f: [] for f in features}
    for split in sorted(meta.splits, key=lambda s: meta.splits[s][0]):
        loader = ParquetBatchLoader(path, split=split, global_batch_size=4, drop_last=False, prefetch=0)
        for batch in loader:
            labels += batch.labels.tolist()
            dense += batch.dense.tolist()
            for f in features:
                jt = batch.sparse[f]
                values, offsets = jt.values().tolist(), jt.offsets().tolist()
                bags[f] += [values[a:b] for a, b in zip(offsets, offsets[1:])]
    return labels, dense, bags


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    """The README's "Your own data" end to end: its Python writes the dataset, then its run config and command
    train on it (one process)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.splitlines()) <= 25
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (Your own data)", "exec"), {})
    out = capsys.readouterr().out
    assert "{'user': 43, 'ad_tags': 10, 'site': 4}" in out
    meta = read_metadata(tmp_path / "data" / "clicks")
    assert meta.source == "my_clicks" and meta.num_samples == 512 and meta.num_dense == 2
    assert meta.provenance["url"] == "https://example.org/clicks" and meta.provenance["shuffled"]
    assert meta.provenance["vocabularies"] == {
        "site": ["blog", "news", "shop", "tv"]
    }  # sorted, id = position

    run_yaml = re.search(r"```yaml\n# clicks.yaml\n(.*?)```", section, re.S).group(1)
    command = re.search(r"```bash\n\.venv/bin/python -m ecorec\.train (.*?)(?:  +#.*)?\n```", section).group(
        1
    )
    assert command == "--config clicks.yaml"
    (tmp_path / "clicks.yaml").write_text(run_yaml)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    from ecorec.train.__main__ import main

    assert main(command.split()) == 0
    record = json.loads((tmp_path / "results" / "runs" / "clicks" / "record.json").read_text())
    m = record["metrics"]
    assert m["steps"] == 2 * (384 // 128)  # 2 epochs of the 384 train samples at G = 128
    assert set(m["final_auroc"]) == {"val"} and 0.0 <= m["final_auroc"]["val"] <= 1.0
    assert [e["samples"] for e in m["eval"]] == [128]  # the whole val split
    assert {t["kind"] for t in m["tables"]} == {"uncompressed"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_polars_round_trip_against_the_input(tmp_path):
    frame = _frame()
    meta = write_dataset(
        tmp_path / "ds",
        frame,
        source="toy",
        sparse=["uid", "tags", "site"],
        dense=["x1", "x2"],
        label="y",
        splits={"train": 0.5, "val": 0.25, "test": 0.25},
        row_group_size=5,
    )
    assert meta.num_embeddings == {"uid": 5, "tags": 2, "site": 3}
    assert meta.splits == {"train": (0, 6), "val": (6, 9), "test": (9, 12)}
    labels, dense, bags = _all_rows(tmp_path / "ds", ["uid", "tags", "site"])
    assert labels == [float(v) for v in frame["y"]]
    assert dense == [[a, b] for a, b in zip(frame["x1"], frame["x2"])]
    assert bags["uid"] == [[v] for v in frame["uid"]]
    assert bags["tags"] == [list(v) for v in frame["tags"]]
    assert bags["site"] == [[{"a": 0, "b": 1, "c": 2}[s]] for s in frame["site"]]  # sorted distinct values
    assert meta.provenance["encoded_string_features"] == ["site"]


def test_shuffle_permutes_whole_samples_with_the_seed(tmp_path):
    frame = _frame(40)
    write_dataset(tmp_path / "ds", frame, source="toy", sparse=["uid"], dense=["x1"], label="y", shuffle=True)
    _, dense, bags = _all_rows(tmp_path / "ds", ["uid"])
    order = np.random.default_rng(0).permutation(40)
    assert [d[0] for d in dense] == [frame["x1"][int(i)] for i in order]
    assert bags["uid"] == [[frame["uid"][int(i)]] for i in order]  # a sample's columns stay together


def test_csv_and_parquet_files_with_provenance(tmp_path):
    frame = _frame(10).drop("tags")  # CSV holds no lists
    frame.head(6).write_csv(tmp_path / "a.csv")
    frame.tail(4).write_csv(tmp_path / "b.csv")
    meta = write_dataset(
        tmp_path / "from_csv",
        [tmp_path / "a.csv", tmp_path / "b.csv"],
        source="toy_csv",
        sparse=["uid", "site"],
        dense=["x1"],
        label="y",
        num_embeddings={"uid": 8, "site": 3},
    )
    assert meta.num_samples == 10 and meta.num_embeddings == {"uid": 8, "site": 3}
    assert [i["file"] for i in meta.provenance["inputs"]] == ["a.csv", "b.csv"]
    assert [i["rows"] for i in meta.provenance["inputs"]] == [6, 4]
    _frame(10).write_parquet(tmp_path / "c.parquet")
    meta = write_dataset(
        tmp_path / "from_pq", tmp_path / "c.parquet", source="toy", sparse=["tags"], label=None
    )
    assert not meta.has_labels and meta.num_embeddings == {"tags": 2}
    table = pa.table({"y": [0, 1], "f": [3, 4]})  # a pyarrow table
    assert write_dataset(tmp_path / "from_arrow", table, source="t", sparse=["f"], label="y").num_samples == 2


def _bad(frame, **changes):
    kwargs = {"source": "toy", "sparse": ["uid", "tags"], "dense": ["x1"], "label": "y"} | changes
    return frame, kwargs


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f: _bad(f.with_columns(y=pl.Series([0, 1, 2] * 4))), "label column 'y': row 2 is 2"),
        (
            lambda f: _bad(f.with_columns(x1=pl.Series([0.0, math.nan] * 6))),
            "dense column 'x1': row 1 is nan",
        ),
        (
            lambda f: _bad(f.with_columns(x1=pl.Series([1.0, None] * 6))),
            "dense column 'x1': row 1 is null",
        ),
        (
            lambda f: _bad(f.with_columns(uid=pl.Series([0, -3] * 6))),
            "sparse column 'uid': row 1 has the negative",
        ),
        (
            lambda f: _bad(f, num_embeddings={"uid": 3, "tags": 5}),
            "sparse column 'uid': row 2 has id 4 >= num_embeddings['uid'] = 3",
        ),
        (lambda f: _bad(f, sparse=["uid", "uid"]), "sparse: duplicate column names ['uid']"),
        (lambda f: _bad(f, sparse=["uid", "clicks"]), "data: no column(s) ['clicks']"),
        (lambda f: _bad(f.head(0)), "data: no rows"),
        (lambda f: _bad(f, dense=["uid"]), "columns ['uid'] are listed as both sparse and dense"),
        (lambda f: _bad(f, sparse=["x2"]), "sparse column 'x2': expected integer ids, strings, or lists"),
        (lambda f: _bad(f, source="my data!"), "source: a dataset's source name must be"),
        (lambda f: _bad(f, dense=["site"]), "dense column 'site': expected numbers"),
        (lambda f: _bad(f.rename({"uid": "label"}), sparse=["label"]), "are reserved column names"),
        (lambda f: _bad(f, sparse=[]), "sparse: at least one sparse"),
    ],
    ids=[
        "label-2",
        "nan-dense",
        "null-dense",
        "negative-id",
        "id-beyond-table",
        "duplicate-feature",
        "missing-column",
        "zero-rows",
        "sparse-and-dense",
        "float-ids",
        "bad-source-name",
        "string-dense",
        "reserved-name",
        "no-sparse",
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, make, message):
    frame, kwargs = make(_frame())
    with pytest.raises(ValueError) as err:
        write_dataset(tmp_path / "ds", frame, **kwargs)
    assert message in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_files_are_named(tmp_path):
    _frame(4).drop("tags").write_csv(tmp_path / "a.csv")
    _frame(4).drop("tags").drop("x2").write_csv(tmp_path / "b.csv")
    (tmp_path / "notes.json").write_text("{}")
    kwargs = {"source": "toy", "sparse": ["uid"], "label": "y"}
    with pytest.raises(ValueError, match=r"b.csv: columns .* differ from the first file's"):
        write_dataset(tmp_path / "ds", [tmp_path / "a.csv", tmp_path / "b.csv"], **kwargs)
    with pytest.raises(ValueError, match=r"is a directory; pass its data files"):
        write_dataset(tmp_path / "ds", tmp_path, **kwargs)
    with pytest.raises(FileNotFoundError, match=r"missing.csv: no such file"):
        write_dataset(tmp_path / "ds", tmp_path / "missing.csv", **kwargs)
    with pytest.raises(ValueError, match=r"notes.json: unknown file type"):
        write_dataset(tmp_path / "ds", tmp_path / "notes.json", **kwargs)
    assert not (tmp_path / "ds").exists()


def test_free_form_sources_and_bad_source_in_metadata(tmp_path):
    write_dataset(tmp_path / "ds", _frame(), source="avazu-2014.v1", sparse=["uid"], label="y")
    assert read_metadata(tmp_path / "ds").source == "avazu-2014.v1"
    obj = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    obj["source"] = "../etc"
    (tmp_path / "ds" / "metadata.json").write_text(json.dumps(obj))
    with pytest.raises(DataFormatError, match=r"metadata.json: field 'source': must be a name of letters"):
        read_metadata(tmp_path / "ds")


def test_register_dataset_verifies_links_and_records_where_from(tmp_path):
    write_dataset(tmp_path / "mine", _frame(), source="toy", sparse=["uid", "tags"], label="y")
    meta = register_dataset(
        tmp_path / "mine", tmp_path / "results" / "clicks", name="clicks", description="d"
    )
    assert meta.provenance["registered"]["from"] == str((tmp_path / "mine").resolve())
    assert meta.provenance["registered"]["description"] == "d" and meta.source == "toy"
    labels, _, bags = _all_rows(tmp_path / "results" / "clicks", ["uid"])
    assert labels == [float(v) for v in _frame()["y"]]
    part = tmp_path / "mine" / read_metadata(tmp_path / "mine").files[0].path
    part.unlink()
    part.write_bytes(b"PAR1 damaged")  # a new inode: the registered copy is unaffected, the source is bad
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(part))}: size mismatch"):
        register_dataset(tmp_path / "mine", tmp_path / "results" / "other", name="other")
    assert not (tmp_path / "results" / "other").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataFormatError, match=r"afile: is a file; a dataset is a folder"):
        register_dataset(tmp_path / "afile", tmp_path / "results" / "x", name="x")


def test_string_vocabularies_are_stored_and_reused(tmp_path):
    """Each string column's vocabulary goes to metadata.json (id = position, sorted); a second file written
    with it keeps the first file's ids and appends its new strings (oracle: the input strings, read back
    through the loader and the stored vocabulary)."""
    first = pl.DataFrame({"y": [0, 1, 1], "site": ["news", "shop", "blog"], "tags": [["x"], ["z", "x"], []]})
    meta = write_dataset(tmp_path / "a", first, source="a", sparse=["site", "tags"], label="y")
    vocab = meta.provenance["vocabularies"]
    assert vocab == {"site": ["blog", "news", "shop"], "tags": ["x", "z"]}
    second = pl.DataFrame({"y": [1, 0, 0], "site": ["tv", "news", "blog"], "tags": [["w"], ["x"], ["z"]]})
    meta = write_dataset(
        tmp_path / "b", second, source="b", sparse=["site", "tags"], label="y", vocabularies=vocab
    )
    got = read_metadata(tmp_path / "b").provenance["vocabularies"]
    assert got == {"site": ["blog", "news", "shop", "tv"], "tags": ["x", "z", "w"]}
    assert meta.num_embeddings == {"site": 4, "tags": 3}  # the whole vocabulary, "shop" included
    _, _, bags = _all_rows(tmp_path / "b", ["site", "tags"])
    assert [[got["site"][i] for i in bag] for bag in bags["site"]] == [[s] for s in second["site"]]
    assert [[got["tags"][i] for i in bag] for bag in bags["tags"]] == [list(t) for t in second["tags"]]
    assert bags["site"][1] == [1]  # "news": the first file's id

    def bad(**kwargs):
        return write_dataset(
            tmp_path / "bad", second, source="b", sparse=["site", "tags"], label="y", **kwargs
        )

    with pytest.raises(ValueError, match=r"vocabularies: \['y'\] are not sparse columns"):
        bad(vocabularies={"y": ["0"]})
    with pytest.raises(ValueError, match=r"vocabularies\['site'\]: 'tv' appears twice"):
        bad(vocabularies={"site": ["tv", "tv"]})
    with pytest.raises(
        ValueError, match=r"num_embeddings\['site'\] = 3 is smaller than the column's vocabulary"
    ):
        write_dataset(
            tmp_path / "bad",
            first,
            source="a",
            sparse=["site", "tags"],
            label="y",
            vocabularies=got,
            num_embeddings={"site": 3, "tags": 3},
        )  # ids 0..2 fit, the 4-string vocabulary does not
    frame = pl.DataFrame({"y": [0, 1], "uid": [3, 4]})
    with pytest.raises(ValueError, match=r"vocabularies\['uid'\]: column 'uid' holds integer ids"):
        write_dataset(
            tmp_path / "bad", frame, source="b", sparse=["uid"], label="y", vocabularies={"uid": ["a"]}
        )
    assert not (tmp_path / "bad").exists()


def test_dense_transforms_are_applied_and_recorded(tmp_path):
    """log1p of max(x, 0) and standardization by the train split's mean and std (oracle: numpy on the input
    columns), recorded with their statistics, and the recorded statistics applied to another file."""
    rng = np.random.default_rng(0)
    price, hour = rng.normal(5.0, 3.0, 40), rng.integers(-2, 24, 40).astype(float)
    frame = pl.DataFrame({"y": [0, 1] * 20, "uid": list(range(40)), "price": price, "hour": hour})
    meta = write_dataset(
        tmp_path / "ds", frame, source="toy", sparse=["uid"], dense=["price", "hour"], label="y",
        splits={"train": 0.75, "val": 0.25}, dense_transform={"price": "standardize", "hour": "log1p"},
    )  # fmt: skip
    recorded = meta.provenance["dense_transform"]
    mean, std = price[:30].mean(), price[:30].std()  # the train split: the first 30 samples
    assert recorded["hour"] == {"kind": "log1p"}
    assert recorded["price"]["kind"] == "standardize"
    assert (recorded["price"]["mean"], recorded["price"]["std"]) == pytest.approx((mean, std))
    _, dense, _ = _all_rows(tmp_path / "ds", ["uid"])
    np.testing.assert_allclose(np.array(dense)[:, 0], (price - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(dense)[:, 1], np.log1p(np.maximum(hour, 0.0)), rtol=1e-6)
    other = frame.head(10).with_columns(price=pl.Series(np.linspace(0.0, 9.0, 10)))
    write_dataset(tmp_path / "other", other, source="toy", sparse=["uid"], dense=["price", "hour"],
                  label="y", dense_transform=recorded)  # fmt: skip
    _, dense, _ = _all_rows(tmp_path / "other", ["uid"])
    np.testing.assert_allclose(np.array(dense)[:, 0], (np.linspace(0.0, 9.0, 10) - mean) / std, rtol=1e-5)
    assert read_metadata(tmp_path / "other").provenance["dense_transform"]["price"] == recorded["price"]

    def bad(spec):
        return write_dataset(tmp_path / "bad", frame, source="t", sparse=["uid"], dense=["price"], label="y",
                             dense_transform=spec)  # fmt: skip

    with pytest.raises(ValueError, match=r"dense_transform: \['hour'\] are not dense columns"):
        bad({"hour": "log1p"})
    with pytest.raises(
        ValueError, match=r"dense_transform\['price'\]: 'log' is not one of log1p, standardize"
    ):
        bad("log")
    with pytest.raises(ValueError, match=r"dense_transform\['price'\]: give both mean and std"):
        bad({"price": {"kind": "standardize", "mean": 1.0}})
    with pytest.raises(ValueError, match=r"dense_transform\['price'\]: std must be > 0"):
        bad({"price": {"kind": "standardize", "mean": 1.0, "std": 0.0}})
    assert not (tmp_path / "bad").exists()
