"""Plan where a run's tables go (rule `sharding_plan`): stats -> cost model -> plan_sharding -> JSON."""

from ecorec.planner import plan_sharding, stats_file_profiles
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
wc, params = ctx.wildcards, ctx.params
profiles, cost_unit = stats_file_profiles(
    ctx.input.stats,
    wc.algorithm,
    num_tables=int(wc.tables),
    global_batch_size=int(wc.gbatch),
    world_size=int(wc.world),
    tt_min_rows=params.tt_min_rows,
    optimizer=params.optimizer,
    calibration=ctx.input.calibration[0] if ctx.input.calibration else None,  # planner.calibration
)
plan = plan_sharding(
    profiles, int(wc.world), wc.method, memory_cap_bytes=params.memory_cap_bytes, seed=params.seed
)
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
