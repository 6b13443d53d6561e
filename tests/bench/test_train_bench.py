"""``python -m ecorec.bench train`` end to end at tiny sizes: real torchrun runs of two modes side by side.
Its speed numbers are printed, never tested; what is tested is that it runs the modes it names on the same
data and model (their losses agree, as every mode's must) and reports every rank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecorec.bench.__main__ import main as bench_main


@pytest.mark.slow  # two 2-rank torchrun runs, ~30 s
def test_train_benchmark_runs_the_modes_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "train.jsonl"
    args = [
        "train", "--tables", "4", "--rows-min", "100", "--rows-max", "3000", "--local-batch", "64",
        "--steps", "6", "--warmup", "1", "--windows", "2", "--variants", "mp", "twp",
        "--tt-ranks", "4", "4", "--embedding-dim", "8", "--tt-min-rows", "500", "--output", str(out),
    ]  # fmt: skip
    assert bench_main(args) == 0
    *rows, summary = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["mp", "twp"]
    assert summary["environment"]["world_size"] == 2 and "not measured" in summary["summary"]["goal"]
    for row in rows:
        assert row["world_size"] == 2 and row["global_batch_size"] == 128
        assert row["samples_per_s"] > 0 and row["iteration_p90_ms"] >= row["iteration_median_ms"] > 0
        assert len(row["peak_memory_mib_per_rank"]) == 2
        assert row["peak_memory_mib_max"] == max(row["peak_memory_mib_per_rank"])
        assert row["tt_tables"] >= 1
    # the same model trained on the same samples: the table-wise pipeline's loss is model parallel's
    assert rows[1]["final_loss"] == pytest.approx(rows[0]["final_loss"], rel=1e-5)
    table = capsys.readouterr().out
    assert "mp" in table and "twp" in table and "vs mp" in table
