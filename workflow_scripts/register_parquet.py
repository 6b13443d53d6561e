"""Register a prepared Parquet dataset (rule `register_parquet`) as results/datasets/<name>."""

import contextlib
import logging
from pathlib import Path

from ecorec.data import register_dataset
from ecorec.utils import setup_logging


def main(output: str, log_file: str, settings: dict) -> None:
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        try:
            meta = register_dataset(
                settings["path"],
                output,
                name=Path(output).name,
                description=settings.get("description"),
                provenance=settings.get("provenance"),
            )
        except Exception:
            logging.getLogger("ecorec").exception("failed")
            raise
        logger.info(
            "%s: %d samples, %d tables, source %s", output, meta.num_samples, len(meta.features), meta.source
        )


main(snakemake.output[0], snakemake.log[0], snakemake.params.settings)
