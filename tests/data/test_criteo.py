"""Criteo TSV (plain, .gz, inside dac.tar.gz) -> Parquet -> KJT: exact values against a hand-written parser,
bad lines named by file and line, unsafe archives refused."""

from __future__ import annotations

import gzip
import io
import math
import tarfile

import numpy as np
import pytest
import torch

from ecorec.data.criteo import convert_criteo
from ecorec.data.errors import DataFormatError
from ecorec.data.loader import ParquetBatchLoader
from ecorec.data.sources import CRITEO_1TB_NUM_EMBEDDINGS, CRITEO_KAGGLE_NUM_EMBEDDINGS

CAPS = [7, 1000, 3, 2**31, *range(11, 33)]


def _lines(n: int, seed: int) -> list[str]:
    """Random Criteo lines: empty fields, negative integers, 8-digit hex categories."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        fields = [str(rng.integers(0, 2))]
        for _ in range(13):
            fields.append("" if rng.random() < 0.2 else str(rng.integers(-3, 5000)))
        for _ in range(26):
            fields.append("" if rng.random() < 0.2 else f"{rng.integers(0, 2**32):08x}")
        lines.append("\t".join(fields))
    return lines


def _expected(lines: list[str], caps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hand parser: labels [n] (missing 0), dense [n, 13] = log(1 + max(x, 0)) (missing 0), sparse [n, 26] =
    hex % cap (missing 0)."""
    labels, dense, sparse = [], [], []
    for line in lines:
        fields = line.split("\t")
        labels.append(float(fields[0]) if fields[0] else 0.0)  # TorchRec: a missing label is 0
        dense.append([math.log1p(max(int(x), 0)) if x else 0.0 for x in fields[1:14]])
        sparse.append([(int(x, 16) if x else 0) % cap for x, cap in zip(fields[14:], caps)])
    return np.array(labels, np.float32), np.array(dense, np.float32), np.array(sparse, np.int64)


def _check(dataset, lines, caps, batch_size):
    labels, dense, sparse = _expected(lines, caps)
    loader = ParquetBatchLoader(dataset, split="train", global_batch_size=batch_size, drop_last=False)
    got_labels, got_dense, got_sparse = [], [], []
    for batch in loader:
        got_labels.append(batch.labels)
        got_dense.append(batch.dense)
        kjt = batch.sparse
        assert kjt.keys() == [f"cat_{i}" for i in range(26)]
        assert bool((kjt.lengths() == 1).all())  # one id per bag
        got_sparse.append(kjt.values().reshape(26, -1).T)
    np.testing.assert_array_equal(torch.cat(got_labels).numpy(), labels)
    np.testing.assert_allclose(torch.cat(got_dense).numpy(), dense, rtol=1e-6)
    np.testing.assert_array_equal(torch.cat(got_sparse).numpy(), sparse)


def _tar(path, members: dict[str, bytes], links: dict[str, str] | None = None):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def test_kaggle_archive_round_trip(tmp_path):
    lines = _lines(300, seed=0)
    archive = _tar(
        tmp_path / "dac.tar.gz",
        {"readme.txt": b"hello", "train.txt": ("\n".join(lines) + "\n").encode(), "test.txt": b"0\t1"},
    )
    meta = convert_criteo(
        [archive],
        tmp_path / "ds",
        source="criteo_kaggle",
        num_embeddings_per_feature=CAPS,
        row_group_size=64,
        splits={"train": 1.0},
    )
    assert meta.num_samples == 300 and meta.num_dense == 13 and meta.has_labels
    assert meta.num_embeddings == {f"cat_{i}": cap for i, cap in enumerate(CAPS)}
    _check(tmp_path / "ds", lines, CAPS, batch_size=128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dac.tar.gz", "ds"]  # nothing extracted


def test_1tb_days_plain_and_gzip_with_default_caps(tmp_path):
    day0, day1 = _lines(150, seed=1), _lines(77, seed=2)
    (tmp_path / "day_0").write_text("\n".join(day0))  # no final newline
    with gzip.open(tmp_path / "day_1.gz", "wt") as handle:
        handle.write("\n".join(day1) + "\n")
    meta = convert_criteo(
        [tmp_path / "day_0", tmp_path / "day_1.gz"],
        tmp_path / "ds",
        source="criteo_1tb",
        row_group_size=50,
        samples_per_file=100,
        block_size=2048,
    )
    assert meta.source == "criteo_1tb"
    assert [f.num_samples for f in meta.files] == [100, 100, 27]
    assert meta.provenance["inputs"] == [{"file": "day_0", "rows": 150}, {"file": "day_1.gz", "rows": 77}]
    assert meta.num_embeddings == {f"cat_{i}": cap for i, cap in enumerate(CRITEO_1TB_NUM_EMBEDDINGS)}
    assert CRITEO_1TB_NUM_EMBEDDINGS != CRITEO_KAGGLE_NUM_EMBEDDINGS
    _check(tmp_path / "ds", day0 + day1, CRITEO_1TB_NUM_EMBEDDINGS, batch_size=100)


def test_kaggle_default_caps(tmp_path):
    lines = _lines(60, seed=6)
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    meta = convert_criteo(
        [tmp_path / "train.txt"], tmp_path / "ds", source="criteo_kaggle", row_group_size=32
    )
    assert meta.num_embeddings == {f"cat_{i}": cap for i, cap in enumerate(CRITEO_KAGGLE_NUM_EMBEDDINGS)}
    _check(tmp_path / "ds", lines, CRITEO_KAGGLE_NUM_EMBEDDINGS, batch_size=60)


def test_empty_label_is_read_as_zero(tmp_path):
    lines = _lines(40, seed=5)
    for i in (0, 7, 39):  # empty labels
        lines[i] = "\t".join(["", *lines[i].split("\t")[1:]])
    lines[8] = "\t".join(["1", *lines[8].split("\t")[1:]])
    path = tmp_path / "day_0"
    path.write_text("\n".join(lines) + "\n")
    convert_criteo([path], tmp_path / "ds", source="criteo_1tb", row_group_size=16)
    labels, _, _ = _expected(lines, CRITEO_1TB_NUM_EMBEDDINGS)
    assert labels[[0, 7, 39]].tolist() == [0.0, 0.0, 0.0] and labels[8] == 1.0
    _check(tmp_path / "ds", lines, CRITEO_1TB_NUM_EMBEDDINGS, batch_size=40)


@pytest.mark.parametrize(
    ("mutate", "line_no", "message"),
    [
        (lambda f: f[:-1], 150, "expected 40 tab-separated fields, got 39"),
        (lambda f: [*f, "x"], 7, "expected 40 tab-separated fields, got 41"),
        (
            lambda f: [f[0], *f[1:17], "zz", *f[18:]],
            160,
            "column 'cat_3' must be a hexadecimal integer or empty",
        ),
        (lambda f: [f[0], "1.5", *f[2:]], 3, "column 'int_0' must be an integer or empty"),
        (lambda f: ["2", *f[1:]], 90, "column 'label' must be 0, 1 or empty; got '2'"),
        (lambda f: ["x", *f[1:]], 91, "column 'label' must be 0, 1 or empty; got 'x'"),
        (lambda f: [""], 120, "empty line (all 40 fields empty)"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, mutate, line_no, message):
    lines = _lines(200, seed=3)
    lines[line_no - 1] = "\t".join(mutate(lines[line_no - 1].split("\t")))
    path = tmp_path / "day_5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as err:  # small blocks: the line is found across block boundaries
        convert_criteo([path], tmp_path / "ds", source="criteo_1tb", block_size=4096)
    assert str(err.value).startswith(f"{path}:{line_no}: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day_5"]


def test_truncated_gzip_names_the_file(tmp_path):
    data = gzip.compress(("\n".join(_lines(400, seed=4)) + "\n").encode())
    path = tmp_path / "day_2.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=rf"^{path}: unreadable after line \d+"):
        convert_criteo([path], tmp_path / "ds", source="criteo_1tb", block_size=4096)


@pytest.mark.parametrize(
    ("members", "links", "message"),
    [
        ({"../evil.txt": b"x", "train.txt": b""}, None, "refusing member '../evil.txt': '..' in its path"),
        ({"/etc/evil.txt": b"x"}, None, "refusing member '/etc/evil.txt': absolute path"),
        ({}, {"train.txt": "/etc/passwd"}, "refusing member 'train.txt': a link"),
        ({"readme.txt": b"x"}, None, "no member 'train.txt'"),
    ],
)
def test_unsafe_or_incomplete_archives_are_refused(tmp_path, members, links, message):
    archive = _tar(tmp_path / "dac.tar.gz", members, links)
    with pytest.raises(
        DataFormatError, match=rf"^{archive}: " + message.replace("(", r"\(").replace(".", r"\.")
    ):
        convert_criteo([archive], tmp_path / "ds", source="criteo_kaggle")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dac.tar.gz"]


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="26 integers"):
        convert_criteo([tmp_path / "x"], tmp_path / "ds", num_embeddings_per_feature=[5] * 25)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing_day")):
        convert_criteo([tmp_path / "missing_day"], tmp_path / "ds", source="criteo_1tb")
