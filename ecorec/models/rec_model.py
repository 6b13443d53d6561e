"""A whole recommendation model in one process: embedding tables + head, KJT in, logits out.

What a single-GPU user trains, and the oracle every distributed mode is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.models.tables import check_kjt, pool_table

__all__ = ["RecModel", "pooled_embeddings"]


def pooled_embeddings(tables: nn.ModuleDict, sparse: KeyedJaggedTensor, names: Sequence[str]) -> torch.Tensor:
    """Pool each table of ``names`` over its feature of ``sparse``; returns ``[B, len(names), D]`` (names
    order)."""
    check_kjt(sparse)  # negative lengths name the feature (else torch fails on offsets or an index check)
    features = sparse.to_dict()
    pooled = []
    for name in names:
        jt = features[name]
        pooled.append(pool_table(tables[name], jt.values(), jt.offsets(), jt.weights_or_none(), name=name))
    return torch.stack(pooled, dim=1)


class RecModel(nn.Module):
    """``forward(dense: [B, num_dense], sparse: KJT with one key per table) -> logits [B]``.

    Args:
        tables: one module per table (``ecorec.models.build_tables``), keyed by table/feature name.
        head: a head over ``[B, F, D]`` pooled embeddings (``ecorec.models.build_head``).
        features: the order of the F pooled embeddings the head expects (default: ``tables`` order).
    """

    def __init__(self, tables: nn.ModuleDict, head: nn.Module, features: Sequence[str] | None = None) -> None:
        super().__init__()
        self.tables = tables
        self.head = head
        self.features = list(features) if features is not None else list(tables.keys())

    def forward(self, dense_features: torch.Tensor, sparse_features: KeyedJaggedTensor) -> torch.Tensor:
        return self.head(dense_features, pooled_embeddings(self.tables, sparse_features, self.features))
