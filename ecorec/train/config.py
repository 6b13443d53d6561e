"""The run configuration (one YAML file per training run), validated before any worker starts.

Every error names the file and the offending field (``run.yaml: parallel.mode: ...``). Sections and their
defaults (see ``docs/architecture.md`` and the README's "Training" section for an example file):

- ``run``: seed, device (cpu -> gloo, cuda -> nccl), output_dir (record.json, logs/, checkpoints/, plan.json);
- ``dataset``: path of a Parquet dataset folder (``ecorec.data``), the features to train (``features``, or the
  first ``num_tables``; default all), shuffle, prefetch;
- ``model``: ``ecorec.models.ModelSettings`` (dlrm / wide_deep / dcn);
- ``embeddings``: TT algorithm (or none) and ranks, row threshold, minimum compression of a TT table
  (``tt_min_compression``: TT cores at least that many times smaller than the table, else uncompressed), the
  embedding optimizer and its update, ``lr`` (uncompressed tables) and ``tt_lr`` (TT tables; default ``lr``);
- ``dense_optimizer``: sgd / adagrad / adam;
- ``lr_schedule``: MLPerf DLRM warm-up and polynomial decay (``ecorec.train.schedule``);
- ``parallel``: mode and world size, sharding plan (file or planner method), twp stages, bwp micro-batches;
- ``train``: global batch size, steps, evaluation, AUROC target, checkpoints, timing windows.
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

import yaml

from ecorec.models import INTERACTIONS, MODEL_KINDS, TT_ALGORITHMS

__all__ = [
    "ConfigError",
    "DatasetSection",
    "DenseOptimizerSection",
    "EmbeddingsSection",
    "LRScheduleSection",
    "ModelSection",
    "ParallelSection",
    "RunConfig",
    "RunSection",
    "TrainSection",
    "load_run_config",
    "run_config_from_dict",
]

MODES = ("dp", "mp", "bwp", "twp", "torchrec")
SHARDING_METHODS = (
    "greedy",
    "random",
    "round_robin",
    "size_greedy",
    "dim_greedy",
    "lookup_greedy",
    "size_lookup_greedy",
)


class ConfigError(ValueError):
    """A run configuration that cannot run; the message names the file and the field."""


@dataclass(frozen=True)
class RunSection:
    seed: int = 0
    device: str = "cpu"
    output_dir: str = "results/runs/run"
    name: str = ""


@dataclass(frozen=True)
class DatasetSection:
    path: str = ""
    features: list[str] | None = None
    num_tables: int | None = None
    shuffle: bool = True
    prefetch: int = 2


@dataclass(frozen=True)
class ModelSection:
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


@dataclass(frozen=True)
class DenseOptimizerSection:
    kind: str = "sgd"
    lr: float = 0.1
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass(frozen=True)
class LRScheduleSection:
    warmup_steps: int = 0
    decay_start_step: int = 0
    decay_steps: int = 0
    decay_end_lr: float = 0.0


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
    steps: int = 100
    eval_every: int = 0
    eval_batches: int = 0
    eval_splits: list[str] = field(default_factory=lambda: ["val", "test"])
    target_auc: float | None = None
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    timing_warmup_steps: int = 2
    timing_windows: int = 3
    log_every: int = 10


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
    _choice(e.algorithm, (*TT_ALGORITHMS, "none"), f"{src}: embeddings.algorithm")
    _choice(e.optimizer, ("sgd", "adagrad", "rowwise_adagrad"), f"{src}: embeddings.optimizer")
    _choice(e.update, ("fused", "plain"), f"{src}: embeddings.update")
    _choice(cfg.dense_optimizer.kind, ("sgd", "adagrad", "adam"), f"{src}: dense_optimizer.kind")
    for name in ("world_size", "num_micro_keys", "num_micro_uidx", "num_micro_batches"):
        _positive(getattr(p, name), f"{src}: parallel.{name}")
    for name in ("global_batch_size", "steps", "timing_windows"):
        _positive(getattr(t, name), f"{src}: train.{name}")
    for name in ("eval_every", "eval_batches", "checkpoint_every", "timing_warmup_steps", "log_every"):
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
    _positive(cfg.dataset.prefetch, f"{src}: dataset.prefetch", minimum=0)
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
    if p.mode == "torchrec" and e.algorithm != "none":
        raise ConfigError(
            f"{src}: embeddings.algorithm: mode 'torchrec' trains uncompressed tables; set it to 'none' "
            f"(got {e.algorithm!r})"
        )
    if p.mode == "torchrec" and e.update != "fused":
        raise ConfigError(f"{src}: embeddings.update: mode 'torchrec' always fuses the embedding update")
    for lr_field, value in (("embeddings.lr", e.lr), ("dense_optimizer.lr", cfg.dense_optimizer.lr)):
        if not value > 0:
            raise ConfigError(f"{src}: {lr_field}: must be > 0, got {value}")
    s = cfg.lr_schedule
    for name in ("warmup_steps", "decay_start_step", "decay_steps"):
        _positive(getattr(s, name), f"{src}: lr_schedule.{name}", minimum=0)
    if s.decay_steps and s.decay_start_step < s.warmup_steps:
        raise ConfigError(
            f"{src}: lr_schedule.decay_start_step: decay must start after the warm-up "
            f"({s.decay_start_step} < warmup_steps={s.warmup_steps})"
        )
    if s.decay_steps and not s.decay_end_lr > 0 and e.algorithm != "none" and e.update == "fused":
        raise ConfigError(
            f"{src}: lr_schedule.decay_end_lr: fused TT updates need a learning rate > 0 throughout"
        )
    if t.target_auc is not None and not 0.5 <= t.target_auc <= 1.0:
        raise ConfigError(f"{src}: train.target_auc: must be in [0.5, 1], got {t.target_auc}")
    if t.target_auc is not None and "val" not in t.eval_splits:
        raise ConfigError(f"{src}: train.target_auc: needs 'val' in train.eval_splits")
    for split in t.eval_splits:
        _choice(split, ("val", "test"), f"{src}: train.eval_splits")
    if not cfg.dataset.path:
        raise ConfigError(f"{src}: dataset.path: required")
    if check_paths:
        if not Path(cfg.dataset.path).is_dir():
            raise ConfigError(f"{src}: dataset.path: {cfg.dataset.path} is not a dataset folder")
        if not (Path(cfg.dataset.path) / "metadata.json").is_file():
            raise ConfigError(f"{src}: dataset.path: {cfg.dataset.path} has no metadata.json")
        if p.plan_file is not None and not Path(p.plan_file).is_file():
            raise ConfigError(f"{src}: parallel.plan_file: {p.plan_file} does not exist")


def run_config_from_dict(data: Any, source: str = "config", check_paths: bool = True) -> RunConfig:
    """Build and validate a :class:`RunConfig` from plain data (a parsed YAML file)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    sections = {f.name: f for f in fields(RunConfig) if f.name != "source"}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown section (known: {', '.join(sorted(sections))})")
    hints = typing.get_type_hints(RunConfig)
    built = {name: _section(hints[name], data.get(name), f"{source}: {name}") for name in sections}
    cfg = RunConfig(**built, source=source)
    _check(cfg, source, check_paths)
    return cfg


def load_run_config(path: str | os.PathLike[str], check_paths: bool = True) -> RunConfig:
    """Read and validate a run YAML file (errors name the file and the field)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the run config ({err.strerror})") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    return run_config_from_dict(data, str(path), check_paths)
