"""DreamShard's outer loop on measured placements (rule `placement_train`)."""

import contextlib
import os

os.environ.setdefault(
    "THP_MEM_ALLOC_ENABLE", "1"
)  # before torch allocates: see ecorec.bench.placement.compute

import polars as pl

from ecorec.bench.placement.study import train_models
from ecorec.cluster.settings import placement_network
from ecorec.planner.dreamshard.features import TableCatalog
from ecorec.planner.dreamshard.tasks import TaskSet
from ecorec.utils import environment_record, setup_logging, write_json_atomic


def main(inputs, outputs, log_file, params):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        setup_logging(None)
        settings = dict(params.settings)
        if params.cluster:  # the devices are ranks of the emulated cluster (config `cluster.emulate`)
            comm = settings.get("bench", {}).get("comm", "link")
            settings["cluster"] = placement_network(
                params.cluster, int(settings["devices"]), inputs.dilation, comm
            )
        record = train_models(
            inputs.dataset,
            TableCatalog(pl.read_parquet(inputs.tables)),
            TaskSet.load(inputs.tasks),
            settings,
            model_path=outputs.model,
            checkpoint_dir=params.checkpoint_dir,
            cache_dir=params.cache_dir,
        )
        write_json_atomic(
            outputs.record, {**record, "settings": settings, "environment": environment_record()}
        )


main(snakemake.input, snakemake.output, snakemake.log[0], snakemake.params)
