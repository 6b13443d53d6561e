"""Every placer on the unseen test and exhaustive tasks, every placement of the exhaustive tasks, and the
noise panel, measured (rule `placement_eval`)."""

import json
import os

os.environ.setdefault(
    "THP_MEM_ALLOC_ENABLE", "1"
)  # before torch allocates: see ecorec.bench.placement.compute

import polars as pl  # noqa: E402

from ecorec.bench.placement.study import (  # noqa: E402
    evaluate_exhaustive,
    evaluate_placers,
    measure_replicates,
    measure_singles,
    noise_panel,
    panel_tasks,
    write_frame,
)
from ecorec.bench.placement.summary import settings_line, summarize  # noqa: E402
from ecorec.cluster.settings import placement_study_settings  # noqa: E402
from ecorec.planner.dreamshard.features import TableCatalog  # noqa: E402
from ecorec.planner.dreamshard.tasks import TaskSet  # noqa: E402
from ecorec.utils import environment_record, write_json_atomic  # noqa: E402
from ecorec.workflow import script_context  # noqa: E402

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
inputs, outputs, params = ctx.input, ctx.output, ctx.params
# the devices are ranks of the emulated cluster when config `cluster.emulate` is on
settings = placement_study_settings(params.settings, params.cluster, inputs.get("dilation"))
catalog, tasks = TableCatalog(pl.read_parquet(inputs.tables)), TaskSet.load(inputs.tasks)
common = {"model_path": inputs.model, "cache_dir": params.cache_dir}
placers = list(params.placers)
evaluation = evaluate_placers(inputs.dataset, catalog, tasks, settings, placers=placers, **common)
write_frame(evaluation, outputs.evaluation)
# the noise panel: replicate 0 (just measured), 1 now, the others after the exhaustive tasks
bench = settings.get("bench", {})
panel = noise_panel(evaluation, panel_tasks(tasks), int(bench.get("panel", 8)))
count = int(bench.get("replicates", 3))
replicate = {"dataset": inputs.dataset, "settings": settings, "cache_dir": params.cache_dir}
early = measure_replicates(placements=panel, replicates=range(min(count, 2)), **replicate)
exhaustive = evaluate_exhaustive(inputs.dataset, catalog, tasks, settings, **common)
write_frame(exhaustive, outputs.exhaustive)
late = measure_replicates(placements=panel, replicates=range(2, count), **replicate)
replicates = pl.concat([early, late])
write_frame(replicates, outputs.replicates)
alone = measure_singles(inputs.dataset, catalog, tasks, settings, cache_dir=params.cache_dir)
dims = {task.id: {t.name: t.dim for t in task.tables} for task in tasks.test}
cluster = settings.get("cluster") or {}
link = {"devices": int(settings["devices"]), "batch_size": int(settings["batch_size"]), **cluster}
summary = summarize(evaluation, exhaustive, replicates, alone, dims, link)
write_json_atomic(outputs.summary, {**summary, "settings": settings, "environment": environment_record()})
ctx.logger.info("%s", settings_line(summary))
ctx.logger.info("%s", json.dumps(summary))
