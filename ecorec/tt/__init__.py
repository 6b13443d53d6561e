"""The TT-EmbeddingBag: EcoRec's lookup (unique rows, prefix groups, sorted-index micro-batching) and the
TT-Rec (``fbtt``) and EL-Rec (``elrec``) baselines on the same storage. Imports nothing but torch (and numpy).

Modules: ``shapes`` (factorisation, :class:`TTShapes`), ``init``, ``inputs`` (validation), ``indexing`` (the
``ecorec`` lookup plan), ``primitives``, ``algorithms/{ecorec,fbtt,elrec}``, ``ops`` (the three lookup ops and
the backend dispatch), ``optim`` (fused updates), ``embedding_bag`` (:class:`TTEmbeddingBag`), ``reference``
(dense reconstruction), ``costs`` (counts and FLOPs), ``testing`` (random inputs).
"""

from ecorec.tt.costs import tt_gemm_flops, tt_level_counts, tt_lookup_counts
from ecorec.tt.embedding_bag import TTEmbeddingBag
from ecorec.tt.indexing import TTLookupPlan
from ecorec.tt.optim import TTOptimizerConfig, TTOptimizerKind
from ecorec.tt.reference import tt_full_weight
from ecorec.tt.shapes import TTShapes, suggested_tt_shapes

__all__ = [
    "TTEmbeddingBag",
    "TTLookupPlan",
    "TTOptimizerConfig",
    "TTOptimizerKind",
    "TTShapes",
    "suggested_tt_shapes",
    "tt_full_weight",
    "tt_gemm_flops",
    "tt_level_counts",
    "tt_lookup_counts",
]
