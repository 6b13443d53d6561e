"""Mixed precision of the head (MLPs and interaction): ``fp32``, ``bf16`` or ``fp16`` via ``torch.autocast``.

Embedding tables (TT cores, uncompressed rows) and their optimizer state always stay float32 and run their
lookups outside autocast: the pooled embeddings ``[b, F, D]`` enter the head in float32 and their gradient
leaves it in float32. The loss is computed in float32 from the logits.

``fp16`` (MLPerf's AMP, apex O2 there) also scales the loss: :class:`DynamicLossScaler` follows
``torch.amp.GradScaler``'s rule (start ``2**16``, halve on an overflow and skip that step, double after
``growth_interval`` finite steps). ``GradScaler`` itself cannot be used: the head's gradient becomes the
tables' gradient (fused TT updates run inside their backward), so the gradient must be unscaled and checked
before it reaches them, and every rank must agree on skipping (one all-reduce of a flag).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.distributed as dist

__all__ = ["PRECISIONS", "DynamicLossScaler", "autocast_dtype", "head_autocast"]

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (``None`` for fp32); ``ValueError`` for an unknown name."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return _DTYPES.get(precision)


def head_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """``torch.autocast`` of ``device``'s type in ``precision`` (a no-op context for fp32)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class DynamicLossScaler:
    """Loss scale for fp16: ``scale`` multiplies the loss before backward; :meth:`update` after each step.

    Args:
        init_scale / growth_factor / backoff_factor / growth_interval: as ``torch.amp.GradScaler``.
        group: process group whose ranks must agree on overflows.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        group: dist.ProcessGroup | None = None,
    ) -> None:
        if not init_scale > 0 or not growth_factor > 1 or not 0 < backoff_factor < 1 or growth_interval < 1:
            raise ValueError(
                "loss scaler: need init_scale > 0, growth_factor > 1, 0 < backoff < 1, interval >= 1"
            )
        self.scale = float(init_scale)
        self.growth_factor = growth_factor
        self.backoff_factor = backoff_factor
        self.growth_interval = growth_interval
        self.group = group
        self.skipped_steps = 0
        self._good_steps = 0

    def all_finite(self, tensors: Iterable[torch.Tensor | None]) -> bool:
        """Whether every tensor is finite on every rank (one all-reduce when distributed)."""
        grads = [t for t in tensors if t is not None]
        device = grads[0].device if grads else torch.device("cpu")
        bad = torch.zeros((), device=device)
        for t in grads:
            bad = torch.maximum(bad, (~torch.isfinite(t)).any().to(bad.dtype))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size(self.group) > 1:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX, group=self.group)
        return not bool(bad)

    def update(self, finite: bool) -> None:
        """Back off after an overflow (the step was skipped), grow after ``growth_interval`` finite steps."""
        if not finite:
            self.scale *= self.backoff_factor
            self.skipped_steps += 1
            self._good_steps = 0
            return
        self._good_steps += 1
        if self._good_steps >= self.growth_interval:
            self.scale *= self.growth_factor
            self._good_steps = 0

    def state_dict(self) -> dict[str, float | int]:
        return {"scale": self.scale, "good_steps": self._good_steps, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.scale = float(state["scale"])
        self._good_steps = int(state["good_steps"])
        self.skipped_steps = int(state["skipped_steps"])
