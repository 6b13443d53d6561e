"""Record the machine and software the pipeline ran on (results/environment.json)."""

import logging

from ecorec.utils import environment_record, setup_logging, write_json_atomic


def main(output: str, log_file: str) -> None:
    setup_logging(log_file)
    record = environment_record()
    write_json_atomic(output, record)
    logging.getLogger("ecorec").info("environment recorded in %s", output)


main(snakemake.output[0], snakemake.log[0])
