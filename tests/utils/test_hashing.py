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


def test_file_sha256_matches_the_published_digest_of_abc(tmp_path):
    from ecorec.utils import file_sha256

    (tmp_path / "abc").write_bytes(b"abc")  # FIPS 180-2 test vector
    assert file_sha256(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
