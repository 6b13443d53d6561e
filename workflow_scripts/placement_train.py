"""DreamShard's outer loop on measured placements (rule `placement_train`)."""

import os

os.environ.setdefault(
    "THP_MEM_ALLOC_ENABLE", "1"
)  # before torch allocates: see ecorec.bench.placement.compute

import polars as pl  # noqa: E402

from ecorec.bench.placement.study import train_models  # noqa: E402
from ecorec.cluster.settings import placement_study_settings  # noqa: E402
from ecorec.planner.dreamshard.features import TableCatalog  # noqa: E402
from ecorec.planner.dreamshard.tasks import TaskSet  # noqa: E402
from ecorec.utils import environment_record, write_json_atomic  # noqa: E402
from ecorec.workflow import script_context  # noqa: E402

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
inputs, outputs, params = ctx.input, ctx.output, ctx.params
# the devices are ranks of the emulated cluster when config `cluster.emulate` is on
settings = placement_study_settings(params.settings, params.cluster, inputs.get("dilation"))
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
ctx.logger.info("placement models -> %s, %s", outputs.model, outputs.record)
