"""The TT benchmark's plumbing at tiny sizes (its numbers are printed by the benchmark, never tested)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ecorec.bench.__main__ import main as bench_main
from ecorec.bench.memory import measure_peak_memory
from ecorec.bench.tt import build_parser, config_from_args, make_variants
from ecorec.records import RECORD_VERSION


def test_peak_memory_of_known_allocations() -> None:
    def allocate() -> torch.Tensor:
        a = torch.empty(1_000_000)  # 4 MB
        b = torch.empty(2_000_000)  # 8 MB, both live: 12 MB
        del a
        c = torch.empty(500_000)  # 2 MB after a was freed: 10 MB
        return b + 0 if c.numel() else b

    _, peak = measure_peak_memory(allocate, "cpu")
    # 12 MB peak (+ the 8 MB result allocated while b and c are live: 8 + 2 + 8 = 18 MB)
    assert peak.peak_bytes == pytest.approx(18_000_000, abs=4096)


def test_tt_benchmark_writes_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tt.jsonl"
    code = bench_main([
        "tt", "--num-embeddings", "2000", "--embedding-dim", "8", "--tt-ranks", "4", "--batch-sizes", "16",
        "--copy-bytes", "1000000",
        "--repeats", "2", "--warmup", "1", "--num-batches", "2", "--indices", "zipf", "--pooling", "3",
        "--micro-batches", "1", "2", "--fbtt-chunk-size", "10", "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    variants = [r["metrics"]["variant"] for r in records]
    assert variants[:4] == ["ecorec", "ecorec_m2", "fbtt", "elrec"] and "nn_embedding_bag" in variants
    for record in records:
        assert set(record) == {"kind", "version", "config", "environment", "metrics"}
        assert record["kind"] == "bench" and record["version"] == RECORD_VERSION
        m = record["metrics"]
        assert m["forward_ms_median"] > 0 and m["forward_backward_ms_p90"] >= m["forward_backward_ms_median"]
        assert m["peak_forward_backward_bytes"] > 0 and m["param_bytes"] > 0
    tt = {r["metrics"]["variant"]: r["metrics"] for r in records}
    assert tt["ecorec"]["num_uniques"] <= tt["ecorec"]["nnz"]
    assert tt["fbtt"]["forward_gflop"] >= tt["ecorec"]["forward_gflop"]  # per occurrence vs per unique
    printed = capsys.readouterr().out
    assert "fwd+bwd ms" in printed and "fwd) than fbtt" in printed and "GB/s" in printed
    for record in records:
        m = record["metrics"]
        assert m["copy_bandwidth_gbps"] > 0 and m["achieved_gbps"] > 0
        assert m["bandwidth_fraction"] == pytest.approx(m["achieved_gbps"] / m["copy_bandwidth_gbps"])
        assert m["forward_traffic_bytes"] > 0 and m["backward_traffic_bytes"] > 0


def test_dispatcher_rejects_unknown_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["nope"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
    assert bench_main([]) == 2


def test_strategies_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tt.jsonl"
    args = [
        "tt", "--num-embeddings", "500", "--embedding-dim", "4", "--tt-ranks", "2", "--batch-sizes", "8",
        "--repeats", "1", "--warmup", "0", "--num-batches", "1", "--algorithms", "ecorec", "fbtt",
        "--micro-batches", "1", "--product-strategy", "auto", "slices", "--no-memory", "--no-progress",
    ]  # fmt: skip
    assert bench_main([*args, "--out", str(out)]) == 0
    variants = [json.loads(line)["metrics"]["variant"] for line in out.read_text().splitlines()]
    assert variants == ["ecorec/auto", "ecorec/slices", "fbtt/auto", "fbtt/slices"]
    assert "than fbtt/slices" in capsys.readouterr().out


def test_defaults_follow_the_device(caplog: pytest.LogCaptureFixture) -> None:
    cpu = config_from_args(build_parser().parse_args([]))
    assert (
        cpu.batch_sizes == (4096,) and "ecorec_cuda" not in cpu.algorithms and "fbgemm_tbe" in cpu.algorithms
    )
    cuda = config_from_args(build_parser().parse_args(["--device", "cuda"]))
    assert cuda.batch_sizes == (2048, 4096, 8192, 16384, 32768, 65536, 131072)
    assert cuda.algorithms == ("ecorec_cuda", "ecorec", "fbtt", "elrec", "nn_embedding_bag")
    assert (cuda.num_embeddings, cuda.embedding_dim, cuda.tt_ranks) == (1_000_000, 32, 32)
    only_cuda = config_from_args(build_parser().parse_args(["--algorithms", "ecorec_cuda", "ecorec"]))
    with caplog.at_level("WARNING", logger="ecorec.bench.tt"):
        names = [v.name for v in make_variants(dataclasses.replace(only_cuda, num_embeddings=1000))]
    assert names == ["ecorec", "ecorec_m4"]
    assert "ecorec_cuda: the CUDA kernels run on CUDA devices only" in caplog.text
