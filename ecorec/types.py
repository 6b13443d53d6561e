"""The closed vocabularies of the project, each defined once: algorithms, parallel modes, sharding methods,
index sources and kernel-benchmark variants.

Every enum is a :class:`enum.StrEnum` whose values are the spellings used in configs, plan and record files,
file paths and the CLIs: ``schemas/config.schema.yaml`` lists exactly these values (tested), argparse takes
its ``choices`` from here, and the factories, the planner, the plots and ``ecorec.workflow`` compare against
the members. The module imports only the standard library, so ``ecorec.tt``, ``ecorec.workflow`` (the
Snakefile's layer, which must not import torch) and everything above can use it.

One name for uncompressed tables: ``Algorithm.NONE`` (``"none"``). The older spelling ``"uncompressed"`` is
accepted as an alias by :meth:`Algorithm.parse` only (and so wherever a value is read from a file or the
command line); nothing writes it.
"""

from __future__ import annotations

import enum

__all__ = [
    "DEFAULT_TT_INIT",
    "INTERACTIONS",
    "MODEL_KINDS",
    "TT_INITS",
    "Algorithm",
    "BenchVariant",
    "IndexSource",
    "ParallelMode",
    "ShardingMethod",
]

#: Heads a run can train (``ecorec.models.heads``).
MODEL_KINDS = ("dlrm", "wide_deep", "dcn")
#: DLRM feature interactions (``ecorec.models.dlrm``).
INTERACTIONS = ("dot", "cat", "dcn")
#: TT core initialisations (``ecorec.models.tables``); the default: TT-Rec's sampled Gaussian.
TT_INITS = ("sampled_gaussian", "normal", "uniform")
DEFAULT_TT_INIT = "sampled_gaussian"


class Algorithm(enum.StrEnum):
    """How a table's embeddings are stored and looked up: one of the TT algorithms, or uncompressed."""

    ECOREC = "ecorec"
    """EcoRec: unique rows and prefix groups computed once, sorted-index micro-batching."""
    FBTT = "fbtt"
    """TT-Rec / FBTT-Embedding style: the TT chain per index occurrence."""
    ELREC = "elrec"
    """EL-Rec style: prefix reuse in forward, per-unique-row backward."""
    NONE = "none"
    """No compression: a plain ``nn.EmbeddingBag`` (or torchrec's ``EmbeddingBagCollection``)."""

    @classmethod
    def parse(cls, value: str | Algorithm) -> Algorithm:
        """The member for ``value``; ``"uncompressed"`` is the one alias (of ``none``). Raises ``ValueError``
        naming the value and the choices."""
        if isinstance(value, cls):
            return value
        text = str(value)
        if text == _UNCOMPRESSED_ALIAS:
            return cls.NONE
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"algorithm must be one of {[m.value for m in cls]}, got {value!r}") from None

    @classmethod
    def tt(cls) -> tuple[Algorithm, ...]:
        """The TT algorithms (every member but ``none``)."""
        return tuple(m for m in cls if m is not cls.NONE)

    @property
    def is_tt(self) -> bool:
        return self is not Algorithm.NONE


_UNCOMPRESSED_ALIAS = "uncompressed"


class ParallelMode(enum.StrEnum):
    """The distributed training modes. The value is the spelling used in configs, plans and the CLI."""

    DATA_PARALLEL = "dp"
    """Every rank holds every table and trains on its local batch; gradients are all-reduced."""
    MODEL_PARALLEL = "mp"
    """Table-wise model parallel: a rank computes its tables for the global batch; all-to-all to local
    batches."""
    BATCH_WISE_PIPELINE = "bwp"
    """``mp`` over micro-batches of the global batch, micro-batch m's all-to-all overlapping m+1's compute."""
    TABLE_WISE_PIPELINE = "twp"
    """EcoRec: ``mp`` over stages of tables, stage i's all-to-all overlapping stage i+1's compute."""
    TORCHREC = "torchrec"
    """TorchRec ``DistributedModelParallel`` over an uncompressed ``EmbeddingBagCollection`` (the
    baseline)."""
    HETGMP = "hetgmp"
    """HET-GMP: rows sharded by a graph partition's owner, hot-row mirrors, bounded staleness
    (``ecorec.parallel.hetgmp``)."""

    @classmethod
    def planned(cls) -> tuple[ParallelMode, ...]:
        """Modes whose runs place whole tables on ranks with an ``ecorec.planner`` sharding plan (dp
        replicates every table; torchrec plans for itself)."""
        return (cls.MODEL_PARALLEL, cls.BATCH_WISE_PIPELINE, cls.TABLE_WISE_PIPELINE)

    @property
    def needs_plan(self) -> bool:
        return self in ParallelMode.planned()


class ShardingMethod(enum.StrEnum):
    """Table placement methods of ``ecorec.planner.plan_sharding`` (see its module docstring)."""

    GREEDY = "greedy"
    RANDOM = "random"
    ROUND_ROBIN = "round_robin"
    SIZE_GREEDY = "size_greedy"
    DIM_GREEDY = "dim_greedy"
    LOOKUP_GREEDY = "lookup_greedy"
    SIZE_LOOKUP_GREEDY = "size_lookup_greedy"


class IndexSource(enum.StrEnum):
    """Where the kernel benchmark (``python -m ecorec.bench tt --indices``) takes its lookups from."""

    ZIPF = "zipf"
    """One generated table: bounded Zipf rows, hot rows scattered (torch alone)."""
    SYNTHETIC = "synthetic"
    """One table from ``ecorec.data``'s calibrated generator (numpy + pyarrow)."""
    DATASET = "dataset"
    """The tables of a Parquet dataset, each with its own rows (pyarrow)."""


class BenchVariant(enum.StrEnum):
    """What the kernel benchmark times (``--algorithms``); TT variants may carry a ``_m<M>`` micro-batch
    suffix in records (``ecorec_m4``)."""

    ECOREC_CUDA = "ecorec_cuda"
    ECOREC = "ecorec"
    FBTT = "fbtt"
    ELREC = "elrec"
    NN_EMBEDDING_BAG = "nn_embedding_bag"
    FBGEMM_TBE = "fbgemm_tbe"

    @property
    def algorithm(self) -> Algorithm:
        """The storage algorithm the variant runs (the uncompressed baselines: ``none``)."""
        if self is BenchVariant.ECOREC_CUDA:
            return Algorithm.ECOREC
        if self in (BenchVariant.NN_EMBEDDING_BAG, BenchVariant.FBGEMM_TBE):
            return Algorithm.NONE
        return Algorithm(self.value)

    @classmethod
    def tt(cls) -> tuple[BenchVariant, ...]:
        """The TT variants on the torch backend."""
        return (cls.ECOREC, cls.FBTT, cls.ELREC)

    @classmethod
    def baselines(cls) -> tuple[BenchVariant, ...]:
        return (cls.NN_EMBEDDING_BAG, cls.FBGEMM_TBE)
