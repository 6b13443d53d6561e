"""Compare every sharding method on one layout (rule `sharding_methods`): a CSV of makespans."""

import polars as pl

from ecorec.planner import compare_sharding_methods, stats_file_profiles
from ecorec.utils import atomic_path
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
rows = compare_sharding_methods(
    profiles, int(wc.world), params.methods, memory_cap_bytes=params.memory_cap_bytes, seed=params.seed
)
frame = pl.DataFrame(rows).with_columns(pl.lit(cost_unit).alias("cost_unit"))
with atomic_path(ctx.output[0]) as tmp:
    frame.write_csv(tmp)
ctx.logger.info("\n%s", frame)
