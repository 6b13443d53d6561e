"""Draw one of the paper's figures from its result records (the plot rules of rules/figures.smk)."""

from ecorec.plots.paper import make_figure
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
inputs = list(ctx.input)
rows = make_figure(ctx.rule, inputs, ctx.output.png, ctx.output.csv, dict(ctx.params.settings))
ctx.logger.info(
    "%s: %d rows from %d result files -> %s, %s", ctx.rule, len(rows), len(inputs), *ctx.output[:2]
)
