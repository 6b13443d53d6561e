"""The placement study (the ``placement`` workflow target): tables -> tasks -> DreamShard training on measured
costs -> every placer measured on unseen tasks, the small ones against their measured optimum.

Steps (each a function the rules call; the rule scripts write the outputs atomically with the settings used):

- :func:`build_table_stats`: per table, DreamShard's data features
  (:func:`ecorec.stats.dataset_table_features`) joined with the statistics the FLOP model needs (``nnz``,
  ``unique``, ``groups``, ``level_counts``, ``tt_p_shapes`` from :func:`ecorec.stats.dataset_feature_stats`),
  at the study's batch size;
- :func:`ecorec.planner.dreamshard.tasks.make_task_set` (no wrapper needed): train, test and exhaustive tasks;
- :func:`train_models`: the DreamShard outer loop with :func:`measure` as the measurement, the feature scaler
  fitted on the training pool;
- :func:`evaluate_placers`: every placer on every test and exhaustive task, measured (failures are rows with
  ``status="failed"``), the cost network's prediction beside each measured plan;
- :func:`evaluate_exhaustive`: every distinct placement of each exhaustive task, measured and predicted (the
  shards they share are measured once);
- :func:`measure_replicates`: the noise panel: placements measured again in independent passes, the
  statistic's repeat-to-repeat spread;
- :func:`ecorec.bench.placement.summary.summarize`: the numbers of the figure and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import torch

from ecorec.bench.placement.config import PlacementBenchConfig, PlacementCost
from ecorec.bench.placement.measure import device_dims, measure_placements
from ecorec.planner.dreamshard.cost_net import CostNet, CostSample
from ecorec.planner.dreamshard.exhaustive import exhaustive_placements
from ecorec.planner.dreamshard.features import FeatureScaler, TableCatalog
from ecorec.planner.dreamshard.placement import (
    LinkModel,
    MemoryModel,
    Placement,
    PlacementFailure,
    placement_from_devices,
)
from ecorec.planner.dreamshard.placers import Placer, PlacerContext, place
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


@contextlib.contextmanager
def planner_threads(settings: Mapping[str, Any]) -> Iterator[None]:
    """Torch threads of the planner's work for the block (``bench.threads``, default 1): its networks are
    tiny, and with every core's threads on a shared machine each small op waits for descheduled peers
    (measured: the REINFORCE step of 8 x 8 episodes took 69 s with 2 threads at load 7, 1.3 s with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(settings.get("bench", {}).get("threads", 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bench_config(dataset: str, settings: Mapping[str, Any], cache_dir: str | None) -> PlacementBenchConfig:
    """The measurement settings of the study (``settings``: the ``placement`` config section, with
    ``cluster`` from :func:`ecorec.cluster.settings.link_network` (``comm: link``) or ``{"args",
    "network"}`` (``comm: measured`` on the emulated cluster))."""
    bench = settings.get("bench", {})
    cluster = settings.get("cluster") or {}
    comm = str(bench.get("comm", "link"))
    if comm == "link" and cluster.get("link_gbit") is None:
        logger.warning(
            "placement: comm 'link' without an emulated cluster's link rate: exchanges timed instead"
        )
        comm = "measured"
    return PlacementBenchConfig(
        dataset=dataset,
        batch_size=int(settings["batch_size"]),
        world_size=int(settings["devices"]),
        kind=str(settings.get("kind", "uncompressed")),
        split=str(settings.get("split", "train")),
        warmup=int(bench.get("warmup", 1)),
        rounds=int(bench.get("rounds", 5)),
        repeats=int(bench.get("repeats", 3)),
        tt_ranks=tuple(settings.get("tt_ranks", (16, 16))),
        tt_min_rows=int(settings.get("tt_min_rows", 1000)),
        algorithm=str(settings.get("algorithm", "ecorec")),
        device=str(settings.get("device", "cpu")),
        comm=comm,
        link_gbit=cluster.get("link_gbit") if comm == "link" else None,
        ranks_per_node=int(cluster.get("ranks_per_node", 1)) if comm == "link" else 1,
        intra_gbit=cluster.get("intra_gbit") if comm == "link" else None,
        cache_dir=cache_dir,
        threads=int(bench.get("threads", 1)),
        compute_clock=str(bench.get("compute_clock", "thread")),
        pin=bool(bench.get("pin", True)),
        cluster_profile=str(cluster.get("network", "loopback")),
    )


def measure(
    placements: Sequence[Placement],
    bench: PlacementBenchConfig,
    settings: Mapping[str, Any],
    replicate: int = 0,
) -> list[PlacementCost]:
    """:func:`measure_placements` on the study's devices: timed exchanges run on ranks of the emulated
    cluster when ``settings`` has ``cluster.args`` (``python -m ecorec.cluster run`` arguments), else on
    loopback ranks."""
    args = (settings.get("cluster") or {}).get("args")
    if args and bench.comm == "measured":
        return measure_placements(
            placements, bench, launcher="cluster", cluster_args=args, replicate=replicate
        )
    return measure_placements(placements, bench, replicate=replicate)


def placer_context(
    catalog: TableCatalog, settings: Mapping[str, Any], scaler: FeatureScaler | None = None
) -> PlacerContext:
    kind = str(settings.get("kind", "uncompressed"))
    tt_ranks = tuple(settings.get("tt_ranks", (16, 16)))
    memory = MemoryModel(catalog, kind, tt_ranks=tt_ranks, tt_min_rows=int(settings.get("tt_min_rows", 1000)))
    cap = settings.get("memory_cap_bytes")
    ratio = settings.get("memory_cap_ratio")
    search = settings.get("neuroshard", {})
    cluster = settings.get("cluster") or {}
    link = None
    if str(settings.get("bench", {}).get("comm", "link")) == "link" and cluster.get("link_gbit") is not None:
        link = LinkModel(
            int(settings["batch_size"]),
            float(cluster["link_gbit"]),
            int(cluster.get("ranks_per_node", 1)),
            cluster.get("intra_gbit"),
        )
    return PlacerContext(
        catalog=catalog,
        memory=memory,
        num_devices=int(settings["devices"]),
        cap_bytes=None if cap is None else float(cap),
        cap_ratio=None if ratio is None else float(ratio),
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
        link=link,
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
    with planner_threads(settings):
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


def _context_with_models(
    catalog: TableCatalog, settings: Mapping[str, Any], model_path: str | None
) -> PlacerContext:
    net = policy = scaler = None
    if model_path is not None:
        net, policy, scaler = load_models(model_path)
    context = placer_context(catalog, settings, scaler)
    context.cost_net, context.policy = net, policy
    return context


def predict(context: PlacerContext, placements: Sequence[Placement]) -> list[float | None]:
    """The cost network's plan cost of each placement (``None`` without a network)."""
    if context.cost_net is None or not placements:
        return [None] * len(placements)
    samples = [
        CostSample(
            context.features([s.task_table for s in p.shards]).numpy(),
            np.asarray(p.devices()),
            p.num_devices,
            np.zeros((p.num_devices, 4)),
            0.0,
        )
        for p in placements
    ]
    comm = None
    if context.link is not None:
        comm = [context.link.device_ms(device_dims(p)) for p in placements]
    plans, _ = context.cost_net.predict(samples, comm)
    return [float(x) for x in plans]


def _cost_columns(cost: PlacementCost) -> dict[str, Any]:
    return {
        "plan_cost": cost.plan_cost,
        "spread_lo": cost.spread[0],
        "spread_hi": cost.spread[1],
        "round_relative_iqr": cost.round_relative_iqr,
        "device_costs": json.dumps(cost.device_costs),
    }


_EMPTY_COST = {"plan_cost": None, "spread_lo": None, "spread_hi": None, "round_relative_iqr": None}


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
    """Every placer on every test and exhaustive task: one row each (``group`` test/exhaustive, ``status``
    ok/failed, ``error``, the measured ``plan_cost`` with its rounds' ``spread_lo``/``spread_hi``, the cost
    network's ``predicted_cost``, the placement). The exhaustive tasks have no ``memory_cap_ratio`` (of a
    small task's ~1.5 tables per device, a ratio cap leaves a handful of placements; ``memory_cap_bytes``
    still holds)."""
    context = _context_with_models(catalog, settings, model_path)
    uncapped = _context_with_models(catalog, {**settings, "memory_cap_ratio": None}, model_path)
    rows: list[dict[str, Any]] = []
    placements: list[Placement] = []
    for group, group_tasks in (("test", tasks.test), ("exhaustive", tasks.exhaustive)):
        for task in group_tasks:
            for placer in placers:
                row: dict[str, Any] = {
                    "group": group,
                    "task": task.id,
                    "placer": str(Placer(placer)),
                    "num_tables": len(task.tables),
                }
                try:
                    with planner_threads(settings):
                        placement = place(placer, task, uncapped if group == "exhaustive" else context)
                except PlacementFailure as err:
                    rows.append({**row, "status": "failed", "error": str(err), "placement": None})
                    continue
                rows.append(
                    {**row, "status": "ok", "error": None, "placement": json.dumps(placement.to_dict())}
                )
                placements.append(placement)
    costs = iter(measure(placements, bench_config(dataset, settings, cache_dir), settings))
    predictions = iter(predict(context, placements))
    for row in rows:
        if row["status"] != "ok":
            row.update(_EMPTY_COST, predicted_cost=None, device_costs=None)
            continue
        row.update(_cost_columns(next(costs)), predicted_cost=next(predictions))
    return pl.DataFrame(rows, infer_schema_length=None)


def evaluate_exhaustive(
    dataset: str,
    catalog: TableCatalog,
    tasks: TaskSet,
    settings: Mapping[str, Any],
    *,
    model_path: str | None,
    cache_dir: str | None,
) -> pl.DataFrame:
    """Every distinct placement (up to relabelling the devices, within ``memory_cap_bytes``; no ratio cap,
    as in :func:`evaluate_placers`) of each exhaustive task, measured, with the cost network's prediction:
    one row each (``task``, ``placement``, ``plan_cost``, ``predicted_cost``, ...)."""
    context = _context_with_models(catalog, {**settings, "memory_cap_ratio": None}, model_path)
    rows: list[dict[str, Any]] = []
    bench = bench_config(dataset, settings, cache_dir)
    for task in tasks.exhaustive:
        candidates = exhaustive_placements(
            task, context.num_devices, context.memory, context.task_cap(task.tables)
        )
        logger.info("exhaustive task %s: %d placements", task.id, len(candidates))
        costs = measure(candidates, bench, settings)
        for placement, cost, predicted in zip(candidates, costs, predict(context, candidates), strict=True):
            rows.append(
                {
                    "task": task.id,
                    "placement": json.dumps(placement.to_dict()),
                    **_cost_columns(cost),
                    "predicted_cost": predicted,
                }
            )
    schema = {"task": pl.Utf8, "placement": pl.Utf8, "plan_cost": pl.Float64, "predicted_cost": pl.Float64}
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(schema=schema)


def measure_singles(
    dataset: str, catalog: TableCatalog, tasks: TaskSet, settings: Mapping[str, Any], *, cache_dir: str | None
) -> dict[str, dict[str, float]]:
    """Each test task's tables measured alone (forward + backward ms of the table on one device): with the
    link's communication, what bounds any placement of the task from below (see
    :func:`ecorec.bench.placement.summary.summarize_headroom`). ``{task: {table: ms}}``."""
    del catalog
    bench = bench_config(dataset, settings, cache_dir)
    devices = int(settings["devices"])
    tables = list(dict.fromkeys(t for task in tasks.test for t in task.tables))
    placements = [placement_from_devices([t], [0], devices) for t in tables]
    costs = measure(placements, bench, settings)
    alone = {t: c.device_costs[0][0] + c.device_costs[0][3] for t, c in zip(tables, costs, strict=True)}
    return {task.id: {t.name: alone[t] for t in task.tables} for task in tasks.test}


def noise_panel(evaluation: pl.DataFrame, tasks: Sequence[str], size: int) -> list[Placement]:
    """The placements whose measurement is repeated: the placers' distinct placements of ``tasks``, taken in
    turn from each task, at most ``size``."""
    ok = evaluation.filter((pl.col("status") == "ok") & pl.col("task").is_in(list(tasks)))
    per_task = [list(dict.fromkeys(ok.filter(pl.col("task") == t)["placement"].to_list())) for t in tasks]
    chosen: list[str] = []
    for i in range(max((len(p) for p in per_task), default=0)):
        for placements in per_task:
            if i < len(placements) and placements[i] not in chosen and len(chosen) < size:
                chosen.append(placements[i])
    return [Placement.from_dict(json.loads(text)) for text in chosen]


def measure_replicates(
    dataset: str,
    placements: Sequence[Placement],
    settings: Mapping[str, Any],
    *,
    cache_dir: str | None,
    replicates: Sequence[int],
) -> pl.DataFrame:
    """Measure ``placements`` again as each of ``replicates`` (independent passes; replicate 0 is the study's
    own measurement, read from the cache): one row per placement and replicate, with the load average before
    the pass. The workflow spreads the passes over the evaluation (before and after the exhaustive tasks), so
    that their spread includes the machine's drift over a minute, which rounds of one pass cannot show."""
    bench = bench_config(dataset, settings, cache_dir)
    rows = []
    for replicate in replicates:
        load = os.getloadavg()[0]
        for placement, cost in zip(placements, measure(placements, bench, settings, replicate), strict=True):
            rows.append(
                {
                    "placement": placement.canonical(),
                    "replicate": replicate,
                    "plan_cost": cost.plan_cost,
                    "load_average": load,
                }
            )
    schema = {
        "placement": pl.Utf8,
        "replicate": pl.Int64,
        "plan_cost": pl.Float64,
        "load_average": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def panel_tasks(tasks: TaskSet) -> list[str]:
    """The tasks of the noise panel: the first exhaustive and the first test task."""
    return [t.id for t in (tasks.exhaustive[:1] + tasks.test[:1])]


def write_frame(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """CSV or Parquet by suffix, atomically."""
    from ecorec.utils import atomic_path

    with atomic_path(path) as tmp:
        if str(path).endswith(".csv"):
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp)


__all__ = [
    "bench_config",
    "build_table_stats",
    "evaluate_exhaustive",
    "evaluate_placers",
    "load_models",
    "measure",
    "measure_replicates",
    "measure_singles",
    "noise_panel",
    "panel_tasks",
    "placer_context",
    "predict",
    "train_models",
    "write_frame",
]
