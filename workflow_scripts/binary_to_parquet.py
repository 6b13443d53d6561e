"""Convert TorchRec npy days or MLPerf .bin files to a Parquet dataset (rules to_parquet_criteo_npy /
to_parquet_mlperf_bin)."""

from pathlib import Path

from ecorec.data.criteo_npy import convert_criteo_npy
from ecorec.data.mlperf_bin import convert_mlperf_bin
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings, output = ctx.params.settings, ctx.output[0]
ctx.logger.info("converting %s -> %s with %s", dict(ctx.input), output, settings)
common = {
    "num_embeddings_per_feature": settings.get("num_embeddings_per_feature"),
    "row_group_size": settings.get("row_group_size", 65536),
    "samples_per_file": settings.get("samples_per_file"),
}
if settings["source"] == "criteo_npy":
    convert_criteo_npy(
        Path(settings["folder"]), output, days=settings.get("days"), splits=settings.get("splits"), **common
    )
else:
    convert_mlperf_bin(settings["files"], output, **common)
