"""Convert Criteo Kaggle / 1TB files to a Parquet dataset (rule `to_parquet_criteo`)."""

import contextlib
import logging

from ecorec.data.criteo import convert_criteo
from ecorec.utils import setup_logging


def main(inputs: list[str], output: str, log_file: str, settings: dict) -> None:
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        logger.info("converting %s -> %s with %s", inputs, output, settings)
        try:
            convert_criteo(
                inputs,
                output,
                source=settings["source"],
                num_embeddings_per_feature=settings.get("num_embeddings_per_feature"),
                row_group_size=settings.get("row_group_size", 65536),
                samples_per_file=settings.get("samples_per_file"),
                splits=settings.get("splits"),
                progress=True,
            )
        except Exception:
            logging.getLogger("ecorec").exception("failed")
            raise


main(list(snakemake.input), snakemake.output[0], snakemake.log[0], snakemake.params.settings)
