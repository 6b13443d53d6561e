"""Batch-wise pipeline ("bwp"): model parallel over micro-batches of the global batch; micro-batch m's
all-to-all overlaps micro-batch m+1's compute.

Sample placement is the one every mode uses: micro-batch ``m`` holds, for every rank ``r``, the slice
``[r*b + m*b/n, r*b + (m+1)*b/n)`` of the global batch, so concatenating the micro-batches a rank receives
gives exactly its local batch ``[r*b, (r+1)*b)`` (the artifact's split gave ranks other samples than mp and
twp).

The update is applied once per batch: the tables' gradients accumulate over the micro-batches and the
optimizer steps after the last one (TT tables are built with plain gradients in this mode), so the gradient
is exactly the full batch's (the artifact updated after every micro-batch, and later micro-batches saw
updated cores).
"""

from __future__ import annotations

import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.models import pool_table
from ecorec.models.tables import check_kjt
from ecorec.parallel.base import EmbeddingStrategy
from ecorec.parallel.comm import PendingExchange, PooledAllToAll
from ecorec.parallel.jagged import select_bags
from ecorec.parallel.types import InputLayout, ParallelMode

__all__ = ["BatchWisePipeline", "micro_batch_bags"]


def micro_batch_bags(world_size: int, local_batch: int, num_micro_batches: int, m: int) -> torch.Tensor:
    """Global-batch sample ids of micro-batch ``m``: ``[r*b + m*b/n, r*b + (m+1)*b/n)`` for r = 0..R-1
    (int64)."""
    size = local_batch // num_micro_batches
    starts = torch.arange(world_size) * local_batch + m * size
    return (starts.unsqueeze(1) + torch.arange(size).unsqueeze(0)).reshape(-1)


class BatchWisePipeline(EmbeddingStrategy):
    """My tables on the global batch in (``layout="global"``), in ``num_micro_batches`` pipelined
    micro-batches.

    Args (``BatchWisePipeline(tables, env, *, features, embedding_dim, num_micro_batches)``):
        tables: this rank's tables (``env.placement[rank]``), with plain gradients (no fused update).
        env: :class:`~ecorec.parallel.env.ShardingEnv` with the placement ``{rank: [tables]}``.
        features: the global feature order of the output. embedding_dim: D.
        num_micro_batches: n; the local batch must be divisible by it.
    """

    mode = ParallelMode.BATCH_WISE_PIPELINE
    layout = InputLayout.GLOBAL

    def _setup(self, *, num_micro_batches: int) -> None:
        if num_micro_batches < 1:
            raise ValueError(f"num_micro_batches must be >= 1, got {num_micro_batches}")
        self.num_micro_batches = num_micro_batches
        self.exchange = PooledAllToAll(
            [len(self.placement[r]) * self.embedding_dim for r in range(self.world_size)],
            self.group,
            meter=self.env.comm_meter,
        )
        self._positions = [self.positions(self.placement[r]) for r in range(self.world_size)]
        self._graphs: list[torch.Tensor] | None = None

    @property
    def input_features(self) -> list[str]:
        return list(self.placement[self.rank])

    def _micro_batch(self, features: dict, bags: torch.Tensor) -> torch.Tensor:
        names = self.placement[self.rank]
        if not names:
            return torch.empty(bags.numel(), 0, device=self.device)
        pooled = []
        for name in names:
            jt = features[name]
            values, offsets, weights = select_bags(jt.values(), jt.offsets(), bags, jt.weights_or_none())
            pooled.append(pool_table(self.tables[name], values, offsets, weights, name=name))
        return torch.cat(pooled, dim=1)

    def forward(self, sparse: KeyedJaggedTensor, *, training: bool = True) -> torch.Tensor:
        check_kjt(sparse)
        features = sparse.to_dict()
        num_samples = sparse.stride()
        R, n = self.world_size, self.num_micro_batches
        if num_samples % (R * n):
            raise ValueError(
                f"global batch {num_samples} is not divisible by world_size*num_micro_batches={R * n}"
            )
        b = num_samples // R
        mb = b // n
        graphs: list[torch.Tensor] = []
        pending: list[PendingExchange] = []
        with torch.set_grad_enabled(training):
            for m in range(n):
                bags = micro_batch_bags(R, b, n, m).to(self.device)
                stage = self._micro_batch(features, bags)
                graphs.append(stage)
                pending.append(self.exchange.start_forward(stage))
        out = self._output(b)
        D = self.embedding_dim
        for m in range(n):
            rows = out[m * mb : (m + 1) * mb]
            for r, block in enumerate(self.exchange.forward_blocks(pending[m].wait(), mb)):
                if block.numel():
                    rows[:, self._positions[r]] = block.view(mb, -1, D)
        return self._keep_graphs(out, graphs, training)

    def backward(self, grad: torch.Tensor) -> None:
        graphs = self._take_graphs()
        n = self.num_micro_batches
        mb = grad.shape[0] // n
        pending = []
        for m in range(n):
            rows = grad[m * mb : (m + 1) * mb]
            pending.append(
                self.exchange.start_backward([rows[:, pos].reshape(mb, -1) for pos in self._positions])
            )
        for m in range(n):
            received = pending[m].wait()
            if graphs[m].numel():
                torch.autograd.backward(graphs[m], received.view_as(graphs[m]))
