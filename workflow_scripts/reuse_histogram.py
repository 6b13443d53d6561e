"""Plot a dataset's reuse histogram against the target locality statistics (rule `reuse_histogram`)."""

from ecorec.data.locality_stats import read_locality_stats
from ecorec.data.synthetic import load_target_stats
from ecorec.plots.stats import plot_reuse_histogram
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
target_stats = ctx.params.target_stats
tv = plot_reuse_histogram(
    read_locality_stats(ctx.input.locality).mean(),
    load_target_stats(target_stats),
    ctx.output[0],
    ours_label=ctx.wildcards.dataset,
    target_label="Meta 2022 (published)" if target_stats is None else str(target_stats),
)
ctx.logger.info("total variation distances: %s", tv)
