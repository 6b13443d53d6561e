"""Every placer on the unseen test tasks, measured (rule `placement_eval`)."""

import json

import polars as pl

from ecorec.bench.placement_study import evaluate_placers, summarize, write_frame
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
evaluation = evaluate_placers(
    inputs.dataset,
    TableCatalog(pl.read_parquet(inputs.tables)),
    TaskSet.load(inputs.tasks),
    settings,
    model_path=inputs.model,
    cache_dir=params.cache_dir,
    placers=list(params.placers),
)
write_frame(evaluation, outputs.evaluation)
summary = summarize(evaluation)
write_json_atomic(outputs.summary, {**summary, "settings": settings, "environment": environment_record()})
ctx.logger.info("%s", json.dumps(summary))
