"""Training runs: ``python -m ecorec.train --config run.yaml [--resume]`` under torchrun.

- ``config``: the validated run configuration (``load_run_config``);
- ``schedule``: the MLPerf DLRM learning-rate schedule;
- ``planning``: sharding plan and twp stages of a run;
- ``checkpoint``: per-rank atomic checkpoints and resume;
- ``metrics``: timing windows, peak memory, AUROC;
- ``loop``: ``run_training`` (what the CLI runs on every rank);
- ``epochs``: ``EpochPlan`` (steps per epoch, run length, evaluation steps);
- ``sources``: the run's data source (Parquet folder or the random source) and its loaders;
- ``mlperf_log``: ``MLPerfRunLog`` (``:::MLLOG`` lines, ``train.mlperf_log``).
"""

from ecorec.train.config import ConfigError, RunConfig, load_run_config, run_config_from_dict
from ecorec.train.epochs import EpochPlan
from ecorec.train.schedule import MLPerfSchedule, mlperf_lr

__all__ = [
    "ConfigError",
    "EpochPlan",
    "MLPerfSchedule",
    "RunConfig",
    "load_run_config",
    "mlperf_lr",
    "run_config_from_dict",
]
