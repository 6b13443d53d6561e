"""The DLRM head: torchrec's ``DenseArch`` and ``OverArch`` around one of three interactions.

- ``dot``: torchrec ``InteractionArch`` (pairwise dot products of the dense embedding and the F pooled
  embeddings);
- ``cat``: the EcoRec artifact's choice for hundreds of tables: concatenate the F pooled embeddings and the
  dense embedding (``F*D + D`` wide, no ``F^2`` term);
- ``dcn``: torchrec ``InteractionDCNArch`` with a ``LowRankCrossNet`` (DCN-v2, as in torchrec's ``DLRM_DCN``).

The head takes pooled embeddings, not a KJT: the distributed modes compute the pooled embeddings themselves
and hand every rank its local ``[b, F, D]`` block (see ``ecorec.parallel``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchrec.models.dlrm import DenseArch, InteractionArch, InteractionDCNArch, OverArch
from torchrec.modules.crossnet import LowRankCrossNet

from ecorec.types import INTERACTIONS

__all__ = ["INTERACTIONS", "CatInteraction", "DLRMHead"]


class CatInteraction(nn.Module):
    """Concatenate the pooled embeddings and the dense embedding.

    ``forward(dense: [B, D] | None, sparse: [B, F, D]) -> [B, F*D (+ D)]`` (sparse columns first, as the
    artifact).
    """

    def __init__(self, num_sparse_features: int) -> None:
        super().__init__()
        self.F = num_sparse_features

    def forward(self, dense_features: torch.Tensor | None, sparse_features: torch.Tensor) -> torch.Tensor:
        flat = sparse_features.reshape(sparse_features.shape[0], -1)
        if dense_features is None:
            return flat
        return torch.cat([flat, dense_features], dim=1)


class DLRMHead(nn.Module):
    """DenseArch -> interaction -> OverArch, on pooled embeddings.

    Args:
        num_dense: dense input features (0: no DenseArch; only the ``cat`` interaction allows it).
        num_sparse_features: F, the number of pooled embeddings per sample.
        embedding_dim: D (the DenseArch's last layer must equal it).
        dense_arch_layer_sizes: DenseArch layers, e.g. ``[64, D]``.
        over_arch_layer_sizes: OverArch layers, the last one 1 (the logit), e.g. ``[64, 32, 1]``.
        interaction: ``"dot"``, ``"cat"`` or ``"dcn"``.
        dcn_num_layers, dcn_low_rank_dim: the ``LowRankCrossNet`` of ``"dcn"``.

    ``forward(dense: [B, num_dense], sparse: [B, F, D]) -> logits [B]``.

    Example::

        head = DLRMHead(13, 26, 16, [64, 16], [64, 1], interaction="dot")
        logits = head(torch.rand(8, 13), torch.rand(8, 26, 16))   # [8]
    """

    def __init__(
        self,
        num_dense: int,
        num_sparse_features: int,
        embedding_dim: int,
        dense_arch_layer_sizes: Sequence[int],
        over_arch_layer_sizes: Sequence[int],
        interaction: str = "cat",
        dcn_num_layers: int = 2,
        dcn_low_rank_dim: int = 8,
    ) -> None:
        super().__init__()
        if interaction not in INTERACTIONS:
            raise ValueError(f"interaction must be one of {INTERACTIONS}, got {interaction!r}")
        if num_sparse_features < 1:
            raise ValueError(f"num_sparse_features must be >= 1, got {num_sparse_features}")
        if len(over_arch_layer_sizes) < 2 or over_arch_layer_sizes[-1] != 1:
            raise ValueError(
                f"over_arch_layer_sizes needs >= 2 layers ending in 1, got {list(over_arch_layer_sizes)}"
            )
        F, D = num_sparse_features, embedding_dim
        self.num_dense = num_dense
        self.interaction_kind = interaction
        if num_dense > 0:
            if not dense_arch_layer_sizes or dense_arch_layer_sizes[-1] != D:
                raise ValueError(
                    f"dense_arch_layer_sizes must end with embedding_dim={D}, "
                    f"got {list(dense_arch_layer_sizes)}"
                )
            self.dense_arch: DenseArch | None = DenseArch(num_dense, list(dense_arch_layer_sizes))
        elif interaction != "cat":
            raise ValueError(f"interaction {interaction!r} needs dense features (num_dense > 0); use 'cat'")
        else:
            self.dense_arch = None
        dense_width = D if num_dense > 0 else 0
        if interaction == "dot":
            self.inter_arch: nn.Module = InteractionArch(num_sparse_features=F)
            over_in = D + F + F * (F - 1) // 2
        elif interaction == "cat":
            self.inter_arch = CatInteraction(F)
            over_in = F * D + dense_width
        else:
            crossnet = LowRankCrossNet(
                in_features=(F + 1) * D, num_layers=dcn_num_layers, low_rank=dcn_low_rank_dim
            )
            self.inter_arch = InteractionDCNArch(num_sparse_features=F, crossnet=crossnet)
            over_in = (F + 1) * D
        self.over_arch = OverArch(over_in, list(over_arch_layer_sizes))

    def forward(self, dense_features: torch.Tensor, sparse_features: torch.Tensor) -> torch.Tensor:
        embedded_dense = self.dense_arch(dense_features) if self.dense_arch is not None else None
        interacted = self.inter_arch(embedded_dense, sparse_features)
        return self.over_arch(interacted).squeeze(-1)
