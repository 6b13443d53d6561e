import json

import pytest

from ecorec.planner import (
    CostCalibration,
    TableCost,
    estimate_table_cost,
    planner_inputs,
    table_costs,
    table_profiles,
)

# D = 32, q = [2, 4, 4], ranks 32: E1 = 2 q0 r1 q1 r2 = 16384 FLOPs per group, E2 = 2 q0q1 r2 q2 = 2048.
E1, E2 = 16384, 2048


def _row(**over):
    row = {
        "table": "t",
        "num_embeddings": 1_000_000,
        "embedding_dim": 32,
        "tt_p_shapes": [100, 100, 100],
        "tt_q_shapes": [2, 4, 4],
        "tt_ranks": [1, 32, 32, 1],
        "batch_size": 4096,
        "nnz": 500.0,
        "unique": 100.0,
        "groups": 10.0,
        "level_counts": [5.0, 10.0, 100.0],
        "pooling_mean": 0.12,
    }
    row.update(over)
    return row


def test_flops_follow_the_published_formulas():
    ecorec = estimate_table_cost(_row(), "ecorec", global_batch_size=4096, world_size=4)
    assert ecorec.forward_flops == 10 * E1 + 100 * E2  # FWD: E1 + E2
    assert ecorec.backward_flops == 3 * 10 * E1 + 2 * 100 * E2  # BWD: 3 E1 + 2 E2
    fbtt = estimate_table_cost(_row(), "fbtt", global_batch_size=4096, world_size=4)
    assert fbtt.forward_flops == 500 * (E1 + E2)
    assert fbtt.backward_flops == 500 * (3 * E1 + 2 * E2)
    elrec = estimate_table_cost(_row(), "elrec", global_batch_size=4096, world_size=4)
    assert elrec.forward_flops == 10 * E1 + 500 * E2
    assert elrec.backward_flops == 100 * (3 * E1 + 2 * E2)
    plain = estimate_table_cost(_row(), "none", global_batch_size=4096, world_size=4)
    assert plain.forward_flops == plain.backward_flops == 500 * 32


def test_bytes():
    sgd = estimate_table_cost(_row(), "ecorec", global_batch_size=4096, world_size=4)
    cores = 100 * (2 * 32) + 100 * (32 * 4 * 32) + 100 * (32 * 4)
    assert sgd.parameter_bytes == 4 * cores
    assert sgd.optimizer_state_bytes == 0
    assert sgd.alltoall_bytes == 2 * 4096 * 32 * 4 * 3 / 4
    adagrad = estimate_table_cost(_row(), "ecorec", global_batch_size=4096, world_size=4, optimizer="adagrad")
    assert adagrad.optimizer_state_bytes == 4 * cores
    rowwise = estimate_table_cost(
        _row(), "ecorec", global_batch_size=4096, world_size=4, optimizer="rowwise_adagrad"
    )
    assert rowwise.optimizer_state_bytes == 4 * 300
    plain = estimate_table_cost(_row(), "none", global_batch_size=4096, world_size=1)
    assert plain.parameter_bytes == 4 * 1_000_000 * 32
    assert plain.alltoall_bytes == 0


def test_small_tables_are_costed_uncompressed_and_mismatches_raise():
    rows = [_row(table="big"), _row(table="small", num_embeddings=500, tt_p_shapes=[5, 10, 10])]
    costs = table_costs(rows, "ecorec", global_batch_size=4096, world_size=2, tt_min_rows=1000)
    assert [c.algorithm for c in costs] == ["ecorec", "none"]
    with pytest.raises(ValueError, match="measured at batch_size=4096, not at the global batch size 8192"):
        table_costs(rows, "ecorec", global_batch_size=8192, world_size=2)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        estimate_table_cost(_row(), "tbe", global_batch_size=4096, world_size=2)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        estimate_table_cost(_row(), "ecorec", global_batch_size=4096, world_size=2, optimizer="adam")


def _record(variant, gflop, ms, nnz=0):
    metrics = {
        "variant": variant,
        "batch_size": 4096,
        "table": f"t{gflop}-{nnz}",  # one point per measured table
        "forward_backward_ms_median": ms,
        "forward_backward_ms_samples": [ms, ms, ms],
        "forward_ms_samples": [ms / 3] * 3,
        "nnz": nnz,
    }
    if variant != "nn_embedding_bag":
        metrics.update(forward_gflop=gflop / 3, backward_gflop=2 * gflop / 3)
    return {"config": {"embedding_dim": 32}, "environment": {"device": "cpu"}, "metrics": metrics}


def test_calibration_recovers_a_linear_law(tmp_path):
    a, b = 2e-10, 3e-4  # seconds per FLOP, seconds per call
    records = [_record("ecorec", g, (a * g * 1e9 + b) * 1e3) for g in (0.5, 1.0, 4.0)]
    records += [_record("nn_embedding_bag", 0, (5e-11 * 2 * n * 32) * 1e3, nnz=n) for n in (1e4, 1e5)]
    records += [
        {**_record("ecorec", 1.0, 99.0), "environment": {"device": "cuda:0"}}
    ]  # other device: ignored
    calibration = CostCalibration.fit(records, "cpu")
    assert calibration.fits["ecorec"] == pytest.approx((a, b), rel=1e-6)
    assert calibration.fits["none"][0] == pytest.approx(5e-11, rel=1e-6)
    cost = TableCost("t", "ecorec", 1e9, 2e9, 0.0, 0, 0)
    assert calibration.seconds(cost) == pytest.approx(a * 3e9 + b)
    path = tmp_path / "calibration.json"
    calibration.save(path)
    assert CostCalibration.load(path).fits == calibration.fits
    (tmp_path / "bad.json").write_text('{"device": "cpu"}')
    with pytest.raises(ValueError, match="bad.json: not a cost calibration"):
        CostCalibration.load(tmp_path / "bad.json")
    with pytest.raises(KeyError, match="no calibration for algorithm 'fbtt' on cpu"):
        calibration.seconds(TableCost("t", "fbtt", 1.0, 1.0, 0.0, 0, 0))
    with pytest.raises(ValueError, match="no benchmark records of device 'mps'"):
        CostCalibration.fit(records, "mps")


def test_profiles_for_the_planner():
    rows = [_row(table="x"), _row(table="y", nnz=1000.0)]
    costs = table_costs(rows, "fbtt", global_batch_size=4096, world_size=2)
    profiles = table_profiles(costs, rows)
    assert [p.name for p in profiles] == ["x", "y"]
    assert profiles[1].cost == 2 * profiles[0].cost
    assert profiles[0].memory_bytes == costs[0].memory_bytes
    calibration = CostCalibration("cpu", {"fbtt": (1e-9, 0.5)})
    seconds = table_profiles(costs, rows, calibration)
    assert seconds[0].cost == pytest.approx(1e-9 * costs[0].flops + 0.5)


def test_planner_inputs_from_a_stats_frame_and_a_calibration_file(tmp_path):
    import polars as pl

    rows = [_row(table="x"), _row(table="y", nnz=1000.0)]
    frame = pl.DataFrame(rows)
    flops = planner_inputs(frame, "fbtt", global_batch_size=4096, world_size=2)
    assert flops == table_profiles(table_costs(rows, "fbtt", global_batch_size=4096, world_size=2), rows)
    none = planner_inputs(rows, "none", global_batch_size=4096, world_size=2)
    uncompressed = table_costs(rows, "uncompressed", global_batch_size=4096, world_size=2)
    assert [p.cost for p in none] == [c.flops for c in uncompressed]
    path = tmp_path / "calibration.json"
    CostCalibration("cpu", {"fbtt": (1e-9, 0.5)}).save(path)
    seconds = planner_inputs(frame, "fbtt", global_batch_size=4096, world_size=2, calibration=str(path))
    assert seconds[1].cost == pytest.approx(1e-9 * (flops[1].cost) + 0.5)


def test_calibration_fitted_from_benchmark_files(tmp_path):
    """Two benchmark files of exact t = a * flops + b points: the fit recovers (a, b); a bad line is named."""
    a, b = 2e-10, 3e-4
    files = []
    for i, gflops in enumerate(((1.0, 2.0), (4.0, 8.0))):
        lines = [
            {
                "config": {"embedding_dim": 32},
                "environment": {"device": "cpu"},
                "metrics": {
                    "variant": "ecorec",
                    "batch_size": 1024 * (i + 1),
                    "table": f"t{g}",
                    "forward_gflop": g / 3,
                    "backward_gflop": 2 * g / 3,
                    "forward_backward_ms_median": (a * g * 1e9 + b) * 1e3,
                    "forward_backward_ms_samples": [(a * g * 1e9 + b) * 1e3] * 3,
                    "forward_ms_samples": [1.0] * 3,
                },
            }
            for g in gflops
        ]
        path = tmp_path / f"K2-b{i}.jsonl"
        path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        files.append(path)
    calibration = CostCalibration.fit_files(files, "cpu")
    assert calibration.fits["ecorec"] == pytest.approx((a, b), rel=1e-6)
    assert str(files[0]) in calibration.source
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"metrics": {"variant": "ecorec"}}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: not a kernel-benchmark record"):
        CostCalibration.fit_files([files[0], bad], "cpu")
