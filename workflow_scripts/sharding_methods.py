"""Compare every sharding method on one layout (rule `sharding_methods`): a CSV of makespans."""

import contextlib

import polars as pl

from ecorec.planner import compare_sharding_methods, planner_inputs
from ecorec.stats import read_table_stats
from ecorec.utils import atomic_path, setup_logging


def main(stats_path, calibration_files, output, log_file, wildcards, params):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        calibration = calibration_files[0] if calibration_files else None  # planner.calibration
        profiles = planner_inputs(
            read_table_stats(stats_path, int(wildcards.tables)),  # more than the dataset has: error
            wildcards.algorithm,
            global_batch_size=int(wildcards.gbatch),
            world_size=int(wildcards.world),
            tt_min_rows=params.tt_min_rows,
            optimizer=params.optimizer,
            tt_min_compression=params.tt_min_compression,
            calibration=calibration,
        )
        rows = compare_sharding_methods(
            profiles,
            int(wildcards.world),
            params.methods,
            memory_cap_bytes=params.memory_cap_bytes,
            seed=params.seed,
        )
        frame = pl.DataFrame(rows).with_columns(
            pl.lit("seconds" if calibration else "flops").alias("cost_unit")
        )
        with atomic_path(output) as tmp:
            frame.write_csv(tmp)
        logger.info("\n%s", frame)


main(
    snakemake.input.stats,
    list(snakemake.input.calibration),
    snakemake.output[0],
    snakemake.log[0],
    snakemake.wildcards,
    snakemake.params,
)
