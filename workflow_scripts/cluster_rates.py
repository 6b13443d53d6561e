"""Rule cluster_rates: this machine's TT reference kernel and FP32 GEMM rates, measured in as many concurrent
processes as a run has ranks (ecorec.cluster.settings.measure_rates)."""

from ecorec.cluster.settings import measure_rates
from ecorec.utils import write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
rates = measure_rates(int(ctx.wildcards.concurrency), threads=int(ctx.params.threads))
write_json_atomic(ctx.output[0], rates)
ctx.logger.info(
    "%s concurrent: %.3g us per TT lookup, %.3g GFLOP/s GEMM -> %s",
    ctx.wildcards.concurrency,
    rates["us_per_lookup"],
    rates["gemm_gflops"],
    ctx.output[0],
)
