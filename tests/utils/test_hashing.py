import os
import time

from ecorec.utils import source_hash


def test_source_hash_tracks_content_not_mtime(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    module = pkg / "mod.py"
    module.write_text("x = 1\n")
    first = source_hash(pkg)
    stamp = time.time() + 100
    os.utime(module, (stamp, stamp))
    assert source_hash(pkg) == first
    module.write_text("x = 2\n")
    assert source_hash(pkg) != first


def test_source_hash_sees_new_files_and_skips_pycache(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "a.py").write_text("a = 1\n")
    first = source_hash(pkg)
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert source_hash(pkg) == first
    (pkg / "b.py").write_text("b = 1\n")
    assert source_hash(pkg) != first
