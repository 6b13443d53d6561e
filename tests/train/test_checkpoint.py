"""Checkpoint files: atomic per-rank files, a pointer that moves last, clear errors on bad or foreign
files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from ecorec.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    latest_checkpoint,
    load_rank_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_rank_checkpoint,
    step_dir,
    write_latest,
)


def test_round_trip_and_pointer(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    save_rank_checkpoint(tmp_path, 5, 0, {"x": torch.arange(3), "rng": capture_rng_state()})
    # a later, unfinished checkpoint (no pointer update) is never picked up
    save_rank_checkpoint(tmp_path, 10, 0, {"x": torch.zeros(1)})
    write_latest(tmp_path, 5, 1, "mp")
    record = latest_checkpoint(tmp_path)
    assert record["step"] == 5
    loaded = load_rank_checkpoint(tmp_path, record, 0, 1, "mp")
    assert torch.equal(loaded["x"], torch.arange(3))
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_foreign_incomplete_and_corrupt_checkpoints(tmp_path):
    save_rank_checkpoint(tmp_path, 4, 0, {"x": 1})
    write_latest(tmp_path, 4, 2, "twp")
    record = latest_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="2-rank 'twp' run cannot resume a 2-rank 'mp' run"):
        load_rank_checkpoint(tmp_path, record, 0, 2, "mp")
    with pytest.raises(CheckpointError, match="rank-1.pt: missing"):
        load_rank_checkpoint(tmp_path, record, 1, 2, "twp")
    (step_dir(tmp_path, 4) / "rank-0.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="rank-0.pt: cannot be read"):
        load_rank_checkpoint(tmp_path, record, 0, 2, "twp")
    (tmp_path / "latest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="latest.json: not a checkpoint pointer"):
        latest_checkpoint(tmp_path)


def test_prune_keeps_the_newest_and_the_current(tmp_path):
    for step in (2, 4, 6, 8):
        save_rank_checkpoint(tmp_path, step, 0, {})
    write_latest(tmp_path, 4, 1, "dp")
    prune_checkpoints(tmp_path, keep=1)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000004", "step-00000008"]


def test_rng_state_round_trip_through_a_weights_only_load(tmp_path):
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(2), random.random())
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    restore_rng_state(torch.load(path, weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(2), expected[1])
    assert random.random() == expected[2]
