"""The HET-GMP figure and CSV from the grid's run records and partition headers (rule `hetgmp_figure`); under
the title, HET-GMP's claim and whether it holds here (ecorec.plots.claims)."""

import json
import textwrap

from ecorec.plots.claims import claim_of
from ecorec.plots.hetgmp import hetgmp_rows, plot_hetgmp
from ecorec.plots.records import cluster_summary, environment_summary, read_records
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
runs = read_records(list(ctx.input.records))
parts = {}
for path in ctx.input.headers:
    with open(path) as handle:
        header = json.load(handle)
    parts[header["method"]] = header
rows = hetgmp_rows(runs, parts)
title = f"{ctx.params.title} - {environment_summary(runs)}"
cluster = cluster_summary(runs)
title += f"\n{cluster}" if cluster else ""
title += "\n" + "\n".join(textwrap.wrap(claim_of("hetgmp", rows, {}).line(), 120))
shares = [
    f"{r['partitioner']} {100 * r['comm_exposed_share']:.0f}%"
    for r in rows
    if r["store_rate"] == 0 and r["comm_exposed_share"] == r["comm_exposed_share"]  # not NaN
]
if shares:
    title += "\ncommunication (remote fetches and pushes), share of a step without mirrors: " + ", ".join(
        shares
    )
rows = plot_hetgmp(rows, ctx.output.png, ctx.output.csv, title=title)
ctx.logger.info("hetgmp: %d rows from %d runs -> %s, %s", len(rows), len(runs), *ctx.output[:2])
