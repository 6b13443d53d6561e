"""Rule regime_table: every figure's claim and verdict, and the communication share of each experiment,
measured on the emulated cluster and modelled for the paper's configuration (ecorec.cluster.regime)."""

import json
from pathlib import Path

import polars as pl

from ecorec.cluster.regime import regime_summary
from ecorec.plots.figures import write_csv
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings = ctx.params.settings
figures = {Path(p).stem: pl.read_csv(p, infer_schema_length=None).to_dicts() for p in ctx.input.figures}
for path in ctx.input.placement:
    figures["placement"] = pl.read_csv(path, infer_schema_length=None).to_dicts()
points = {}
for path in ctx.input.regimes:
    regime = json.loads(Path(path).read_text())
    points[regime["figure"]] = regime["rows"]
summary = regime_summary(figures, points, settings["figures"])
write_csv(summary, ctx.output.csv)
write_csv([row for rows in points.values() for row in rows], ctx.output.points)
for row in summary:
    ctx.logger.info("%s: %s (%s)", row["figure"], row["verdict"], row["here"])
