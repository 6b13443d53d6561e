"""Results never silently wrong: non-finite logits, single-class splits, strict JSON records, checkpoints of a
different config, padded evaluation batches."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from ecorec.train.checkpoint import (
    CheckpointError,
    check_config_match,
    config_fingerprint,
    latest_checkpoint,
    resolve_checkpoint_dir,
    save_rank_checkpoint,
    write_latest,
)
from ecorec.train.config import run_config_from_dict
from ecorec.train.metrics import auroc, evaluate
from ecorec.utils import write_json_atomic


def _pair_auroc(logits, labels) -> float:
    """The oracle: the fraction of (positive, negative) pairs ordered correctly, ties counting one half."""
    pos = [x for x, y in zip(logits, labels) if y == 1]
    neg = [x for x, y in zip(logits, labels) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _reject_constants(name):
    raise ValueError(f"non-strict JSON token {name}")


def test_auroc_of_non_finite_logits_is_an_error():
    labels = torch.tensor([0, 1, 0, 1])
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(
            FloatingPointError, match=r"val split: 1 of 4 logits are not finite \(first: sample 2"
        ):
            auroc(torch.tensor([0.1, 0.2, bad, 0.4]), labels, "val split")


def test_single_class_auroc_is_undefined_with_a_warning(caplog):
    with caplog.at_level("WARNING", logger="ecorec.train"):
        assert auroc(torch.tensor([0.1, 0.3]), torch.tensor([1, 1]), "test split") is None
    assert "test split: AUROC is undefined (reported as null): only label 1 among 2 samples" in caplog.text


def test_evaluate_scores_each_real_sample_once_against_sklearn():
    """Two full batches and a padded one: the masked samples (garbage logits, label 0) must not count."""
    logits = [
        torch.tensor([0.3, -1.0, 2.0, 0.1]),
        torch.tensor([1.5, -0.2, 0.0, 0.7]),
        torch.tensor([0.9, 5.0]),
    ]
    labels = [torch.tensor([1.0, 0, 1, 0]), torch.tensor([1.0, 0, 0, 1]), torch.tensor([0.0, 0])]
    masks = [None, None, torch.tensor([True, False])]
    batches = [SimpleNamespace(logits=x, labels=y, mask=m) for x, y, m in zip(logits, labels, masks)]
    out = evaluate(lambda b: b.logits, batches)
    real_logits = torch.cat([*logits[:2], logits[2][:1]]).double()
    real_labels = torch.cat([*labels[:2], labels[2][:1]]).double()
    assert out["samples"] == 9
    assert out["auroc"] == pytest.approx(_pair_auroc(real_logits.tolist(), real_labels.tolist()))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(real_logits, real_labels)
    assert out["bce"] == pytest.approx(float(bce), rel=1e-6)


def test_records_are_strict_json(tmp_path):
    path = tmp_path / "record.json"
    write_json_atomic(
        path, {"auroc": math.nan, "rate": math.inf, "nested": [1.0, -math.inf, {"x": math.nan}]}
    )
    obj = json.loads(path.read_text(), parse_constant=_reject_constants)
    assert obj == {"auroc": None, "nested": [1.0, None, {"x": None}], "rate": None}


# -- checkpoints of a different config ---------------------------------------------------------------------


def _cfg(tmp_path, **changes):
    data = {
        "run": {"seed": 1, "output_dir": str(tmp_path / "run")},
        "dataset": {"path": "somewhere"},
        "embeddings": {"lr": 0.05},
    }
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    return run_config_from_dict(data, "run.yaml", check_paths=False)


def test_resume_with_a_different_config_is_refused_naming_the_keys(tmp_path):
    root = tmp_path / "checkpoints"
    saved = config_fingerprint(_cfg(tmp_path).to_dict(), {"parallel.plan": {"0": ["f0"]}})
    save_rank_checkpoint(root, 4, 0, {"x": torch.zeros(1)})
    write_latest(root, 4, 1, "dp", saved)
    record = latest_checkpoint(root)
    check_config_match(root, record, saved)  # the same config resumes
    # log/eval/prefetch settings are not part of the fingerprint
    same = _cfg(tmp_path, train={"log_every": 3, "eval_batches": 7}, dataset={"prefetch": 0})
    check_config_match(root, record, config_fingerprint(same.to_dict(), {"parallel.plan": {"0": ["f0"]}}))
    other = _cfg(tmp_path, embeddings={"lr": 0.1}, run={"seed": 2})
    with pytest.raises(CheckpointError) as err:
        check_config_match(
            root, record, config_fingerprint(other.to_dict(), {"parallel.plan": {"0": ["f0"]}})
        )
    message = str(err.value)
    assert message.startswith(f"{root / 'latest.json'}: the checkpoint was written by a run with a different")
    assert "embeddings.lr: 0.05 -> 0.1" in message and "run.seed: 1 -> 2" in message
    assert "--resume-from" in message and "train.log_every" not in message
    assert resolve_checkpoint_dir(tmp_path / "checkpoints")[0] == root / "step-00000004"
    assert resolve_checkpoint_dir(root / "step-00000004")[1]["step"] == 4
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        resolve_checkpoint_dir(tmp_path / "nothing")


def test_checkpoint_without_a_config_hash_is_refused(tmp_path):
    root = tmp_path / "checkpoints"
    save_rank_checkpoint(root, 2, 0, {})
    write_latest(root, 2, 1, "dp")  # no fingerprint: an older checkpoint
    with pytest.raises(CheckpointError, match="records no config hash"):
        check_config_match(root, latest_checkpoint(root), config_fingerprint(_cfg(tmp_path).to_dict()))
