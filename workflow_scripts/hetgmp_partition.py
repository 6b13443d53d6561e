"""Partition a dataset's train split for HET-GMP (rule `hetgmp_partition`): the .npz and its header."""

import contextlib

from ecorec.planner.partition import partition_dataset
from ecorec.utils import setup_logging, write_json_atomic


def main(dataset, npz, header_json, log_file, partitioner, world, batch, settings):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        header = partition_dataset(
            dataset,
            npz,
            world_size=int(world),
            method=partitioner,
            batch_size=int(batch),
            gpus_per_node=int(settings["gpus_per_node"]),
            rerun=int(settings["rerun"]),
            seed=int(settings.get("seed", 0)),
            hard_cap=settings.get("hard_cap"),
        )
        write_json_atomic(header_json, header)
        logger.info(
            "%s: %.2f s, predicted remote rows/step %s",
            partitioner,
            header["partition_seconds"],
            header["predicted_fetches_per_step"],
        )


main(
    snakemake.input.dataset,
    snakemake.output.npz,
    snakemake.output.header,
    snakemake.log[0],
    snakemake.wildcards.partitioner,
    snakemake.wildcards.world,
    snakemake.wildcards.batch,
    dict(snakemake.params.settings),
)
