"""TorchRec's own training path ("torchrec" mode): ``DistributedModelParallel``, planner-chosen sharding,
fused embedding optimizers, ``TrainPipelineSparseDist``.

- Uncompressed (``algorithm: none``, the baseline users would pick instead): an ``EmbeddingBagCollection``
  sharded by torchrec's ``EmbeddingBagCollectionSharder`` (fbgemm's fused TBE).
- TT (``algorithm`` ecorec / fbtt / elrec, the ``torchrec_tt`` system): a
  :class:`ecorec.models.TTEmbeddingBagCollection` (TT tables where ``TableSettings.compresses``, plain ones
  elsewhere) sharded by :class:`ecorec.parallel.torchrec_tt.TTEmbeddingBagCollectionSharder` and planned with
  the TT estimators of :mod:`ecorec.planner.torchrec_tt`; the TT tables' fused update (``tt_lr``) is a
  torchrec fused optimizer beside fbgemm's.

Same model (head), same initial weights (each uncompressed table from ``uncompressed_init(spec, seed)``, each
TT table the cores ``build_tables`` makes, copied into whatever shards the planner made), same samples and the
same gradients as a single process on the global batch, by TorchRec's own convention: each rank backpropagates
its local mean loss; DDP averages the head's gradients, and TorchRec's pooled all-to-all divides the embedding
gradients by the world size in backward (``torchrec.distributed.comm_ops`` gradient division, checked to be
on).

Traps handled (``torchrec_on_cpu.md``): DMP rewrites the ``optimizer_kwargs`` dict of
``apply_optimizer_in_backward`` in place (a fresh dict is passed); ``TrainPipelineSparseDist.progress``
returns the model *output* (here ``(loss share, logits, labels)``) and reads up to two batches ahead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor
from torchrec.datasets.utils import Batch as TorchRecBatch
from torchrec.distributed.comm_ops import get_gradient_division
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
from torchrec.distributed.train_pipeline import TrainPipelineSparseDist
from torchrec.distributed.types import ModuleSharder, ShardingEnv
from torchrec.models.dlrm import SparseArch
from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.optim import RowWiseAdagrad
from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from torchrec.optim.optimizers import in_backward_optimizer_filter

from ecorec.models import (
    EmbeddingOptimizerSettings,
    TableSettings,
    TableSpec,
    TTEmbeddingBagCollection,
    TTEmbeddingBagConfig,
    build_tables,
    uncompressed_init,
)
from ecorec.parallel.comm import world_of
from ecorec.parallel.optim import make_dense_optimizer, set_embedding_learning_rates, set_learning_rate
from ecorec.parallel.torchrec_tt import ShardedTTEmbeddingBagCollection, TTEmbeddingBagCollectionSharder
from ecorec.parallel.types import BatchLike, DenseOptimizerSettings, InputLayout, ParallelMode, StepOutput
from ecorec.planner.cost_model import CostCalibration
from ecorec.planner.torchrec_tt import tt_enumerator
from ecorec.tt import TTOptimizerConfig

__all__ = ["TorchRecBaseline", "TorchRecTrainModel"]


class TorchRecTrainModel(nn.Module):
    """torchrec ``SparseArch`` (an ``EmbeddingBagCollection`` or a ``TTEmbeddingBagCollection``) + our head,
    returning the local mean loss.

    ``forward(batch: torchrec Batch) -> (loss, (loss, logits [b], labels [b]))``, ``loss`` the mean BCE over
    the rank's ``b`` samples.
    """

    def __init__(self, ebc: EmbeddingBagCollection | TTEmbeddingBagCollection, head: nn.Module) -> None:
        super().__init__()
        self.sparse_arch = SparseArch(ebc)
        self.head = head

    def forward(
        self, batch: TorchRecBatch
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        pooled = self.sparse_arch(batch.sparse_features)
        logits = self.head(batch.dense_features, pooled)
        labels = batch.labels.float()
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        return loss, (loss.detach(), logits.detach(), labels.detach())


def _fused_optimizer_class(kind: str) -> type[torch.optim.Optimizer]:
    return {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rowwise_adagrad": RowWiseAdagrad}[kind]


def _local_shards(value: Any) -> Any:
    """Replace every ``ShardedTensor`` in a (nested) state dict by ``[(offsets, tensor)]`` of its local
    shards."""
    if isinstance(value, ShardedTensor):
        return [(list(s.metadata.shard_offsets), s.tensor.detach().clone()) for s in value.local_shards()]
    if isinstance(value, dict):
        return {k: _local_shards(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_local_shards(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return value


def _restore_into(target: Any, saved: Any) -> Any:
    """Copy saved local shards/tensors into the live tensors of ``target`` (same structure); returns
    ``target``."""
    if isinstance(target, ShardedTensor):
        shards = {tuple(s.metadata.shard_offsets): s.tensor for s in target.local_shards()}
        for offsets, tensor in saved:
            shards[tuple(offsets)].copy_(tensor)
        return target
    if isinstance(target, dict):
        for key, value in target.items():
            if key in saved:
                restored = _restore_into(value, saved[key])
                if not isinstance(value, torch.Tensor | ShardedTensor | dict):
                    target[key] = restored
        return target
    if isinstance(target, torch.Tensor):
        target.copy_(saved)
        return target
    return saved


class TorchRecBaseline:
    """DMP + ``TrainPipelineSparseDist`` training (the ``torchrec`` mode), uncompressed or with TT tables.

    Args:
        specs: every table (one feature per table, named like it), in the global feature order.
        head: the model over ``[b, F, D]`` pooled embeddings.
        dense_optimizer, embedding_optimizer: optimizer settings (the embedding one is fused: fbgemm's for
            uncompressed tables, ``ecorec.tt``'s at ``tt_rate`` for TT tables).
        seed: run seed (table initialisation, as ``uncompressed_init`` / ``build_tables``).
        local_batch_size: b (for the planner's cost model).
        group, device: process group; device.
        table_settings: ``algorithm="none"`` (default): an uncompressed ``EmbeddingBagCollection``; a TT
            algorithm: a ``TTEmbeddingBagCollection`` whose tables ``table_settings.compresses`` are TT.
        calibration: the TT perf estimator's cost calibration (``None``: its nominal rates).
    """

    mode = ParallelMode.TORCHREC
    input_layout = InputLayout.LOCAL

    def __init__(
        self,
        specs: Sequence[TableSpec],
        head: nn.Module,
        dense_optimizer: DenseOptimizerSettings,
        embedding_optimizer: EmbeddingOptimizerSettings,
        seed: int,
        local_batch_size: int,
        group: dist.ProcessGroup | None = None,
        device: torch.device | str | None = None,
        table_settings: TableSettings | None = None,
        calibration: CostCalibration | None = None,
    ) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.group = group if group is not None else dist.group.WORLD
        self.rank, self.world_size = world_of(group)
        self.specs = list(specs)
        self.features = [s.name for s in self.specs]
        self.table_settings = (
            table_settings if table_settings is not None else TableSettings(algorithm="none")
        )
        if embedding_optimizer.update != "fused":
            raise ValueError("mode 'torchrec' fuses the embedding update: set update='fused'")
        if not get_gradient_division():
            raise RuntimeError(
                "torchrec gradient division is off (comm_ops.set_gradient_division(False)): the embedding "
                "gradients would be world_size times the global mean loss's"
            )
        self.tt_tables = [s.name for s in self.specs if self.table_settings.compresses(s)]
        collection = self._collection(embedding_optimizer)
        model = TorchRecTrainModel(collection, head)
        uncompressed = [
            p for name, p in model.sparse_arch.named_parameters() if name.split(".")[-1] == "weight"
        ]
        apply_optimizer_in_backward(
            _fused_optimizer_class(embedding_optimizer.kind),
            uncompressed,
            {"lr": embedding_optimizer.lr, "eps": embedding_optimizer.eps}
            if embedding_optimizer.kind != "sgd"
            else {"lr": embedding_optimizer.lr},
        )
        sharders: list[ModuleSharder[nn.Module]] = [
            EmbeddingBagCollectionSharder()  # type: ignore[list-item]
        ]
        topology = Topology(
            world_size=self.world_size,
            compute_device=self.device.type,
            local_world_size=min(self.world_size, torch.cuda.device_count() or self.world_size),
        )
        enumerator = None
        if isinstance(collection, TTEmbeddingBagCollection):
            sharders.insert(0, TTEmbeddingBagCollectionSharder())  # type: ignore[arg-type]
            enumerator = tt_enumerator(topology, local_batch_size, calibration=calibration)
        planner = EmbeddingShardingPlanner(
            topology=topology, batch_size=local_batch_size, enumerator=enumerator
        )
        self.sharding_plan = planner.collective_plan(model, sharders, self.group)
        self.model = DistributedModelParallel(
            module=model,
            device=self.device,
            plan=self.sharding_plan,
            sharders=sharders,
            env=ShardingEnv.from_process_group(self.group),
        )
        self._copy_initial_weights(seed)
        dense_params = dict(in_backward_optimizer_filter(self.model.named_parameters()))
        self.dense_optimizer = KeyedOptimizerWrapper(
            dense_params, lambda ps: make_dense_optimizer(ps, dense_optimizer)
        )
        self.optimizer = CombinedOptimizer([self.model.fused_optimizer, self.dense_optimizer])
        self.pipeline = TrainPipelineSparseDist(
            self.model, self.optimizer, self.device, execute_all_batches=True
        )
        self._source: Iterator[BatchLike] | None = None
        self._converted: Iterator[TorchRecBatch] | None = None

    def _collection(
        self, embedding_optimizer: EmbeddingOptimizerSettings
    ) -> EmbeddingBagCollection | TTEmbeddingBagCollection:
        """The unsharded tables on ``meta``: an EBC, or a TT collection (TT configs for the compressed tables,
        with the shapes ``build_tables`` gives them, and their fused update at ``tt_rate``)."""
        settings = self.table_settings
        tt = set(self.tt_tables)
        configs: list[EmbeddingBagConfig] = []
        for s in self.specs:
            common = {
                "name": s.name,
                "embedding_dim": s.embedding_dim,
                "num_embeddings": s.num_embeddings,
                "feature_names": [s.name],
                "pooling": PoolingType.SUM,
            }
            if s.name in tt:
                configs.append(
                    TTEmbeddingBagConfig(
                        **common,  # type: ignore[arg-type]
                        tt_ranks=list(settings.tt_ranks),
                        algorithm=settings.algorithm,
                        micro_batches=settings.micro_batches,
                    )
                )
            else:
                configs.append(EmbeddingBagConfig(**common))  # type: ignore[arg-type]
        meta = torch.device("meta")
        if settings.algorithm == "none":
            return EmbeddingBagCollection(tables=configs, device=meta)
        return TTEmbeddingBagCollection(
            configs,
            device=meta,
            tt_min_rows=1,
            optimizer=TTOptimizerConfig(
                embedding_optimizer.kind, embedding_optimizer.tt_rate, embedding_optimizer.eps
            ),
        )

    @property
    def input_features(self) -> list[str]:
        return list(self.features)

    def sharding_types(self) -> dict[str, str]:
        """``{table: sharding type}`` the planner chose."""
        out = {}
        for module_plan in self.sharding_plan.plan.values():
            for name, ps in module_plan.items():  # type: ignore[union-attr]
                out[name] = ps.sharding_type
        return out

    def placement(self) -> dict[int, list[str]]:
        """``{rank: [tables]}``: the tables with a shard on each rank (every rank for data-parallel ones)."""
        out: dict[int, list[str]] = {r: [] for r in range(self.world_size)}
        for module_plan in self.sharding_plan.plan.values():
            for name, ps in module_plan.items():  # type: ignore[union-attr]
                for rank in sorted(set(ps.ranks or range(self.world_size))):
                    out[rank].append(name)
        return out

    def _embedding_weights(self) -> dict[str, Any]:
        """``{table: weight}`` (ShardedTensor or tensor) of the uncompressed tables, from the DMP state
        dict."""
        out = {}
        for key, value in self.model.state_dict().items():
            parts = key.split(".")
            if len(parts) >= 3 and parts[-1] == "weight" and parts[-3] == "embedding_bags":
                out[parts[-2]] = value
        return out

    def _sharded_tt(self) -> ShardedTTEmbeddingBagCollection | None:
        for module in self.model.modules():
            if isinstance(module, ShardedTTEmbeddingBagCollection):
                return module
        return None

    def local_tt_tables(self) -> dict[str, nn.Module]:
        """``{name: TTEmbeddingBag}`` of the TT tables this rank holds."""
        sharded = self._sharded_tt()
        return dict(sharded.tt_tables()) if sharded is not None else {}

    @torch.no_grad()
    def local_table_weights(self) -> dict[str, list[tuple[int, int, torch.Tensor]]]:
        """``{table: [(row offset, col offset, weight block)]}`` of the tables this rank holds (a TT table:
        its dense ``[N, D]`` reconstruction, ``full_weight()``)."""
        out: dict[str, list[tuple[int, int, torch.Tensor]]] = {}
        for name, value in self._embedding_weights().items():
            shards = value.local_shards() if isinstance(value, ShardedTensor) else None
            if shards is None:
                out[name] = [(0, 0, value.detach().clone())]
            elif shards:
                out[name] = [(*s.metadata.shard_offsets, s.tensor.detach().clone()) for s in shards]
        for name, table in self.local_tt_tables().items():
            out[name] = [(0, 0, table.full_weight().detach().clone())]  # type: ignore[operator]
        return out

    @torch.no_grad()
    def _copy_initial_weights(self, seed: int) -> None:
        by_name = {s.name: s for s in self.specs}
        weights = self._embedding_weights()
        local_tt = self.local_tt_tables()
        missing = [n for n in self.features if n not in weights and n not in self.tt_tables]
        if missing:
            raise RuntimeError(f"DMP state dict has no weight for tables {missing[:10]}")
        for name, value in weights.items():
            shards = value.local_shards() if isinstance(value, ShardedTensor) else None
            if shards is not None and not shards:
                continue
            full = uncompressed_init(by_name[name], seed)
            if shards is None:
                value.copy_(full)
                continue
            for shard in shards:
                r0, c0 = shard.metadata.shard_offsets
                n, d = shard.metadata.shard_sizes
                shard.tensor.copy_(full[r0 : r0 + n, c0 : c0 + d])
        if local_tt:
            reference = build_tables(self.specs, self.table_settings, seed, names=list(local_tt))
            for name, table in local_tt.items():
                sources = reference[name].cores
                for core, source in zip(table.cores, sources, strict=True):  # type: ignore[arg-type]
                    core.copy_(source)

    def _torchrec_batches(self, batches: Iterator[BatchLike]) -> Iterator[TorchRecBatch]:
        if batches is not self._source:
            self._source = batches
            self._converted = (
                TorchRecBatch(dense_features=b.dense, sparse_features=b.sparse, labels=b.labels)
                for b in batches
            )
        assert self._converted is not None
        return self._converted

    def train_step(self, batches: Iterator[BatchLike]) -> StepOutput:
        """One ``TrainPipelineSparseDist.progress`` (which may read up to two batches ahead of this one)."""
        self.model.train()
        loss, logits, labels = self.pipeline.progress(self._torchrec_batches(batches))
        total = loss.detach().clone()
        if self.world_size > 1:
            dist.all_reduce(total, group=self.group)
        return StepOutput(loss=float(total) / self.world_size, logits=logits, labels=labels)

    @torch.no_grad()
    def predict(self, batch: BatchLike) -> torch.Tensor:
        """Logits ``[b]`` of the local samples (the pipeline's model rewrite is detached for it)."""
        model = self.pipeline.detach()
        model.eval()
        tr = TorchRecBatch(dense_features=batch.dense, sparse_features=batch.sparse, labels=batch.labels)
        logits = model(tr.to(self.device))[1][1]
        model.train()
        return logits

    def set_learning_rates(self, dense_lr: float, embedding_lr: float, tt_lr: float | None = None) -> None:
        """Dense, uncompressed-table (fbgemm) and TT-table (``table_kind="tt"`` group) learning rates."""
        set_learning_rate(self.dense_optimizer, dense_lr)
        set_embedding_learning_rates(self.model.fused_optimizer, embedding_lr, tt_lr)

    def state_dict(self) -> dict[str, Any]:
        """Local shards of the model and of both optimizers (plain tensors, no process group needed to
        load)."""
        return {
            "model": _local_shards(self.model.state_dict()),
            "optimizer": _local_shards(self.optimizer.state_dict()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into a model built with the same sharding plan. The optimizers' lazily
        created state (dense optimizer, data-parallel tables) is materialised first (``init_state``), then the
        saved values are copied in place, as torchrec's ``KeyedOptimizer.load_state_dict`` expects."""
        self.optimizer.init_state()
        with torch.no_grad():
            _restore_into(self.model.state_dict(), state["model"])
            current = self.optimizer.state_dict()
            _restore_into(current, state["optimizer"])
        self.optimizer.load_state_dict(current)
