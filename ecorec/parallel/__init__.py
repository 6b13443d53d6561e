"""Distributed training modes over ``torch.distributed`` (gloo on CPU, NCCL on GPU), one strategy class each:

- ``dp``  ``DataParallelEmbeddings``: every table everywhere, gradients summed by all-reduce;
- ``mp``  ``ModelParallelEmbeddings``: my tables for the global batch, pooled embeddings by all-to-all;
- ``bwp`` ``BatchWisePipeline``: mp over micro-batches, all-to-all of m overlapping compute of m+1;
- ``twp`` ``TableWisePipeline``: EcoRec's table-wise pipeline, stages of tables overlapping their all-to-alls;
- ``torchrec`` ``TorchRecBaseline``: TorchRec DMP + ``TrainPipelineSparseDist`` over uncompressed tables, or
  over TT tables with ``torchrec_tt.TTEmbeddingBagCollectionSharder`` (the ``torchrec_tt`` system);
- ``hetgmp`` ``HetGMPEmbeddings``: HET-GMP's partitioned rows, mirrors and bounded staleness (own samples).

All modes put the same samples on the same ranks and produce the gradients of the mean loss over the global
batch, so their loss curves equal a single process's. ``build_distributed_model`` is the one entry point.
"""

from ecorec.parallel.base import EmbeddingStrategy
from ecorec.parallel.bwp import BatchWisePipeline, micro_batch_bags
from ecorec.parallel.comm import (
    CommMeter,
    CommSample,
    GradientAllReduce,
    PooledAllToAll,
    all_gather_equal,
    all_reduce_sum,
)
from ecorec.parallel.dp import DataParallelEmbeddings
from ecorec.parallel.env import ShardingEnv
from ecorec.parallel.factory import DistributedModel, build_distributed_model
from ecorec.parallel.hetgmp import HetGMPEmbeddings, HetGMPModel, HetGMPStats
from ecorec.parallel.hybrid import HybridParallelModel
from ecorec.parallel.mp import ModelParallelEmbeddings
from ecorec.parallel.optim import make_dense_optimizer, make_embedding_optimizer
from ecorec.parallel.torchrec_baseline import TorchRecBaseline
from ecorec.parallel.twp import TableWisePipeline, table_wise_stages
from ecorec.parallel.types import (
    BatchLike,
    DenseOptimizerSettings,
    HetGMPSettings,
    InputLayout,
    ParallelMode,
    StepOutput,
    TablePlacement,
    validate_placement,
)

__all__ = [
    "BatchLike",
    "BatchWisePipeline",
    "DataParallelEmbeddings",
    "DenseOptimizerSettings",
    "DistributedModel",
    "EmbeddingStrategy",
    "CommMeter",
    "CommSample",
    "GradientAllReduce",
    "HetGMPEmbeddings",
    "HetGMPModel",
    "HetGMPSettings",
    "HetGMPStats",
    "HybridParallelModel",
    "InputLayout",
    "ModelParallelEmbeddings",
    "ParallelMode",
    "PooledAllToAll",
    "ShardingEnv",
    "StepOutput",
    "TablePlacement",
    "TableWisePipeline",
    "TorchRecBaseline",
    "all_gather_equal",
    "all_reduce_sum",
    "build_distributed_model",
    "make_dense_optimizer",
    "make_embedding_optimizer",
    "micro_batch_bags",
    "table_wise_stages",
    "validate_placement",
]
