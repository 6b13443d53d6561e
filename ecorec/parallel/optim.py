"""Torch optimizers for the dense parameters and for the embedding parameters that are not updated in
backward.

The embedding kinds are the ones fbgemm (and ``ecorec.tt``) fuse, with the same update rules, so that a TT
table trained with plain gradients and one of these optimizers follows the same trajectory as a
fused one:
``sgd`` (``w -= lr*g``), ``adagrad`` (``s += g^2; w -= lr*g/(sqrt(s)+eps)``) and ``rowwise_adagrad`` (one
``s`` per row of a 2-D parameter: ``s += mean(g_row^2)``; torchrec's ``RowWiseAdagrad``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torchrec.optim import RowWiseAdagrad

from ecorec.models import EmbeddingOptimizerSettings
from ecorec.parallel.types import DenseOptimizerSettings

__all__ = [
    "make_dense_optimizer",
    "make_embedding_optimizer",
    "set_embedding_learning_rates",
    "set_learning_rate",
]


def make_dense_optimizer(
    params: Iterable[torch.nn.Parameter], settings: DenseOptimizerSettings
) -> torch.optim.Optimizer:
    """SGD, Adagrad (no initial accumulator) or Adam over ``params``."""
    params = list(params)
    if settings.kind == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.kind == "adagrad":
        return torch.optim.Adagrad(
            params,
            lr=settings.lr,
            eps=settings.eps,
            weight_decay=settings.weight_decay,
            initial_accumulator_value=0,
        )
    return torch.optim.Adam(
        params, lr=settings.lr, betas=settings.betas, eps=settings.eps, weight_decay=settings.weight_decay
    )


def make_embedding_optimizer(
    params: Iterable[torch.nn.Parameter], settings: EmbeddingOptimizerSettings, tt_params: Iterable[Any] = ()
) -> torch.optim.Optimizer | None:
    """The torch optimizer of embedding parameters (``None`` when there are none).

    ``params`` step at ``settings.lr``; ``tt_params`` (TT cores with plain gradients; any of them also in
    ``params`` is moved) form a param group ``table_kind="tt"`` at ``settings.tt_rate``
    (:func:`set_embedding_learning_rates` keeps the two apart).
    """
    tt = list(tt_params)
    tt_ids = {id(p) for p in tt}
    plain = [p for p in params if id(p) not in tt_ids]
    groups: list[dict[str, Any]] = []
    if plain:
        groups.append({"params": plain, "lr": settings.lr, "table_kind": "uncompressed"})
    if tt:
        groups.append({"params": tt, "lr": settings.tt_rate, "table_kind": "tt"})
    if not groups:
        return None
    params = groups  # type: ignore[assignment]
    if settings.kind == "sgd":
        return torch.optim.SGD(params, lr=settings.lr)
    if settings.kind == "adagrad":
        return torch.optim.Adagrad(params, lr=settings.lr, eps=settings.eps, initial_accumulator_value=0)
    return RowWiseAdagrad(params, lr=settings.lr, eps=settings.eps)


def set_embedding_learning_rates(
    optimizer: torch.optim.Optimizer | None, lr: float, tt_lr: float | None = None
) -> None:
    """Set the embedding optimizer's rates: ``tt_lr`` (default ``lr``) for its ``table_kind="tt"`` group,
    ``lr`` for the others."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        group["lr"] = tt_lr if tt_lr is not None and group.get("table_kind") == "tt" else lr


def set_learning_rate(optimizer: torch.optim.Optimizer | None, lr: float) -> None:
    """Set every param group's learning rate (no-op for ``None``)."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        group["lr"] = lr
