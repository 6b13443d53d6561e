"""The single dispatch point from a ``ParallelMode`` to a trainable distributed model."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ecorec.models import (
    EmbeddingOptimizerSettings,
    TableSettings,
    TableSpec,
    build_tables,
    set_tt_learning_rate,
)
from ecorec.parallel.bwp import BatchWisePipeline
from ecorec.parallel.comm import CommMeter
from ecorec.parallel.dp import DataParallelEmbeddings
from ecorec.parallel.env import ShardingEnv
from ecorec.parallel.hetgmp import HetGMPEmbeddings, HetGMPModel
from ecorec.parallel.hybrid import HybridParallelModel
from ecorec.parallel.mp import ModelParallelEmbeddings
from ecorec.parallel.torchrec_baseline import TorchRecBaseline
from ecorec.parallel.twp import TableWisePipeline
from ecorec.parallel.types import DenseOptimizerSettings, HetGMPSettings, ParallelMode, TablePlacement

__all__ = ["DistributedModel", "build_distributed_model"]

_LOG = logging.getLogger(__name__)

DistributedModel = HybridParallelModel | TorchRecBaseline


def build_distributed_model(
    mode: ParallelMode | str,
    specs: Sequence[TableSpec],
    head: nn.Module,
    *,
    table_settings: TableSettings,
    dense_optimizer: DenseOptimizerSettings,
    embedding_optimizer: EmbeddingOptimizerSettings,
    seed: int,
    placement: TablePlacement | None = None,
    stages: Mapping[int, Sequence[Sequence[str]]] | None = None,
    num_micro_batches: int = 1,
    local_batch_size: int | None = None,
    group: dist.ProcessGroup | None = None,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    hetgmp: HetGMPSettings | None = None,
    comm_meter: CommMeter | None = None,
) -> DistributedModel:
    """Build this rank's part of the model for ``mode``.

    Args:
        mode: ``dp``, ``mp``, ``bwp``, ``twp``, ``torchrec`` or ``hetgmp``.
        specs: every table, in the global feature order (the order of the head's F pooled embeddings).
        head: the model over pooled embeddings, initialised identically on every rank.
        table_settings: TT or uncompressed per table (``torchrec``: ``algorithm="none"`` is TorchRec's EBC,
            a TT algorithm its DMP over a ``TTEmbeddingBagCollection``, ``ecorec.parallel.torchrec_tt``).
        dense_optimizer, embedding_optimizer: optimizer settings.
        seed: run seed (table initialisation).
        placement: ``{rank: [tables]}`` for mp, bwp and twp.
        stages: twp stages ``{rank: [[tables], ...]}`` (``twp.table_wise_stages``).
        num_micro_batches: bwp micro-batches.
        local_batch_size: b, for TorchRec's planner.
        group, device: process group; device.
        precision: ``fp32`` | ``bf16`` | ``fp16`` autocast of the head (``ecorec.parallel.precision``); the
            ``torchrec`` mode trains in fp32 only.
        hetgmp: owner, mirrors, bound and prefetch of the ``hetgmp`` mode (``HetGMPSettings``; required
            there, uncompressed tables only: ``table_settings.algorithm`` ``"none"``). Its model
            (``HetGMPModel``) trains each rank on its own samples; ``placement``, ``stages``,
            ``num_micro_batches`` and ``local_batch_size`` are not read.

        comm_meter: records the bytes each exchange sends and the time blocked waiting for it (dp, mp, bwp,
            twp, hetgmp; the ``torchrec`` mode's collectives are TorchRec's and not metered).

    Returns ``HybridParallelModel`` (dp, mp, bwp, twp; ``HetGMPModel``, a subclass, for hetgmp) or
    ``TorchRecBaseline`` (torchrec).
    """
    mode = ParallelMode(mode)
    features = [s.name for s in specs]
    D = {s.embedding_dim for s in specs}
    if len(D) != 1:
        raise ValueError(f"every table needs the same embedding_dim, got {sorted(D)}")
    embedding_dim = D.pop()
    if mode is ParallelMode.TORCHREC:
        if precision != "fp32":
            raise ValueError(f"mode 'torchrec' trains in fp32 only, got precision {precision!r}")
        if local_batch_size is None:
            raise ValueError("mode 'torchrec' needs local_batch_size for its planner")
        return TorchRecBaseline(
            specs,
            head,
            dense_optimizer,
            embedding_optimizer,
            seed,
            local_batch_size,
            group,
            device,
            table_settings=table_settings,
        )
    if mode is ParallelMode.HETGMP:
        if table_settings.algorithm != "none":
            raise ValueError("mode 'hetgmp' trains uncompressed rows: set the TT algorithm to 'none'")
        if hetgmp is None:
            raise ValueError("mode 'hetgmp' needs HetGMPSettings (owner, mirrors, bound, prefetch)")
        store = HetGMPEmbeddings(
            specs,
            ShardingEnv.from_group(group, device=device, comm_meter=comm_meter),
            hetgmp.owner,
            hetgmp.mirrors,
            embedding_optimizer,
            bound=hetgmp.bound,
            seed=seed,
            prefetch=hetgmp.prefetch,
        )
        return HetGMPModel(
            head, store, dense_optimizer, embedding_optimizer, group=group, device=device, precision=precision
        )
    if mode is ParallelMode.BATCH_WISE_PIPELINE and embedding_optimizer.update == "fused":
        _LOG.info(
            "bwp applies the embedding update once per batch, after every micro-batch's backward: "
            "TT tables keep plain gradients and a torch %s optimizer applies the same rule",
            embedding_optimizer.kind,
        )
        embedding_optimizer = dataclasses.replace(embedding_optimizer, update="plain")
    env = ShardingEnv.from_group(group, device=device, placement=placement, comm_meter=comm_meter)
    if mode is ParallelMode.DATA_PARALLEL:
        names = features
    else:
        if placement is None:
            raise ValueError(f"mode {mode.value!r} needs a placement {{rank: [tables]}}")
        names = env.for_features(features).tables_of()
    tables = build_tables(
        specs, table_settings, seed, names=names, optimizer=embedding_optimizer, device=device
    )
    fused = [
        n
        for n in names
        if embedding_optimizer.update == "fused" and table_settings.compresses(_spec(specs, n))
    ]
    common = {"features": features, "embedding_dim": embedding_dim}
    strategy: DataParallelEmbeddings | ModelParallelEmbeddings | BatchWisePipeline
    if mode is ParallelMode.DATA_PARALLEL:
        strategy = DataParallelEmbeddings(tables, env, **common, fused_tables=fused)
    elif mode is ParallelMode.MODEL_PARALLEL:
        strategy = ModelParallelEmbeddings(tables, env, **common, fused_tables=fused)
    elif mode is ParallelMode.TABLE_WISE_PIPELINE:
        if stages is None:
            raise ValueError("mode 'twp' needs stages {rank: [[tables], ...]}")
        strategy = TableWisePipeline(tables, env, **common, stages=stages, fused_tables=fused)
    else:
        strategy = BatchWisePipeline(tables, env, **common, num_micro_batches=num_micro_batches)
    return HybridParallelModel(
        head,
        strategy,
        dense_optimizer,
        embedding_optimizer,
        set_fused_learning_rate=set_tt_learning_rate,
        group=group,
        device=device,
        precision=precision,
    )


def _spec(specs: Sequence[TableSpec], name: str) -> TableSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(name)
