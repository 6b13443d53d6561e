"""The HET-GMP figure and CSV from the grid's run records and partition headers (rule `hetgmp_figure`)."""

import contextlib
import json

from ecorec.plots.hetgmp import hetgmp_rows, plot_hetgmp
from ecorec.plots.records import environment_summary, read_records
from ecorec.utils import setup_logging


def main(records, headers, png, csv, log_file, title):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        runs = read_records(records)
        parts = {}
        for path in headers:
            with open(path) as handle:
                header = json.load(handle)
            parts[header["method"]] = header
        rows = plot_hetgmp(hetgmp_rows(runs, parts), png, csv, title=f"{title} - {environment_summary(runs)}")
        logger.info("hetgmp: %d rows from %d runs -> %s, %s", len(rows), len(runs), png, csv)


main(
    list(snakemake.input.records),
    list(snakemake.input.headers),
    snakemake.output.png,
    snakemake.output.csv,
    snakemake.log[0],
    snakemake.params.title,
)
