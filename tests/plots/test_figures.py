"""ecorec.plots.records / figures / paper on hand-made records: the CSVs say exactly what the records say."""

from __future__ import annotations

import json
import statistics

import polars as pl
import pytest

from ecorec.plots.paper import make_figure
from ecorec.plots.records import (
    kernel_totals,
    memory_rows,
    read_records,
    train_point,
    uncompressed_memory,
)

ENV = {"device": "cpu", "device_name": "x86_64", "cpu_count": 2, "torch": "2.x"}


def _run_record(
    system, tables, world, window_seconds, *, batch=64, mode="twp", algorithm="ecorec", peak=(5, 7)
):
    steps_per_window = 4
    per_step = [9.0, 9.0]  # two warm-up steps, left out
    for seconds in window_seconds:
        per_step += [seconds / steps_per_window] * steps_per_window
    return {
        "config": {
            "run": {"name": system},
            "dataset": {"num_tables": tables},
            "embeddings": {"algorithm": algorithm},
            "parallel": {"mode": mode, "world_size": world},
            "train": {"global_batch_size": batch * world},
        },
        "environment": ENV,
        "metrics": {
            "mode": mode,
            "num_tables": tables,
            "world_size": world,
            "global_batch_size": batch * world,
            "timing": {
                "warmup_steps": 2,
                "per_step_s": per_step,
                "windows": [{"seconds": s, "num_steps": steps_per_window} for s in window_seconds],
            },
            "peak_memory_bytes": {
                "per_rank": [p * 2**20 for p in peak],
                "max": max(peak) * 2**20,
                "kind": "max_rss",
            },
            "final_auroc": {"val": 0.7, "test": 0.69},
        },
    }


def _write(tmp_path, name, record):
    path = tmp_path / name
    path.write_text(json.dumps(record))
    return path


def test_train_point_window_statistics():
    point = train_point(_run_record("ecorec", 8, 2, [0.4, 0.8, 0.6]))
    window_ms = [100.0, 200.0, 150.0]  # seconds / 4 steps
    assert point["time_per_iter_ms"] == pytest.approx(150.0)
    assert point["time_per_iter_ms_std"] == pytest.approx(statistics.stdev(window_ms))
    assert point["step_ms_median"] == pytest.approx(150.0)  # warm-up steps (9 s) left out
    assert point["throughput_samples_per_s"] == pytest.approx(128 / 0.150)
    assert point["peak_memory_mib"] == 7 and point["local_batch_size"] == 64 and point["num_windows"] == 3
    with pytest.raises(ValueError, match="no timing windows"):
        bad = _run_record("ecorec", 8, 2, [0.4])
        bad["metrics"]["timing"]["windows"] = []
        train_point(bad)


def test_figure10_csv_is_the_records(tmp_path):
    systems, tables = ["ecorec", "elrec"], [8, 4]
    paths, expected = [], {}
    for i, system in enumerate(systems):
        for t in tables:
            windows = [0.1 * (i + 1) * t, 0.12 * (i + 1) * t, 0.11 * (i + 1) * t]
            paths.append(
                _write(tmp_path, f"{system}{t}.json", _run_record(system, t, 2, windows, peak=(t, i + 1)))
            )
            expected[(system, t)] = [1e3 * w / 4 for w in windows]
    settings = {"systems": systems, "tables": tables, "world": 2, "batch": 64}
    rows = make_figure("fig10", paths, tmp_path / "fig10.png", tmp_path / "fig10.csv", settings)
    frame = pl.read_csv(tmp_path / "fig10.csv")
    assert frame.height == 4 and [r["system"] for r in rows] == ["ecorec", "elrec", "ecorec", "elrec"]
    for row in frame.iter_rows(named=True):
        windows = expected[(row["system"], row["tables"])]
        assert row["time_per_iter_ms"] == pytest.approx(statistics.fmean(windows))
        assert row["time_per_iter_ms_std"] == pytest.approx(statistics.stdev(windows))
        assert row["peak_memory_mib"] == max(row["tables"], systems.index(row["system"]) + 1)
    assert (tmp_path / "fig10.png").stat().st_size > 0 and (tmp_path / "fig10.pdf").exists()
    with pytest.raises(ValueError, match="expected one run of system 'ttrec'"):
        make_figure(
            "fig10", paths, tmp_path / "x.png", tmp_path / "x.csv", {**settings, "systems": ["ttrec"]}
        )


def test_figure12_and_16(tmp_path):
    paths = [
        _write(tmp_path, "a.json", _run_record("ecorec", 8, 1, [0.4, 0.4, 0.4])),
        _write(tmp_path, "b.json", _run_record("ecorec", 8, 2, [0.8, 0.8, 0.8])),
    ]
    rows = make_figure(
        "fig12",
        paths,
        tmp_path / "s.png",
        tmp_path / "s.csv",
        {"systems": ["ecorec"], "tables": 8, "worlds": [1, 2], "batch": 64},
    )
    # weak scaling: global batch 64 then 128 samples, 100 then 200 ms per step: the same throughput
    assert [r["throughput_samples_per_s"] for r in rows] == pytest.approx([640.0, 640.0])
    paths = [
        _write(tmp_path, "bwp.json", _run_record("bwp", 8, 2, [0.8, 0.8, 0.8], mode="bwp")),
        _write(tmp_path, "twp.json", _run_record("twp", 8, 2, [0.4, 0.4, 0.4])),
    ]
    rows = make_figure(
        "fig16",
        paths,
        tmp_path / "ab.png",
        tmp_path / "ab.csv",
        {"systems": ["bwp", "twp"], "tables": [8], "world": 2, "batch": 64},
    )
    assert [r["speedup_vs_first"] for r in rows] == pytest.approx([1.0, 2.0])


def _bench_record(variant, batch, table, forward, step, *, nnz=100.0, n=1000, memory=None):
    metrics = {
        "variant": variant,
        "batch_size": batch,
        "table": table,
        "num_embeddings": n,
        "nnz": nnz,
        "forward_ms_samples": forward,
        "forward_backward_ms_samples": step,
        "forward_ms_median": statistics.median(forward),
        "forward_backward_ms_median": statistics.median(step),
        "param_bytes": 1000,
        "optimizer_state_bytes": 0,
    }
    if memory is not None:
        metrics.update(peak_forward_bytes=memory[0], peak_forward_backward_bytes=memory[1], memory_method="m")
    return {"config": {"num_embeddings": n, "embedding_dim": 32}, "environment": ENV, "metrics": metrics}


def test_kernel_totals_sum_repeats_over_tables(tmp_path):
    records = [
        _bench_record("ecorec", 1024, "f1", [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]),
        _bench_record("ecorec", 1024, "f2", [10.0, 30.0, 20.0], [20.0, 60.0, 40.0]),
        _bench_record("fbtt", 1024, "f1", [5.0, 5.0, 5.0], [9.0, 9.0, 9.0]),
        _bench_record("fbtt", 1024, "f2", [5.0, 5.0, 5.0], [9.0, 9.0, 9.0]),
    ]
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    rows = kernel_totals(read_records([path]))
    ecorec = next(r for r in rows if r["variant"] == "ecorec")
    totals = [11.0, 32.0, 23.0]  # repeat i summed over the two tables
    assert ecorec["forward_ms_median"] == 23.0
    assert ecorec["forward_ms_p10"] == pytest.approx(11.0 + 0.2 * 12.0)
    assert ecorec["forward_ms_p90"] == pytest.approx(23.0 + 0.8 * 9.0)
    assert ecorec["forward_backward_ms_median"] == 46.0 and ecorec["num_tables"] == 2
    settings = {"variants": ["ecorec", "fbtt"], "embedding_dim": 32, "tt_ranks": 32}
    plotted = make_figure("fig11", [path], tmp_path / "k.png", tmp_path / "k.csv", settings)
    assert pl.read_csv(tmp_path / "k.csv")["forward_ms_median"].to_list() == [23.0, 10.0]
    assert len(plotted) == 2 and sorted(totals)[1] == 23.0
    with pytest.raises(ValueError, match="measured twice"):
        kernel_totals(records + records[:1])


def test_uncompressed_memory_matches_the_papers_pytorch_rows():
    gib = 2.0**30
    m = uncompressed_memory(100_000_000, 32, 10000, 464_214)
    assert m["param_bytes"] / gib == pytest.approx(11.922, abs=0.01)
    assert m["peak_forward_bytes"] / gib == pytest.approx(11.9301, abs=0.01)
    assert m["peak_forward_backward_bytes"] / gib == pytest.approx(11.9855, abs=0.01)
    m = uncompressed_memory(100_000_000, 32, 20000, 927_601)
    assert m["peak_forward_backward_bytes"] / gib == pytest.approx(12.0497, abs=0.01)


def test_table1_computes_the_missing_uncompressed_row(tmp_path):
    records = [
        _bench_record("fbtt", 4096, None, [1.0] * 3, [1.0] * 3, nnz=5000.0, n=10**8, memory=(100, 300))
    ]
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(records[0]) + "\n")
    rows = memory_rows(read_records([path]))
    fbtt, dense = rows
    assert fbtt["peak_forward_bytes"] == 1100 and fbtt["peak_forward_backward_bytes"] == 1300
    assert fbtt["source"] == "measured (m)"
    assert dense["source"] == "computed" and dense["param_bytes"] == 10**8 * 32 * 4
    settings = {
        "variants": ["fbtt", "nn_embedding_bag"],
        "num_embeddings": 10**8,
        "embedding_dim": 32,
        "tt_ranks": 32,
    }
    make_figure("table1", [path], tmp_path / "t.png", tmp_path / "t.csv", settings)
    frame = pl.read_csv(tmp_path / "t.csv")
    assert frame["variant"].to_list() == ["fbtt", "nn_embedding_bag"]
    assert frame["source"].to_list() == ["measured (m)", "computed"]


def test_bad_records_name_the_file(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a JSON record"):
        read_records([tmp_path / "bad.json"])
    (tmp_path / "bad.jsonl").write_text('{"metrics": {}}\n[1]\n')
    with pytest.raises(ValueError, match="bad.jsonl:2: not a result record"):
        read_records([tmp_path / "bad.jsonl"])
    with pytest.raises(ValueError, match="unknown figure"):
        make_figure("fig99", [], tmp_path / "x.png", tmp_path / "x.csv", {})


def test_placement_figure_names_the_devices_network_and_the_noise(tmp_path):
    from PIL import Image

    from ecorec.plots.claims import claim_of
    from ecorec.plots.placement import devices_network, plot_placement

    placer = {
        "tasks": 3,
        "failed": 0,
        "relative_tasks": 2,
        "relative_to_best_greedy_std": 0.1,
        "optimum_tasks": 1,
    }
    summary = {
        "best_greedy": "dim_greedy",
        "placers": {
            "dim_greedy": {**placer, "relative_to_best_greedy_mean": 1.0, "mean_plan_cost_ms": 10.0,
                           "relative_to_optimum_mean": 1.2, "relative_to_optimum_max": 1.2},
            "dreamshard": {**placer, "relative_to_best_greedy_mean": 0.9, "mean_plan_cost_ms": 9.0,
                           "relative_to_optimum_mean": 1.05, "relative_to_optimum_max": 1.05},
        },
        "exhaustive": {"exhaustive-000": {"best_greedy_headroom": 0.2,
                                          "relative_to_optimum": {"dim_greedy": 1.2, "dreamshard": 1.05}}},
        "cost_model_error": {"exhaustive": {"plan_mape": 0.04, "plan_spearman": 0.96,
                                            "plan_mean_signed_error": 0.01}},
        "measurement_relative_iqr_mean": 0.03,
        "settings": {"cluster": {"network": "link-rate:a100_ib100:4x1:link=33.84gbit"}},
    }  # fmt: skip
    evaluation = pl.DataFrame(
        {"status": ["ok", "ok"], "plan_cost": [10.0, 9.0], "predicted_cost": [9.5, 9.4]}
    )
    exhaustive = pl.DataFrame({"task": ["exhaustive-000"] * 3, "plan_cost": [5.0, 6.0, 7.0],
                               "predicted_cost": [5.1, 5.9, 7.2]})  # fmt: skip
    bars = plot_placement(
        evaluation, summary, tmp_path / "p.png", tmp_path / "p.csv", title="synthetic", exhaustive=exhaustive
    )
    written = pl.read_csv(tmp_path / "p.csv")
    assert written["network"].to_list() == ["link-rate:a100_ib100:4x1:link=33.84gbit"] * 2
    assert (
        written["relative_to_best_greedy_mean"].to_list()
        == [1.0, 0.9]
        == bars["relative_to_best_greedy_mean"].to_list()
    )
    assert written["relative_to_optimum_mean"].to_list() == [1.2, 1.05]
    assert written["measurement_relative_iqr"].to_list() == [0.03, 0.03]
    assert written["best_greedy_headroom_mean"].to_list() == [0.2, 0.2]
    assert (tmp_path / "p.pdf").exists()
    width, height = Image.open(tmp_path / "p.png").size
    assert width <= 1920 and height <= 1080, (width, height)  # readable on a laptop screen
    assert devices_network({k: v for k, v in summary.items() if k != "settings"}) == "loopback"
    # the claim: 0.9x the best greedy, outside the 3% measurement spread
    claim = claim_of("placement", written.to_dicts(), {})
    assert claim.holds is True and "20.0% above the measured optimum" in claim.here
    within = claim_of("placement", [{**r, "measurement_relative_iqr": 0.15} for r in written.to_dicts()], {})
    assert within.holds is False and "measurement IQR 15.0% (within the spread)" in within.here
