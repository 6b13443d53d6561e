"""Write a training run's YAML (rules/train.smk: train_config) from the config settings and the wildcards."""

import logging
from pathlib import Path

import yaml

from ecorec.train import run_config_from_dict
from ecorec.utils import atomic_write, setup_logging


def main(settings: dict, dataset: str, plan: list[str], output: str, log_file: str) -> None:
    setup_logging(log_file)
    data = {**settings}
    if plan:  # the planner rule's sharding plan (rules/stats.smk: sharding_plan)
        data["parallel"] = {**settings["parallel"], "plan_file": plan[0]}
    data["run"] = {**settings["run"], "output_dir": str(Path(output).parent)}
    data["dataset"] = {**settings["dataset"], "path": dataset}
    cfg = run_config_from_dict(data, source=output)  # fails here, naming the field, on a bad setting
    with atomic_write(output) as handle:
        yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False)
    logging.getLogger("ecorec").info("run configuration written to %s", output)


main(
    dict(snakemake.params.settings),
    snakemake.input.dataset,
    list(snakemake.input.plan),
    snakemake.output[0],
    snakemake.log[0],
)
