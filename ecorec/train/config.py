"""The run configuration (one YAML file per training run), validated before any worker starts.

Every error names the file and the offending field (``run.yaml: parallel.mode: ...``). Sections and their
defaults (see ``docs/architecture.md`` and the README's "Training" section for an example file):

- ``run``: seed, device (cpu -> gloo, cuda -> nccl), output_dir (record.json, logs/, checkpoints/, plan.json);
- ``dataset``: path of a Parquet dataset folder (``ecorec.data``), the features to train (``features``, or the
  first ``num_tables``; default all), shuffle, prefetch, ``verify`` (files checked against ``metadata.json``
  before training; ``false`` skips it and the record says so);
- ``model``: ``ecorec.models.ModelSettings`` (dlrm / wide_deep / dcn);
- ``embeddings``: TT algorithm (or none) and ranks, row threshold, minimum compression of a TT table
  (``tt_min_compression``: TT cores at least that many times smaller than the table, else uncompressed), the
  embedding optimizer and its update, ``lr`` (uncompressed tables) and ``tt_lr`` (TT tables; default ``lr``),
  the TT cores' initialisation (``tt_init``, ``tt_init_std``; ``ecorec.models.TableSettings``);
- ``dense_optimizer``: sgd / adagrad / adam;
- ``lr_schedule``: MLPerf DLRM warm-up and polynomial decay (``ecorec.train.schedule``), lengths in steps or
  as fractions of the run (``LRScheduleSection``);
- ``parallel``: mode and world size, sharding plan (file or planner method), twp stages, bwp micro-batches;
- ``train``: global batch size, steps, evaluation, AUROC target, checkpoints, timing windows;
- ``hetgmp``: the ``hetgmp`` mode's partition file, store_rate, bound, prefetch (``HetGMPSection``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ecorec.config_effects import model_key_errors, parallel_key_errors, setting_warnings
from ecorec.types import (
    DEFAULT_TT_INIT,
    INTERACTIONS,
    MODEL_KINDS,
    TT_INITS,
    Algorithm,
    ParallelMode,
    ShardingMethod,
)
from ecorec.utils.yamlfile import YamlFileError, load_yaml_text

__all__ = [
    "ConfigError",
    "DatasetSection",
    "DenseOptimizerSection",
    "EmbeddingsSection",
    "HetGMPSection",
    "LRScheduleSection",
    "ModelSection",
    "ParallelSection",
    "RandomDataSection",
    "RunConfig",
    "RunSection",
    "TrainSection",
    "config_warnings",
    "load_run_config",
    "random_source_config",
    "run_config_from_dict",
]

MODES = tuple(m.value for m in ParallelMode)
SHARDING_METHODS = tuple(m.value for m in ShardingMethod)
ALGORITHMS = tuple(a.value for a in Algorithm)
DATASET_SOURCES = ("parquet", "random")


class ConfigError(ValueError):
    """A run configuration that cannot run; the message names the file and the field."""


@dataclass(frozen=True)
class RunSection:
    seed: int = 0
    device: str = "cpu"
    output_dir: str = "results/runs/run"
    name: str = ""


@dataclass(frozen=True)
class RandomDataSection:
    """Sizes of the ``random`` source (``dataset.source: random``; ``ecorec.data.random_source``)."""

    num_embeddings_per_feature: list[int] = field(default_factory=list)
    pooling: list[int] = field(default_factory=lambda: [1])  # one value for all features, or one per feature
    min_pooling: list[int] | None = None  # None: = pooling (fixed lengths)
    num_dense: int = 13
    train_samples: int = 65536
    val_samples: int = 8192
    test_samples: int = 8192


@dataclass(frozen=True)
class DatasetSection:
    path: str = ""
    features: list[str] | None = None
    num_tables: int | None = None
    shuffle: bool = True
    prefetch: int = 2
    source: str = "parquet"  # parquet: the folder at `path`; random: generated on the fly (`random`)
    random: RandomDataSection = field(default_factory=RandomDataSection)
    verify: bool = True  # check the files against metadata.json before training (ecorec.data.verify)


@dataclass(frozen=True)
class ModelSection:
    preset: str | None = None  # ecorec.models.presets name; the other keys given here override its values
    kind: str = "dlrm"
    embedding_dim: int = 16
    interaction: str = "cat"
    dense_arch: list[int] = field(default_factory=lambda: [64, 16])
    over_arch: list[int] = field(default_factory=lambda: [64, 32, 1])
    dcn_num_layers: int = 2
    dcn_low_rank_dim: int = 8
    deep_layers: list[int] = field(default_factory=lambda: [256, 256, 256])
    cross_layers: int = 1


@dataclass(frozen=True)
class EmbeddingsSection:
    algorithm: str = "ecorec"
    tt_ranks: list[int] = field(default_factory=lambda: [16, 16])
    tt_min_rows: int = 1000
    optimizer: str = "sgd"
    lr: float = 0.1
    eps: float = 1e-8
    update: str = "fused"
    tt_min_compression: float = 1.0
    tt_lr: float | None = None
    tt_init: str = DEFAULT_TT_INIT  # sampled_gaussian (TT-Rec) | normal | uniform (ecorec.tt.init)
    tt_init_std: float | None = None  # sampled_gaussian: None = the uncompressed tables' std, 1/sqrt(3N)


@dataclass(frozen=True)
class DenseOptimizerSection:
    kind: str = "sgd"
    lr: float = 0.1
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass(frozen=True)
class LRScheduleSection:
    """MLPerf DLRM's warm-up and poly(2) decay (``ecorec.train.schedule``). Each of the three lengths is given
    in steps (``warmup_steps``, ...) or as a fraction of the run's steps (``warmup_fraction``, ..., so the
    curve follows ``train.steps`` / ``train.epochs``), not both."""

    warmup_steps: int = 0
    decay_start_step: int = 0
    decay_steps: int = 0
    decay_end_lr: float = 0.0
    warmup_fraction: float | None = None
    decay_start_fraction: float | None = None
    decay_fraction: float | None = None

    def decays(self) -> bool:
        """Whether the rate decays (a decay length in steps or as a fraction > 0)."""
        return bool(self.decay_steps) or bool(self.decay_fraction)

    def resolve(self, total_steps: int, where: str = "lr_schedule") -> tuple[int, int, int]:
        """``(warmup_steps, decay_start_step, decay_steps)`` of a run of ``total_steps`` steps; a decay that
        would start inside the warm-up is a ``ConfigError`` naming ``where`` and the fields."""
        from ecorec.train.schedule import schedule_steps

        warmup, start, decay = schedule_steps(
            total_steps,
            warmup_steps=self.warmup_steps,
            decay_start_step=self.decay_start_step,
            decay_steps=self.decay_steps,
            warmup_fraction=self.warmup_fraction,
            decay_start_fraction=self.decay_start_fraction,
            decay_fraction=self.decay_fraction,
        )
        if decay and start < warmup:
            raise ConfigError(
                f"{where}.decay_start_step: with {total_steps} steps the decay starts at step {start}, "
                f"inside the warm-up of {warmup} steps"
            )
        return warmup, start, decay


@dataclass(frozen=True)
class ParallelSection:
    mode: str = "dp"
    world_size: int = 1
    sharding: str = "greedy"
    plan_file: str | None = None
    num_micro_keys: int = 1
    allow_fewer_stages: bool = True
    reorder: bool = True
    skew_degree: float = 0.0
    num_micro_uidx: int = 1
    num_micro_batches: int = 1


@dataclass(frozen=True)
class TrainSection:
    global_batch_size: int = 256
    steps: int | None = None  # steps or epochs (not both); neither: ecorec.train.epochs.DEFAULT_STEPS
    epochs: int | None = None
    eval_every: int = 0
    evals_per_epoch: int = 0  # val evaluations per epoch (MLPerf: 20); excludes eval_every
    pin_memory: bool = False  # batches in pinned host memory (run.device cuda)
    mlperf_log: bool = False  # :::MLLOG lines to <output_dir>/mlperf.log (rank 0; ecorec.train.mlperf_log)
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast of the head; tables stay fp32 (fp16: loss scaling)
    eval_batches: int = 0
    eval_splits: list[str] = field(default_factory=lambda: ["val", "test"])
    target_auc: float | None = None
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    timing_warmup_steps: int = 2
    timing_windows: int = 3
    log_every: int = 10


# -- hetgmp (issue 16) -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HetGMPSection:
    """``parallel.mode: hetgmp`` only: ``partition`` (a ``.npz`` of ``ecorec.planner.partition`` made for this
    dataset's train split, these features and this world size), ``store_rate`` (mirrored fraction of each
    rank's priority list), ``bound`` (staleness bound), ``prefetch`` (pull step t+1 during step t)."""

    partition: str | None = None
    store_rate: float = 0.0
    bound: int = 0
    prefetch: bool = False


def _check_hetgmp(cfg: RunConfig, src: str, check_paths: bool) -> None:
    h, defaults = cfg.hetgmp, HetGMPSection()
    if cfg.parallel.mode != "hetgmp":
        if h != defaults:
            raise ConfigError(
                f"{src}: hetgmp: set, but parallel.mode is {cfg.parallel.mode!r} (has no effect)"
            )
        return
    if cfg.embeddings.algorithm != "none":
        raise ConfigError(
            f"{src}: embeddings.algorithm: mode 'hetgmp' trains uncompressed rows; set it to 'none' "
            f"(got {cfg.embeddings.algorithm!r})"
        )
    if cfg.embeddings.optimizer not in ("sgd", "rowwise_adagrad"):
        raise ConfigError(
            f"{src}: embeddings.optimizer: mode 'hetgmp' supports sgd and rowwise_adagrad, got "
            f"{cfg.embeddings.optimizer!r}"
        )
    if h.partition is None:
        raise ConfigError(f"{src}: hetgmp.partition: required for mode 'hetgmp'")
    if not 0.0 <= h.store_rate <= 1.0:
        raise ConfigError(f"{src}: hetgmp.store_rate: must be in [0, 1], got {h.store_rate}")
    if h.bound < 0:
        raise ConfigError(f"{src}: hetgmp.bound: must be >= 0, got {h.bound}")
    if check_paths and not Path(h.partition).is_file():
        raise ConfigError(f"{src}: hetgmp.partition: {h.partition} does not exist")


# -- end hetgmp ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    run: RunSection = field(default_factory=RunSection)
    dataset: DatasetSection = field(default_factory=DatasetSection)
    model: ModelSection = field(default_factory=ModelSection)
    embeddings: EmbeddingsSection = field(default_factory=EmbeddingsSection)
    dense_optimizer: DenseOptimizerSection = field(default_factory=DenseOptimizerSection)
    lr_schedule: LRScheduleSection = field(default_factory=LRScheduleSection)
    parallel: ParallelSection = field(default_factory=ParallelSection)
    train: TrainSection = field(default_factory=TrainSection)
    hetgmp: HetGMPSection = field(default_factory=HetGMPSection)
    source: str = "config"

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data (what the run record embeds), without ``source``."""
        out = dataclasses.asdict(self)
        out.pop("source")
        return out

    @property
    def output_dir(self) -> Path:
        return Path(self.run.output_dir)

    def features_of(self, available: Sequence[str]) -> list[str]:
        """The features this run trains, out of the dataset's ``available`` ones (raises naming the field)."""
        if self.dataset.features is not None:
            unknown = [f for f in self.dataset.features if f not in available]
            if unknown:
                raise ConfigError(f"{self.source}: dataset.features: not in the dataset: {unknown[:10]}")
            return list(self.dataset.features)
        if self.dataset.num_tables is not None:
            if self.dataset.num_tables > len(available):
                raise ConfigError(
                    f"{self.source}: dataset.num_tables: {self.dataset.num_tables} but the dataset has "
                    f"{len(available)} tables"
                )
            return list(available[: self.dataset.num_tables])
        return list(available)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (int, float, bool, str, list[...], X | None)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list of {_type_name(item)}, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _section(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp}")  # pragma: no cover - a bug in this module


def _section(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
    values = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    return cls(**values)


def _choice(value: str, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")


def _positive(value: float, where: str, minimum: float = 1) -> None:
    if value < minimum:
        raise ConfigError(f"{where}: must be >= {minimum}, got {value}")


def _check(cfg: RunConfig, src: str, check_paths: bool) -> None:
    p, t, e, m = cfg.parallel, cfg.train, cfg.embeddings, cfg.model
    _choice(cfg.run.device, ("cpu", "cuda"), f"{src}: run.device")
    _choice(p.mode, MODES, f"{src}: parallel.mode")
    _choice(p.sharding, SHARDING_METHODS, f"{src}: parallel.sharding")
    _choice(m.kind, MODEL_KINDS, f"{src}: model.kind")
    _choice(m.interaction, INTERACTIONS, f"{src}: model.interaction")
    _choice(e.algorithm, ALGORITHMS, f"{src}: embeddings.algorithm")
    _choice(e.optimizer, ("sgd", "adagrad", "rowwise_adagrad"), f"{src}: embeddings.optimizer")
    _choice(e.update, ("fused", "plain"), f"{src}: embeddings.update")
    _choice(cfg.dense_optimizer.kind, ("sgd", "adagrad", "adam"), f"{src}: dense_optimizer.kind")
    for name in ("world_size", "num_micro_keys", "num_micro_uidx", "num_micro_batches"):
        _positive(getattr(p, name), f"{src}: parallel.{name}")
    for name in ("global_batch_size", "timing_windows"):
        _positive(getattr(t, name), f"{src}: train.{name}")
    for name in ("steps", "epochs"):
        if getattr(t, name) is not None:
            _positive(getattr(t, name), f"{src}: train.{name}")
    if t.steps is not None and t.epochs is not None:
        raise ConfigError(f"{src}: train.epochs: give train.steps or train.epochs, not both")
    if t.eval_every and t.evals_per_epoch:
        raise ConfigError(f"{src}: train.evals_per_epoch: give train.eval_every or evals_per_epoch, not both")
    _choice(t.precision, ("fp32", "bf16", "fp16"), f"{src}: train.precision")
    if t.precision != "fp32" and p.mode == "torchrec":
        raise ConfigError(f"{src}: train.precision: mode 'torchrec' trains in fp32 only, got {t.precision!r}")
    if t.pin_memory and cfg.run.device != "cuda":
        raise ConfigError(f"{src}: train.pin_memory: pinned memory needs run.device 'cuda'")
    for name in (
        "eval_every",
        "evals_per_epoch",
        "eval_batches",
        "checkpoint_every",
        "timing_warmup_steps",
        "log_every",
    ):
        _positive(getattr(t, name), f"{src}: train.{name}", minimum=0)
    _positive(t.keep_checkpoints, f"{src}: train.keep_checkpoints")
    _positive(m.embedding_dim, f"{src}: model.embedding_dim")
    if m.kind == "dlrm":
        if len(m.over_arch) < 2 or m.over_arch[-1] != 1 or min(m.over_arch) < 1:
            raise ConfigError(
                f"{src}: model.over_arch: needs >= 2 positive layer sizes ending in 1 (the logit), "
                f"got {m.over_arch}"
            )
        if m.dense_arch and (min(m.dense_arch) < 1 or m.dense_arch[-1] != m.embedding_dim):
            raise ConfigError(
                f"{src}: model.dense_arch: positive layer sizes ending in model.embedding_dim="
                f"{m.embedding_dim}, got {m.dense_arch}"
            )
    elif not m.deep_layers or min(m.deep_layers) < 1:
        raise ConfigError(f"{src}: model.deep_layers: needs positive layer sizes, got {m.deep_layers}")
    _positive(e.tt_min_rows, f"{src}: embeddings.tt_min_rows", minimum=0)
    _positive(e.tt_min_compression, f"{src}: embeddings.tt_min_compression", minimum=0)
    if e.tt_lr is not None and not e.tt_lr > 0:
        raise ConfigError(f"{src}: embeddings.tt_lr: must be > 0, got {e.tt_lr}")
    _choice(e.tt_init, TT_INITS, f"{src}: embeddings.tt_init")
    if e.tt_init_std is not None and not e.tt_init_std > 0:
        raise ConfigError(f"{src}: embeddings.tt_init_std: must be > 0, got {e.tt_init_std}")
    if e.tt_init_std is not None and e.tt_init == "uniform":
        raise ConfigError(f"{src}: embeddings.tt_init_std: not used by tt_init 'uniform'; leave it unset")
    _positive(cfg.dataset.prefetch, f"{src}: dataset.prefetch", minimum=0)
    if cfg.dataset.features is not None:
        twice = sorted({f for f in cfg.dataset.features if cfg.dataset.features.count(f) > 1})
        if twice:
            raise ConfigError(
                f"{src}: dataset.features: {twice} listed more than once; list each feature once"
            )
    if cfg.dataset.num_tables is not None:
        _positive(cfg.dataset.num_tables, f"{src}: dataset.num_tables")
        if cfg.dataset.features is not None:
            raise ConfigError(f"{src}: dataset.num_tables: give either dataset.features or num_tables")
    if not e.tt_ranks or min(e.tt_ranks) < 1:
        raise ConfigError(f"{src}: embeddings.tt_ranks: needs positive ranks, got {e.tt_ranks}")
    if not 0.0 <= p.skew_degree <= 1.0:
        raise ConfigError(f"{src}: parallel.skew_degree: must be in [0, 1], got {p.skew_degree}")
    if t.global_batch_size % p.world_size:
        raise ConfigError(
            f"{src}: train.global_batch_size: {t.global_batch_size} is not divisible by "
            f"parallel.world_size={p.world_size}"
        )
    local = t.global_batch_size // p.world_size
    if p.mode == "bwp" and local % p.num_micro_batches:
        raise ConfigError(
            f"{src}: parallel.num_micro_batches: the local batch {local} is not divisible by "
            f"{p.num_micro_batches}"
        )
    if p.num_micro_uidx > 1 and e.algorithm != "ecorec":
        raise ConfigError(
            f"{src}: parallel.num_micro_uidx: micro-batches over unique indices apply to algorithm "
            f"'ecorec' only, got embeddings.algorithm={e.algorithm!r}"
        )
    if p.mode == "torchrec" and e.update != "fused":
        raise ConfigError(f"{src}: embeddings.update: mode 'torchrec' always fuses the embedding update")
    for lr_field, value in (("embeddings.lr", e.lr), ("dense_optimizer.lr", cfg.dense_optimizer.lr)):
        if not value > 0:
            raise ConfigError(f"{src}: {lr_field}: must be > 0, got {value}")
    s = cfg.lr_schedule
    for name in ("warmup_steps", "decay_start_step", "decay_steps"):
        _positive(getattr(s, name), f"{src}: lr_schedule.{name}", minimum=0)
    for steps_name, name in (
        ("warmup_steps", "warmup_fraction"),
        ("decay_start_step", "decay_start_fraction"),
        ("decay_steps", "decay_fraction"),
    ):
        fraction = getattr(s, name)
        if fraction is None:
            continue
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(
                f"{src}: lr_schedule.{name}: a fraction of the run's steps in [0, 1], got {fraction}"
            )
        if getattr(s, steps_name):
            raise ConfigError(
                f"{src}: lr_schedule.{name}: give lr_schedule.{steps_name} or {name}, not both (in a config "
                "overlay over fractions, set the fractions to null)"
            )
    if s.decay_steps and s.decay_start_step < s.warmup_steps and s.warmup_fraction is None:
        raise ConfigError(
            f"{src}: lr_schedule.decay_start_step: decay must start after the warm-up "
            f"({s.decay_start_step} < warmup_steps={s.warmup_steps})"
        )
    if (
        s.decay_fraction
        and s.warmup_fraction is not None
        and s.decay_start_fraction is not None
        and s.decay_start_fraction < s.warmup_fraction
    ):
        raise ConfigError(
            f"{src}: lr_schedule.decay_start_fraction: decay must start after the warm-up "
            f"({s.decay_start_fraction} < warmup_fraction={s.warmup_fraction})"
        )
    if s.decays() and not s.decay_end_lr > 0 and e.algorithm != "none" and e.update == "fused":
        raise ConfigError(
            f"{src}: lr_schedule.decay_end_lr: fused TT updates need a learning rate > 0 throughout"
        )
    if t.target_auc is not None and not 0.5 <= t.target_auc <= 1.0:
        raise ConfigError(f"{src}: train.target_auc: must be in [0.5, 1], got {t.target_auc}")
    if t.target_auc is not None and "val" not in t.eval_splits:
        raise ConfigError(f"{src}: train.target_auc: needs 'val' in train.eval_splits")
    for split in t.eval_splits:
        _choice(split, ("val", "test"), f"{src}: train.eval_splits")
    _choice(cfg.dataset.source, DATASET_SOURCES, f"{src}: dataset.source")
    if cfg.dataset.source == "random":
        _check_random(cfg, src)
    elif not cfg.dataset.path:
        raise ConfigError(f"{src}: dataset.path: required")
    defaults = RunConfig()
    errors = parallel_key_errors(
        p.mode,
        dataclasses.asdict(p),
        where=f"{src}: parallel",
        defaults=dataclasses.asdict(defaults.parallel),
    )
    errors += model_key_errors(
        dataclasses.asdict(m), where=f"{src}: model", defaults=dataclasses.asdict(defaults.model)
    )
    if errors:  # keys that would be silently ignored (ecorec.config_effects)
        raise ConfigError("; ".join(errors))
    if check_paths and cfg.dataset.source == "parquet":
        if not Path(cfg.dataset.path).is_dir():
            raise ConfigError(f"{src}: dataset.path: {cfg.dataset.path} is not a dataset folder")
        if not (Path(cfg.dataset.path) / "metadata.json").is_file():
            raise ConfigError(f"{src}: dataset.path: {cfg.dataset.path} has no metadata.json")
    if check_paths:
        if p.plan_file is not None and not Path(p.plan_file).is_file():
            raise ConfigError(f"{src}: parallel.plan_file: {p.plan_file} does not exist")


def config_warnings(cfg: RunConfig) -> list[str]:
    """Settings this run keeps but does not use (``ecorec.config_effects.setting_warnings``): logged and
    written to the run record's ``metrics.config_warnings``."""
    defaults = RunConfig()
    return setting_warnings(
        mode=cfg.parallel.mode,
        embeddings=dataclasses.asdict(cfg.embeddings),
        dense_optimizer=dataclasses.asdict(cfg.dense_optimizer),
        embedding_defaults=dataclasses.asdict(defaults.embeddings),
        dense_defaults=dataclasses.asdict(defaults.dense_optimizer),
    )


def _check_random(cfg: RunConfig, src: str) -> None:
    r = cfg.dataset.random
    where = f"{src}: dataset.random"
    if not r.num_embeddings_per_feature or min(r.num_embeddings_per_feature) < 1:
        raise ConfigError(f"{where}.num_embeddings_per_feature: needs >= 1 table of >= 1 rows")
    tables = len(r.num_embeddings_per_feature)
    for name in ("pooling", "min_pooling"):
        value = getattr(r, name)
        if value is not None and (len(value) not in (1, tables) or min(value) < 0):
            raise ConfigError(
                f"{where}.{name}: one value or {tables} values (one per table), >= 0; got {value}"
            )
    try:
        random_source_config(cfg)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from err
    if cfg.parallel.mode in ("mp", "bwp", "twp") and cfg.parallel.plan_file is None:
        raise ConfigError(
            f"{src}: parallel.plan_file: mode {cfg.parallel.mode!r} on the random source needs a plan file "
            "(the planner measures a dataset on disk)"
        )


def random_source_config(cfg: RunConfig) -> Any:
    """The ``ecorec.data.random_source.RandomSourceConfig`` of ``dataset.random`` (``ValueError`` if bad)."""
    from ecorec.data.random_source import RandomSourceConfig

    r = cfg.dataset.random

    def one_or_each(value: list[int]) -> int | list[int]:
        return value[0] if len(value) == 1 else list(value)

    return RandomSourceConfig(
        num_embeddings_per_feature=list(r.num_embeddings_per_feature),
        pooling=one_or_each(r.pooling),
        min_pooling=None if r.min_pooling is None else one_or_each(r.min_pooling),
        num_dense=r.num_dense,
        num_samples={"train": r.train_samples, "val": r.val_samples, "test": r.test_samples},
    )


def _apply_preset(data: dict[str, Any], src: str) -> dict[str, Any]:
    """``model.preset``'s values under the keys given in ``model``; with the random source and no table sizes,
    the preset's table sizes (and dense count, unless given)."""
    model = data.get("model")
    if not isinstance(model, dict) or model.get("preset") is None:
        return data
    from ecorec.models.presets import model_preset  # ecorec.models imports torch: only when a preset is named

    try:
        preset = model_preset(model["preset"])
    except (KeyError, TypeError) as err:
        raise ConfigError(f"{src}: model.preset: {err.args[0] if err.args else err}") from None
    out = {**data, "model": {**preset.model, **model}}
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and dataset.get("source") == "random":
        rnd = dict(dataset.get("random") or {})
        if not rnd.get("num_embeddings_per_feature"):
            rnd["num_embeddings_per_feature"] = list(preset.num_embeddings_per_feature)
            rnd.setdefault("num_dense", preset.num_dense)
        out["dataset"] = {**dataset, "random": rnd}
    return out


def run_config_from_dict(data: Any, source: str = "config", check_paths: bool = True) -> RunConfig:
    """Build and validate a :class:`RunConfig` from plain data (a parsed YAML file)."""
    if data is None:
        raise ConfigError(
            f"{source}: the run config is empty; it needs sections such as run, dataset, parallel"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    sections = {f.name: f for f in fields(RunConfig) if f.name != "source"}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown section (known: {', '.join(sorted(sections))})")
    data = _apply_preset(data, source)
    hints = typing.get_type_hints(RunConfig)
    built = {name: _section(hints[name], data.get(name), f"{source}: {name}") for name in sections}
    cfg = RunConfig(**built, source=source)
    _check(cfg, source, check_paths)
    _check_hetgmp(cfg, source, check_paths)
    return cfg


def load_run_config(path: str | os.PathLike[str], check_paths: bool = True) -> RunConfig:
    """Read and validate a run YAML file (errors name the file and the field)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the run config ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {err.start}); save the run config as UTF-8"
        ) from None
    try:  # strict: a key written twice or a syntax error names the file, line and column
        data = load_yaml_text(text, str(path))
    except YamlFileError as err:
        raise ConfigError(str(err)) from None
    return run_config_from_dict(data, str(path), check_paths)
