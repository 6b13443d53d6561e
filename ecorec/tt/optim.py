"""Fused optimizers for TT cores, applied inside backward once per batch (like fbgemm's TBE).

Config, state and update are kept apart: :class:`TTOptimizerConfig` (frozen hyperparameters),
:meth:`TTOptimizerConfig.state_shapes` (what state each core needs, allocated as module buffers by
``TTEmbeddingBag``) and :func:`fused_update_` (the in-place step, one per-core function per kind; the CUDA
kernels of ``torch.ops.ecorec.tt_*_update_`` implement the same math).

Semantics, per core ``W`` with dense batch gradient ``g`` (rows the batch does not touch have ``g = 0``):

- ``sgd``: ``W -= lr * g``;
- ``adagrad`` (``torch.optim.Adagrad`` with ``initial_accumulator_value=0``, ``lr_decay=0``,
  ``weight_decay=0``): ``S += g^2``; ``W -= lr * g / (sqrt(S) + eps)`` per element;
- ``rowwise_adagrad`` (fbgemm ``EXACT_ROWWISE_ADAGRAD``, no weight decay): ``s[i] += mean_j g[i, j]^2``;
  ``W[i] -= lr * g[i] / (sqrt(s[i]) + eps)``.

For all three an untouched row (``g = 0``) keeps its weights and state exactly, so the dense update equals the
sparse "touched rows only" update of fbgemm; the cores are small, so the dense form is also cheap. For the
Adagrad kinds that needs ``eps > 0`` in the cores' dtype: a row no batch has touched yet has ``g = 0`` and
``S = 0``, and ``0 / (sqrt(0) + 0)`` is NaN. :class:`TTOptimizerConfig` rejects ``eps <= 0`` for them, and
:meth:`TTOptimizerConfig.check_dtype` an ``eps`` that rounds to 0 in the cores' dtype (``TTEmbeddingBag``
checks at construction, :func:`ecorec.tt.ops.tt_fused_update_` before every step, on every backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import torch


class TTOptimizerKind(StrEnum):
    """Fused optimizer kinds; the values are the serialized spelling."""

    SGD = "sgd"
    ADAGRAD = "adagrad"
    ROWWISE_ADAGRAD = "rowwise_adagrad"


@dataclass(frozen=True)
class TTOptimizerConfig:
    """Hyperparameters of the fused update.

    Attributes:
        kind: ``"sgd"``, ``"adagrad"`` or ``"rowwise_adagrad"`` (or a :class:`TTOptimizerKind`).
        lr: learning rate (> 0).
        eps: added to ``sqrt(state)`` by the Adagrad kinds (``torch.optim.Adagrad``'s default ``1e-10``);
            must be ``> 0`` for them (``eps = 0`` would write NaN into every never-touched row), ``>= 0`` for
            ``sgd`` (unused there).
    """

    kind: TTOptimizerKind | str = TTOptimizerKind.SGD
    lr: float = 0.01
    eps: float = 1e-10

    def __post_init__(self) -> None:
        try:
            kind = TTOptimizerKind(self.kind)
        except ValueError:
            allowed = [k.value for k in TTOptimizerKind]
            raise ValueError(
                f"TTOptimizerConfig.kind must be one of {allowed}, got kind={self.kind!r}"
            ) from None
        object.__setattr__(self, "kind", kind)
        if not self.lr > 0:
            raise ValueError(f"TTOptimizerConfig.lr must be > 0, got lr={self.lr}")
        if kind is TTOptimizerKind.SGD:
            if not self.eps >= 0:
                raise ValueError(f"TTOptimizerConfig.eps must be >= 0, got eps={self.eps}")
        elif not self.eps > 0:
            raise ValueError(
                f"TTOptimizerConfig.eps must be > 0 for kind={kind.value!r} (eps=0 gives 0/0 = NaN in rows "
                f"the batch does not touch), got eps={self.eps}"
            )

    def check_dtype(self, dtype: torch.dtype) -> None:
        """Raise ``ValueError`` if the Adagrad kinds' ``eps`` is below the smallest normal number of ``dtype``
        (the cores' dtype, in which the update adds it): it would round to 0 (or be flushed to 0 on GPUs), and
        untouched rows would become NaN. No-op for ``sgd``."""
        if self.kind is TTOptimizerKind.SGD:
            return
        tiny = torch.finfo(dtype).tiny
        if self.eps < tiny:
            raise ValueError(
                f"TTOptimizerConfig.eps={self.eps} is below the smallest normal {dtype} ({tiny:.3g}): it "
                f"rounds to 0 in the cores' dtype and the {self.kind.value} update of untouched rows would "
                f"be NaN; use a larger eps"
            )

    def state_shapes(self, core_shapes: Sequence[tuple[int, int]]) -> list[tuple[int, ...] | None]:
        """Shape of the state of each core ``(p_t, C_t)``: ``None`` (SGD), ``(p_t, C_t)`` or ``(p_t,)``."""
        if self.kind is TTOptimizerKind.SGD:
            return [None for _ in core_shapes]
        if self.kind is TTOptimizerKind.ADAGRAD:
            return [tuple(shape) for shape in core_shapes]
        return [(shape[0],) for shape in core_shapes]


@torch.no_grad()
def sgd_update_(core: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
    """``W -= lr * g`` in place (``core``, ``grad``: ``(p, C)``)."""
    core.add_(grad, alpha=-lr)


@torch.no_grad()
def adagrad_update_(
    core: torch.Tensor, state: torch.Tensor, grad: torch.Tensor, lr: float, eps: float
) -> None:
    """``S += g^2; W -= lr * g / (sqrt(S) + eps)`` in place (``core``, ``state``, ``grad``: ``(p, C)``)."""
    state.addcmul_(grad, grad)
    core.addcdiv_(grad, state.sqrt().add_(eps), value=-lr)


@torch.no_grad()
def rowwise_adagrad_update_(
    core: torch.Tensor, state: torch.Tensor, grad: torch.Tensor, lr: float, eps: float
) -> None:
    """``s += mean_j g[:, j]^2; W -= lr * g / (sqrt(s) + eps)`` row-wise in place (``core``, ``grad``:
    ``(p, C)``; ``state``: ``(p,)``)."""
    state.add_(grad.square().mean(dim=1))
    core.addcdiv_(grad, state.sqrt().add_(eps).unsqueeze(1), value=-lr)


@torch.no_grad()
def fused_update_(
    config: TTOptimizerConfig,
    cores: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[torch.Tensor | None],
) -> None:
    """Apply one step in place to ``cores`` (and ``states``); bumps the cores' version counters.

    Args:
        config: the optimizer.
        cores: ``d`` tensors ``(p_t, C_t)``.
        grads: dense gradients shaped like ``cores``.
        states: per core, the state tensor of :meth:`TTOptimizerConfig.state_shapes` (``None`` for SGD).
    """
    for core, grad, state in zip(cores, grads, states, strict=True):
        if config.kind is TTOptimizerKind.SGD:
            sgd_update_(core, grad, config.lr)
        elif config.kind is TTOptimizerKind.ADAGRAD:
            assert state is not None
            adagrad_update_(core, state, grad, config.lr, config.eps)
        else:
            assert state is not None
            rowwise_adagrad_update_(core, state, grad, config.lr, config.eps)
