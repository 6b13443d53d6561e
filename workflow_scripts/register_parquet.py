"""Register a prepared Parquet dataset (rule `register_parquet`) as results/datasets/<name>."""

from pathlib import Path

from ecorec.data import register_dataset
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings, output = ctx.params.settings, ctx.output[0]
meta = register_dataset(
    settings["path"],
    output,
    name=Path(output).name,
    description=settings.get("description"),
    provenance=settings.get("provenance"),
)
ctx.logger.info(
    "%s: %d samples, %d tables, source %s", output, meta.num_samples, len(meta.features), meta.source
)
