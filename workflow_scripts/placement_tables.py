"""DreamShard's table features and the FLOP model's statistics of a dataset (rule `placement_tables`)."""

from ecorec.bench.placement.study import build_table_stats, write_frame
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
params = ctx.params
frame = build_table_stats(
    ctx.input.dataset,
    batch_size=int(params.batch_size),
    num_batches=int(params.num_batches),
    split=params.split,
    tt_ranks=list(params.tt_ranks),
)
write_frame(frame, ctx.output[0])
ctx.logger.info("%d tables -> %s", frame.height, ctx.output[0])
