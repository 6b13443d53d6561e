"""The placement figure and its CSV (rule `placement_figure`)."""

import json

import polars as pl

from ecorec.plots.placement import plot_placement
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
with open(ctx.input.summary) as handle:
    summary = json.load(handle)
plot_placement(
    pl.read_parquet(ctx.input.evaluation),
    summary,
    ctx.output.png,
    ctx.output.csv,
    title=f"{ctx.wildcards.dataset}, {ctx.wildcards.kind} tables",
    exhaustive=pl.read_parquet(ctx.input.exhaustive),
)
ctx.logger.info("placement figure -> %s, %s", ctx.output.png, ctx.output.csv)
