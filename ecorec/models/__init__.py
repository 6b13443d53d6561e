"""Model parts built on torchrec: the TT embedding-bag collection (DLRM assembly comes with the trainer)."""

from ecorec.models.embedding_collection import TTEmbeddingBagCollection, TTEmbeddingBagConfig

__all__ = ["TTEmbeddingBagCollection", "TTEmbeddingBagConfig"]
