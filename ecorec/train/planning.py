"""Where a run's tables go: the sharding plan (from the planner rule's JSON file, or computed here from one
batch of the dataset with the same planner function) and the table-wise pipeline's stages.

Per-table cost, when computed here: the predicted TT GEMM FLOPs (forward + backward) of one global batch
(``ecorec.tt.tt_gemm_flops`` from the batch's ``nnz``, unique rows ``U`` and prefix groups ``G``), or ``nnz *
D`` for an uncompressed table. Memory: parameter bytes plus optimizer state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecorec.models import TableSettings, TableSpec
from ecorec.planner import ShardingPlan, TableProfile, execution_order, plan_sharding, stage_sizes
from ecorec.train.config import RunConfig

__all__ = ["profile_tables", "resolve_plan", "table_costs", "table_specs", "twp_stages"]

_LOG = logging.getLogger(__name__)


def table_specs(metadata: Any, features: Sequence[str], embedding_dim: int) -> list[TableSpec]:
    """One ``TableSpec`` per feature (rows from the dataset metadata), in ``features`` order."""
    return [TableSpec(name, int(metadata.num_embeddings[name]), embedding_dim) for name in features]


def _tt_shapes(spec: TableSpec, settings: TableSettings) -> Any:
    from ecorec.tt import TTShapes

    return TTShapes.from_sizes(spec.num_embeddings, spec.embedding_dim, list(settings.tt_ranks))


def _state_factor(optimizer: str) -> float:
    return {"sgd": 1.0, "adagrad": 2.0, "rowwise_adagrad": 1.0}[optimizer]


def profile_tables(
    specs: Sequence[TableSpec],
    sparse: Any,
    settings: TableSettings,
    optimizer: str,
) -> list[TableProfile]:
    """``TableProfile`` of every table from one global batch ``sparse`` (a KJT holding every feature)."""
    features = sparse.to_dict()
    num_samples = max(sparse.stride(), 1)
    profiles = []
    for spec in specs:
        values = features[spec.name].values()
        nnz = int(values.numel())
        if settings.compresses(spec):
            from ecorec.tt import tt_gemm_flops, tt_lookup_counts

            shapes = _tt_shapes(spec, settings)
            nnz_, uniques, groups = tt_lookup_counts(values, shapes)
            forward, backward = tt_gemm_flops(shapes, nnz_, uniques, groups, settings.algorithm)
            cost = float(forward + backward)
            params = shapes.num_parameters()
        else:
            cost = float(2 * nnz * spec.embedding_dim)
            params = spec.num_embeddings * spec.embedding_dim
        memory = int(params * 4 * _state_factor(optimizer))
        profiles.append(
            TableProfile(spec.name, spec.num_embeddings, spec.embedding_dim, nnz / num_samples, cost, memory)
        )
    return profiles


def table_costs(cfg: RunConfig, specs: Sequence[TableSpec], settings: TableSettings) -> dict[str, float]:
    """Per-table cost of one global batch of the train split (reads that one batch, every feature)."""
    from ecorec.data import ParquetBatchLoader

    loader = ParquetBatchLoader(
        cfg.dataset.path,
        split="train",
        global_batch_size=cfg.train.global_batch_size,
        rank=0,
        world_size=1,
        features=[s.name for s in specs],
        layout="local",
        shuffle=False,
        prefetch=0,
    )
    batch = loader.batch(0)
    return {
        p.name: float(p.cost) for p in profile_tables(specs, batch.sparse, settings, cfg.embeddings.optimizer)
    }


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
    costs = table_costs(cfg, specs, settings)
    profiles = _profiles_with_costs(specs, settings, costs, cfg.embeddings.optimizer)
    plan = plan_sharding(profiles, world, cfg.parallel.sharding, seed=cfg.run.seed)
    plan.meta["table_costs"] = costs
    return plan, costs


def _profiles_with_costs(
    specs: Sequence[TableSpec], settings: TableSettings, costs: dict[str, float], optimizer: str
) -> list[TableProfile]:
    out = []
    for spec in specs:
        params = (
            _tt_shapes(spec, settings).num_parameters()
            if settings.compresses(spec)
            else spec.num_embeddings * spec.embedding_dim
        )
        memory = int(params * 4 * _state_factor(optimizer))
        out.append(
            TableProfile(spec.name, spec.num_embeddings, spec.embedding_dim, 0.0, costs[spec.name], memory)
        )
    return out


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
