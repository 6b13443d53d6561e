"""DreamShard's outer loop on measured placements (rule `placement_train`)."""

import polars as pl

from ecorec.bench.placement_study import train_models
from ecorec.cluster.settings import emulated_network
from ecorec.planner.dreamshard.features import TableCatalog
from ecorec.planner.dreamshard.tasks import TaskSet
from ecorec.utils import environment_record, write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
inputs, outputs, params = ctx.input, ctx.output, ctx.params
settings = dict(params.settings)
if params.cluster:  # the devices are ranks of the emulated cluster (config `cluster.emulate`)
    args, network = emulated_network(params.cluster, int(settings["devices"]), inputs.dilation)
    settings["cluster"] = {"args": args, "network": network}
record = train_models(
    inputs.dataset,
    TableCatalog(pl.read_parquet(inputs.tables)),
    TaskSet.load(inputs.tasks),
    settings,
    model_path=outputs.model,
    checkpoint_dir=params.checkpoint_dir,
    cache_dir=params.cache_dir,
)
write_json_atomic(outputs.record, {**record, "settings": settings, "environment": environment_record()})
