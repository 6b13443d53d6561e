"""Convert downloaded Meta dlrm_datasets files to a Parquet dataset (rule `to_parquet_meta_dlrm`)."""

from ecorec.data.meta_dlrm import convert_meta_dlrm
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings = ctx.params.settings
ctx.logger.info("converting %s -> %s with %s", list(ctx.input), ctx.output[0], settings)
convert_meta_dlrm(
    list(ctx.input),
    ctx.output[0],
    source=settings["source"],
    row_group_size=settings.get("row_group_size", 4096),
    tables_per_file=settings.get("tables_per_file", 32),
    splits=settings.get("splits"),
    progress=True,
)
