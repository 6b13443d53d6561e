"""Index sources of the TT benchmark (synthetic generator, Parquet dataset tables) and its per-repeat samples,
against independent oracles: a direct generator call, the bags written into a hand-made dataset."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from ecorec.bench.__main__ import main as bench_main
from ecorec.bench.tt import TTBenchConfig, largest_tables, sum_over_tables, synthetic_source
from ecorec.data import (
    LocalityAccumulator,
    synthetic_table_lookup,
    write_locality_stats,
    write_parquet_dataset,
)

#: Rows of the hand-made dataset's tables, in column order: f1 and f3 are the two largest (a tie, f1 first),
#: f0 and f2 tie for third (f0 first by column order).
ROWS = {"f0": 120, "f1": 360, "f2": 120, "f3": 360, "f4": 60}
NUM_SAMPLES, TRAIN = 40, 32  # train split [0, 32): 4 batches of 8, 2 of 16
TINY = [
    "--embedding-dim", "4", "--tt-ranks", "4", "--repeats", "2", "--warmup", "0", "--copy-bytes", "100000",
    "--micro-batches", "1", "--fbtt-chunk-size", "16", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def bags() -> dict[str, list[list[int]]]:
    """``{table: [NUM_SAMPLES] bags}``: random rows in range, lengths 0..5 (some bags empty)."""
    rng = np.random.default_rng(11)
    return {
        name: [rng.integers(0, rows, size=rng.integers(0, 6)).tolist() for _ in range(NUM_SAMPLES)]
        for name, rows in ROWS.items()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, bags: dict[str, list[list[int]]]) -> Path:
    path = tmp_path_factory.mktemp("bench") / "hand"
    columns = {name: pa.array(b, type=pa.list_(pa.int64())) for name, b in bags.items()}
    write_parquet_dataset(
        path,
        [{"label": pa.array([0.0] * NUM_SAMPLES, pa.float32()), **columns}],
        source="synthetic",
        features=list(ROWS),
        num_embeddings=ROWS,
        num_dense=0,
        has_labels=True,
        row_group_size=8,
        splits={"train": [0, TRAIN], "val": [TRAIN, NUM_SAMPLES]},
    )
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_synthetic_source_is_the_generators_batch(tmp_path: Path) -> None:
    config = TTBenchConfig(num_embeddings=3000, seed=5, indices="synthetic")
    for batch_index in (0, 1):
        got = synthetic_source(config, 64, batch_index)
        indices, offsets = synthetic_table_lookup(3000, 64, seed=5, batch_index=batch_index)
        assert torch.equal(got.indices, indices) and torch.equal(got.offsets, offsets)
        assert torch.equal(got.lengths, offsets.diff()) and got.per_sample_weights is None
    # --stats-file reaches the generator: a file with ~4 indices per sample and little reuse
    accumulator = LocalityAccumulator()
    accumulator.add(np.array([1] * 500 + [2] * 300 + [4] * 200))
    accumulator.end_batch()
    stats = tmp_path / "stats.txt"
    write_locality_stats(stats, [accumulator.block("hand_t1_bs500_0.pt", 500)])
    own = synthetic_source(TTBenchConfig(num_embeddings=3000, seed=5, stats_file=str(stats)), 64, 0)
    indices, offsets = synthetic_table_lookup(3000, 64, seed=5, stats_file=stats)
    assert torch.equal(own.indices, indices) and torch.equal(own.offsets, offsets)
    assert own.indices.numel() != synthetic_source(config, 64, 0).indices.numel()


def test_synthetic_benchmark_records_samples(tmp_path: Path) -> None:
    out = tmp_path / "tt.jsonl"
    args = ["tt", "--indices", "synthetic", "--num-embeddings", "2000", "--batch-sizes", "16", "32"]
    args += ["--num-batches", "2", "--algorithms", "ecorec", "fbtt", "--no-memory", *TINY, "--out", str(out)]
    assert bench_main(args) == 0
    records = _records(out)
    assert [(r["metrics"]["batch_size"], r["metrics"]["variant"]) for r in records] == [
        (16, "ecorec"), (16, "fbtt"), (32, "ecorec"), (32, "fbtt"),
    ]  # fmt: skip
    for record in records:
        m, batch_size = record["metrics"], record["metrics"]["batch_size"]
        assert m["table"] is None and m["num_embeddings"] == 2000 == record["config"]["num_embeddings"]
        assert record["config"]["indices"] == "synthetic" and record["config"]["stats_file"] is None
        expected_nnz = [synthetic_table_lookup(2000, batch_size, batch_index=i)[0].numel() for i in (0, 1)]
        assert m["nnz"] == statistics.mean(expected_nnz)
        for prefix in ("forward_ms", "forward_backward_ms"):
            samples = m[f"{prefix}_samples"]
            assert len(samples) == 2 and all(s > 0 for s in samples)
            assert statistics.median(samples) == m[f"{prefix}_median"]
            assert min(samples) <= m[f"{prefix}_p10"] <= m[f"{prefix}_median"] <= m[f"{prefix}_p90"]


def test_largest_tables_by_rows_ties_by_column(dataset: Path) -> None:
    assert largest_tables(dataset, 2) == ["f1", "f3"]
    assert largest_tables(dataset, 3) == ["f1", "f3", "f0"]
    assert largest_tables(dataset, 5) == ["f1", "f3", "f0", "f2", "f4"]
    with pytest.raises(ValueError, match="has only 5 tables"):
        largest_tables(dataset, 6)
    with pytest.raises(ValueError, match="--largest-tables must be >= 1"):
        largest_tables(dataset, 0)


def test_dataset_benchmark_runs_the_largest_tables(
    tmp_path: Path, dataset: Path, bags: dict[str, list[list[int]]], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tt.jsonl"
    args = ["tt", "--indices", "dataset", "--dataset", str(dataset), "--largest-tables", "2"]
    args += ["--batch-sizes", "8", "--num-batches", "2", "--algorithms", "ecorec", "nn_embedding_bag"]
    assert bench_main([*args, *TINY, "--out", str(out)]) == 0
    records = _records(out)
    expected = sorted(ROWS, key=lambda name: -ROWS[name])[:2]  # the oracle: metadata sorted by rows
    assert [(r["metrics"]["table"], r["metrics"]["variant"]) for r in records] == [
        (table, variant) for table in expected for variant in ("ecorec", "nn_embedding_bag")
    ]
    for record in records:
        m, table = record["metrics"], record["metrics"]["table"]
        assert m["num_embeddings"] == ROWS[table] == record["config"]["num_embeddings"]
        first = [bags[table][i * 8 : (i + 1) * 8] for i in range(2)]  # the bags written, batch by batch
        assert m["nnz"] == statistics.mean(sum(len(bag) for bag in batch) for batch in first)
        assert m["num_uniques"] == statistics.mean(
            len({row for bag in batch for row in bag}) for batch in first
        )
        assert len(m["forward_backward_ms_samples"]) == 2 and m["peak_forward_backward_bytes"] > 0
        dense = 4 * ROWS[table] * 4
        assert (m["param_bytes"] == dense) == (m["variant"] == "nn_embedding_bag")
    summary = {m["variant"]: m for m in sum_over_tables(records)}
    for variant, m in summary.items():
        per_table = [r["metrics"] for r in records if r["metrics"]["variant"] == variant]
        sums = [a + b for a, b in zip(*(p["forward_backward_ms_samples"] for p in per_table))]
        assert m["forward_backward_ms_samples"] == pytest.approx(sums) and m["num_tables"] == 2
        assert m["peak_forward_backward_bytes"] == max(p["peak_forward_backward_bytes"] for p in per_table)
    assert "B=8 (all 2 tables) ecorec" in capsys.readouterr().out


def test_sum_over_tables_by_hand() -> None:
    def record(table: str, variant: str, forward: list[float], step: list[float]) -> dict:
        return {
            "metrics": {
                "batch_size": 4, "variant": variant, "table": table, "num_embeddings": 10,
                "forward_ms_samples": forward, "forward_backward_ms_samples": step, "param_bytes": 1,
                "optimizer_state_bytes": 0, "nnz": 3, "num_uniques": 2, "num_groups": 1,
            }
        }  # fmt: skip

    records = [
        record("a", "ecorec", [1.0, 2.0, 3.0], [10.0, 20.0, 60.0]),
        record("b", "ecorec", [3.0, 1.0, 1.0], [5.0, 1.0, 1.0]),
        record("a", "nn_embedding_bag", [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),  # missing for b: left out
    ]
    (m,) = sum_over_tables(records)
    assert m["variant"] == "ecorec" and m["table"] == "all" and m["num_tables"] == 2
    assert m["forward_ms_samples"] == [4.0, 3.0, 4.0] and m["forward_ms_median"] == 4.0
    assert m["forward_backward_ms_samples"] == [15.0, 21.0, 61.0]
    assert m["forward_backward_ms_median"] == 21.0 and m["forward_backward_ms_mean"] == pytest.approx(97 / 3)
    assert m["forward_backward_ms_p10"] == pytest.approx(15.0 + 0.2 * 6.0)  # linear interpolation
    assert m["num_embeddings"] == 20 and m["nnz"] == 6 and "peak_forward_bytes" not in m


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--indices", "dataset"], "--indices dataset needs --dataset"),
        (["--indices", "dataset", "--dataset", "{dataset}", "--tables", "f1", "--largest-tables", "2"],
         "--tables and --largest-tables exclude each other"),
        (["--indices", "zipf", "--tables", "f1"], "need --indices dataset"),
        (["--indices", "synthetic", "--pooling", "3"],
         "--pooling 3.0 has no effect with --indices synthetic"),
        (["--indices", "dataset", "--dataset", "{dataset}", "--num-embeddings", "7"],
         "--num-embeddings 7 has no effect with --indices dataset"),
        (["--indices", "zipf", "--split", "val"], "--split val has no effect with --indices zipf"),
        (["--indices", "dataset", "--dataset", "{tmp}/nowhere", "--tables", "f1"],
         r"--dataset \S*nowhere: no such directory"),
        (["--indices", "dataset", "--dataset", "{tmp}", "--tables", "f1"],
         r"--dataset \S*: \S*metadata.json"),
        (["--indices", "dataset", "--dataset", "{dataset}", "--tables", "f1", "fx"],
         r"--tables: \S*hand has no table 'fx'"),
        (["--indices", "dataset", "--dataset", "{dataset}", "--largest-tables", "6"],
         r"--largest-tables 6: \S*hand has only 5 tables"),
        (["--indices", "dataset", "--dataset", "{dataset}", "--largest-tables", "-1"],
         "--largest-tables must be >= 0"),
        (["--indices", "dataset", "--dataset", "{dataset}", "--tables", "f1", "--split", "test"],
         r"--split 'test': \S*hand has no such split"),
        (["--indices", "dataset", "--dataset", "{dataset}", "--tables", "f1", "--batch-sizes", "8", "16",
          "--num-batches", "3"],
         r"--split 'train' of \S*hand has 2 batches of 16 samples \(32 samples\), "
         "fewer than --num-batches 3"),
    ],
)  # fmt: skip
def test_bad_source_options_name_the_field(
    tmp_path: Path, dataset: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The library raises ValueError; the CLI (only it) turns that into a message and exit status 2."""
    extra = [arg.format(dataset=dataset, tmp=tmp_path) for arg in extra]
    assert bench_main(["tt", *TINY, "--batch-sizes", "8", *extra]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_sources_need_pyarrow_but_not_torchrec(
    dataset: Path, bags: dict[str, list[list[int]]], repo_root: Path
) -> None:
    """A GPU box with torch, numpy and pyarrow can read both sources: neither pulls in torchrec or polars."""
    code = (
        "import json, sys\n"
        "from ecorec.bench.tt import TTBenchConfig, dataset_source, synthetic_source\n"
        f"config = TTBenchConfig(indices='dataset', dataset={str(dataset)!r}, num_batches=2)\n"
        "batches = dataset_source(config, 'f1', 8)\n"
        "synthetic_source(TTBenchConfig(num_embeddings=100), 8, 0)\n"
        "modules = sorted({m.split('.')[0] for m in sys.modules})\n"
        "print(json.dumps([[b.indices.numel() for b in batches], modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    nnz, modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert "pyarrow" in modules and not {"torchrec", "fbgemm_gpu", "polars"} & set(modules)
    assert nnz == [sum(len(bag) for bag in bags["f1"][i * 8 : (i + 1) * 8]) for i in range(2)]


def test_default_index_source_is_the_calibrated_generator_where_it_can_run(monkeypatch):
    import importlib.util

    from ecorec.bench import tt

    assert tt.build_parser().parse_args([]).indices == "synthetic"  # numpy and pyarrow are installed here
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "pyarrow" else real_find_spec(name)
    )
    assert tt.build_parser().parse_args([]).indices == "zipf"  # a torch-only GPU box
