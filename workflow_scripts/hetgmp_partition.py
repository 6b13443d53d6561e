"""Partition a dataset's train split for HET-GMP (rule `hetgmp_partition`): the .npz and its header."""

from ecorec.planner.partition import partition_dataset
from ecorec.utils import write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings, wildcards = dict(ctx.params.settings), ctx.wildcards
header = partition_dataset(
    ctx.input.dataset,
    ctx.output.npz,
    world_size=int(wildcards.world),
    method=wildcards.partitioner,
    batch_size=int(wildcards.batch),
    gpus_per_node=int(settings["gpus_per_node"]),
    rerun=int(settings["rerun"]),
    seed=int(settings.get("seed", 0)),
    hard_cap=settings.get("hard_cap"),
)
write_json_atomic(ctx.output.header, header)
ctx.logger.info(
    "%s: %.2f s, predicted remote rows/step %s",
    wildcards.partitioner,
    header["partition_seconds"],
    header["predicted_fetches_per_step"],
)
