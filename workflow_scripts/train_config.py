"""Write a training run's YAML (rules/train.smk: train_config) from the config settings and the wildcards."""

import logging
from pathlib import Path

import yaml

from ecorec.train import run_config_from_dict
from ecorec.utils import atomic_write, setup_logging


def main(settings: dict, dataset: str, output: str, log_file: str) -> None:
    setup_logging(log_file)
    data = {**settings}
    data["run"] = {**settings["run"], "output_dir": str(Path(output).parent)}
    data["dataset"] = {**settings["dataset"], "path": dataset}
    cfg = run_config_from_dict(data, source=output)  # fails here, naming the field, on a bad setting
    with atomic_write(output) as handle:
        yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False)
    logging.getLogger("ecorec").info("run configuration written to %s", output)


main(dict(snakemake.params.settings), snakemake.input.dataset, snakemake.output[0], snakemake.log[0])
