"""Record the machine and software the pipeline ran on (results/environment.json)."""

from ecorec.utils import environment_record, write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
write_json_atomic(ctx.output[0], environment_record())
ctx.logger.info("environment recorded in %s", ctx.output[0])
