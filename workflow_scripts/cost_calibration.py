"""Fit the planner's cost calibration to figure 11's kernel benchmarks (rule `cost_calibration`)."""

import contextlib

from ecorec.planner import CostCalibration
from ecorec.utils import setup_logging


def main(records, output, log_file, device):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        calibration = CostCalibration.fit_files(records, device)
        calibration.save(output)
        for algorithm, (a, b) in sorted(calibration.fits.items()):
            logger.info("%s on %s: %.4g s per GFLOP + %.4g s per call", algorithm, device, a * 1e9, b)


main(list(snakemake.input), snakemake.output[0], snakemake.log[0], snakemake.wildcards.device)
