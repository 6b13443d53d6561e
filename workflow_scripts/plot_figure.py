"""Draw one of the paper's figures from its result records (the plot rules of rules/figures.smk); a training
figure on the emulated cluster also shows its modelled regime (rule figure_regime) under the title."""

import json
from pathlib import Path

from ecorec.plots.paper import make_figure
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
records = list(ctx.input.records)
note = json.loads(Path(ctx.input.regime).read_text())["note"] if "regime" in ctx.input.keys() else ""
rows = make_figure(ctx.rule, records, ctx.output.png, ctx.output.csv, dict(ctx.params.settings), note)
ctx.logger.info(
    "%s: %d rows from %d result files -> %s, %s", ctx.rule, len(rows), len(records), *ctx.output[:2]
)
