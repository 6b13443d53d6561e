"""Convert downloaded Meta dlrm_datasets files to a Parquet dataset (rule `to_parquet_meta_dlrm`)."""

import contextlib
import logging

from ecorec.data.meta_dlrm import convert_meta_dlrm
from ecorec.utils import setup_logging


def main(inputs: list[str], output: str, log_file: str, settings: dict) -> None:
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        logger.info("converting %s -> %s with %s", inputs, output, settings)
        try:
            convert_meta_dlrm(
                inputs,
                output,
                source=settings["source"],
                row_group_size=settings.get("row_group_size", 4096),
                tables_per_file=settings.get("tables_per_file", 32),
                splits=settings.get("splits"),
                progress=True,
            )
        except Exception:
            logging.getLogger("ecorec").exception("failed")
            raise


main(list(snakemake.input), snakemake.output[0], snakemake.log[0], snakemake.params.settings)
