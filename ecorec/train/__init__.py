"""Training runs: ``python -m ecorec.train --config run.yaml [--resume]`` under torchrun.

- ``config``: the validated run configuration (``load_run_config``);
- ``schedule``: the MLPerf DLRM learning-rate schedule;
- ``planning``: sharding plan and twp stages of a run;
- ``checkpoint``: per-rank atomic checkpoints and resume;
- ``metrics``: timing windows, peak memory, AUROC;
- ``loop``: ``run_training`` (what the CLI runs on every rank).
"""

from ecorec.train.config import ConfigError, RunConfig, load_run_config, run_config_from_dict
from ecorec.train.schedule import MLPerfSchedule, mlperf_lr

__all__ = [
    "ConfigError",
    "MLPerfSchedule",
    "RunConfig",
    "load_run_config",
    "mlperf_lr",
    "run_config_from_dict",
]
