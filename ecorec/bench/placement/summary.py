"""The placement study's numbers (``summary.json`` and the figure): gaps to the optimum, headroom, the cost
network's error and the measurement's own spread.

Inputs: the evaluation (:func:`ecorec.bench.placement.study.evaluate_placers`: every placer on every test and
exhaustive task), the exhaustive placements (:func:`~ecorec.bench.placement.study.evaluate_exhaustive`) and
the noise panel's replicates (:func:`~ecorec.bench.placement.study.measure_replicates`).

- **Small (exhaustive) tasks**: each placer's cost relative to the task's measured optimum over every
  distinct table-wise placement (a column-splitting placer may go below 1); the best greedy's gap there is
  the headroom a placer can win.
- **Large (test) tasks**: each placer's cost relative to the task's **best greedy** placement (the cheapest
  of the greedy baselines that placed it: under a cap that binds, each greedy fails some tasks, so one fixed
  "strongest baseline" would leave few tasks to compare on), per task then averaged; ``best_greedy`` also
  names the greedy placer of lowest mean cost. A task's headroom is its best greedy placement's cost over the
  best placement any placer found, minus one, and a learned placer's **closure** of it is ``(greedy -
  learned) / (greedy - best)``. With the task's tables measured alone, a **lower bound** on any placement
  (the most loaded device computes at least its largest table alone and the mean of the tables alone, as a
  fused group measured at least its parts; plus the evenly spread all-to-alls) bounds what any placer can
  gain over the best greedy (``headroom_bound``); ``headroom_bound_conservative`` scales the compute part of
  the bound by the 10th percentile of the measured :func:`additivity` when groups measured cheaper than their
  parts.
- **Cost network**: MAPE, mean signed error and Spearman of its predicted plan costs, on every placement of
  the exhaustive tasks (per task: what a search over them needs) and on the test placements.
- **Measurement**: ``measurement_relative_iqr_mean``, the repeat-to-repeat relative IQR of the plan cost,
  from placements measured again in independent passes (with the load average of each pass), and the rounds'
  spread within one measurement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from ecorec.bench.placement.config import relative_iqr
from ecorec.planner.dreamshard.cost_net import prediction_error, rank_correlation
from ecorec.planner.dreamshard.placers import GREEDY_BASELINES, Placer

#: The learned placers whose closure of the headroom is reported.
LEARNED = (Placer.DREAMSHARD.value, Placer.NEUROSHARD.value, Placer.NEUROSHARD_CW.value)
#: The robust statistic, in words (for the summary).
STATISTIC = "each column: min over rounds x repeats iterations; plan: max over devices of the columns' sum"
#: Headroom a task must have for the closure to be judged (the issue's 10%).
HEADROOM_THRESHOLD = 0.10


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _std(values: list[float]) -> float | None:
    return float(np.std(values)) if values else None


def _closure(greedy: float, learned: float, best: float) -> float | None:
    return (greedy - learned) / (greedy - best) if greedy > best else None


def _costs(frame: pl.DataFrame) -> dict[tuple[str, str], float]:
    return {(r["task"], r["placer"]): r["plan_cost"] for r in frame.to_dicts()}


def summarize_exhaustive(ok: pl.DataFrame, exhaustive: pl.DataFrame) -> dict[str, Any]:
    """Per exhaustive task: the optimum, each placer's cost over it and the best greedy's headroom."""
    tasks: dict[str, Any] = {}
    by_task = _costs(ok)
    greedy = [p.value for p in GREEDY_BASELINES]
    for task in sorted(set(exhaustive["task"].to_list())):
        rows = exhaustive.filter(pl.col("task") == task)
        best = rows.sort("plan_cost").row(0, named=True)
        optimum = float(best["plan_cost"])
        placers = {p: by_task[(t, p)] / optimum for (t, p) in by_task if t == task}
        greedy_costs = [by_task[(task, p)] for p in greedy if (task, p) in by_task]
        best_greedy = min(greedy_costs) if greedy_costs else None
        entry: dict[str, Any] = {
            "placements": rows.height,
            "optimum_ms": optimum,
            "optimum_placement": best["placement"],
            "median_placement_ms": float(rows["plan_cost"].median()),
            "relative_to_optimum": placers,
            "best_greedy_headroom": None if best_greedy is None else best_greedy / optimum - 1.0,
            "closure": {
                p: _closure(best_greedy, by_task[(task, p)], optimum)
                for p in LEARNED
                if best_greedy is not None and (task, p) in by_task
            },
        }
        tasks[task] = entry
    return tasks


def lower_bound(alone: Mapping[str, float], dims: Mapping[str, int], link: Mapping[str, Any] | None) -> float:
    """A lower bound on any table-wise placement's cost on ``R`` devices (``link["devices"]``): the most
    loaded device computes at least the larger of its largest table alone and the mean of the tables' costs
    alone (a fused group measured at least as costly as its tables alone: see :func:`additivity`), plus the
    all-to-alls of the dims spread evenly over the devices' links."""
    devices = int((link or {}).get("devices", 1))
    compute = max(max(alone.values()), sum(alone.values()) / devices)
    comm = 0.0
    if link and link.get("link_gbit"):
        from ecorec.planner.dreamshard.placement import LinkModel

        even = [sum(dims.values()) / devices] * devices
        model = LinkModel(
            int(link["batch_size"]), float(link["link_gbit"]), int(link.get("ranks_per_node", 1))
        )
        comm = model.device_ms(even)[0]
    return compute + comm


def additivity(exhaustive: pl.DataFrame) -> dict[str, Any]:
    """A fused group's measured compute over the sum of its tables' computes alone, over every group of two
    or more tables in the exhaustive placements (1 = additive; above 1, the group costs more than its parts:
    its working set outgrows the caches, which no per-table greedy cost can see)."""
    import json

    if "device_costs" not in exhaustive.columns:
        return {"groups": 0}
    alone: dict[str, float] = {}
    groups: dict[tuple[str, ...], float] = {}
    for row in exhaustive.to_dicts():
        placement = json.loads(row["placement"])
        costs = json.loads(row["device_costs"])
        for device in range(placement["num_devices"]):
            tables = tuple(sorted(t for t, _, d, _ in placement["shards"] if d == device))
            compute = costs[device][0] + costs[device][3]
            if len(tables) == 1:
                alone[tables[0]] = compute
            elif tables:
                groups[tables] = compute
    ratios = [c / sum(alone[t] for t in g) for g, c in groups.items() if all(t in alone for t in g)]
    if not ratios:
        return {"groups": 0}
    return {
        "groups": len(ratios),
        "median": float(np.median(ratios)),
        "p10": float(np.quantile(ratios, 0.1)),
        "min": float(min(ratios)),
        "max": float(max(ratios)),
    }


def summarize_headroom(
    test: pl.DataFrame,
    alone: Mapping[str, Mapping[str, float]] | None = None,
    dims: Mapping[str, Mapping[str, int]] | None = None,
    link: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Per test task: the best greedy placement (per task), the best any placer found, the headroom and each
    learned placer's closure of it; with the tables' costs alone (``alone``), the measured lower bound of
    :func:`lower_bound` and ``headroom_bound``, the best greedy's cost over it minus one: no placer can gain
    more."""
    out: dict[str, Any] = {}
    by_task = _costs(test)
    greedy = [p.value for p in GREEDY_BASELINES]
    for task in sorted({t for t, _ in by_task}):
        costs = {p: c for (t, p), c in by_task.items() if t == task}
        greedy_costs = [costs[p] for p in greedy if p in costs]
        if not greedy_costs:
            continue
        best_greedy, best = min(greedy_costs), min(costs.values())
        best_placer = min(costs, key=lambda p: costs[p])
        out[task] = {
            "best_greedy_ms": best_greedy,
            "best_found_ms": best,
            "best_found_by": best_placer,
            "headroom": best_greedy / best - 1.0,
            "closure": {p: _closure(best_greedy, costs[p], best) for p in LEARNED if p in costs},
        }
        if alone and task in alone:
            bound = lower_bound(alone[task], (dims or {}).get(task, {}), link)
            out[task].update(lower_bound_ms=bound, headroom_bound=best_greedy / bound - 1.0)
    return out


def cost_model_error(ok: pl.DataFrame, exhaustive: pl.DataFrame) -> dict[str, Any]:
    """The cost network's error on the exhaustive sets (pooled, and Spearman per task) and on the test
    placements."""
    out: dict[str, Any] = {}
    predicted = exhaustive.filter(pl.col("predicted_cost").is_not_null())
    if predicted.height:
        pooled = prediction_error(predicted["predicted_cost"].to_list(), predicted["plan_cost"].to_list())
        per_task = {
            task: rank_correlation(rows["predicted_cost"].to_list(), rows["plan_cost"].to_list())
            for task, rows in (
                (t, predicted.filter(pl.col("task") == t)) for t in sorted(set(predicted["task"]))
            )
        }
        finite = [v for v in per_task.values() if math.isfinite(v)]
        out["exhaustive"] = {
            **pooled,
            "plan_spearman_pooled": pooled["plan_spearman"],
            "plan_spearman": float(np.mean(finite)) if finite else math.nan,
            "plan_spearman_per_task": per_task,
        }
    test = ok.filter((pl.col("group") == "test") & pl.col("predicted_cost").is_not_null())
    if test.height:
        out["test"] = prediction_error(test["predicted_cost"].to_list(), test["plan_cost"].to_list())
    return out


def measurement_noise(ok: pl.DataFrame, replicates: pl.DataFrame | None) -> dict[str, Any]:
    """The repeat-to-repeat relative IQR of the plan cost (the noise panel) and the rounds' spread."""
    out: dict[str, Any] = {
        "measurement_round_relative_iqr_mean": float(ok["round_relative_iqr"].mean())
        if ok.height
        else math.nan,
        "measurement_relative_spread_mean": float(
            ((ok["spread_hi"] - ok["spread_lo"]) / ok["plan_cost"]).mean()
        )
        if ok.height
        else math.nan,
    }
    if replicates is None or not replicates.height:
        out["measurement_relative_iqr_mean"] = math.nan
        return out
    per_placement = [
        relative_iqr(rows["plan_cost"].to_list())
        for _, rows in replicates.group_by("placement", maintain_order=True)
    ]
    out.update(
        measurement_relative_iqr_mean=float(np.mean(per_placement)),
        measurement_relative_iqr_max=float(np.max(per_placement)),
        measurement_replicates={
            "placements": len(per_placement),
            "replicates": int(replicates["replicate"].n_unique()),
            "load_average": [
                float(v)
                for v in replicates.group_by("replicate")
                .agg(pl.col("load_average").first())
                .sort("replicate")["load_average"]
            ],
            "statistic": STATISTIC,
        },
    )
    return out


def summarize(
    evaluation: pl.DataFrame,
    exhaustive: pl.DataFrame | None = None,
    replicates: pl.DataFrame | None = None,
    alone: Mapping[str, Mapping[str, float]] | None = None,
    dims: Mapping[str, Mapping[str, int]] | None = None,
    link: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``summary.json``'s numbers (see the module docstring; ``alone``, ``dims`` and ``link`` (``devices``,
    ``batch_size``, ``link_gbit``, ``ranks_per_node``): each test task's tables measured alone, their dims and
    the links, for the lower bound of :func:`summarize_headroom`)."""
    if "group" not in evaluation.columns:
        evaluation = evaluation.with_columns(pl.lit("test").alias("group"))
    ok = evaluation.filter(pl.col("status") == "ok")
    test = ok.filter(pl.col("group") == "test")
    mean_cost = {
        r["placer"]: r["plan_cost"]
        for r in test.group_by("placer").agg(pl.col("plan_cost").mean()).to_dicts()
    }
    greedy = [p.value for p in GREEDY_BASELINES if p.value in mean_cost]
    best = min(greedy, key=lambda p: mean_cost[p]) if greedy else None
    by_task = _costs(test)
    exhaustive_tasks = (
        summarize_exhaustive(ok.filter(pl.col("group") == "exhaustive"), exhaustive)
        if (exhaustive is not None and exhaustive.height)
        else {}
    )
    test_tasks = sorted(set(test["task"].to_list()))
    best_per_task = {
        t: min(by_task[(t, p)] for p in greedy if (t, p) in by_task)
        for t in test_tasks
        if any((t, p) in by_task for p in greedy)
    }
    placers: dict[str, Any] = {}
    for placer in dict.fromkeys(evaluation["placer"].to_list()):
        rows = evaluation.filter(pl.col("placer") == placer)
        ratios = [
            by_task[(t, placer)] / best_per_task[t]
            for t in test_tasks
            if (t, placer) in by_task and t in best_per_task
        ]
        to_optimum = [
            e["relative_to_optimum"][placer]
            for e in exhaustive_tasks.values()
            if placer in e["relative_to_optimum"]
        ]
        placers[placer] = {
            "tasks": rows.height,
            "failed": int((rows["status"] == "failed").sum()),
            "mean_plan_cost_ms": mean_cost.get(placer),
            "relative_to_best_greedy_mean": _mean(ratios),
            "relative_to_best_greedy_std": _std(ratios),
            "relative_tasks": len(ratios),
            "relative_to_optimum_mean": _mean(to_optimum),
            "relative_to_optimum_max": max(to_optimum) if to_optimum else None,
            "optimum_tasks": len(to_optimum),
        }
    headroom = summarize_headroom(test, alone, dims, link)
    fused = additivity(exhaustive) if exhaustive is not None and exhaustive.height else {"groups": 0}
    if fused.get("groups"):  # the bound assumes a group costs its parts; where they measured less, scale it
        factor = min(1.0, fused["p10"])
        for task, entry in headroom.items():
            if "lower_bound_ms" in entry and alone:
                compute = lower_bound(alone[task], {}, {"devices": (link or {}).get("devices", 1)})
                bound = factor * compute + (entry["lower_bound_ms"] - compute)
                entry["headroom_bound_conservative"] = entry["best_greedy_ms"] / bound - 1.0
    return {
        "best_greedy": best,
        "placers": placers,
        "exhaustive": exhaustive_tasks,
        "headroom": headroom,
        "tasks_with_headroom": sorted(t for t, h in headroom.items() if h["headroom"] >= HEADROOM_THRESHOLD),
        "cost_model_error": cost_model_error(ok, exhaustive if exhaustive is not None else pl.DataFrame()),
        "additivity": additivity(exhaustive)
        if exhaustive is not None and exhaustive.height
        else {"groups": 0},
        **measurement_noise(ok, replicates),
    }


def settings_line(summary: Mapping[str, Any]) -> str:
    """One line: the noise, the exhaustive headroom and the cost network's fit (for logs)."""
    error = (summary.get("cost_model_error") or {}).get("exhaustive", {})
    heads = [
        e["best_greedy_headroom"]
        for e in summary.get("exhaustive", {}).values()
        if e["best_greedy_headroom"] is not None
    ]
    return (
        f"repeat-to-repeat relative IQR {summary.get('measurement_relative_iqr_mean', math.nan):.3f}; "
        f"best greedy over the optimum (small tasks) {_mean(heads) if heads else math.nan}; "
        f"cost network on the exhaustive sets: MAPE {error.get('plan_mape', math.nan):.3f}, "
        f"Spearman {error.get('plan_spearman', math.nan):.3f}, "
        f"mean signed error {error.get('plan_mean_signed_error', math.nan):.3f}"
    )
