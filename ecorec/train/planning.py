"""Where a run's tables go: the sharding plan (from the planner rule's JSON file, or computed here with the
planner's own pipeline) and the table-wise pipeline's stages.

Computed here: ``ecorec.stats`` statistics of one global batch of the train split (nnz, U, G, TT levels) ->
``ecorec.planner.table_costs`` (TT GEMM FLOPs of the run's algorithm, ``nnz * D`` for uncompressed tables;
memory with the optimizer state) -> ``table_profiles`` -> ``plan_sharding`` with ``parallel.sharding``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecorec.models import TableSettings, TableSpec
from ecorec.planner import ShardingPlan, execution_order, plan_sharding, stage_sizes
from ecorec.train.config import RunConfig

__all__ = ["planner_profiles", "resolve_plan", "table_specs", "twp_stages"]

_LOG = logging.getLogger(__name__)


def table_specs(metadata: Any, features: Sequence[str], embedding_dim: int) -> list[TableSpec]:
    """One ``TableSpec`` per feature (rows from the dataset metadata), in ``features`` order."""
    return [TableSpec(name, int(metadata.num_embeddings[name]), embedding_dim) for name in features]


def planner_profiles(cfg: RunConfig, specs: Sequence[TableSpec], settings: TableSettings) -> list[Any]:
    """``TableProfile`` of every table (planner cost model over one global batch of the train split)."""
    from ecorec.planner.cost_model import planner_inputs
    from ecorec.stats.features import dataset_feature_stats

    G = cfg.train.global_batch_size
    names = [s.name for s in specs]
    stats = dataset_feature_stats(  # a bounded number of tables read at a time (788 x 131072 would be ~11 GB)
        cfg.dataset.path,
        batch_size=G,
        num_batches=1,
        features=names,
        embedding_dim=cfg.model.embedding_dim,
        tt_ranks=list(settings.tt_ranks),
        tt_num_cores=len(settings.tt_ranks) + 1,
    )
    profiles = planner_inputs(
        stats.table,
        settings.algorithm,
        global_batch_size=G,
        world_size=cfg.parallel.world_size,
        tt_min_rows=settings.tt_min_rows,
        optimizer=cfg.embeddings.optimizer,
        tt_min_compression=settings.tt_min_compression,
    )
    by_name = {p.name: p for p in profiles}
    return [by_name[n] for n in names]


def resolve_plan(
    cfg: RunConfig, specs: Sequence[TableSpec], settings: TableSettings
) -> tuple[ShardingPlan, dict[str, float] | None]:
    """The sharding plan of the run and, when known, each table's cost.

    Order of sources: ``parallel.plan_file``; ``<output_dir>/plan.json`` written by ``--prepare`` for this
    configuration; otherwise computed from one batch of the dataset with ``parallel.sharding``.
    """
    world = cfg.parallel.world_size
    names = [s.name for s in specs]
    candidates = [Path(cfg.parallel.plan_file)] if cfg.parallel.plan_file else []
    candidates.append(cfg.output_dir / "plan.json")
    for path in candidates:
        if not path.is_file():
            continue
        plan = ShardingPlan.load(path)
        placed = sorted(n for tables in plan.assignment.values() for n in tables)
        if plan.world_size != world or placed != sorted(names):
            if path == candidates[-1] and not cfg.parallel.plan_file:
                _LOG.info("%s is for another layout; planning again", path)
                continue
            raise ValueError(
                f"{path}: plan for {plan.world_size} ranks and {len(placed)} tables, but the run has "
                f"parallel.world_size={world} and {len(names)} tables"
            )
        costs = plan.meta.get("table_costs")
        return plan, ({k: float(v) for k, v in costs.items()} if isinstance(costs, dict) else None)
    profiles = planner_profiles(cfg, specs, settings)
    plan = plan_sharding(profiles, world, cfg.parallel.sharding, seed=cfg.run.seed)
    costs = {p.name: float(p.cost) for p in profiles}
    plan.meta["table_costs"] = costs
    return plan, costs


def twp_stages(
    cfg: RunConfig, plan: ShardingPlan, costs: dict[str, float] | None
) -> dict[int, list[list[str]]]:
    """Each rank's twp stages: planner execution order (reordered by cost if ``parallel.reorder``), sloped
    sizes (``parallel.skew_degree``), K = ``parallel.num_micro_keys`` (fewer, with a warning, when some rank
    has fewer tables and ``parallel.allow_fewer_stages``)."""
    from ecorec.parallel import table_wise_stages

    if cfg.parallel.reorder and costs is None:
        raise ValueError("parallel.reorder needs per-table costs; the plan file has none (meta.table_costs)")
    order = execution_order(plan, costs or {}, reorder=cfg.parallel.reorder) if costs else plan.assignment
    return table_wise_stages(
        order,
        cfg.parallel.num_micro_keys,
        lambda n, k: stage_sizes(n, k, cfg.parallel.skew_degree, decreasing=True),
        allow_fewer_stages=cfg.parallel.allow_fewer_stages,
    )
