"""Which configuration keys have an effect where, decided once per key (standard library only).

A setting that the chosen parallel mode, model kind or optimizer never reads is either an error or a warning:

- **error**: a parallel key the mode ignores (a ``systems:`` entry is one mode: a key there that the mode
  ignores is a mistake) and a model key of another model kind (``train.model`` is one model per config);
- **warning** (in the log and in the run record's ``metrics.config_warnings``): settings one config reasonably
  keeps for several modes or optimizers: ``embeddings.update: fused`` in ``bwp`` (it applies the update once
  per batch with plain gradients, the same rule) and an ``eps`` of an optimizer kind without one (SGD).

``ecorec.train.config`` applies both to a run configuration (a value equal to the default counts as not set,
since a written run.yaml holds every key); ``ecorec.workflow`` checks the ``systems:`` entries and
``train.model`` when the Snakefile is parsed, naming the config key. The schema descriptions say the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ecorec.types import ParallelMode

__all__ = [
    "MODEL_KEY_KINDS",
    "PARALLEL_KEY_MODES",
    "model_key_errors",
    "parallel_key_errors",
    "setting_warnings",
]

_PLANNED = ParallelMode.planned()
_TWP = (ParallelMode.TABLE_WISE_PIPELINE,)

#: Parallel key -> the modes that read it (keys not listed apply to every mode).
PARALLEL_KEY_MODES: dict[str, tuple[ParallelMode, ...]] = {
    "sharding": _PLANNED,
    "plan_file": _PLANNED,
    "num_micro_keys": _TWP,
    "allow_fewer_stages": _TWP,
    "reorder": _TWP,
    "skew_degree": _TWP,
    "num_micro_uidx": _TWP,
    "num_micro_batches": (ParallelMode.BATCH_WISE_PIPELINE,),
}

#: Model key -> the model kinds that read it (keys not listed apply to every kind).
MODEL_KEY_KINDS: dict[str, tuple[str, ...]] = {
    "interaction": ("dlrm",),
    "dense_arch": ("dlrm",),
    "over_arch": ("dlrm",),
    "dcn_num_layers": ("dlrm",),
    "dcn_low_rank_dim": ("dlrm",),
    "deep_layers": ("wide_deep", "dcn"),
    "cross_layers": ("dcn",),
}
_DLRM_DCN_KEYS = ("dcn_num_layers", "dcn_low_rank_dim")


def _set(settings: Mapping[str, Any], key: str, defaults: Mapping[str, Any] | None) -> bool:
    if key not in settings:
        return False
    return defaults is None or key not in defaults or _norm(settings[key]) != _norm(defaults[key])


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def _no_effect(key: str, where: str, readers: Sequence[str]) -> str:
    return f"{key}: has no effect {where} (read by {', '.join(readers)} only); remove it"


def parallel_key_errors(
    mode: str,
    settings: Mapping[str, Any],
    *,
    where: str = "parallel",
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """A message per key of ``settings`` that ``mode`` ignores (with ``defaults``: only keys set to another
    value), naming ``<where>.<key>`` and the modes that read it."""
    mode = ParallelMode(mode)
    out = []
    for key, modes in PARALLEL_KEY_MODES.items():
        if mode not in modes and _set(settings, key, defaults):
            out.append(_no_effect(f"{where}.{key}", f"in mode {mode.value!r}", [m.value for m in modes]))
    return out


def model_key_errors(
    settings: Mapping[str, Any], *, where: str = "model", defaults: Mapping[str, Any] | None = None
) -> list[str]:
    """A message per model key that ``settings["kind"]`` (default dlrm) ignores; the DLRM ``dcn_*`` keys need
    ``interaction: dcn``."""
    kind = str(settings.get("kind", "dlrm"))
    out = []
    for key, kinds in MODEL_KEY_KINDS.items():
        if kind not in kinds and _set(settings, key, defaults):
            out.append(_no_effect(f"{where}.{key}", f"with model kind {kind!r}", kinds))
    if kind == "dlrm" and settings.get("interaction", "cat") != "dcn":
        for key in _DLRM_DCN_KEYS:
            if _set(settings, key, defaults):
                out.append(f"{where}.{key}: has no effect without interaction 'dcn'; remove it")
    return out


def setting_warnings(
    *,
    mode: str,
    embeddings: Mapping[str, Any],
    dense_optimizer: Mapping[str, Any],
    embedding_defaults: Mapping[str, Any] | None = None,
    dense_defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """Settings kept for other modes or optimizers that this run does not use (warnings, not errors)."""
    out = []
    if (
        mode == ParallelMode.BATCH_WISE_PIPELINE
        and embeddings.get("update") == "fused"
        and embeddings.get("algorithm") not in (None, "none")
    ):
        out.append(
            "embeddings.update: 'fused' has no effect in mode 'bwp': it updates once per batch, after every "
            "micro-batch's backward, with plain gradients and the same optimizer rule"
        )
    if embeddings.get("optimizer") == "sgd" and _set(embeddings, "eps", embedding_defaults):
        out.append("embeddings.eps: has no effect with optimizer 'sgd' (read by adagrad, rowwise_adagrad)")
    if dense_optimizer.get("kind") == "sgd" and _set(dense_optimizer, "eps", dense_defaults):
        out.append("dense_optimizer.eps: has no effect with kind 'sgd' (read by adagrad, adam)")
    return out
