"""Plan where a run's tables go (rule `sharding_plan`): stats -> cost model -> plan_sharding -> JSON."""

import contextlib

from ecorec.planner import plan_sharding, planner_inputs
from ecorec.stats import read_table_stats
from ecorec.utils import setup_logging


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
        plan = plan_sharding(
            profiles,
            int(wildcards.world),
            wildcards.method,
            memory_cap_bytes=params.memory_cap_bytes,
            seed=params.seed,
        )
        plan.meta.update(
            table_costs={p.name: p.cost for p in profiles},
            cost_unit="seconds" if calibration else "flops",
            algorithm=wildcards.algorithm,
            global_batch_size=int(wildcards.gbatch),
            stats=stats_path,
        )
        plan.save(output)
        logger.info(
            "%s: makespan %.4g, mean %.4g, lower bound %.4g, memory %s",
            wildcards.method,
            plan.makespan,
            plan.mean_cost,
            plan.lower_bound,
            plan.rank_memory,
        )


main(
    snakemake.input.stats,
    list(snakemake.input.calibration),
    snakemake.output[0],
    snakemake.log[0],
    snakemake.wildcards,
    snakemake.params,
)
