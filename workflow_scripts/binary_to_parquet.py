"""Convert TorchRec npy days or MLPerf .bin files to a Parquet dataset (rules to_parquet_criteo_npy /
to_parquet_mlperf_bin)."""

import contextlib
import logging
from pathlib import Path

from ecorec.data.criteo_npy import convert_criteo_npy
from ecorec.data.mlperf_bin import convert_mlperf_bin
from ecorec.utils import setup_logging


def main(inputs: dict[str, str], output: str, log_file: str, settings: dict) -> None:
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        logger.info("converting %s -> %s with %s", inputs, output, settings)
        common = {
            "num_embeddings_per_feature": settings.get("num_embeddings_per_feature"),
            "row_group_size": settings.get("row_group_size", 65536),
            "samples_per_file": settings.get("samples_per_file"),
        }
        try:
            if settings["source"] == "criteo_npy":
                convert_criteo_npy(
                    Path(settings["folder"]),
                    output,
                    days=settings.get("days"),
                    splits=settings.get("splits"),
                    **common,
                )
            else:
                convert_mlperf_bin(settings["files"], output, **common)
        except Exception:
            logging.getLogger("ecorec").exception("failed")
            raise


main(dict(snakemake.input), snakemake.output[0], snakemake.log[0], snakemake.params.settings)
