"""The hybrid model the dp, mp, bwp and twp modes train: a replicated head (data parallel) on top of an
``EmbeddingStrategy`` that produces every rank's local pooled embeddings.

One training step (every rank):

1. ``pooled = strategy.forward(batch.sparse)``: ``[b, F, D]`` (all-to-alls inside for mp/bwp/twp);
2. ``logits = head(batch.dense, pooled)``; ``loss_r = sum(bce) / G`` (this rank's share of the global mean
loss); 3. ``loss_r.backward()`` fills the head's gradients and ``pooled.grad``; the head's gradient all-reduce
(summed,
   bucketed, async) starts at once and overlaps
4. ``strategy.backward(pooled.grad)`` (gradient all-to-alls and table backward, fused TT updates inside);
5. the dp table gradients are summed; the optimizers step once.

The reported loss is ``sum_r loss_r``: the mean BCE over the global batch, the number a single process
computes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ecorec.models import EmbeddingOptimizerSettings, is_tt_table
from ecorec.parallel.base import EmbeddingStrategy
from ecorec.parallel.comm import GradientAllReduce, world_of
from ecorec.parallel.optim import (
    make_dense_optimizer,
    make_embedding_optimizer,
    set_embedding_learning_rates,
    set_learning_rate,
)
from ecorec.parallel.precision import DynamicLossScaler, autocast_dtype, head_autocast
from ecorec.parallel.types import BatchLike, DenseOptimizerSettings, InputLayout, ParallelMode, StepOutput

__all__ = ["HybridParallelModel"]


class HybridParallelModel:
    """Train a head replicated on every rank over the pooled embeddings of an ``EmbeddingStrategy``.

    Args:
        head: the model over ``[b, F, D]`` pooled embeddings (same initial weights on every rank).
        strategy: the embedding strategy of the mode (dp, mp, bwp, twp).
        dense_optimizer: optimizer of the head.
        embedding_optimizer: optimizer of the table parameters a torch optimizer steps.
        set_fused_learning_rate: ``fn(table, lr)`` that sets a fused TT table's learning rate (used by
            :meth:`set_learning_rates`); required when the strategy has fused tables.
        group, device: process group; device of the head and the tables.
        bucket_bytes: gradient all-reduce bucket size.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast of the head (``ecorec.parallel.precision``; fp16
            scales the loss dynamically); the tables stay float32.
    """

    def __init__(
        self,
        head: nn.Module,
        strategy: EmbeddingStrategy,
        dense_optimizer: DenseOptimizerSettings,
        embedding_optimizer: EmbeddingOptimizerSettings,
        *,
        set_fused_learning_rate: Callable[[nn.Module, float], None] | None = None,
        group: dist.ProcessGroup | None = None,
        device: torch.device | str | None = None,
        bucket_bytes: int = 25 * 2**20,
        precision: str = "fp32",
    ) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        autocast_dtype(precision)  # validates the name
        self.precision = precision
        self.loss_scaler = DynamicLossScaler(group=group) if precision == "fp16" else None
        self.head = head.to(self.device)
        self.strategy = strategy
        self.group = group
        self.rank, self.world_size = world_of(group)
        self.dense_optimizer = make_dense_optimizer(self.head.parameters(), dense_optimizer)
        plain = list(strategy.optimizer_parameters())
        tt_ids = {id(p) for t in strategy.tables.values() if is_tt_table(t) for p in t.parameters()}
        self.embedding_optimizer = make_embedding_optimizer(
            plain, embedding_optimizer, [p for p in plain if id(p) in tt_ids]
        )
        meter = strategy.env.comm_meter
        self._dense_reduce = GradientAllReduce(self.head.parameters(), group, bucket_bytes, meter=meter)
        self._table_reduce = GradientAllReduce(strategy.summed_parameters(), group, bucket_bytes, meter=meter)
        if strategy.fused_tables and set_fused_learning_rate is None:
            raise ValueError(
                "fused TT tables need set_fused_learning_rate to follow the learning-rate schedule"
            )
        self._set_fused_lr = set_fused_learning_rate

    @property
    def mode(self) -> ParallelMode:
        return self.strategy.mode

    @property
    def input_layout(self) -> InputLayout:
        return self.strategy.layout

    @property
    def input_features(self) -> list[str]:
        return self.strategy.input_features

    def _zero_grad(self) -> None:
        self.dense_optimizer.zero_grad(set_to_none=True)
        if self.embedding_optimizer is not None:
            self.embedding_optimizer.zero_grad(set_to_none=True)

    def train_step(self, batches: Iterator[BatchLike]) -> StepOutput:
        """Train on the next batch of ``batches``; returns the global mean loss and this rank's logits."""
        batch = next(batches)
        sparse = batch.sparse.to(self.device)
        dense = batch.dense.to(self.device)
        labels = batch.labels.to(self.device).float()
        self.head.train()
        self._zero_grad()
        pooled = self.strategy.forward(sparse, training=True)
        with head_autocast(self.device, self.precision):
            logits = self.head(dense, pooled)
        logits = logits.float()
        global_batch = labels.numel() * self.world_size
        loss_share = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / global_batch
        loss_total = loss_share.detach().clone()
        loss_work = (
            dist.all_reduce(loss_total, group=self.group, async_op=True) if self.world_size > 1 else None
        )
        scaler = self.loss_scaler
        if scaler is None:
            loss_share.backward()
            table_grad = pooled.grad
            finite = True
        else:  # fp16: scaled backward; unscale and check before the gradient reaches the tables
            (loss_share * scaler.scale).backward()
            finite = scaler.all_finite([pooled.grad, *(p.grad for p in self.head.parameters())])
            table_grad = pooled.grad / scaler.scale if finite else torch.zeros_like(pooled.grad)
        self._dense_reduce.start()
        self.strategy.backward(
            table_grad
        )  # zeros after an overflow: fused updates leave the tables as they are
        self._table_reduce.start()
        self._dense_reduce.wait()
        self._table_reduce.wait()
        if finite:
            if scaler is not None:
                for p in self.head.parameters():
                    if p.grad is not None:
                        p.grad.div_(scaler.scale)
            self.dense_optimizer.step()
            if self.embedding_optimizer is not None:
                self.embedding_optimizer.step()
        if scaler is not None:
            scaler.update(finite)
        if loss_work is not None:
            loss_work.wait()
        return StepOutput(loss=float(loss_total), logits=logits.detach(), labels=labels)

    @torch.no_grad()
    def predict(self, batch: BatchLike) -> torch.Tensor:
        """Logits ``[b]`` of the rank's local samples (collective: every rank must call it)."""
        self.head.eval()
        pooled = self.strategy.forward(batch.sparse.to(self.device), training=False)
        with head_autocast(self.device, self.precision):
            return self.head(batch.dense.to(self.device), pooled).float()

    def set_learning_rates(self, dense_lr: float, embedding_lr: float, tt_lr: float | None = None) -> None:
        """Set the learning rate of the head and of every table (torch optimizer and fused TT updates):
        ``embedding_lr`` for uncompressed tables, ``tt_lr`` (default ``embedding_lr``) for TT tables."""
        tt = embedding_lr if tt_lr is None else tt_lr
        set_learning_rate(self.dense_optimizer, dense_lr)
        set_embedding_learning_rates(self.embedding_optimizer, embedding_lr, tt)
        if self._set_fused_lr is not None:
            for name in self.strategy.fused_tables:
                self._set_fused_lr(self.strategy.tables[name], tt)

    def state_dict(self) -> dict[str, Any]:
        """This rank's model and optimizer state (tables incl. TT cores and fused optimizer state)."""
        return {
            "head": self.head.state_dict(),
            "tables": self.strategy.tables.state_dict(),
            "dense_optimizer": self.dense_optimizer.state_dict(),
            "embedding_optimizer": (
                self.embedding_optimizer.state_dict() if self.embedding_optimizer is not None else None
            ),
            "loss_scaler": self.loss_scaler.state_dict() if self.loss_scaler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.strategy.tables.load_state_dict(state["tables"])
        self.dense_optimizer.load_state_dict(state["dense_optimizer"])
        if self.embedding_optimizer is not None:
            self.embedding_optimizer.load_state_dict(state["embedding_optimizer"])
        if self.loss_scaler is not None and state.get("loss_scaler") is not None:
            self.loss_scaler.load_state_dict(state["loss_scaler"])
