"""The HET-GMP figure and CSV from the grid's run records and partition headers (rule `hetgmp_figure`)."""

from ecorec.plots.hetgmp import hetgmp_rows, plot_hetgmp
from ecorec.plots.records import environment_summary, read_records
from ecorec.utils import read_json
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
runs = read_records(list(ctx.input.records))
parts = {}
for path in ctx.input.headers:
    header = read_json(path, ValueError)
    parts[header["method"]] = header
rows = plot_hetgmp(
    hetgmp_rows(runs, parts),
    ctx.output.png,
    ctx.output.csv,
    title=f"{ctx.params.title} - {environment_summary(runs)}",
)
ctx.logger.info(
    "hetgmp: %d rows from %d runs -> %s, %s", len(rows), len(runs), ctx.output.png, ctx.output.csv
)
