"""Sharding of one layout (dataset, algorithm, tables, world, global batch) from its feature statistics and
the cost model: the plan of one method (rule `sharding_plan`, JSON) or every method compared (rule
`sharding_methods`, CSV of makespans)."""

import polars as pl

from ecorec.planner import compare_sharding_methods, plan_sharding, stats_file_profiles
from ecorec.utils import atomic_path
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
wc, params = ctx.wildcards, ctx.params
world = int(wc.world)
profiles, cost_unit = stats_file_profiles(
    ctx.input.stats,
    wc.algorithm,
    num_tables=int(wc.tables),
    global_batch_size=int(wc.gbatch),
    world_size=world,
    tt_min_rows=params.tt_min_rows,
    optimizer=params.optimizer,
    tt_min_compression=params.tt_min_compression,
    calibration=ctx.input.calibration[0] if ctx.input.calibration else None,  # planner.calibration
)
limits = {"memory_cap_bytes": params.memory_cap_bytes, "seed": params.seed}
if ctx.rule == "sharding_methods":
    rows = compare_sharding_methods(profiles, world, params.methods, **limits)
    frame = pl.DataFrame(rows).with_columns(pl.lit(cost_unit).alias("cost_unit"))
    with atomic_path(ctx.output[0]) as tmp:
        frame.write_csv(tmp)
    ctx.logger.info("\n%s", frame)
else:
    plan = plan_sharding(profiles, world, wc.method, **limits)
    plan.meta.update(
        table_costs={p.name: p.cost for p in profiles},
        cost_unit=cost_unit,
        algorithm=wc.algorithm,
        global_batch_size=int(wc.gbatch),
        stats=ctx.input.stats,
    )
    plan.save(ctx.output[0])
    ctx.logger.info(
        "%s: makespan %.4g, mean %.4g, lower bound %.4g, memory %s",
        wc.method,
        plan.makespan,
        plan.mean_cost,
        plan.lower_bound,
        plan.rank_memory,
    )
