"""Table-wise model parallel ("mp"): each rank computes its own tables for the global batch; an all-to-all
turns "my tables, every sample" into "every table, my samples" (forward) and back (backward).

The class runs its tables in *stages*: one stage (all of the rank's tables) for mp; the table-wise pipeline
(``twp.py``) gives it K stages, and stage i's all-to-all then overlaps stage i+1's compute. Backward runs the
same stages in reverse order: every gradient all-to-all is issued at once (in that order), and each stage's
table backward starts as soon as its own exchange has arrived, overlapping the exchanges still in flight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torchrec.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

from ecorec.models import pool_table
from ecorec.models.tables import check_kjt
from ecorec.parallel.base import EmbeddingStrategy
from ecorec.parallel.comm import PendingExchange, PooledAllToAll
from ecorec.parallel.types import InputLayout, ParallelMode

__all__ = ["ModelParallelEmbeddings"]


class ModelParallelEmbeddings(EmbeddingStrategy):
    """My tables on the global batch in (``layout="global"``), local pooled embeddings of every table out.

    Args (``ModelParallelEmbeddings(tables, env, *, features, embedding_dim, fused_tables=(), stages=None)``):
        tables: this rank's tables (``env.placement[rank]``, checked by the base class).
        env: :class:`~ecorec.parallel.env.ShardingEnv` with the placement ``{rank: [tables]}`` of every rank.
        features: the global feature order of the output. embedding_dim: D.
        fused_tables: this rank's TT tables with a fused update (nothing to do for them here: the gradients
            that reach them are already complete).
        stages: ``{rank: [[tables of stage 0], [stage 1], ...]}``, the same number of stages on every rank,
            each rank's stages covering its tables; default one stage per rank (plain mp).
    """

    mode = ParallelMode.MODEL_PARALLEL
    layout = InputLayout.GLOBAL

    def _setup(self, *, stages: Mapping[int, Sequence[Sequence[str]]] | None = None) -> None:
        if stages is None:
            stages = {r: [self.placement[r]] for r in range(self.world_size)}
        self.stages = self._check_stages(stages)
        D = self.embedding_dim
        self.exchanges = [
            PooledAllToAll(
                [len(self.stages[r][k]) * D for r in range(self.world_size)],
                self.group,
                meter=self.env.comm_meter,
            )
            for k in range(self.num_stages)
        ]
        self._stage_positions = [
            [self.positions(self.stages[r][k]) for r in range(self.world_size)]
            for k in range(self.num_stages)
        ]
        self._graphs: list[torch.Tensor] | None = None

    def _check_stages(self, stages: Mapping[int, Sequence[Sequence[str]]]) -> list[list[list[str]]]:
        if set(stages) != set(range(self.world_size)):
            raise ValueError(f"stages needs an entry per rank 0..{self.world_size - 1}, got {sorted(stages)}")
        counts = {r: len(stages[r]) for r in range(self.world_size)}
        if len(set(counts.values())) != 1 or counts[0] < 1:
            raise ValueError(f"every rank needs the same number (>= 1) of stages, got {counts}")
        out = []
        for r in range(self.world_size):
            flat = [name for stage in stages[r] for name in stage]
            if sorted(flat) != sorted(self.placement[r]):
                raise ValueError(
                    f"rank {r}'s stages {list(map(list, stages[r]))} do not cover its tables exactly"
                )
            out.append([list(stage) for stage in stages[r]])
        return out

    @property
    def num_stages(self) -> int:
        return len(self.stages[0])

    @property
    def input_features(self) -> list[str]:
        return list(self.placement[self.rank])

    def _compute_stage(self, features: Mapping[str, JaggedTensor], k: int, num_samples: int) -> torch.Tensor:
        """Stage ``k`` of this rank: ``[G, f_k*D]`` pooled embeddings of its tables for the global batch."""
        names = self.stages[self.rank][k]
        if not names:
            return torch.empty(num_samples, 0, device=self.device)
        pooled = []
        for name in names:
            jt = features[name]
            pooled.append(
                pool_table(self.tables[name], jt.values(), jt.offsets(), jt.weights_or_none(), name=name)
            )
        return torch.cat(pooled, dim=1)

    def forward(self, sparse: KeyedJaggedTensor, *, training: bool = True) -> torch.Tensor:
        check_kjt(sparse)
        features = sparse.to_dict()
        num_samples = sparse.stride()
        if num_samples % self.world_size:
            raise ValueError(
                f"global batch of {num_samples} samples does not split over {self.world_size} ranks"
            )
        b = num_samples // self.world_size
        graphs: list[torch.Tensor] = []
        pending: list[PendingExchange] = []
        with torch.set_grad_enabled(training):
            for k in range(self.num_stages):
                stage = self._compute_stage(features, k, num_samples)
                graphs.append(stage)
                pending.append(self.exchanges[k].start_forward(stage))
        out = self._output(b)
        D = self.embedding_dim
        for k in range(self.num_stages):
            blocks = self.exchanges[k].forward_blocks(pending[k].wait(), b)
            for r, block in enumerate(blocks):
                if block.numel():
                    out[:, self._stage_positions[k][r]] = block.view(b, -1, D)
        return self._keep_graphs(out, graphs, training)

    def backward(self, grad: torch.Tensor) -> None:
        graphs = self._take_graphs()
        b = grad.shape[0]
        order = list(reversed(range(self.num_stages)))
        pending = {}
        for k in order:
            blocks = [grad[:, pos].reshape(b, -1) for pos in self._stage_positions[k]]
            pending[k] = self.exchanges[k].start_backward(blocks)
        for k in order:
            received = pending[k].wait()
            if graphs[k].numel():
                torch.autograd.backward(graphs[k], received.view_as(graphs[k]))
