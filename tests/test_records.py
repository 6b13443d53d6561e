"""ecorec.records: typed records round-trip, versions and kinds are checked, and the one aggregation over
tables against hand-computed sums."""

from __future__ import annotations

import json

import pytest

from ecorec.records import (
    RECORD_VERSION,
    BenchRecord,
    Record,
    RecordError,
    RunRecord,
    read_records,
    sum_over_tables,
)


def _bench(variant, table, fwd, step, batch=1024, **metrics):
    return BenchRecord(
        config={"embedding_dim": 8},
        environment={"device": "cpu"},
        metrics={
            "variant": variant,
            "batch_size": batch,
            "table": table,
            "forward_ms_samples": fwd,
            "forward_backward_ms_samples": step,
            "forward_backward_ms_median": sorted(step)[len(step) // 2],
            "nnz": 10.0,
            "param_bytes": 100,
            **metrics,
        },
    )


def test_round_trip_and_kind_dispatch(tmp_path):
    bench = _bench("ecorec", "f1", [1.0], [2.0])
    run = RunRecord(config={"run": {"name": "ecorec"}}, environment={}, metrics={"loss_curve": [0.7]})
    assert BenchRecord.from_json(bench.to_json()) == bench
    assert (
        json.loads(run.to_json())["kind"] == "run" and json.loads(run.to_json())["version"] == RECORD_VERSION
    )
    (tmp_path / "b.jsonl").write_text(bench.to_json() + "\n\n" + bench.to_json() + "\n")
    (tmp_path / "record.json").write_text(run.to_json(indent=2))
    records = read_records([tmp_path / "b.jsonl", tmp_path / "record.json"])
    assert [type(r) for r in records] == [BenchRecord, BenchRecord, RunRecord]
    assert records[2].system == "ecorec" and records[0]["metrics"]["variant"] == "ecorec"
    assert records[0].source == str(tmp_path / "b.jsonl")
    # records written before kinds and versions: version 0, the kind told by the metrics
    legacy = Record.from_dict({"config": {}, "environment": {}, "metrics": {"loss_curve": []}})
    assert isinstance(legacy, RunRecord) and legacy.version == 0


def test_bad_records_are_named():
    with pytest.raises(RecordError, match="f.json: record version 99"):
        Record.from_dict({"version": 99, "metrics": {"loss_curve": []}}, "f.json")
    with pytest.raises(RecordError, match="f.jsonl:3: a 'run' record, expected 'bench'"):
        BenchRecord.from_dict({"kind": "run", "metrics": {}}, "f.jsonl:3")
    with pytest.raises(RecordError, match=r"no metrics \['batch_size'"):
        Record.from_dict({"metrics": {"variant": "ecorec"}}, "x")
    with pytest.raises(RecordError, match="not a JSON record"):
        Record.from_json("{", "x")


def test_sum_over_tables_sums_repeats_then_summarises():
    records = [
        _bench("ecorec", "f1", [1.0, 2.0, 3.0], [2.0, 4.0, 6.0], peak_forward_bytes=5),
        _bench("ecorec", "f2", [10.0, 30.0, 20.0, 99.0], [20.0, 60.0, 40.0, 99.0], peak_forward_bytes=7),
        _bench("fbtt", "f1", [5.0] * 3, [9.0] * 3),  # one table only: not an all-tables time
    ]
    (row,) = sum_over_tables(records)
    assert row["variant"] == "ecorec" and row["table"] == "all" and row["num_tables"] == 2
    assert row["forward_ms_samples"] == [11.0, 32.0, 23.0] and row["repeats"] == 3  # the common repeats
    assert row["forward_ms_median"] == 23.0 and row["forward_ms_mean"] == pytest.approx(22.0)
    assert row["forward_ms_p10"] == pytest.approx(11.0 + 0.2 * 12.0)
    assert row["nnz"] == 20.0 and row["param_bytes"] == 200.0 and row["peak_forward_bytes"] == 7
    per_table = sum_over_tables(records, by_table=True)
    assert [(r["variant"], r["table"]) for r in per_table] == [
        ("ecorec", "f1"),
        ("ecorec", "f2"),
        ("fbtt", "f1"),
    ]
    assert per_table[1]["forward_backward_ms_median"] == 50.0  # median of its own 4 repeats
    with pytest.raises(RecordError, match="'f1' measured twice"):
        sum_over_tables([*records, records[0]])
