"""Disjoint train/test table pools and tasks (rule `placement_tasks`)."""

import polars as pl

from ecorec.planner.dreamshard.tasks import TaskError, make_task_set
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings, output = dict(ctx.params.tasks), ctx.output[0]
names = pl.read_parquet(ctx.input.tables, columns=["table"])["table"].to_list()
try:
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
except TaskError as err:  # name the config section and the dataset's table list
    raise TaskError(f"config placement.tasks ({len(names)} tables in {ctx.input.tables}): {err}") from None
tasks.save(output)
ctx.logger.info(
    "%d train / %d test / %d exhaustive tasks -> %s",
    len(tasks.train),
    len(tasks.test),
    len(tasks.exhaustive),
    output,
)
