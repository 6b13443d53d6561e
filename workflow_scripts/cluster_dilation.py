"""Rule cluster_dilation: measure this machine's TT kernel rate; write the dilation and link rates."""

from ecorec.cluster.settings import dilation_record
from ecorec.utils import write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
record = dilation_record(ctx.params.cluster)
write_json_atomic(ctx.output[0], record)
