"""Deep & Cross Network as HET-GMP trains it on Criteo (``examples/models/hetuctr_models.py``: ``DCN``).

``x0 = [sparse flattened, dense]`` (width ``F*D + num_dense``). Cross layers:
``x_{l+1} = x0 * (x_l @ w_l) + b_l + x_l`` with ``w_l: [width, 1]``, ``b_l: [width]``. Deep part: bias-free
MLP ``width -> 256 -> 256 -> 256`` over ``x0``. Output: a bias-free linear map of ``[cross, deep]`` to the
logit. All weights N(0, 0.01^2), as in HET-GMP (which runs one cross layer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecorec.models.wide_deep import hetgmp_mlp

__all__ = ["CrossLayer", "DCNHead"]


class CrossLayer(nn.Module):
    """``forward(x0: [B, W], x: [B, W]) -> x0 * (x @ w) + b + x``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(width, 1))
        self.bias = nn.Parameter(torch.empty(width))
        nn.init.normal_(self.weight, std=0.01)
        nn.init.normal_(self.bias, std=0.01)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * (x @ self.weight) + self.bias + x


class DCNHead(nn.Module):
    """``forward(dense: [B, num_dense], sparse: [B, F, D]) -> logits [B]``."""

    def __init__(
        self,
        num_dense: int,
        num_sparse_features: int,
        embedding_dim: int,
        num_cross_layers: int = 1,
        deep_layer_sizes: Sequence[int] = (256, 256, 256),
    ) -> None:
        super().__init__()
        if num_cross_layers < 1 or not deep_layer_sizes:
            raise ValueError("DCN needs >= 1 cross layer and a non-empty deep_layer_sizes")
        self.num_dense = num_dense
        width = num_sparse_features * embedding_dim + num_dense
        self.cross = nn.ModuleList(CrossLayer(width) for _ in range(num_cross_layers))
        self.deep = hetgmp_mlp(width, deep_layer_sizes)
        self.out = nn.Linear(width + deep_layer_sizes[-1], 1, bias=False)
        nn.init.normal_(self.out.weight, std=0.01)

    def forward(self, dense_features: torch.Tensor, sparse_features: torch.Tensor) -> torch.Tensor:
        x0 = sparse_features.reshape(sparse_features.shape[0], -1)
        if self.num_dense > 0:
            x0 = torch.cat([x0, dense_features], dim=1)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        return self.out(torch.cat([x, self.deep(x0)], dim=1)).squeeze(-1)
