"""The placement summary's numbers from hand-made evaluations: gaps to the optimum, the best greedy, headroom
and closure, the cost network's error, and the noise panel's repeat-to-repeat IQR."""

import polars as pl
import pytest

from ecorec.bench.placement.summary import summarize


def _row(group, task, placer, cost, predicted=None, status="ok"):
    return {
        "group": group,
        "task": task,
        "placer": placer,
        "status": status,
        "plan_cost": cost if status == "ok" else None,
        "predicted_cost": predicted,
        "spread_lo": cost,
        "spread_hi": cost * 1.1 if cost else None,
        "round_relative_iqr": 0.02,
        "placement": f"{task}-{placer}",
    }


def test_summary_gaps_headroom_and_closure():
    evaluation = pl.DataFrame(
        [
            _row("test", "a", "size_greedy", 12.0, 12.0),
            _row("test", "a", "greedy", 10.0, 10.5),
            _row("test", "a", "dreamshard", 9.0, 9.0),
            _row("test", "a", "neuroshard", 8.0, 8.4),
            _row("test", "b", "size_greedy", 20.0, 19.0),
            _row("test", "b", "greedy", 23.0, 23.0),
            _row("test", "b", "dreamshard", None, status="failed"),
            _row("test", "b", "neuroshard", 20.0, 20.0),
            _row("exhaustive", "x", "greedy", 6.0),
            _row("exhaustive", "x", "dreamshard", 5.5),
        ]
    )
    exhaustive = pl.DataFrame(
        {
            "task": ["x"] * 4,
            "placement": ["p0", "p1", "p2", "p3"],
            "plan_cost": [5.0, 6.0, 7.0, 8.0],
            "predicted_cost": [5.5, 6.6, 7.7, 8.8],  # 10% high, ranks right
        }
    )
    replicates = pl.DataFrame(
        {
            "placement": ["p", "p", "p", "q", "q", "q"],
            "replicate": [0, 1, 2, 0, 1, 2],
            "plan_cost": [10.0, 11.0, 12.0, 5.0, 5.0, 5.0],
            "load_average": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
        }
    )
    s = summarize(evaluation, exhaustive, replicates)
    # best greedy = lowest mean over the test tasks: size_greedy (12 + 20) / 2 = 16 < greedy (10 + 23) / 2
    assert s["best_greedy"] == "size_greedy"
    # against each task's best greedy placement: a 10 (greedy), b 20 (size_greedy)
    assert s["placers"]["neuroshard"]["relative_to_best_greedy_mean"] == pytest.approx((8 / 10 + 20 / 20) / 2)
    assert s["placers"]["size_greedy"]["relative_to_best_greedy_mean"] == pytest.approx((12 / 10 + 1) / 2)
    assert s["placers"]["dreamshard"]["failed"] == 1 and s["placers"]["dreamshard"]["relative_tasks"] == 1
    # small task: optimum 5.0, greedy 6.0 (20% headroom), dreamshard 5.5 closes half of it
    x = s["exhaustive"]["x"]
    assert x["optimum_ms"] == 5.0 and x["optimum_placement"] == "p0"
    assert x["best_greedy_headroom"] == pytest.approx(0.2)
    assert x["closure"]["dreamshard"] == pytest.approx(0.5)
    assert s["placers"]["greedy"]["relative_to_optimum_mean"] == pytest.approx(1.2)
    # large task a: best greedy 10 (greedy), best found 8 (neuroshard): headroom 25%, neuroshard closes all
    a = s["headroom"]["a"]
    assert a["best_greedy_ms"] == 10.0 and a["best_found_by"] == "neuroshard"
    assert a["headroom"] == pytest.approx(0.25)
    assert a["closure"] == pytest.approx({"dreamshard": 0.5, "neuroshard": 1.0})
    assert s["headroom"]["b"]["headroom"] == 0.0 and s["tasks_with_headroom"] == ["a"]
    # cost network on the exhaustive placements: 10% high everywhere, ranks exact
    error = s["cost_model_error"]["exhaustive"]
    assert error["plan_mape"] == pytest.approx(0.1) and error["plan_mean_signed_error"] == pytest.approx(0.1)
    assert error["plan_spearman"] == pytest.approx(1.0)
    # noise panel: p's IQR (11.5 - 10.5) / 11 and q's 0, averaged
    assert s["measurement_relative_iqr_mean"] == pytest.approx((1.0 / 11.0) / 2)
    assert s["measurement_replicates"]["load_average"] == [1.0, 2.0, 3.0]


def test_lower_bound_and_additivity():
    import json

    from ecorec.bench.placement.summary import additivity, lower_bound
    from ecorec.planner.dreamshard.placement import link_exchange_ms

    alone = {"a": 3.0, "b": 1.0, "c": 1.0, "d": 1.0}
    dims = dict.fromkeys(alone, 16)
    assert lower_bound(alone, dims, {"devices": 4}) == 3.0  # the largest table alone
    assert lower_bound(alone, dims, {"devices": 2}) == 3.0  # = the mean, 6 / 2
    assert lower_bound({**alone, "a": 1.0}, dims, {"devices": 1}) == 4.0
    link = {"devices": 2, "batch_size": 1024, "link_gbit": 1.0}
    comm = 2 * link_exchange_ms([32, 32], 1024, 1.0)
    assert lower_bound(alone, dims, link) == pytest.approx(3.0 + comm)

    def row(devices, costs):
        shards = [[t, 16, d, 0] for t, d in zip("abc", devices, strict=True)]
        return {
            "placement": json.dumps({"num_devices": 3, "shards": shards}),
            "device_costs": json.dumps(costs),
        }

    frame = pl.DataFrame(
        [
            row([0, 1, 2], [[1.0, 0, 0, 1.0], [0.5, 0, 0, 0.5], [2.0, 0, 0, 1.0]]),  # alone: a 2, b 1, c 3
            row([0, 0, 1], [[2.0, 0, 0, 1.6], [1.0, 0, 0, 2.0], [0.0, 0, 0, 0.0]]),  # a+b 3.6 (1.2x)
            row([0, 1, 1], [[1.0, 0, 0, 1.0], [2.0, 0, 0, 2.0], [0.0, 0, 0, 0.0]]),  # b+c 4.0 (1.0x)
        ]
    )
    result = additivity(frame)
    assert (
        result["groups"] == 2 and result["max"] == pytest.approx(1.2) and result["min"] == pytest.approx(1.0)
    )


def test_the_conservative_bound_scales_the_compute_by_the_measured_additivity():
    import json

    def row(devices, costs):
        shards = [[t, 16, d, 0] for t, d in zip("ab", devices, strict=True)]
        return {"task": "x", "placement": json.dumps({"num_devices": 2, "shards": shards}),
                "device_costs": json.dumps(costs), "plan_cost": 1.0, "predicted_cost": None}  # fmt: skip

    exhaustive = pl.DataFrame(
        [row([0, 1], [[1.0, 0, 0, 1.0], [1.0, 0, 0, 1.0]]), row([0, 0], [[1.5, 0, 0, 1.5], [0, 0, 0, 0]])]
    )  # a and b cost 2 alone, 3 together: additivity 0.75
    evaluation = pl.DataFrame([_row("test", "t", "greedy", 6.0), _row("test", "t", "dreamshard", 5.5)])
    alone = {"t": {"p": 4.0, "q": 4.0}}
    s = summarize(evaluation, exhaustive, None, alone, {"t": {"p": 16, "q": 16}}, {"devices": 2})
    entry = s["headroom"]["t"]
    assert s["additivity"]["p10"] == pytest.approx(0.75)
    assert entry["lower_bound_ms"] == 4.0 and entry["headroom_bound"] == pytest.approx(0.5)
    assert entry["headroom_bound_conservative"] == pytest.approx(6.0 / 3.0 - 1.0)
