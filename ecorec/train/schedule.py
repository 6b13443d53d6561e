"""The MLPerf DLRM learning-rate schedule: linear warm-up, constant, polynomial (power 2) decay, constant end.

For update number ``s`` (0-based) and base rate ``lr0``:

- ``s < warmup_steps``: ``lr0 * (s + 1) / warmup_steps``;
- ``decay_start_step <= s < decay_start_step + decay_steps``:
  ``end + (lr0 - end) * ((decay_start_step + decay_steps - s) / decay_steps) ** power``;
- ``s >= decay_start_step + decay_steps`` (when decaying): ``end``; otherwise ``lr0``.

``decay_steps = 0`` disables the decay, ``warmup_steps = 0`` the warm-up. The dense and the embedding rates
follow the same curve: the embedding one ends at ``decay_end_lr * embedding_lr0 / dense_lr0``.

The three step counts may instead be fractions of the run's ``T`` steps (:func:`schedule_steps`), so that the
curve follows a run's length (``train.steps`` or ``train.epochs``): ``warmup_fraction``,
``decay_start_fraction`` and ``decay_fraction`` become ``floor(f * T + 1/2)`` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MLPerfSchedule", "mlperf_lr", "schedule_steps"]


def _steps_of(fraction: float, total_steps: int) -> int:
    """``fraction`` of ``total_steps``, rounded half up (the same on every platform)."""
    return int(math.floor(fraction * total_steps + 0.5))


def schedule_steps(
    total_steps: int,
    *,
    warmup_steps: int = 0,
    decay_start_step: int = 0,
    decay_steps: int = 0,
    warmup_fraction: float | None = None,
    decay_start_fraction: float | None = None,
    decay_fraction: float | None = None,
) -> tuple[int, int, int]:
    """``(warmup_steps, decay_start_step, decay_steps)`` of a run of ``total_steps`` steps: each quantity as
    given in steps, or as a fraction in ``[0, 1]`` of the run (rounded half up), not both."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    out = []
    for name, steps, fraction in (
        ("warmup", warmup_steps, warmup_fraction),
        ("decay_start", decay_start_step, decay_start_fraction),
        ("decay", decay_steps, decay_fraction),
    ):
        if fraction is None:
            out.append(int(steps))
            continue
        if steps:
            raise ValueError(f"{name}: give steps or a fraction of the run, not both")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"{name}_fraction must be in [0, 1], got {fraction}")
        out.append(_steps_of(fraction, total_steps))
    return out[0], out[1], out[2]


def mlperf_lr(
    step: int,
    base_lr: float,
    warmup_steps: int = 0,
    decay_start_step: int = 0,
    decay_steps: int = 0,
    decay_end_lr: float = 0.0,
    power: float = 2.0,
) -> float:
    """The learning rate of update ``step`` (0-based); see the module docstring."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if decay_steps > 0 and step >= decay_start_step:
        remaining = decay_start_step + decay_steps - step
        if remaining <= 0:
            return decay_end_lr
        return decay_end_lr + (base_lr - decay_end_lr) * (remaining / decay_steps) ** power
    return base_lr


@dataclass(frozen=True)
class MLPerfSchedule:
    """The dense and embedding learning rates of every step."""

    dense_lr: float
    embedding_lr: float
    warmup_steps: int = 0
    decay_start_step: int = 0
    decay_steps: int = 0
    decay_end_lr: float = 0.0

    def rates(self, step: int) -> tuple[float, float]:
        """``(dense_lr, embedding_lr)`` of update ``step``."""
        args = (self.warmup_steps, self.decay_start_step, self.decay_steps)
        dense = mlperf_lr(step, self.dense_lr, *args, self.decay_end_lr)
        end = self.decay_end_lr * self.embedding_lr / self.dense_lr
        return dense, mlperf_lr(step, self.embedding_lr, *args, end)
