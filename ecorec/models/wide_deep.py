"""Wide & Deep as HET-GMP trains it on Criteo (``examples/models/hetuctr_models.py``: ``WDL``).

Deep part: an MLP over the dense features (``num_dense -> 256 -> 256 -> 256``, ReLU between layers, none after
the last, no biases). Wide part: one linear map (no bias) from ``[sparse flattened, deep output]`` to the
logit. Every weight starts as N(0, 0.01^2), as in HET-GMP. Without dense features the wide part sees the
sparse embeddings alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["WideDeepHead", "hetgmp_mlp"]


def hetgmp_mlp(in_features: int, layer_sizes: Sequence[int]) -> nn.Sequential:
    """Bias-free linear layers with ReLU between them (none after the last), N(0, 0.01^2) weights."""
    layers: list[nn.Module] = []
    width = in_features
    for i, size in enumerate(layer_sizes):
        linear = nn.Linear(width, size, bias=False)
        nn.init.normal_(linear.weight, std=0.01)
        layers.append(linear)
        if i < len(layer_sizes) - 1:
            layers.append(nn.ReLU())
        width = size
    return nn.Sequential(*layers)


class WideDeepHead(nn.Module):
    """``forward(dense: [B, num_dense], sparse: [B, F, D]) -> logits [B]``."""

    def __init__(
        self,
        num_dense: int,
        num_sparse_features: int,
        embedding_dim: int,
        deep_layer_sizes: Sequence[int] = (256, 256, 256),
    ) -> None:
        super().__init__()
        if not deep_layer_sizes:
            raise ValueError("deep_layer_sizes must not be empty")
        self.num_dense = num_dense
        sparse_width = num_sparse_features * embedding_dim
        self.deep = hetgmp_mlp(num_dense, deep_layer_sizes) if num_dense > 0 else None
        wide_in = sparse_width + (deep_layer_sizes[-1] if num_dense > 0 else 0)
        self.wide = nn.Linear(wide_in, 1, bias=False)
        nn.init.normal_(self.wide.weight, std=0.01)

    def forward(self, dense_features: torch.Tensor, sparse_features: torch.Tensor) -> torch.Tensor:
        flat = sparse_features.reshape(sparse_features.shape[0], -1)
        if self.deep is not None:
            flat = torch.cat([flat, self.deep(dense_features)], dim=1)
        return self.wide(flat).squeeze(-1)
