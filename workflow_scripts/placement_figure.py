"""The placement figure and its CSV (rule `placement_figure`)."""

import contextlib
import json

import polars as pl

from ecorec.plots.placement import plot_placement
from ecorec.utils import setup_logging


def main(inputs, outputs, log_file, wildcards):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        setup_logging(None)
        with open(inputs.summary) as handle:
            summary = json.load(handle)
        plot_placement(
            pl.read_parquet(inputs.evaluation),
            summary,
            outputs.png,
            outputs.csv,
            title=f"{wildcards.dataset}, {wildcards.kind} tables",
            exhaustive=pl.read_parquet(inputs.exhaustive),
        )


main(snakemake.input, snakemake.output, snakemake.log[0], snakemake.wildcards)
