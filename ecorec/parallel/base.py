"""The interface every embedding strategy (dp, mp, bwp, twp) offers the hybrid model.

A strategy turns the rank's sparse input into the rank's local pooled embeddings ``[b, F, D]`` (columns in the
global feature order, whatever the placement), and later pushes the gradient of those embeddings back into its
tables. The explicit forward/backward split (instead of one autograd graph across ranks) is what lets the
pipelined modes overlap each stage's all-to-all with the next stage's compute, in both directions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.parallel.env import ShardingEnv
from ecorec.parallel.types import InputLayout, ParallelMode

__all__ = ["EmbeddingStrategy"]


class EmbeddingStrategy(ABC):
    """Pooled embeddings of the rank's local samples, from the tables wherever they live.

    Args:
        tables: this rank's tables. env: rank, world size, group, device and placement
        (:class:`~ecorec.parallel.env.ShardingEnv`). features: the global feature order. embedding_dim: D.
        fused_tables: names of this rank's TT tables that apply their optimizer inside backward.
        settings: the mode's keyword-only settings, handed to its ``_setup`` (mp/twp ``stages``, bwp
        ``num_micro_batches``).

    Attributes:
        mode: the ``ParallelMode`` this strategy implements.
        layout: which samples the rank's sparse input must hold (``InputLayout``).
        input_features: the sparse features the rank's input must hold.
        features: the global feature order of the ``[b, F, D]`` output.
        tables: this rank's tables (``nn.ModuleDict``), the modules whose parameters it trains.
        fused_tables: names of this rank's TT tables that apply their optimizer inside backward.
        device: where the tables and the pooled embeddings live.
    """

    mode: ParallelMode
    layout: InputLayout

    def __init__(
        self,
        tables: nn.ModuleDict,
        env: ShardingEnv,
        *,
        features: Sequence[str],
        embedding_dim: int,
        fused_tables: Sequence[str] = (),
        **settings: Any,
    ) -> None:
        self.tables = tables
        self.env = env
        self.device = env.device
        self.features = list(features)
        self.embedding_dim = embedding_dim
        self.group = env.group
        self.rank, self.world_size = env.rank, env.world_size
        self.fused_tables = list(fused_tables)
        unknown = [n for n in self.fused_tables if n not in tables]
        if unknown:
            raise ValueError(f"fused_tables names tables this rank does not hold: {unknown}")
        self._position = {name: i for i, name in enumerate(self.features)}
        self.placement: dict[int, list[str]] = {}
        if self.mode.needs_plan:  # the one placement check of every mode that places whole tables
            env.for_features(self.features).check_holds(list(tables.keys()))
            self.placement = {r: env.tables_of(r) for r in range(self.world_size)}
        self._setup(**settings)

    def _setup(self) -> None:  # noqa: B027 (a hook: most modes set something up, not all)
        """The mode's own set-up, from its keyword-only settings (passed through ``__init__``); none here."""

    @property
    @abstractmethod
    def input_features(self) -> list[str]:
        """The sparse features this rank's input must hold."""

    @abstractmethod
    def forward(self, sparse: KeyedJaggedTensor, *, training: bool = True) -> torch.Tensor:
        """Pooled embeddings ``[b, F, D]`` of the rank's local samples (a leaf; ``requires_grad`` if
        training)."""

    @abstractmethod
    def backward(self, grad: torch.Tensor) -> None:
        """Push ``grad: [b, F, D]`` (d loss share / d output of the last ``forward``) into the tables."""

    def summed_parameters(self) -> list[nn.Parameter]:
        """Table parameters whose gradients must be summed over ranks with the dense gradients (dp only)."""
        return []

    def optimizer_parameters(self) -> list[nn.Parameter]:
        """Table parameters a torch optimizer steps: all but the cores of fused TT tables."""
        fused = set(self.fused_tables)
        return [p for name, table in self.tables.items() if name not in fused for p in table.parameters()]

    def positions(self, names: Sequence[str]) -> torch.Tensor:
        """Global feature positions (int64 ``[len(names)]``) of ``names``."""
        return torch.tensor([self._position[n] for n in names], dtype=torch.long, device=self.device)

    def _keep_graphs(self, out: torch.Tensor, graphs: list[torch.Tensor], training: bool) -> torch.Tensor:
        """End of a forward: keep the per-stage / per-micro-batch graphs for :meth:`backward` when training
        and return ``out`` as the leaf the head differentiates against."""
        if not training:
            return out
        self._graphs = graphs
        return out.requires_grad_()

    def _take_graphs(self) -> list[torch.Tensor]:
        """The graphs of the last training forward, once (``RuntimeError`` without one)."""
        graphs = getattr(self, "_graphs", None)
        if graphs is None:
            raise RuntimeError("backward() without a training forward()")
        self._graphs = None
        return graphs

    def _output(self, local_batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.empty(
            local_batch, len(self.features), self.embedding_dim, dtype=dtype, device=self.device
        )
