"""Data parallel ("dp"): every rank holds every table and trains on its local batch.

Gradients of the tables are summed over ranks like the dense ones (see ``comm.py`` for why a sum is the global
mean's gradient): plain-gradient tables join the dense gradients' bucketed all-reduce; TT tables with a fused
update sum their core gradients in their gradient hook, just before the update runs inside backward.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.models import pooled_embeddings
from ecorec.parallel.base import EmbeddingStrategy
from ecorec.parallel.types import InputLayout, ParallelMode

__all__ = ["DataParallelEmbeddings"]


class DataParallelEmbeddings(EmbeddingStrategy):
    """Every table on every rank; local batch in (``layout="local"``), local pooled embeddings out.

    Args (``DataParallelEmbeddings(tables, env, *, features, embedding_dim, fused_tables=())``):
        tables: all tables, keyed by feature name. env: :class:`~ecorec.parallel.env.ShardingEnv` (no
            placement). features: the global feature order of the output. embedding_dim: D.
        fused_tables: TT tables that update inside backward; their gradient hook all-reduces the core
            gradients.
    """

    mode = ParallelMode.DATA_PARALLEL
    layout = InputLayout.LOCAL

    def _setup(self) -> None:
        missing = [f for f in self.features if f not in self.tables]
        if missing:
            raise ValueError(f"data parallel needs every table on every rank; missing {missing[:10]}")
        for name in self.fused_tables:
            self.tables[name].set_gradient_hook(self._sum_core_gradients)
        self._graph: torch.Tensor | None = None

    @property
    def input_features(self) -> list[str]:
        return list(self.features)

    def _sum_core_gradients(self, grads: list[torch.Tensor]) -> None:
        """Gradient hook of fused TT tables: sum the dense core gradients over ranks, in place, in one
        call."""
        if self.world_size == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        meter = self.env.comm_meter
        if meter is not None:
            meter.sent_ring("all_reduce", flat.numel() * flat.element_size())
        with meter.waiting("all_reduce") if meter is not None else contextlib.nullcontext():
            dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def forward(self, sparse: KeyedJaggedTensor, *, training: bool = True) -> torch.Tensor:
        if not training:
            with torch.no_grad():
                return pooled_embeddings(self.tables, sparse, self.features)
        self._graph = pooled_embeddings(self.tables, sparse, self.features)
        return self._graph.detach().requires_grad_()

    def backward(self, grad: torch.Tensor) -> None:
        if self._graph is None:
            raise RuntimeError("backward() without a training forward()")
        graph, self._graph = self._graph, None
        torch.autograd.backward(graph, grad)

    def summed_parameters(self) -> list[nn.Parameter]:
        return self.optimizer_parameters()
