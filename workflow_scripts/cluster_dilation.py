"""Rule cluster_dilation: the dilation and link rates of one (profile, kernel, ranks per node, world, target
world), from this machine's measured kernel rates (rule cluster_rates) and, for the mix, the compute split."""

import json
from pathlib import Path

from ecorec.cluster.settings import dilation_record
from ecorec.utils import write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
rates = json.loads(Path(ctx.input.rates).read_text())
split = json.loads(Path(ctx.input.split).read_text()) if "split" in ctx.input.keys() else None
record = dilation_record(ctx.params.cluster, rates, split=split)
write_json_atomic(ctx.output[0], record)
ctx.logger.info(
    "dilation %.4g (tt %.4g, gemm %s, tt weight %.2f), link %.4g Gbit/s, fan-out %.3g -> %s",
    record["factor"],
    record["tt_factor"],
    record["gemm_factor"],
    record["tt_weight"],
    record["link_gbit"],
    record["fanout"],
    ctx.output[0],
)
