"""The placement study (the ``placement`` workflow target): tables -> tasks -> DreamShard training on measured
costs -> evaluation of every placer on unseen test tasks, measured.

Steps (each a function the rules call, each writing its outputs atomically with the settings it used):

- :func:`build_table_stats`: per table, DreamShard's data features
  (:func:`ecorec.stats.dataset_table_features`) joined with the statistics the FLOP model needs (``nnz``,
  ``unique``, ``groups``, ``level_counts``,
  ``tt_p_shapes`` from :func:`ecorec.stats.dataset_feature_stats`), at the study's batch size;
- :func:`ecorec.planner.dreamshard.tasks.make_task_set` (no wrapper needed);
- :func:`train_models`: the DreamShard outer loop with :func:`ecorec.bench.placement.measure_placements` as
  the measurement, the feature scaler fitted on the training pool;
- :func:`evaluate_placers`: every placer on every test task, measured (failures are rows with
  ``status="failed"``), the cost network's prediction beside each measured plan;
- :func:`summarize`: per placer, the measured plan cost relative to the best greedy baseline, failures, and
  the cost network's error on the test placements.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from ecorec.bench.placement import PlacementBenchConfig, PlacementCost, measure_placements
from ecorec.planner.dreamshard.cost_net import CostNet, CostSample, rank_correlation
from ecorec.planner.dreamshard.features import FeatureScaler, TableCatalog
from ecorec.planner.dreamshard.placement import MemoryModel, Placement, PlacementFailure
from ecorec.planner.dreamshard.placers import GREEDY_BASELINES, Placer, PlacerContext, place
from ecorec.planner.dreamshard.policy import PolicyNet
from ecorec.planner.dreamshard.tasks import TaskSet
from ecorec.planner.dreamshard.training import TrainingSettings, train_dreamshard

logger = logging.getLogger(__name__)


def build_table_stats(
    dataset: str,
    *,
    batch_size: int,
    num_batches: int,
    split: str = "train",
    tt_ranks: Sequence[int] = (16, 16),
    tables_per_read: int = 32,
) -> pl.DataFrame:
    """One row per table: DreamShard's features and the FLOP model's statistics (see the module docstring)."""
    from ecorec.stats import dataset_feature_stats, dataset_table_features

    features = dataset_table_features(
        dataset, batch_size=batch_size, num_batches=num_batches, split=split, tables_per_read=tables_per_read
    )
    stats = dataset_feature_stats(
        dataset,
        batch_size=batch_size,
        num_batches=num_batches,
        split=split,
        tt_ranks=list(tt_ranks),
        tt_num_cores=len(tt_ranks) + 1,
        tables_per_read=tables_per_read,
    ).table.select("table", "nnz", "unique", "groups", "level_counts", "tt_p_shapes")
    return features.join(stats, on="table", how="left")


def bench_config(dataset: str, settings: Mapping[str, Any], cache_dir: str | None) -> PlacementBenchConfig:
    """The measurement settings of the study (``settings``: the ``placement`` config section, with
    ``cluster: {"args", "network"}`` when the devices are ranks of the emulated cluster)."""
    bench = settings.get("bench", {})
    cluster = settings.get("cluster") or {}
    return PlacementBenchConfig(
        dataset=dataset,
        batch_size=int(settings["batch_size"]),
        world_size=int(settings["devices"]),
        kind=str(settings.get("kind", "uncompressed")),
        split=str(settings.get("split", "train")),
        warmup=int(bench.get("warmup", 5)),
        repeats=int(bench.get("repeats", 10)),
        tt_ranks=tuple(settings.get("tt_ranks", (16, 16))),
        tt_min_rows=int(settings.get("tt_min_rows", 1000)),
        algorithm=str(settings.get("algorithm", "ecorec")),
        device=str(settings.get("device", "cpu")),
        cache_dir=cache_dir,
        threads=int(bench.get("threads", 1)),
        compute_clock=str(bench.get("compute_clock", "thread")),
        cluster_profile=str(cluster.get("network", "loopback")),
    )


def measure(
    placements: Sequence[Placement], bench: PlacementBenchConfig, settings: Mapping[str, Any]
) -> list[PlacementCost]:
    """:func:`measure_placements` on the study's devices: ranks of the emulated cluster when ``settings``
    has ``cluster.args`` (``python -m ecorec.cluster run`` arguments), else loopback ranks."""
    args = (settings.get("cluster") or {}).get("args")
    if args:
        return measure_placements(placements, bench, launcher="cluster", cluster_args=args)
    return measure_placements(placements, bench)


def placer_context(
    catalog: TableCatalog, settings: Mapping[str, Any], scaler: FeatureScaler | None = None
) -> PlacerContext:
    kind = str(settings.get("kind", "uncompressed"))
    tt_ranks = tuple(settings.get("tt_ranks", (16, 16)))
    memory = MemoryModel(catalog, kind, tt_ranks=tt_ranks, tt_min_rows=int(settings.get("tt_min_rows", 1000)))
    cap = settings.get("memory_cap_bytes")
    search = settings.get("neuroshard", {})
    return PlacerContext(
        catalog=catalog,
        memory=memory,
        num_devices=int(settings["devices"]),
        cap_bytes=None if cap is None else float(cap),
        batch_size=int(settings["batch_size"]),
        kind=kind,
        tt_ranks=tt_ranks,
        tt_min_rows=int(settings.get("tt_min_rows", 1000)),
        algorithm=str(settings.get("algorithm", "ecorec")),
        scaler=scaler,
        seed=int(settings.get("seed", 0)),
        beam_width=int(search.get("beam_width", 3)),
        beam_steps=int(search.get("beam_steps", 3)),
        beam_candidates=int(search.get("beam_candidates", 10)),
        device_type=str(settings.get("device", "cpu")),
    )


def train_models(
    dataset: str,
    catalog: TableCatalog,
    tasks: TaskSet,
    settings: Mapping[str, Any],
    *,
    model_path: str,
    checkpoint_dir: str | None,
    cache_dir: str | None,
) -> dict[str, Any]:
    """Train the cost network and the policy on measured placements of the training tasks; save both (with
    the scaler and the settings) to ``model_path``; returns the training record."""
    scaler = FeatureScaler.fit(
        catalog.raw([t for task in tasks.train for t in task.tables]), str(settings.get("features", "global"))
    )
    context = placer_context(catalog, settings, scaler)
    bench = bench_config(dataset, settings, cache_dir)
    training = dict(settings.get("training", {}))
    training["seed_placers"] = tuple(training.get("seed_placers", ()))
    train_settings = TrainingSettings(**training)
    result = train_dreamshard(
        list(tasks.train),
        context,
        lambda placements: measure(placements, bench, settings),
        train_settings,
        checkpoint_dir=checkpoint_dir,
    )
    extra = {
        "scaler": scaler.to_dict(),
        "policy": result.policy.state_dict(),
        "settings": json.dumps(dict(settings), sort_keys=True, default=str),
    }
    result.cost_net.save(model_path, extra=extra)
    return {"history": result.history, "num_samples": len(result.samples)}


def load_models(model_path: str) -> tuple[CostNet, PolicyNet, FeatureScaler]:
    net, extra = CostNet.load(model_path)
    policy = PolicyNet()
    policy.load_state_dict(extra["policy"])
    return net, policy, FeatureScaler.from_dict(extra["scaler"])


def evaluate_placers(
    dataset: str,
    catalog: TableCatalog,
    tasks: TaskSet,
    settings: Mapping[str, Any],
    *,
    model_path: str | None,
    cache_dir: str | None,
    placers: Sequence[str],
) -> pl.DataFrame:
    """Every placer on every test task: one row each (``status`` ok/failed, ``error``, the measured
    ``plan_cost`` with its ``spread_lo``/``spread_hi``, the cost network's ``predicted_cost``, the
    placement)."""
    net = policy = scaler = None
    if model_path is not None:
        net, policy, scaler = load_models(model_path)
    context = placer_context(catalog, settings, scaler)
    context.cost_net, context.policy = net, policy
    rows: list[dict[str, Any]] = []
    placements: list[Placement] = []
    for task in tasks.test:
        for placer in placers:
            row: dict[str, Any] = {
                "task": task.id,
                "placer": str(Placer(placer)),
                "num_tables": len(task.tables),
            }
            try:
                placement = place(placer, task, context)
            except PlacementFailure as err:
                rows.append({**row, "status": "failed", "error": str(err), "placement": None})
                continue
            rows.append({**row, "status": "ok", "error": None, "placement": json.dumps(placement.to_dict())})
            placements.append(placement)
    costs = iter(measure(placements, bench_config(dataset, settings, cache_dir), settings))
    for row in rows:
        if row["status"] != "ok":
            row.update(
                plan_cost=None, spread_lo=None, spread_hi=None, iqr_lo=None, iqr_hi=None, predicted_cost=None
            )
            continue
        placement = Placement.from_dict(json.loads(row["placement"]))
        cost = next(costs)
        predicted = None
        if net is not None:
            features = context.features([s.task_table for s in placement.shards]).numpy()
            sample = CostSample(
                features, np.asarray(placement.devices()), placement.num_devices, np.zeros((1, 4)), 0.0
            )
            predicted = float(net.predict([sample])[0][0])
        row.update(
            plan_cost=cost.plan_cost,
            spread_lo=cost.spread[0],
            spread_hi=cost.spread[1],
            iqr_lo=cost.iqr[0],
            iqr_hi=cost.iqr[1],
            predicted_cost=predicted,
            device_costs=json.dumps(cost.device_costs),
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def summarize(evaluation: pl.DataFrame) -> dict[str, Any]:
    """Per placer: tasks, failures, mean measured plan cost, and the cost relative to the best greedy baseline
    (the greedy baseline with the lowest mean measured cost), per task then averaged over the tasks both
    placed; the cost network's error (MAPE, Spearman) on the measured test placements; the measurement
    spread."""
    ok = evaluation.filter(pl.col("status") == "ok")
    mean_cost = {
        r["placer"]: r["plan_cost"] for r in ok.group_by("placer").agg(pl.col("plan_cost").mean()).to_dicts()
    }
    greedy = [p.value for p in GREEDY_BASELINES if p.value in mean_cost]
    best = min(greedy, key=lambda p: mean_cost[p]) if greedy else None
    by_task = {(r["task"], r["placer"]): r["plan_cost"] for r in ok.to_dicts()}
    tasks = sorted(set(evaluation["task"].to_list()))
    placers: dict[str, Any] = {}
    for placer in dict.fromkeys(evaluation["placer"].to_list()):
        rows = evaluation.filter(pl.col("placer") == placer)
        ratios = [
            by_task[(t, placer)] / by_task[(t, best)]
            for t in tasks
            if best is not None and (t, placer) in by_task and (t, best) in by_task
        ]
        placers[placer] = {
            "tasks": rows.height,
            "failed": int((rows["status"] == "failed").sum()),
            "mean_plan_cost_ms": mean_cost.get(placer),
            "relative_to_best_greedy_mean": float(np.mean(ratios)) if ratios else None,
            "relative_to_best_greedy_std": float(np.std(ratios)) if ratios else None,
            "relative_tasks": len(ratios),
        }
    predicted = ok.filter(pl.col("predicted_cost").is_not_null())
    error: dict[str, Any] = {"num_placements": predicted.height}
    if predicted.height:
        measured, pred = predicted["plan_cost"].to_numpy(), predicted["predicted_cost"].to_numpy()
        error["plan_mape"] = float(np.mean(np.abs(pred - measured) / measured))
        error["plan_spearman"] = rank_correlation(list(pred), list(measured))
    spread = (ok["spread_hi"] - ok["spread_lo"]) / ok["plan_cost"] if ok.height else None
    iqr = (ok["iqr_hi"] - ok["iqr_lo"]) / ok["plan_cost"] if ok.height else None
    return {
        "best_greedy": best,
        "placers": placers,
        "cost_model_error_on_test": error,
        "measurement_relative_spread_mean": float(spread.mean()) if spread is not None else math.nan,
        "measurement_relative_iqr_mean": float(iqr.mean()) if iqr is not None else math.nan,
    }


def write_frame(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """CSV or Parquet by suffix, atomically."""
    from ecorec.utils import atomic_path

    with atomic_path(path) as tmp:
        if str(path).endswith(".csv"):
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp)
