"""Epoch accounting of a training run: steps per epoch, the run's length, and the steps that evaluate.

TorchRec's DLRM example counts training in epochs (``--epochs``) and evaluates
``--validation_freq_within_epoch`` times per epoch; MLPerf DLRM evaluates a fixed number of times per epoch
(20). A run here gives either ``train.steps`` or ``train.epochs``, and either ``train.eval_every`` (every K
steps) or ``train.evals_per_epoch`` (N times per epoch). Steps are counted from 1: "step s" is the s-th
optimizer step of the run.

- One epoch is one pass over the train split in global batches: ``steps_per_epoch = split // G`` (the last,
  partial batch is dropped, as the loader does).
- ``N`` evaluations per epoch fall after the steps ``ceil(k * E / N)``, ``k = 1 .. N``, of every epoch (``E``
  steps per epoch): evenly spread, the last one on the epoch's last step. With ``N > E`` every step evaluates
  (once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_STEPS", "EpochPlan", "steps_per_epoch"]

#: Length of a run that gives neither ``train.steps`` nor ``train.epochs``.
DEFAULT_STEPS = 100


def steps_per_epoch(split_samples: int, global_batch_size: int) -> int:
    """Full global batches in a split of ``split_samples`` samples (the partial last batch is dropped)."""
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}")
    if split_samples < 0:
        raise ValueError(f"split_samples must be >= 0, got {split_samples}")
    return split_samples // global_batch_size


@dataclass(frozen=True)
class EpochPlan:
    """How long a run is and when it evaluates on the val split.

    Attributes:
        steps_per_epoch: ``E``, full global batches of the train split (>= 1).
        total_steps: steps of the whole run.
        eval_every: evaluate after every ``K``-th step (0: not by step count).
        evals_per_epoch: evaluate ``N`` times per epoch (0: not per epoch).
    """

    steps_per_epoch: int
    total_steps: int
    eval_every: int = 0
    evals_per_epoch: int = 0

    @classmethod
    def build(
        cls,
        steps_per_epoch: int,
        *,
        steps: int | None = None,
        epochs: int | None = None,
        eval_every: int = 0,
        evals_per_epoch: int = 0,
    ) -> EpochPlan:
        """The plan of a run of ``steps`` steps or ``epochs`` epochs (at most one; neither:
        :data:`DEFAULT_STEPS`)."""
        if steps_per_epoch < 1:
            raise ValueError(
                f"steps_per_epoch must be >= 1, got {steps_per_epoch} (a split smaller than a batch?)"
            )
        if steps is not None and epochs is not None:
            raise ValueError(f"give steps or epochs, not both (got steps={steps}, epochs={epochs})")
        if eval_every and evals_per_epoch:
            raise ValueError(
                f"give eval_every or evals_per_epoch, not both (got {eval_every} and {evals_per_epoch})"
            )
        if eval_every < 0 or evals_per_epoch < 0:
            raise ValueError(
                f"eval_every and evals_per_epoch must be >= 0, got {eval_every}, {evals_per_epoch}"
            )
        if epochs is not None:
            if epochs < 1:
                raise ValueError(f"epochs must be >= 1, got {epochs}")
            total = epochs * steps_per_epoch
        else:
            total = DEFAULT_STEPS if steps is None else steps
            if total < 1:
                raise ValueError(f"steps must be >= 1, got {total}")
        return cls(steps_per_epoch, total, eval_every, evals_per_epoch)

    @property
    def epochs(self) -> float:
        """The run's length in epochs (fractional for a step count that is not a multiple of an epoch)."""
        return self.total_steps / self.steps_per_epoch

    def epoch_eval_positions(self) -> frozenset[int]:
        """Positions ``1 .. E`` inside an epoch after which the per-epoch evaluations run."""
        n, e = self.evals_per_epoch, self.steps_per_epoch
        return frozenset(math.ceil(k * e / n) for k in range(1, n + 1)) if n else frozenset()

    def evaluates_after(self, step: int) -> bool:
        """Whether the val evaluation runs after step ``step`` (1-based)."""
        if step < 1:
            return False
        if self.eval_every:
            return step % self.eval_every == 0
        if self.evals_per_epoch:
            return (step - 1) % self.steps_per_epoch + 1 in self.epoch_eval_positions()
        return False

    def eval_steps(self) -> list[int]:
        """Every step of the run after which the val evaluation runs during training, in order."""
        return [s for s in range(1, self.total_steps + 1) if self.evaluates_after(s)]

    def epoch_of(self, step: int) -> int:
        """The 0-based epoch that step ``step`` (1-based) belongs to."""
        return (step - 1) // self.steps_per_epoch
