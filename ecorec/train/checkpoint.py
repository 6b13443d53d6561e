"""Checkpoints of a distributed run: one file per rank, then a ``latest.json`` pointer written by rank 0.

Layout under ``<output_dir>/checkpoints``::

    step-00000040/rank-0.pt, ...   model + optimizer state of that rank, RNG states, run state
    latest.json                    {"step": 40, "world_size": R, "mode": ..., "dir": "step-00000040"}

Every file is written to a temporary name and renamed, and ``latest.json`` moves only after every rank's file
is complete (a barrier in between), so a run killed at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecorec.utils import atomic_path, write_json_atomic

__all__ = [
    "CheckpointError",
    "capture_rng_state",
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
    """Write this rank's checkpoint of ``step`` atomically; returns its path."""
    path = step_dir(root, step) / f"rank-{rank}.pt"
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def write_latest(root: Path, step: int, world_size: int, mode: str) -> None:
    """Point ``latest.json`` at ``step`` (call on rank 0 after every rank has saved)."""
    write_json_atomic(
        root / LATEST,
        {"step": step, "world_size": world_size, "mode": mode, "dir": step_dir(root, step).name},
    )


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
