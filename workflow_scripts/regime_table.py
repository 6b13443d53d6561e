"""Rule regime_table: every figure's claim and verdict, and the communication share of each experiment,
measured on the emulated cluster and modelled for the paper's configuration (ecorec.cluster.regime)."""

import json
from pathlib import Path

import polars as pl

from ecorec.cluster.regime import regime_rows, regime_summary
from ecorec.models import ModelSettings, head_parameters
from ecorec.plots.figures import write_csv
from ecorec.records import read_records
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings = ctx.params.settings
figures = {Path(p).stem: pl.read_csv(p, infer_schema_length=None).to_dicts() for p in ctx.input.figures}
for path in ctx.input.placement:
    figures["placement"] = pl.read_csv(path, infer_schema_length=None).to_dicts()
split = json.loads(Path(ctx.input.split).read_text()) if "split" in ctx.input.keys() else None
model = {
    k: tuple(v) if isinstance(v, list) else v for k, v in settings["train_model"].items() if k != "preset"
}
head = ModelSettings(**model)
dense = (lambda t: head_parameters(head, int(split["num_dense"]), t)) if split else None
points = {}
for key in ctx.input.keys():
    if key.startswith("runs_"):
        name = key.removeprefix("runs_")
        records = [r.to_dict() if hasattr(r, "to_dict") else r for r in read_records(ctx.input[key])]
        points[name] = regime_rows(
            records,
            split=split,
            paper=settings["figures"][name].get("paper"),
            profiles=settings["profiles"],
            dense_parameters=dense,
            figure=name,
        )
summary = regime_summary(figures, points, settings["figures"])
write_csv(summary, ctx.output.csv)
write_csv([row for rows in points.values() for row in rows], ctx.output.points)
for row in summary:
    ctx.logger.info("%s: %s (%s)", row["figure"], row["verdict"], row["here"])
