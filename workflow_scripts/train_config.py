"""Write a training run's YAML (rules/train.smk: train_config) from the config settings and the wildcards."""

from pathlib import Path

import yaml

from ecorec.train import run_config_from_dict
from ecorec.utils import atomic_write
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings, output, plan = dict(ctx.params.settings), ctx.output[0], list(ctx.input.plan)
data = {**settings}
if plan:  # the planner rule's sharding plan (rules/stats.smk: sharding_plan)
    data["parallel"] = {**settings["parallel"], "plan_file": plan[0]}
data["run"] = {**settings["run"], "output_dir": str(Path(output).parent)}
data["dataset"] = {**settings["dataset"], "path": ctx.input.dataset}
cfg = run_config_from_dict(data, source=output)  # fails here, naming the field, on a bad setting
with atomic_write(output) as handle:
    yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False)
ctx.logger.info("run configuration written to %s", output)
