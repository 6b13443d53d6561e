"""Checkpoints of a distributed run: one file per rank, then a ``latest.json`` pointer written by rank 0.

Layout under ``<output_dir>/checkpoints``::

    step-00000040/rank-0.pt, ...   model + optimizer state of that rank, RNG states, run state
    latest.json                    {"step": 40, "world_size": R, "mode": ..., "dir": "step-00000040",
                                    "config_hash": sha256, "config": {flat key: value}}

The config hash covers what makes two runs' states interchangeable (:func:`config_fingerprint`: model,
embeddings, optimizers, learning-rate schedule, data, seed, batch size, table placement). ``--resume`` refuses
a checkpoint whose hash differs, naming the differing keys (:func:`check_config_match`); loading weights on
purpose for fine-tuning is ``--resume-from PATH``.

Every file is written to a temporary name and renamed, and ``latest.json`` moves only after every rank's file
is complete (a barrier in between), so a run killed at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecorec.utils import DiskFullError, atomic_path, write_json_atomic

__all__ = [
    "CheckpointError",
    "capture_rng_state",
    "check_config_match",
    "config_fingerprint",
    "config_hash",
    "differing_keys",
    "resolve_checkpoint_dir",
    "latest_checkpoint",
    "load_rank_checkpoint",
    "prune_checkpoints",
    "restore_rng_state",
    "save_rank_checkpoint",
    "step_dir",
    "write_latest",
]

LATEST = "latest.json"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or from a different run layout."""


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def capture_rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), numpy's global generator and Python's ``random``, as tensors and
    plain numbers (so checkpoints load with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_rank_checkpoint(root: Path, step: int, rank: int, payload: dict[str, Any]) -> Path:
    """Write this rank's checkpoint of ``step`` atomically; returns its path. A full disk raises
    ``DiskFullError`` naming the folder; ``latest.json`` still names the previous checkpoint."""
    path = step_dir(root, step) / f"rank-{rank}.pt"
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except DiskFullError as err:
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the step folder, if no other rank's file is in it
        previous = latest_checkpoint(root) if (root / LATEST).is_file() else None
        kept = f"step {previous['step']}" if previous else "none yet"
        raise DiskFullError(
            path,
            f"checkpoint of step {step}: no space left on {path.parent} while writing {path.name} (the "
            f"partial file was removed); {root / LATEST} still names the previous checkpoint "
            f"({kept}), so --resume stays safe. Free space, point run.output_dir at another disk, or keep "
            "fewer checkpoints (train.keep_checkpoints)",
        ) from err
    return path


#: Run-config sections whose every key is part of the fingerprint, and single keys of the other sections.
_HASHED_SECTIONS = ("model", "embeddings", "dense_optimizer", "lr_schedule")
_HASHED_KEYS = (
    "run.seed",
    "dataset.path",
    "dataset.features",
    "dataset.num_tables",
    "dataset.shuffle",
    "train.global_batch_size",
    "parallel.mode",
    "parallel.world_size",
    "parallel.sharding",
    "parallel.plan_file",
)


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def config_fingerprint(config: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flat ``{"section.key": value}`` of a run config (``RunConfig.to_dict()``) that decides whether a
    checkpoint belongs to it: every key of ``model``, ``embeddings``, ``dense_optimizer``, ``lr_schedule`` and
    the data, seed, batch and placement keys (``_HASHED_KEYS``); plus ``extra`` facts of the run (e.g. the
    dataset's content digest and the table placement), under their own names."""
    flat = _flatten(config)
    out = {k: v for k, v in flat.items() if k.split(".", 1)[0] in _HASHED_SECTIONS}
    out.update({k: flat.get(k) for k in _HASHED_KEYS})
    out.update(_flatten(extra or {}))
    return json.loads(json.dumps(out, sort_keys=True, default=str))  # plain JSON values, as latest.json holds


def config_hash(fingerprint: Mapping[str, Any]) -> str:
    """sha256 of the fingerprint (canonical JSON)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def differing_keys(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"key: saved -> current"`` for every key whose value differs (or exists on one side only)."""
    missing = "<absent>"
    return [
        f"{key}: {saved.get(key, missing)!r} -> {current.get(key, missing)!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key, missing) != current.get(key, missing)
    ]


def check_config_match(root: Path, record: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> None:
    """Refuse (``CheckpointError``) to resume from the checkpoint ``record`` of ``latest.json`` when it was
    written by a differently configured run, naming every differing key."""
    if "config_hash" not in record:
        raise CheckpointError(
            f"{root / LATEST}: the checkpoint records no config hash (written by an older ecorec), so it "
            "cannot be matched to this config; to load its weights on purpose use --resume-from "
            f"{root / str(record['dir'])}"
        )
    if record["config_hash"] == config_hash(fingerprint):
        return
    diff = differing_keys(record.get("config", {}), fingerprint)
    raise CheckpointError(
        f"{root / LATEST}: the checkpoint was written by a run with a different config; differing keys: "
        f"{'; '.join(diff) or '(unknown: the saved config list is missing)'}. Resuming would mix two runs; "
        "start a new output_dir, or load its weights on purpose (fine-tuning) with --resume-from "
        f"{root / str(record['dir'])}"
    )


def resolve_checkpoint_dir(path: str | Path) -> tuple[Path, dict[str, Any] | None]:
    """The step folder that ``path`` names (a step folder with ``rank-*.pt`` files, a ``checkpoints`` folder
    with ``latest.json``, or a run's output folder), and its ``latest.json`` record if there is one."""
    path = Path(path)
    for root in (path, path / "checkpoints"):
        record = latest_checkpoint(root) if root.is_dir() else None
        if record is not None:
            return root / str(record["dir"]), record
    if path.is_dir() and any(path.glob("rank-*.pt")):
        record = latest_checkpoint(path.parent) if path.parent.is_dir() else None
        if record is not None and record.get("dir") != path.name:
            record = None
        return path, record
    raise CheckpointError(
        f"{path}: not a checkpoint (expected a step-* folder with rank-<r>.pt files, a checkpoints folder "
        "with latest.json, or a run folder holding checkpoints/)"
    )


def write_latest(
    root: Path, step: int, world_size: int, mode: str, fingerprint: Mapping[str, Any] | None = None
) -> None:
    """Point ``latest.json`` at ``step`` (call on rank 0 after every rank has saved), with the config
    fingerprint and its hash."""
    record: dict[str, Any] = {
        "step": step,
        "world_size": world_size,
        "mode": mode,
        "dir": step_dir(root, step).name,
    }
    if fingerprint is not None:
        record["config_hash"] = config_hash(fingerprint)
        record["config"] = dict(fingerprint)
    write_json_atomic(root / LATEST, record)


def latest_checkpoint(root: Path) -> dict[str, Any] | None:
    """The ``latest.json`` record, or ``None`` when the run has no checkpoint yet."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    try:
        record = json.loads(pointer.read_text())
        int(record["step"]), int(record["world_size"]), str(record["mode"]), str(record["dir"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{pointer}: not a checkpoint pointer ({err})") from err
    return record


def load_rank_checkpoint(root: Path, record: dict[str, Any], rank: int, world_size: int, mode: str) -> Any:
    """Load this rank's file of the checkpoint ``record`` (from :func:`latest_checkpoint`)."""
    if record["world_size"] != world_size or record["mode"] != mode:
        raise CheckpointError(
            f"{root / LATEST}: checkpoint of a {record['world_size']}-rank {record['mode']!r} run cannot "
            f"resume a {world_size}-rank {mode!r} run"
        )
    path = root / record["dir"] / f"rank-{rank}.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (incomplete checkpoint)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or corrupt file
        raise CheckpointError(f"{path}: cannot be read ({type(err).__name__}: {err})") from err


def prune_checkpoints(root: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step folders (never the one ``latest.json`` points at)."""
    record = latest_checkpoint(root)
    current = record["dir"] if record else None
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[: max(0, len(steps) - keep)]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
