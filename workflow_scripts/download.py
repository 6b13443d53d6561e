"""Download one file, resumable and verified (rules `download_*`)."""

import contextlib
import logging

from ecorec.data.download import download_file
from ecorec.utils import setup_logging


def main(url: str, output: str, log_file: str, sha256: str | None, size: int | None) -> None:
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        logger.info("downloading %s -> %s (sha256 %s, %s bytes)", url, output, sha256, size)
        try:
            download_file(url, output, expected_sha256=sha256, expected_size=size, progress=True)
        except Exception:
            logging.getLogger("ecorec").exception("failed")
            raise


main(
    snakemake.params.url,
    snakemake.output[0],
    snakemake.log[0],
    snakemake.params.sha256,
    snakemake.params.size,
)
