"""Generate the synthetic dataset (rule `synthetic`): config entry -> results/datasets/<name>/."""

import contextlib
import logging

from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset
from ecorec.utils import setup_logging

_WRITER_KEYS = ("row_group_size", "splits", "samples_per_file")


def main(output: str, log_file: str, settings: dict) -> None:
    settings = dict(settings)
    settings.pop("source")
    writer = {key: settings.pop(key) for key in _WRITER_KEYS if key in settings}
    with open(log_file, "w") as log, contextlib.redirect_stderr(log):
        logger = setup_logging(None)
        logger.info("synthetic dataset %s: settings %s, writer %s", output, settings, writer)
        try:
            generate_synthetic_dataset(
                output, SyntheticConfig.from_mapping(settings), progress=True, **writer
            )
        except Exception:
            logging.getLogger("ecorec").exception("failed")
            raise


main(snakemake.output[0], snakemake.log[0], snakemake.params.settings)
