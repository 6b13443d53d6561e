"""Convert Criteo Kaggle / 1TB files to a Parquet dataset (rule `to_parquet_criteo`)."""

from ecorec.data.criteo import convert_criteo
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings = ctx.params.settings
ctx.logger.info("converting %s -> %s with %s", list(ctx.input), ctx.output[0], settings)
convert_criteo(
    list(ctx.input),
    ctx.output[0],
    source=settings["source"],
    num_embeddings_per_feature=settings.get("num_embeddings_per_feature"),
    row_group_size=settings.get("row_group_size", 65536),
    samples_per_file=settings.get("samples_per_file"),
    splits=settings.get("splits"),
    progress=True,
)
