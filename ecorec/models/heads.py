"""Which head a run trains (``ModelSettings``) and how to build it, with a seed-determined initialisation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ecorec.models.dcn import DCNHead
from ecorec.models.dlrm import INTERACTIONS, DLRMHead
from ecorec.models.tables import derive_seed
from ecorec.models.wide_deep import WideDeepHead
from ecorec.types import MODEL_KINDS

__all__ = ["MODEL_KINDS", "ModelSettings", "build_head", "head_parameters"]


@dataclass(frozen=True)
class ModelSettings:
    """The model over the pooled embeddings.

    Args:
        kind: ``"dlrm"`` (torchrec archs), ``"wide_deep"`` or ``"dcn"`` (HET-GMP's models).
        embedding_dim: D of every table.
        interaction: DLRM interaction, ``"dot"``, ``"cat"`` or ``"dcn"``.
        dense_arch: DLRM DenseArch layer sizes (last = ``embedding_dim``).
        over_arch: DLRM OverArch layer sizes (last = 1).
        dcn_num_layers, dcn_low_rank_dim: DLRM ``dcn`` interaction.
        deep_layers: Wide&Deep / DCN deep MLP sizes.
        cross_layers: DCN cross layers.
    """

    kind: str = "dlrm"
    embedding_dim: int = 16
    interaction: str = "cat"
    dense_arch: tuple[int, ...] = (64, 16)
    over_arch: tuple[int, ...] = (64, 32, 1)
    dcn_num_layers: int = 2
    dcn_low_rank_dim: int = 8
    deep_layers: tuple[int, ...] = (256, 256, 256)
    cross_layers: int = 1

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.interaction not in INTERACTIONS:
            raise ValueError(f"interaction must be one of {INTERACTIONS}, got {self.interaction!r}")
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")


def build_head(settings: ModelSettings, num_dense: int, num_sparse_features: int, seed: int) -> nn.Module:
    """The head for ``settings``; its initial weights depend only on ``seed`` (every rank builds the same)."""
    D = settings.embedding_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "dense"))
        if settings.kind == "dlrm":
            return DLRMHead(
                num_dense,
                num_sparse_features,
                D,
                settings.dense_arch,
                settings.over_arch,
                interaction=settings.interaction,
                dcn_num_layers=settings.dcn_num_layers,
                dcn_low_rank_dim=settings.dcn_low_rank_dim,
            )
        if settings.kind == "wide_deep":
            return WideDeepHead(num_dense, num_sparse_features, D, settings.deep_layers)
        return DCNHead(num_dense, num_sparse_features, D, settings.cross_layers, settings.deep_layers)


def head_parameters(settings: ModelSettings, num_dense: int, num_sparse_features: int) -> int:
    """Parameters of the head for ``num_sparse_features`` tables (built on the meta device: nothing is
    allocated), e.g. to scale the dense compute and all-reduce of a model with more tables."""
    with torch.device("meta"):
        head = build_head(settings, num_dense, num_sparse_features, seed=0)
    return sum(p.numel() for p in head.parameters())
