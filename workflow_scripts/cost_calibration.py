"""Fit the planner's cost calibration to figure 11's kernel benchmarks (rule `cost_calibration`)."""

from ecorec.planner import CostCalibration
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
device = ctx.wildcards.device
calibration = CostCalibration.fit_files(list(ctx.input), device)
calibration.save(ctx.output[0])
for algorithm, (a, b) in sorted(calibration.fits.items()):
    ctx.logger.info("%s on %s: %.4g s per GFLOP + %.4g s per call", algorithm, device, a * 1e9, b)
