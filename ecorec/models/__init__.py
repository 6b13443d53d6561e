"""Recommendation models: heads (DLRM from torchrec's archs, Wide&Deep and DCN as in HET-GMP) and per-table
embedding modules (TT or uncompressed) with placement-independent initialisation.

``TTEmbeddingBagCollection`` (``ecorec.models.embedding_collection``) is the torchrec
``EmbeddingBagCollectionInterface`` over TT tables; the distributed modes use the per-table modules of
``build_tables`` directly, because each rank runs its own subset of tables, in stages.
"""

from ecorec.models.dcn import DCNHead
from ecorec.models.dlrm import INTERACTIONS, CatInteraction, DLRMHead
from ecorec.models.embedding_collection import TTEmbeddingBagCollection, TTEmbeddingBagConfig
from ecorec.models.heads import MODEL_KINDS, ModelSettings, build_head, head_parameters
from ecorec.models.rec_model import RecModel, pooled_embeddings
from ecorec.models.tables import (
    DEFAULT_TT_INIT,
    TT_ALGORITHMS,
    TT_INITS,
    EmbeddingOptimizerSettings,
    TableSettings,
    TableSpec,
    build_tables,
    derive_seed,
    is_tt_table,
    pool_table,
    set_tt_learning_rate,
    tt_compression_ratio,
    tt_num_parameters,
    uncompressed_init,
    uncompressed_init_std,
)
from ecorec.models.wide_deep import WideDeepHead

__all__ = [
    "DEFAULT_TT_INIT",
    "INTERACTIONS",
    "MODEL_KINDS",
    "TT_ALGORITHMS",
    "TT_INITS",
    "CatInteraction",
    "DCNHead",
    "DLRMHead",
    "EmbeddingOptimizerSettings",
    "ModelSettings",
    "RecModel",
    "TTEmbeddingBagCollection",
    "TTEmbeddingBagConfig",
    "TableSettings",
    "TableSpec",
    "WideDeepHead",
    "build_head",
    "head_parameters",
    "build_tables",
    "derive_seed",
    "is_tt_table",
    "pool_table",
    "pooled_embeddings",
    "set_tt_learning_rate",
    "tt_compression_ratio",
    "tt_num_parameters",
    "uncompressed_init",
    "uncompressed_init_std",
]
