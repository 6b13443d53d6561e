"""One training run under torchrun: set up the process group, data, plan and model of the configured mode,
train with the learning-rate schedule, evaluate, checkpoint, and write the run record (rank 0).

Run record (``<output_dir>/record.json``, written atomically; an ``ecorec.records.RunRecord``)::

    {"kind": "run", "version": 1, "config": ..., "environment": environment_record(), "metrics": {
        "mode", "world_size", "global_batch_size", "steps", "steps_per_epoch",
        "epochs" (steps / steps per epoch), "resumed_from_step", "stopped_early",
        "loss_curve": [global mean loss of every step],
        "timing": summarize_times(...) of the slowest rank per step, with >= 3 windows,
        "peak_memory_bytes": {"per_rank": [...], "max": ..., "kind": "max_rss" | "cuda_max_memory_allocated"},
        "step_memory_bytes": {"per_rank", "max", "state_per_rank", "step_per_rank", "method", "step"}: the
            allocator's peak of the run's first step (ecorec.utils.memory.measure_step_memory: state + the
            step's peak; that step runs under the profiler on CPU, so leave it out with timing_warmup_steps),
        "eval": [{"step", "split", "auroc", "bce", "samples"}], "final_auroc": {"val": ..., "test": ...},
        "plan": {rank: [tables]} (torchrec: the ranks of each table's shards),
        "stages": {rank: [[tables]]} (twp), "sharding_types" (torchrec),
        "cluster": the emulated cluster's settings (``$ECOREC_CLUSTER``, set by ``ecorec.cluster``) or None}}
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from ecorec.models import EmbeddingOptimizerSettings, ModelSettings, TableSettings, build_head
from ecorec.parallel import CommMeter, CommSample, DenseOptimizerSettings, build_distributed_model
from ecorec.records import RunRecord
from ecorec.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    check_config_match,
    config_fingerprint,
    differing_keys,
    latest_checkpoint,
    load_rank_checkpoint,
    prune_checkpoints,
    resolve_checkpoint_dir,
    restore_rng_state,
    save_rank_checkpoint,
    write_latest,
)
from ecorec.train.config import RunConfig, config_warnings
from ecorec.train.epochs import EpochPlan
from ecorec.train.metrics import comm_metrics, evaluate, gather_objects, peak_memory, summarize_times
from ecorec.train.mlperf_log import MLPerfRunLog
from ecorec.train.planning import resolve_plan, table_specs, twp_stages
from ecorec.train.schedule import MLPerfSchedule
from ecorec.train.sources import UNVERIFIED_WARNING, dataset_metadata, make_loader, verify_run_data
from ecorec.utils import environment_record, setup_logging, write_json_atomic
from ecorec.utils.memory import StepMemory, measure_step_memory

__all__ = ["DistributedContext", "init_distributed", "run_training", "run_trainings"]

_LOG = logging.getLogger("ecorec.train")

# Set by the emulated-cluster launcher (ecorec.cluster.CLUSTER_ENV; ecorec.cluster sits above this layer):
# JSON with the nodes, link rates, profile and dilation factor of the run, copied into the record.
_CLUSTER_ENV = "ECOREC_CLUSTER"


@dataclass
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool


def init_distributed(cfg: RunConfig) -> DistributedContext:
    """Join the torchrun job (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment) with gloo on CPU and
    NCCL on CUDA; a plain ``python -m ecorec.train`` without torchrun is a 1-rank job."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world != cfg.parallel.world_size:
        raise ValueError(
            f"{cfg.source}: parallel.world_size is {cfg.parallel.world_size} but the job has {world} ranks "
            f"(WORLD_SIZE)"
        )
    if cfg.run.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{cfg.source}: run.device is 'cuda' but no CUDA device is available")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    owns = False
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29500")
        dist.init_process_group(backend, rank=rank, world_size=world)
        owns = True
    return DistributedContext(rank, world, local_rank, device, owns)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch_stream(loader: Any) -> Iterator[Any]:
    """Endless batches: one epoch after another, from the loader's current position."""
    while True:
        produced = False
        for batch in loader:
            produced = True
            yield batch
        if not produced:
            raise RuntimeError("the training split yields no batch")


@dataclass
class _RunState:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    resumed_from: int | None = None


def model_settings(cfg: RunConfig) -> ModelSettings:
    """The head settings of the run's ``model`` section."""
    m = cfg.model
    return ModelSettings(
        kind=m.kind,
        embedding_dim=m.embedding_dim,
        interaction=m.interaction,
        dense_arch=tuple(m.dense_arch),
        over_arch=tuple(m.over_arch),
        dcn_num_layers=m.dcn_num_layers,
        dcn_low_rank_dim=m.dcn_low_rank_dim,
        deep_layers=tuple(m.deep_layers),
        cross_layers=m.cross_layers,
    )


def _settings(cfg: RunConfig) -> tuple[TableSettings, EmbeddingOptimizerSettings, DenseOptimizerSettings]:
    e, p = cfg.embeddings, cfg.parallel
    micro = p.num_micro_uidx if (p.mode == "twp" and e.algorithm == "ecorec") else 1
    tables = TableSettings(
        e.algorithm,
        tuple(e.tt_ranks),
        e.tt_min_rows,
        micro,
        e.tt_min_compression,
        tt_init=e.tt_init,
        tt_init_std=e.tt_init_std,
    )
    emb_opt = EmbeddingOptimizerSettings(e.optimizer, e.lr, e.eps, e.update, e.tt_lr)
    d = cfg.dense_optimizer
    dense = DenseOptimizerSettings(kind=d.kind, lr=d.lr, eps=d.eps, weight_decay=d.weight_decay)
    return tables, emb_opt, dense


def _loader(
    cfg: RunConfig, ctx: DistributedContext, model: Any, split: str, shuffle: bool, training: bool = True
) -> Any:
    """The split's loader for this rank. Training drops the last partial batch; evaluation pads it to full
    size with masked samples (``pad_last``), so every sample of the split is scored, in every mode."""
    return make_loader(
        cfg,
        split,
        rank=ctx.rank,
        world_size=ctx.world_size,
        features=model.input_features,
        layout=model.input_layout.value,
        shuffle=shuffle,
        drop_last=training,
        pad_last=not training,
    )


def _mlperf_log(
    cfg: RunConfig, ctx: DistributedContext, schedule: MLPerfSchedule, metadata: Any, step: int
) -> Any:
    """Rank 0's MLPerf log (``train.mlperf_log``), its header written (a no-op logger otherwise)."""
    mlog = MLPerfRunLog(cfg.output_dir / "mlperf.log", enabled=cfg.train.mlperf_log and ctx.rank == 0)
    s = schedule  # the run's step counts (fractions of the run resolved)
    train, val = (metadata.splits.get(n, (0, 0)) for n in ("train", "val"))
    mlog.run_header(
        {
            "global_batch_size": cfg.train.global_batch_size,
            "opt_base_learning_rate": cfg.dense_optimizer.lr,
            "opt_learning_rate_warmup_steps": s.warmup_steps,
            "opt_learning_rate_decay_start_step": s.decay_start_step,
            "opt_learning_rate_decay_steps": s.decay_steps,
            "train_samples": train[1] - train[0],
            "eval_samples": val[1] - val[0],
            "seed": cfg.run.seed,
            "resumed_from_step": step,
        }
    )
    return mlog


def _fingerprint(cfg: RunConfig, metadata: Any, plan: Any) -> dict[str, Any]:
    """What a checkpoint of this run must match to be resumed (``checkpoint.config_fingerprint``): the config
    keys, the dataset's content (sha256 over its files' sha256) and the table placement."""
    import hashlib

    digest = hashlib.sha256("".join(f.sha256 for f in metadata.files).encode()).hexdigest()
    extra: dict[str, Any] = {"dataset.content_sha256": digest}
    if plan is not None:
        extra["parallel.plan"] = {str(r): list(t) for r, t in sorted(plan.assignment.items())}
    return config_fingerprint(cfg.to_dict(), extra)


def _checkpoint(
    cfg: RunConfig, ctx: DistributedContext, model: Any, state: _RunState, fingerprint: dict[str, Any]
) -> None:
    root = cfg.output_dir / "checkpoints"
    payload = {
        "step": state.step,
        "model": model.state_dict(),
        "losses": list(state.losses),
        "evals": list(state.evals),
        "rng": capture_rng_state(),
    }
    save_rank_checkpoint(root, state.step, ctx.rank, payload)
    dist.barrier()
    if ctx.rank == 0:
        write_latest(root, state.step, ctx.world_size, cfg.parallel.mode, fingerprint)
        prune_checkpoints(root, cfg.train.keep_checkpoints)
    dist.barrier()
    _LOG.info("checkpoint of step %d written", state.step)


def _resume(
    cfg: RunConfig, ctx: DistributedContext, model: Any, state: _RunState, fingerprint: dict[str, Any]
) -> None:
    root = cfg.output_dir / "checkpoints"
    record = latest_checkpoint(root)
    if record is None:
        _LOG.warning("--resume: no checkpoint under %s; starting from step 0", root)
        return
    saved = load_rank_checkpoint(root, record, ctx.rank, ctx.world_size, cfg.parallel.mode)
    check_config_match(root, record, fingerprint)
    model.load_state_dict(saved["model"])
    restore_rng_state(saved["rng"])
    state.step = int(saved["step"])
    state.losses = list(saved["losses"])
    state.evals = list(saved["evals"])
    state.resumed_from = state.step
    _LOG.info("resumed from the checkpoint of step %d", state.step)


def _load_weights(
    cfg: RunConfig, ctx: DistributedContext, model: Any, path: str, fingerprint: dict[str, Any]
) -> None:
    """``--resume-from PATH``: this rank's model and optimizer state from another run's checkpoint, on
    purpose (fine-tuning); training starts at step 0 with this config's schedule and a fresh loss curve.
    Differences of config are logged, not refused; the layout (world size, mode, tables) must match."""
    step_folder, record = resolve_checkpoint_dir(path)
    if record is not None:
        saved = load_rank_checkpoint(step_folder.parent, record, ctx.rank, ctx.world_size, cfg.parallel.mode)
        diff = differing_keys(record.get("config", {}), fingerprint)
        if diff:
            _LOG.warning("--resume-from %s: config differs (intended): %s", step_folder, "; ".join(diff))
    else:
        file = step_folder / f"rank-{ctx.rank}.pt"
        if not file.is_file():
            raise CheckpointError(f"{file}: missing (a checkpoint of a {ctx.world_size}-rank run?)")
        saved = torch.load(file, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(saved["model"])
    except (KeyError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{step_folder}: its weights do not fit this run's model (tables, shapes or placement differ): "
            f"{first}"
        ) from err
    _LOG.info("weights loaded from %s (--resume-from); training starts at step 0", step_folder)


def _step_memory_metrics(per_rank: list[StepMemory | None], step: int) -> dict[str, Any] | None:
    if any(m is None for m in per_rank):  # no step ran (a resumed run that was already complete)
        return None
    return {
        "per_rank": [m.peak_bytes for m in per_rank],
        "max": max(m.peak_bytes for m in per_rank),
        "state_per_rank": [m.state_bytes for m in per_rank],
        "step_per_rank": [m.step_bytes for m in per_rank],
        "method": per_rank[0].method,
        "step": step,
    }


def run_training(
    cfg: RunConfig,
    *,
    resume: bool = False,
    stop_after_steps: int | None = None,
    resume_from: str | None = None,
    shared_process: bool = False,
) -> dict[str, Any] | None:
    """Train as configured; returns the run record on rank 0 (``None`` elsewhere, or when stopped early by
    ``stop_after_steps``, which simulates a preempted job: no record is written). ``shared_process``: earlier
    runs trained in this process (:func:`run_trainings`), so a CPU max RSS covers them too.

    ``resume``: continue from the latest checkpoint of ``output_dir`` (refused if its config differs);
    ``resume_from``: start from the weights of another checkpoint on purpose (fine-tuning). A fatal exception
    is written to the rank's log file (``logs/rank<r>.log``) with its traceback before it propagates."""
    if resume and resume_from is not None:
        raise ValueError("give either resume or resume_from, not both")
    ctx = init_distributed(cfg)
    try:
        setup_logging(cfg.output_dir / "logs" / f"rank{ctx.rank}.log", ctx.rank)
        try:
            return _run(cfg, ctx, resume, stop_after_steps, resume_from, shared_process)
        except BaseException as err:
            _log_fatal(ctx.rank, err)
            raise
    finally:
        if ctx.owns_group:
            dist.destroy_process_group()


def run_trainings(cfgs: Sequence[RunConfig]) -> None:
    """Train several runs one after another in this process group (one launch for a figure point; the same
    world size and device). Each writes its own record; a failing run stops the launch."""
    ctx = init_distributed(cfgs[0])
    try:
        for i, cfg in enumerate(cfgs):
            run_training(cfg, shared_process=i > 0)
            gc.collect()
            if ctx.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(ctx.device)
            dist.barrier()
    finally:
        if ctx.owns_group:
            dist.destroy_process_group()


def _log_fatal(rank: int, err: BaseException) -> None:
    """Record a fatal exception in this rank's log file (every rank; the console handler shows rank 0)."""
    if isinstance(err, KeyboardInterrupt):
        _LOG.error("rank %d interrupted", rank)
        return
    _LOG.error("rank %d failed: %s: %s", rank, type(err).__name__, err, exc_info=err)
    for handler in logging.getLogger("ecorec").handlers:
        with contextlib.suppress(OSError):  # a full disk must not hide the error being reported
            handler.flush()


def _run(
    cfg: RunConfig,
    ctx: DistributedContext,
    resume: bool,
    stop_after_steps: int | None,
    resume_from: str | None = None,
    shared_process: bool = False,
) -> dict[str, Any] | None:
    setup_logging(cfg.output_dir / "logs" / f"rank{ctx.rank}.log", ctx.rank)

    torch.manual_seed(cfg.run.seed)
    metadata = dataset_metadata(cfg)
    if not metadata.has_labels:
        _LOG.warning(
            "%s has no labels: the loss trains towards label 0 and AUROC is undefined (a throughput run)",
            cfg.dataset.path,
        )
    ignored_settings = config_warnings(cfg)
    if cfg.dataset.source == "parquet" and not cfg.dataset.verify:
        ignored_settings.append(UNVERIFIED_WARNING)
    for warning in ignored_settings:
        _LOG.warning("%s: %s", cfg.source, warning)
    features = cfg.features_of(metadata.features)
    verification = verify_run_data(cfg, metadata, features)  # before training: a changed file is refused
    specs = table_specs(metadata, features, cfg.model.embedding_dim)
    table_settings, emb_opt, dense_opt = _settings(cfg)
    mode = cfg.parallel.mode
    plan = costs = stages = None
    if mode in ("mp", "bwp", "twp"):
        plan, costs = resolve_plan(cfg, specs, table_settings)
        if mode == "twp":
            stages = twp_stages(cfg, plan, costs)
    table_kinds = [table_settings.table_kind(s) for s in specs]
    for t in table_kinds:
        _LOG.info(
            "table %s: %s, %d parameters, compression %.3gx (%s)",
            t["table"],
            t["kind"],
            t["parameters"],
            t["compression"],
            t["reason"],
        )
    head = build_head(model_settings(cfg), metadata.num_dense, len(features), cfg.run.seed)
    hetgmp = partition = None
    if mode == "hetgmp":  # issue 16: partition file -> owners, mirrors, per-rank samples
        from ecorec.train.hetgmp import hetgmp_setup

        hetgmp, partition = hetgmp_setup(cfg, metadata, features, ctx.rank, ctx.world_size)
    meter = CommMeter(ctx.rank, ctx.world_size)
    model = build_distributed_model(
        mode,
        specs,
        head,
        table_settings=table_settings,
        dense_optimizer=dense_opt,
        embedding_optimizer=emb_opt,
        seed=cfg.run.seed,
        placement=plan.assignment if plan is not None else None,
        stages=stages,
        num_micro_batches=cfg.parallel.num_micro_batches,
        local_batch_size=cfg.train.global_batch_size // ctx.world_size,
        device=ctx.device,
        precision=cfg.train.precision,
        hetgmp=hetgmp,
        comm_meter=meter,
    )
    if partition is not None:
        from ecorec.train.hetgmp import hetgmp_train_loader

        train_loader = hetgmp_train_loader(cfg, partition, ctx.rank, ctx.world_size, features)
    else:
        train_loader = _loader(cfg, ctx, model, "train", cfg.dataset.shuffle)
    if len(train_loader) == 0:
        raise ValueError(
            f"{cfg.source}: train.global_batch_size={cfg.train.global_batch_size} is larger than the "
            "train split"
        )
    eval_splits = [s for s in cfg.train.eval_splits if s in metadata.splits]
    t = cfg.train
    epochs = EpochPlan.build(
        len(train_loader),
        steps=t.steps,
        epochs=t.epochs,
        eval_every=t.eval_every,
        evals_per_epoch=t.evals_per_epoch,
    )
    schedule = MLPerfSchedule(
        cfg.dense_optimizer.lr,
        cfg.embeddings.lr,
        *cfg.lr_schedule.resolve(epochs.total_steps, f"{cfg.source}: lr_schedule"),
        cfg.lr_schedule.decay_end_lr,
    )
    state = _RunState()
    fingerprint = _fingerprint(cfg, metadata, plan)
    if resume:
        _resume(cfg, ctx, model, state, fingerprint)
    elif resume_from is not None:
        _load_weights(cfg, ctx, model, resume_from, fingerprint)
    n = len(train_loader)
    train_loader.load_state_dict({"epoch": state.step // n, "batch": state.step % n})
    stream = _batch_stream(train_loader)

    def run_eval(split: str) -> dict[str, Any]:
        loader = _loader(cfg, ctx, model, split, shuffle=False, training=False)
        result = evaluate(
            model.predict, loader, cfg.train.eval_batches, where=f"step {state.step}: {split} split"
        )
        entry = {"step": state.step, "split": split, **result}
        _LOG.info(
            "step %d %s AUROC %s BCE %s (%d samples)",
            state.step,
            split,
            "undefined" if result["auroc"] is None else f"{result['auroc']:.5f}",
            "undefined" if result["bce"] is None else f"{result['bce']:.5f}",
            result["samples"],
        )
        return entry

    _LOG.info(
        "mode %s, %d ranks, %d tables, G=%d, %d steps (%.3g epochs of %d)%s",
        mode,
        ctx.world_size,
        len(specs),
        cfg.train.global_batch_size,
        epochs.total_steps,
        epochs.epochs,
        epochs.steps_per_epoch,
        f", plan {plan.assignment}" if plan is not None else "",
    )
    mlog = _mlperf_log(cfg, ctx, schedule, metadata, state.step)
    dist.barrier()
    times: list[float] = []
    comm_samples: list[CommSample] = []
    first_timed = state.step
    step_memory: StepMemory | None = None
    progress = tqdm(total=epochs.total_steps, initial=state.step, disable=ctx.rank != 0, desc=f"train {mode}")
    tt_scale = 1.0 if cfg.embeddings.tt_lr is None else cfg.embeddings.tt_lr / cfg.embeddings.lr
    while state.step < epochs.total_steps:
        dense_lr, embedding_lr = schedule.rates(state.step)
        model.set_learning_rates(dense_lr, embedding_lr, embedding_lr * tt_scale)  # TT: same schedule
        mlog.epoch_boundary(state.step, epochs.steps_per_epoch, before=True)
        _sync(ctx.device)
        meter.take()  # evaluation's collectives are not the step's
        start = time.perf_counter()
        if (
            step_memory is None
        ):  # the first step: embedding + optimizer state + activations, from the allocator
            out, step_memory = measure_step_memory(
                lambda: model.train_step(stream), ctx.device, model.state_dict
            )
        else:
            out = model.train_step(stream)
        _sync(ctx.device)
        times.append(time.perf_counter() - start)
        comm_samples.append(meter.take())
        if not math.isfinite(out.loss):
            raise FloatingPointError(f"step {state.step}: the loss is {out.loss}")
        state.losses.append(out.loss)
        state.step += 1
        progress.update(1)
        mlog.epoch_boundary(state.step, epochs.steps_per_epoch, before=False)
        if cfg.train.log_every and state.step % cfg.train.log_every == 0:
            _LOG.info("step %d loss %.6f (%.1f ms)", state.step, out.loss, times[-1] * 1e3)
        if epochs.evaluates_after(state.step) and "val" in eval_splits:
            entry = mlog.evaluation(lambda: run_eval("val"), state.step / epochs.steps_per_epoch)
            state.evals.append(entry)
            reached = entry["auroc"] is not None and cfg.train.target_auc is not None
            if reached and entry["auroc"] >= cfg.train.target_auc:
                _LOG.info("val AUROC %.5f reached the target %.5f", entry["auroc"], cfg.train.target_auc)
                state.stopped_early = True
        if cfg.train.checkpoint_every and state.step % cfg.train.checkpoint_every == 0:
            _checkpoint(cfg, ctx, model, state, fingerprint)
        if stop_after_steps is not None and state.step >= stop_after_steps:
            progress.close()
            _LOG.warning("stopping after step %d as asked (--stop-after-steps)", state.step)
            mlog.close()
            return None
        if state.stopped_early:
            break
    progress.close()
    hetgmp_stats = None
    if partition is not None:  # issue 16: every pending mirror update reaches its owner before evaluation
        model.strategy.flush()
        hetgmp_stats = gather_objects(model.strategy.stats_record())
    final = {split: run_eval(split) for split in eval_splits}
    state.evals.extend(final.values())
    mlog.run_stop(reached_target=state.stopped_early)
    mlog.close()
    memory, kind = peak_memory(ctx.device)
    if shared_process and kind == "max_rss":
        kind = "max_rss (of the process, earlier runs of its launch included)"
    all_times = gather_objects(times)
    all_memory = gather_objects(memory)
    all_step_memory = gather_objects(step_memory)
    all_comm = gather_objects(comm_samples)
    step_times = [max(ts) for ts in zip(*all_times)]
    if ctx.rank != 0:
        return None
    metrics: dict[str, Any] = {
        "mode": mode,
        "world_size": ctx.world_size,
        "global_batch_size": cfg.train.global_batch_size,
        "steps": state.step,
        "steps_per_epoch": epochs.steps_per_epoch,
        "precision": cfg.train.precision,
        "skipped_steps": getattr(getattr(model, "loss_scaler", None), "skipped_steps", 0),
        "epochs": state.step / epochs.steps_per_epoch,
        "resumed_from_step": state.resumed_from,
        "stopped_early": state.stopped_early,
        "loss_curve": state.losses,
        "timing": summarize_times(
            step_times,
            cfg.train.timing_warmup_steps,
            cfg.train.timing_windows,
            cfg.train.global_batch_size,
            first_timed,
        ),
        "peak_memory_bytes": {"per_rank": all_memory, "max": max(all_memory), "kind": kind},
        "step_memory_bytes": _step_memory_metrics(all_step_memory, first_timed),
        "eval": state.evals,
        "final_auroc": {split: entry["auroc"] for split, entry in final.items()},
        "num_tables": len(specs),
        "num_tt_tables": sum(t["kind"] == "tt" for t in table_kinds),
        "tables": table_kinds,
        "config_warnings": ignored_settings,
        "dataset_verification": verification,
        "cluster": json.loads(os.environ[_CLUSTER_ENV]) if os.environ.get(_CLUSTER_ENV) else None,
        "comm": (
            comm_metrics(
                all_comm,
                step_times,
                cfg.train.timing_warmup_steps,
                int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size)),
            )
            if mode != "torchrec"
            else None
        ),
    }
    if plan is not None:
        metrics["plan"] = {str(r): names for r, names in plan.assignment.items()}
    if stages is not None:
        metrics["stages"] = {str(r): groups for r, groups in stages.items()}
    if hetgmp_stats is not None:
        from ecorec.train.hetgmp import hetgmp_metrics

        metrics["hetgmp"] = hetgmp_metrics(model, partition, hetgmp_stats)
    if hasattr(model, "sharding_types"):
        metrics["sharding_types"] = model.sharding_types()
        metrics["plan"] = {str(r): names for r, names in model.placement().items()}
    record = RunRecord(
        config=cfg.to_dict(), environment=environment_record(ctx.device, ctx.world_size), metrics=metrics
    ).to_dict()
    write_json_atomic(cfg.output_dir / "record.json", record)
    _LOG.info("run record written to %s", cfg.output_dir / "record.json")
    return record
