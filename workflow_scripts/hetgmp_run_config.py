"""Write one HET-GMP grid point's run YAML (rule `hetgmp_config`)."""

from pathlib import Path

import yaml

from ecorec.train import run_config_from_dict
from ecorec.train.hetgmp import hetgmp_run_dict
from ecorec.utils import atomic_write
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
output, wildcards = ctx.output[0], ctx.wildcards
data = hetgmp_run_dict(
    dict(ctx.params.settings),
    partitioner=wildcards.partitioner,
    store_rate=float(wildcards.store_rate),
    bound=int(wildcards.bound),
    dataset_path=ctx.input.dataset,
    partition_path=ctx.input.partition,
    output_dir=str(Path(output).parent),
    device=ctx.params.device,
)
cfg = run_config_from_dict(data, source=output)  # fails here, naming the field, on a bad setting
with atomic_write(output) as handle:
    yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False)
ctx.logger.info("run configuration written to %s", output)
