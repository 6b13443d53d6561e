"""Disjoint train/test table pools and tasks (rule `placement_tasks`)."""

import contextlib

import polars as pl

from ecorec.planner.dreamshard.tasks import make_task_set
from ecorec.utils import setup_logging


def main(tables, output, log_file, settings):
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        names = pl.read_parquet(tables, columns=["table"])["table"].to_list()
        tasks = make_task_set(
            names,
            num_train=int(settings["num_train"]),
            num_test=int(settings["num_test"]),
            tables_per_task=settings["tables_per_task"],
            seed=int(settings["seed"]),
            train_fraction=float(settings["train_fraction"]),
            dims=list(settings["dims"]),
            num_exhaustive=int(settings.get("num_exhaustive", 0)),
            exhaustive_tables=int(settings.get("exhaustive_tables", 6)),
        )
        tasks.save(output)
        logger.info(
            "%d train / %d test / %d exhaustive tasks -> %s",
            len(tasks.train),
            len(tasks.test),
            len(tasks.exhaustive),
            output,
        )


main(snakemake.input.tables, snakemake.output[0], snakemake.log[0], dict(snakemake.params.tasks))
