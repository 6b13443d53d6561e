"""Draw one of the paper's figures from its result records (rules fig10, fig11, fig12, fig16, table1)."""

import contextlib

from ecorec.plots.paper import make_figure
from ecorec.utils import setup_logging


def main(name, inputs, png, csv, log_file, settings):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        rows = make_figure(name, inputs, png, csv, settings)
        logger.info("%s: %d rows from %d result files -> %s, %s", name, len(rows), len(inputs), png, csv)


main(
    snakemake.rule,
    list(snakemake.input),
    snakemake.output.png,
    snakemake.output.csv,
    snakemake.log[0],
    dict(snakemake.params.settings),
)
