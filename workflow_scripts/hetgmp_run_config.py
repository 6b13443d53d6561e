"""Write one HET-GMP grid point's run YAML (rule `hetgmp_config`)."""

import logging
from pathlib import Path

import yaml

from ecorec.train import run_config_from_dict
from ecorec.train.hetgmp import hetgmp_run_dict
from ecorec.utils import atomic_write, setup_logging


def main(settings, wildcards, dataset, partition, output, log_file, device):
    setup_logging(log_file)
    data = hetgmp_run_dict(
        settings,
        partitioner=wildcards.partitioner,
        store_rate=float(wildcards.store_rate),
        bound=int(wildcards.bound),
        dataset_path=dataset,
        partition_path=partition,
        output_dir=str(Path(output).parent),
        device=device,
    )
    cfg = run_config_from_dict(data, source=output)  # fails here, naming the field, on a bad setting
    with atomic_write(output) as handle:
        yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False)
    logging.getLogger("ecorec").info("run configuration written to %s", output)


main(
    dict(snakemake.params.settings),
    snakemake.wildcards,
    snakemake.input.dataset,
    snakemake.input.partition,
    snakemake.output[0],
    snakemake.log[0],
    snakemake.params.device,
)
