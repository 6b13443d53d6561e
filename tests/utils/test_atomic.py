import json

import pytest

from ecorec.utils import atomic_path, atomic_write, write_json_atomic


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_json_atomic(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_atomic_path_directory(tmp_path):
    target = tmp_path / "dataset"
    target.mkdir()
    (target / "stale").write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "part-0").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["part-0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_atomic_write_rejects_read_mode(tmp_path):
    with pytest.raises(ValueError, match="mode='r'"), atomic_write(tmp_path / "x", mode="r"):
        pass
