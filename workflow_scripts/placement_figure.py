"""The placement figure and its CSV (rule `placement_figure`)."""

import polars as pl

from ecorec.plots.placement import plot_placement
from ecorec.utils import read_json
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
plot_placement(
    pl.read_parquet(ctx.input.evaluation),
    read_json(ctx.input.summary, ValueError),
    ctx.output.png,
    ctx.output.csv,
    title=f"{ctx.wildcards.dataset}, {ctx.wildcards.kind} tables",
)
