"""python -m ecorec.train --config run.yaml [--config run2.yaml ...] [--resume | --resume-from P]
[--prepare [--world-size N]] [--stop-after-steps K]

Run under torchrun (``torchrun --standalone --nproc_per_node R -m ecorec.train --config run.yaml``), or
through ``workflow_scripts/launch_torchrun.sh``, which first runs ``--prepare`` once: it validates the
configuration (every error names the field) and writes the sharding plan to ``<output_dir>/plan.json`` before
any worker starts, so a bad configuration fails in seconds and every rank reads the same plan.

Several ``--config`` files (the same world size and device) train one after another in the same workers and
process group, each writing its own record: one launch (process start, imports, rendezvous; ~20 s on 2 CPU
cores) serves a whole figure point. A run's ``peak_memory_bytes`` on CPU is then the process's max RSS so far
(its ``kind`` says so); the step memory figure 10 plots is measured per run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ecorec.train.config import ConfigError, RunConfig, load_run_config
from ecorec.utils.atomic import DiskFullError
from ecorec.utils.process import die_with_parent


def prepare(cfg: RunConfig) -> str:
    """Validate what needs the dataset (features, the model on them, stages per rank) and write
    ``<output_dir>/plan.json``."""
    import torch

    from ecorec.models import build_head
    from ecorec.train.loop import _settings, model_settings
    from ecorec.train.planning import resolve_plan, table_specs, twp_stages
    from ecorec.train.sources import dataset_metadata, verify_run_data

    try:
        metadata = dataset_metadata(cfg)
    except Exception as err:
        raise ConfigError(f"{cfg.source}: dataset.path: {err}") from err
    features = cfg.features_of(metadata.features)
    try:  # the files the run reads, against metadata.json (sha256 once; the ranks then find the stamp)
        verify_run_data(cfg, metadata, features)
    except Exception as err:
        raise ConfigError(f"{cfg.source}: dataset.path: {err}") from err
    if cfg.train.global_batch_size > metadata.splits["train"][1] - metadata.splits["train"][0]:
        raise ConfigError(f"{cfg.source}: train.global_batch_size: larger than the dataset's train split")
    try:  # the head the workers will build, on the meta device (no memory): any other mismatch fails here
        with torch.device("meta"):
            build_head(model_settings(cfg), metadata.num_dense, len(features), cfg.run.seed)
    except (ValueError, RuntimeError) as err:
        raise ConfigError(f"{cfg.source}: model: {err}") from err
    if cfg.parallel.mode == "hetgmp":  # issue 16: the partition must fit this dataset and world size
        from ecorec.planner.partition import PartitionError
        from ecorec.train.hetgmp import hetgmp_setup

        try:
            hetgmp_setup(cfg, metadata, features, 0, cfg.parallel.world_size)
        except PartitionError as err:
            raise ConfigError(f"{cfg.source}: hetgmp.partition: {err}") from err
        return "partition checked"
    if cfg.parallel.mode not in ("mp", "bwp", "twp"):
        return "no plan needed"
    specs = table_specs(metadata, features, cfg.model.embedding_dim)
    table_settings = _settings(cfg)[0]
    plan, costs = resolve_plan(cfg, specs, table_settings)
    if cfg.parallel.mode == "twp":
        try:
            twp_stages(cfg, plan, costs)
        except ValueError as err:
            raise ConfigError(f"{cfg.source}: parallel.num_micro_keys: {err}") from err
    path = cfg.output_dir / "plan.json"
    plan.save(path)
    return f"plan written to {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecorec.train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        required=True,
        action="append",
        help="run configuration (YAML); repeat to train several runs one after another in one launch",
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest checkpoint of output_dir (refused if it was written with a different "
        "config: the differing keys are named)",
    )
    resume.add_argument(
        "--resume-from",
        metavar="PATH",
        default=None,
        help="start from the weights of this checkpoint (a step folder, checkpoints folder or run folder) on "
        "purpose, e.g. to fine-tune with another config; training starts at step 0",
    )
    parser.add_argument(
        "--prepare", action="store_true", help="validate and write the plan (one process, no training)"
    )
    parser.add_argument(
        "--world-size",
        type=int,
        default=None,
        metavar="N",
        help="with --prepare: the ranks the launch will start, checked against parallel.world_size "
        "(workflow_scripts/launch_torchrun.sh passes agents x procs per agent)",
    )
    parser.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        metavar="K",
        help="stop after step K without writing a record (simulates a preempted job; resume with --resume)",
    )
    args = parser.parse_args(argv)
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun rank: die with its agent, never train as an orphan
        die_with_parent(signal.SIGTERM, parent=os.getppid())
    single = len(args.config) == 1
    try:
        cfgs = [load_run_config(path) for path in args.config]
        if not single and (args.resume or args.resume_from or args.stop_after_steps is not None):
            raise ConfigError("--resume, --resume-from and --stop-after-steps take a single --config")
        _check_same_job(cfgs)
        cfg = cfgs[0]
        if args.world_size is not None and args.world_size != cfg.parallel.world_size:
            raise ConfigError(
                f"{cfg.source}: parallel.world_size is {cfg.parallel.world_size} but the launch starts "
                f"{args.world_size} ranks: set parallel.world_size: {args.world_size}, or launch "
                f"{cfg.parallel.world_size} ranks (launch_torchrun.sh: --agents x --nproc-per-agent)"
            )
        if args.prepare:
            for cfg in cfgs:
                print(prepare(cfg))
            return 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DiskFullError as err:  # e.g. plan.json on a full disk: the message names the folder
        print(f"error: {err}", file=sys.stderr)
        return 1
    from ecorec.train.loop import run_training, run_trainings

    if single:
        run_training(
            cfgs[0], resume=args.resume, stop_after_steps=args.stop_after_steps, resume_from=args.resume_from
        )
    else:
        run_trainings(cfgs)
    return 0


def _check_same_job(cfgs: list[RunConfig]) -> None:
    """Runs of one launch share its ranks: the same world size and device (``ConfigError`` naming both)."""
    first = cfgs[0]
    for cfg in cfgs[1:]:
        if (cfg.parallel.world_size, cfg.run.device) != (first.parallel.world_size, first.run.device):
            raise ConfigError(
                f"{cfg.source}: parallel.world_size {cfg.parallel.world_size} / run.device "
                f"{cfg.run.device!r} differ from {first.source}'s ({first.parallel.world_size} / "
                f"{first.run.device!r}): runs of one launch share its ranks"
            )


if __name__ == "__main__":
    sys.exit(main())
