"""Resumable, verified downloads against a local HTTP server (with Range support) made by the test."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from pathlib import Path

import pytest
import torch

from ecorec.data.download import download_file
from ecorec.data.errors import DownloadError
from ecorec.data.loader import ParquetBatchLoader
from ecorec.data.meta_dlrm import convert_meta_dlrm, write_meta_dlrm_file
from ecorec.data.sources import join_url, lfs_object, lfs_objects, meta_dlrm_files, resource_path
from ecorec.data.synthetic import synthetic_meta_dlrm_tensors


class _Server:
    """Files served from memory; can cut a response short once, ignore Range, and logs every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: dict[str, int] = {}
        self.ignore_range: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start, status = 0, 200
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and self.path not in server.ignore_range:
                    start, status = int(match.group(1)), 206
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                cut = server.cut_once.pop(self.path, None)
                self.wfile.write(body if cut is None else body[:cut])
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture()
def server():
    s = _Server()
    yield s
    s.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = bytes(range(256)) * 4000  # 1 MB


def _download(server, dest: Path, data: bytes = PAYLOAD, **kwargs):
    kwargs.setdefault("expected_sha256", _sha(data))
    kwargs.setdefault("expected_size", len(data))
    return download_file(f"{server.url}/f.bin", dest, retry_wait=0, chunk_size=4096, progress=False, **kwargs)


def test_verified_download(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    dest = _download(server, tmp_path / "sub" / "f.bin")
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]
    # An existing file that verifies is not downloaded again.
    _download(server, dest)
    assert len(server.requests) == 1


def test_resumes_after_an_interrupted_transfer(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.cut_once["/f.bin"] = 300_000
    dest = _download(server, tmp_path / "f.bin", max_attempts=3)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=300000-")]


def test_resumes_a_part_file_left_by_an_earlier_run(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:123_456])
    assert _download(server, tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", "bytes=123456-")]
    assert not (tmp_path / "f.bin.part").exists()


def test_gives_up_keeping_the_part_for_a_later_resume(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.cut_once["/f.bin"] = 1000
    with pytest.raises(DownloadError, match=r"failed after 1 attempts .*f\.bin\.part \(1000 bytes\) is kept"):
        _download(server, tmp_path / "f.bin", max_attempts=1)
    assert not (tmp_path / "f.bin").exists() and (tmp_path / "f.bin.part").stat().st_size == 1000


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.ignore_range.add("/f.bin")
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    assert _download(server, tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_wrong_checksum_is_rejected_without_leaving_a_partial(server, tmp_path):
    tampered = PAYLOAD[:-1] + b"\x00"
    server.files["/f.bin"] = tampered
    with pytest.raises(DownloadError) as err:
        _download(server, tmp_path / "f.bin")
    message = str(err.value)
    assert str(tmp_path / "f.bin") in message and _sha(PAYLOAD) in message and _sha(tampered) in message
    assert list(tmp_path.iterdir()) == []


def test_truncated_file_is_rejected_without_leaving_a_partial(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD[:500_000]
    with pytest.raises(
        DownloadError, match=rf"{tmp_path / 'f.bin'}: size mismatch: expected {len(PAYLOAD)} bytes"
    ):
        _download(server, tmp_path / "f.bin")
    assert list(tmp_path.iterdir()) == []
    # Without an expected size the sha256 still catches it.
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        _download(server, tmp_path / "f.bin", expected_size=None)
    assert list(tmp_path.iterdir()) == []


def test_http_errors_name_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match=rf"{server.url}/f\.bin answered HTTP 404"):
        _download(server, tmp_path / "f.bin")
    assert list(tmp_path.iterdir()) == []


def test_meta_file_download_then_conversion_round_trip(server, tmp_path):
    indices, offsets, lengths = synthetic_meta_dlrm_tensors(3, 50, rows_min=10, rows_max=500, seed=4)
    source = tmp_path / "served.pt.gz"
    write_meta_dlrm_file(source, indices, offsets, lengths)
    data = source.read_bytes()
    server.files["/media/embedding_bag/2022/fbgemm_t3_bs50_0.pt.gz"] = data
    dest = download_file(
        join_url(f"{server.url}/media/", "/embedding_bag/2022/fbgemm_t3_bs50_0.pt.gz"),
        tmp_path / "resources" / "fbgemm_t3_bs50_0.pt.gz",
        expected_sha256=_sha(data),
        expected_size=len(data),
        progress=False,
    )
    convert_meta_dlrm([dest], tmp_path / "ds", strict_shape=False, row_group_size=16)
    batch = next(iter(ParquetBatchLoader(tmp_path / "ds", global_batch_size=50, layout="global")))
    for t in range(3):
        assert torch.equal(batch.sparse[f"f{t}"].values(), indices[offsets[t * 50] : offsets[(t + 1) * 50]])


def test_packaged_lfs_facts():
    lines = resource_path("dlrm_datasets_lfs_objects.tsv").read_text().splitlines()
    assert len(lfs_objects()) == len(lines) - 1 == 33
    path, sha, size = lines[1].split("\t")
    assert lfs_object(path).sha256 == sha and lfs_object(path).size == int(size)
    files_2022 = meta_dlrm_files("meta_dlrm_2022")
    assert files_2022 == [f"embedding_bag/2022/fbgemm_t788_bs131072_{i}.pt.gz" for i in range(16)]
    assert meta_dlrm_files("meta_dlrm_2021")[:2] == [
        "embedding_bag/2021/fbgemm_t856_bs65536.pt.gz",
        "embedding_bag/2021/fbgemm_t856_bs65536_0.pt.gz",
    ]
    assert lfs_object(files_2022[0]).size == 3464855926
    with pytest.raises(KeyError, match="not a dlrm_datasets file"):
        lfs_object("embedding_bag/2022/nope.pt.gz")
