"""Plot a dataset's reuse histogram against the target locality statistics (rule `reuse_histogram`)."""

import contextlib

from ecorec.data.locality_stats import read_locality_stats
from ecorec.data.synthetic import load_target_stats
from ecorec.plots.stats import plot_reuse_histogram
from ecorec.utils import setup_logging


def main(locality, output, log_file, dataset, target_stats):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        ours = read_locality_stats(locality).mean()
        target = load_target_stats(target_stats)
        tv = plot_reuse_histogram(
            ours,
            target,
            output,
            ours_label=dataset,
            target_label="Meta 2022 (published)" if target_stats is None else str(target_stats),
        )
        logger.info("total variation distances: %s", tv)


main(
    snakemake.input.locality,
    snakemake.output[0],
    snakemake.log[0],
    snakemake.wildcards.dataset,
    snakemake.params.target_stats,
)
