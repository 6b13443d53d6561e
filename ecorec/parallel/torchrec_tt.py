"""TT tables inside TorchRec: a ``ModuleSharder`` for :class:`ecorec.models.TTEmbeddingBagCollection`.

``DistributedModelParallel(model, plan=plan, sharders=[TTEmbeddingBagCollectionSharder(),
EmbeddingBagCollectionSharder()])`` shards a model whose ``TTEmbeddingBagCollection`` holds TT tables (large)
and plain tables (small) next to any ordinary ``EmbeddingBagCollection``.

How it plugs in (torchrec 1.9's own seams; nothing of torchrec is copied):

- :class:`ShardedTTEmbeddingBagCollection` *is* a torchrec ``ShardedEmbeddingBagCollection``: the same
  ``input_dist`` (``KJTAllToAll``), ``compute`` and ``output_dist`` (``PooledEmbeddingsAllToAll``, gradient
  division by the world size in backward), the same context and awaitables, so ``TrainPipelineSparseDist``
  pipelines it like an EBC. Its tables are sharded table-wise (the only sharding a TT table admits cleanly:
  every core is shared by all rows and all columns, so a row or column shard would need the whole TT).
- The plan gives every table of the collection ``table_wise`` / ``customized_kernel`` (torchrec's
  ``EmbeddingComputeKernel.CUSTOMIZED_KERNEL``, whose state-dict handling torchrec leaves to subclasses). The
  sharded module runs the TT tables in :class:`TTEmbeddingBagKernel` (``ecorec.tt.TTEmbeddingBag`` per table,
  fused TT update inside backward) and hands the collection's uncompressed tables to torchrec's own fused
  kernel (fbgemm's TBE, ``fused``), exactly as an EBC's.
- The TT update is a torchrec ``FusedOptimizer`` (:class:`TTFusedOptimizer`): ``dmp.fused_optimizer``,
  ``CombinedOptimizer`` and ``KeyedOptimizerWrapper``-based training loops see it, its learning rate follows
  its param group, and its state (Adagrad sums) is in its ``state_dict`` as ``ShardedTensor``s.
- ``dmp.state_dict()`` holds every TT core as a ``ShardedTensor`` (one shard, on the owning rank) under the
  unsharded module's names (``embedding_bags.<table>.cores.<t>``), so ``torch.distributed.checkpoint`` saves
  and loads sharded checkpoints of TT tables like those of an EBC.

Which optimizer a TT table gets: :func:`ecorec.models.embedding_collection.resolve_tt_optimizer`
(``apply_optimizer_in_backward`` on its cores, the sharder's ``fused_params``, or the collection's own
``optimizer``). The planner needs the TT estimators of :mod:`ecorec.planner.torchrec_tt`.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor, ShardedTensorMetadata
from torch.distributed._shard.sharded_tensor.metadata import TensorProperties
from torch.distributed._shard.sharding_spec import ShardMetadata
from torchrec.distributed.embedding_kernel import BaseEmbedding
from torchrec.distributed.embedding_lookup import GroupedPooledEmbeddingsLookup
from torchrec.distributed.embedding_sharding import EmbeddingSharding, EmbeddingShardingInfo
from torchrec.distributed.embedding_types import (
    BaseEmbeddingSharder,
    BaseGroupedFeatureProcessor,
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
)
from torchrec.distributed.embeddingbag import ShardedEmbeddingBagCollection
from torchrec.distributed.sharding.tw_sharding import TwPooledEmbeddingSharding
from torchrec.distributed.types import (
    ParameterSharding,
    QuantizedCommCodecs,
    ShardingEnv,
    ShardingType,
)
from torchrec.modules.embedding_configs import EmbeddingBagConfig, EmbeddingTableConfig
from torchrec.modules.embedding_modules import get_embedding_names_by_table
from torchrec.optim.fused import EmptyFusedOptimizer, FusedOptimizer, FusedOptimizerModule
from torchrec.optim.keyed import KeyedOptimizer
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.models import TTEmbeddingBagCollection
from ecorec.models.embedding_collection import resolve_tt_optimizer
from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig, TTShapes

__all__ = [
    "TT_KERNEL",
    "TT_SHARDING_TYPE",
    "TTEmbeddingBagCollectionSharder",
    "TTEmbeddingBagKernel",
    "TTFusedOptimizer",
    "TTGroupedPooledEmbeddingsLookup",
    "TTKernelSpec",
    "ShardedTTEmbeddingBagCollection",
    "TwTTPooledEmbeddingSharding",
]

#: The compute kernel and sharding type the planner gives every table of a TTEmbeddingBagCollection.
TT_KERNEL = EmbeddingComputeKernel.CUSTOMIZED_KERNEL.value
TT_SHARDING_TYPE = ShardingType.TABLE_WISE.value
# Key of a TT table's kernel spec in its torchrec fused params (they travel with the table into its group).
_SPEC_KEY = "ecorec_tt_kernel"
#: The param-group tag of the TT update (``ecorec.parallel.optim.set_embedding_learning_rates`` reads it).
TT_GROUP_TAG = {"table_kind": "tt"}


@dataclass(frozen=True)
class TTKernelSpec:
    """Everything a rank needs to build one TT table of the collection (hashable: torchrec groups tables by
    their fused params, so tables with equal specs share one :class:`TTEmbeddingBagKernel`).

    Attributes mirror :class:`ecorec.tt.TTEmbeddingBag`'s constructor; ``optimizer`` is the resolved fused
    update (``None``: plain core gradients for the caller's optimizer).
    """

    shapes: TTShapes
    mode: str
    algorithm: str
    micro_batches: int
    max_micro_uniques: int | None
    fbtt_chunk_size: int
    weight_init: str
    init_std: float | None
    deterministic: bool
    product_strategy: str
    backend: str
    validate_indices: bool
    dtype: torch.dtype
    optimizer: TTOptimizerConfig | None

    @classmethod
    def of(cls, table: TTEmbeddingBag, optimizer: TTOptimizerConfig | None) -> TTKernelSpec:
        """The spec of an unsharded table (any device, ``meta`` included) with the fused update
        ``optimizer``."""
        return cls(
            shapes=table.shapes,
            mode=table.mode,
            algorithm=table.algorithm,
            micro_batches=table.micro_batches,
            max_micro_uniques=table.max_micro_uniques,
            fbtt_chunk_size=table.fbtt_chunk_size,
            weight_init=table.weight_init,
            init_std=table.init_std,
            deterministic=table.deterministic,
            product_strategy=table.product_strategy,
            backend=table.backend,
            validate_indices=table.validate_indices,
            dtype=table.cores[0].dtype,
            optimizer=optimizer,
        )

    def build(self, device: torch.device | None) -> TTEmbeddingBag:
        """A freshly initialised ``TTEmbeddingBag`` (offsets with ``B + 1`` entries) on ``device``."""
        s = self.shapes
        return TTEmbeddingBag(
            s.num_embeddings,
            s.embedding_dim,
            list(s.ranks[1:-1]),
            tt_p_shapes=list(s.p_shapes),
            tt_q_shapes=list(s.q_shapes),
            enforce_embedding_dim=False,
            round_up_rows=True,
            mode=self.mode,
            include_last_offset=True,
            algorithm=self.algorithm,
            micro_batches=self.micro_batches,
            max_micro_uniques=self.max_micro_uniques,
            fbtt_chunk_size=self.fbtt_chunk_size,
            optimizer=self.optimizer,
            weight_init=self.weight_init,
            init_std=self.init_std,
            deterministic=self.deterministic,
            product_strategy=self.product_strategy,
            backend=self.backend,
            validate_indices=self.validate_indices,
            device=device,
            dtype=self.dtype,
        )

    def core_shapes(self) -> list[tuple[int, int]]:
        return self.shapes.core_shapes()

    def state_shapes(self) -> list[tuple[int, ...] | None]:
        """Per core, the shape of the fused update's state (``None``: none)."""
        if self.optimizer is None:
            return [None for _ in self.core_shapes()]
        return self.optimizer.state_shapes(self.core_shapes())


def _single_shard_tensor(
    local: torch.Tensor | None,
    shape: Sequence[int],
    dtype: torch.dtype,
    owner_placement: Any,
    pg: dist.ProcessGroup | None,
) -> ShardedTensor:
    """A ``ShardedTensor`` of ``shape`` held whole by one rank: ``local`` there (shared storage), no local
    shard elsewhere. ``owner_placement``: the table's placement in the plan (``rank:<r>/<device>``). No
    collective: every rank builds the same metadata."""
    meta = ShardMetadata(shard_offsets=[0] * len(shape), shard_sizes=list(shape), placement=owner_placement)
    global_meta = ShardedTensorMetadata(
        shards_metadata=[meta],
        size=torch.Size(shape),
        tensor_properties=TensorProperties(dtype=dtype, requires_grad=False),
    )
    shards = [Shard(local.detach(), meta)] if local is not None else []
    return ShardedTensor._init_from_local_shards_and_global_metadata(shards, global_meta, process_group=pg)


class TTFusedOptimizer(FusedOptimizer):
    """The TT tables' fused update as a torchrec ``FusedOptimizer`` (the update itself runs inside each TT
    backward, like fbgemm's TBE: ``step()`` only passes the param group's learning rate on).

    Params: ``"<table>.cores.<t>"`` -> a one-shard ``ShardedTensor`` of core ``t`` (the owning rank's only);
    state: for the Adagrad kinds ``"<table>.cores.<t>.momentum1"`` (torchrec's name of the Adagrad sum) -> the
    state buffer as a ``ShardedTensor``; one param group ``{"lr", "table_kind": "tt"}`` (``lr`` of the first
    table; tables of one optimizer are set together, as a TBE's are).
    """

    def __init__(
        self,
        tables: Mapping[str, TTEmbeddingBag],
        placements: Mapping[str, Any],
        pg: dist.ProcessGroup | None,
    ) -> None:
        self._tables = dict(tables)
        params: dict[str, ShardedTensor] = {}
        state: dict[Any, dict[str, Any]] = {}
        lrs = set()
        for name, table in self._tables.items():
            if table.optimizer is None:
                continue
            placement = placements[name]
            lrs.add(table.optimizer.lr)
            for t, (core, buffer) in enumerate(zip(table.cores, table.optimizer_states(), strict=True)):
                key = f"{name}.cores.{t}"
                param = _single_shard_tensor(core, core.shape, core.dtype, placement, pg)
                params[key] = param
                state[param] = {}
                if buffer is not None:
                    state[param][f"{key}.momentum1"] = _single_shard_tensor(
                        buffer, buffer.shape, buffer.dtype, placement, pg
                    )
        if len(lrs) > 1:
            raise ValueError(f"TT tables of one kernel need one learning rate, got {sorted(lrs)}")
        group = {"params": list(params.values()), "lr": lrs.pop() if lrs else 0.0, **TT_GROUP_TAG}
        super().__init__(params, state, [group])

    def _apply_learning_rate(self) -> None:
        lr = float(next(iter(self.param_groups))["lr"])
        for table in self._tables.values():
            if table.optimizer is not None and table.optimizer.lr != lr:
                table.set_learning_rate(lr)

    def zero_grad(self, set_to_none: bool = False) -> None:
        self._apply_learning_rate()

    def step(self, closure: Any = None) -> None:
        self._apply_learning_rate()


class TTEmbeddingBagKernel(BaseEmbedding, FusedOptimizerModule):
    """The ``customized_kernel`` of one group of TT tables on one rank: pooled embeddings of the group's
    features over every rank's samples (the global batch after the input all-to-all).

    ``forward(features: KJT with keys = the group's features, table by table, stride B) -> Tensor[B, sum_f
    D_f]`` in the group's embedding-name order; each table is looked up once over its features' ``F_t * B``
    bags (a fused update then runs once per batch, as in :class:`ecorec.models.TTEmbeddingBagCollection`).
    """

    def __init__(
        self, config: GroupedEmbeddingConfig, pg: dist.ProcessGroup | None, device: torch.device | None
    ):
        super().__init__()
        self._config = config
        self._device = device if device is not None else torch.device("cpu")
        self.tables = nn.ModuleDict()
        self._features_per_table: list[int] = []
        self._dims: list[int] = []
        placements = {}
        for table in config.embedding_tables:
            spec: TTKernelSpec = (table.fused_params or {})[_SPEC_KEY]
            self.tables[table.name] = spec.build(self._device)
            self._features_per_table.append(table.num_features())
            self._dims.append(table.embedding_dim)
            assert table.local_metadata is not None
            placements[table.name] = table.local_metadata.placement
        tables = dict(self.tables.items())
        self._optim = TTFusedOptimizer(tables, placements, pg)  # type: ignore[arg-type]

    @property
    def config(self) -> GroupedEmbeddingConfig:
        return self._config

    @property
    def fused_optimizer(self) -> KeyedOptimizer:
        return self._optim

    def forward(self, features: KeyedJaggedTensor) -> torch.Tensor:
        if features.variable_stride_per_key():
            raise ValueError("TT tables take a KeyedJaggedTensor with one batch size for every feature")
        batch = features.stride()
        values, lengths = features.values(), features.lengths()
        weights = features.weights_or_none()
        per_key = features.length_per_key()
        outputs: list[torch.Tensor] = []
        key, value_start = 0, 0
        for table, num_features, dim in zip(self.tables.values(), self._features_per_table, self._dims):
            count = sum(per_key[key : key + num_features])
            bag_lengths = lengths[key * batch : (key + num_features) * batch]
            offsets = torch.zeros(bag_lengths.numel() + 1, dtype=torch.long, device=bag_lengths.device)
            offsets[1:] = torch.cumsum(bag_lengths, 0)
            ids = values[value_start : value_start + count]
            w = weights[value_start : value_start + count] if weights is not None else None
            pooled = table(ids, offsets, per_sample_weights=w).float()  # [F_t * B, D]
            outputs.append(
                pooled.view(num_features, batch, dim).transpose(0, 1).reshape(batch, num_features * dim)
            )
            key += num_features
            value_start += count
        return torch.cat(outputs, dim=1) if outputs else values.new_empty(batch, 0, dtype=torch.float32)

    # The lookup's housekeeping (TBE caches): nothing to flush or purge for TT cores.
    def flush(self) -> None:
        pass

    def purge(self) -> None:
        pass

    def named_parameters_by_table(self) -> Iterator[tuple[str, Any]]:
        """TT tables are not TBE slices: the sharded collection registers their cores itself."""
        return iter(())


class TTGroupedPooledEmbeddingsLookup(GroupedPooledEmbeddingsLookup):
    """torchrec's pooled lookup with the TT kernel for ``customized_kernel`` groups (every other group keeps
    torchrec's kernels). TT kernels stay out of the lookup's state dict: the sharded collection publishes
    their cores as ``ShardedTensor``s itself."""

    def _create_embedding_kernel(
        self,
        config: GroupedEmbeddingConfig,
        device: torch.device | None,
        pg: dist.ProcessGroup | None,
        sharding_type: ShardingType | None,
        env: ShardingEnv | None,
    ) -> BaseEmbedding:
        if config.compute_kernel == EmbeddingComputeKernel.CUSTOMIZED_KERNEL:
            return TTEmbeddingBagKernel(config, pg, device)
        return super()._create_embedding_kernel(config, device, pg, sharding_type, env)

    def _torchrec_kernels(self) -> list[nn.Module]:
        return [m for m in self._emb_modules if not isinstance(m, TTEmbeddingBagKernel)]

    def tt_kernels(self) -> list[TTEmbeddingBagKernel]:
        return [m for m in self._emb_modules if isinstance(m, TTEmbeddingBagKernel)]

    def state_dict(  # type: ignore[override]
        self, destination: dict[str, Any] | None = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Any]:
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()  # type: ignore[attr-defined]
        for module in self._torchrec_kernels():
            module.state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        return destination

    def named_parameters_by_table(self) -> Iterator[tuple[str, Any]]:
        for module in self._torchrec_kernels():
            yield from module.named_parameters_by_table()  # type: ignore[operator]


class TwTTPooledEmbeddingSharding(TwPooledEmbeddingSharding):
    """Table-wise sharding (torchrec's input and output dists) whose lookup runs TT kernels."""

    def create_lookup(
        self,
        device: torch.device | None = None,
        fused_params: dict[str, Any] | None = None,
        feature_processor: BaseGroupedFeatureProcessor | None = None,
    ) -> TTGroupedPooledEmbeddingsLookup:
        return TTGroupedPooledEmbeddingsLookup(
            grouped_configs=self._grouped_embedding_configs,
            pg=self._pg,
            device=device if device is not None else self._device,
            feature_processor=feature_processor,
            env=self._env,
        )


class _TablesView:
    """The uncompressed tables of a TTEmbeddingBagCollection, seen as the EBC that torchrec's
    ``create_grouped_sharding_infos`` reads (configs, parameters, state dict, weightedness)."""

    def __init__(self, module: TTEmbeddingBagCollection, names: Sequence[str]) -> None:
        self._module = module
        self._names = set(names)

    def embedding_bag_configs(self) -> list[EmbeddingBagConfig]:
        return [c for c in self._module.embedding_bag_configs() if c.name in self._names]

    def is_weighted(self) -> bool:
        return self._module.is_weighted()

    def _mine(self, key: str) -> bool:
        parts = key.split(".")
        return len(parts) > 1 and parts[0] == "embedding_bags" and parts[1] in self._names

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((k, p) for k, p in self._module.named_parameters() if self._mine(k))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self._module.state_dict().items() if self._mine(k)}


class ShardedTTEmbeddingBagCollection(ShardedEmbeddingBagCollection):
    """Sharded :class:`ecorec.models.TTEmbeddingBagCollection` (see the module docstring).

    Args (as torchrec's ``ShardedEmbeddingBagCollection``):
        module: the unsharded collection (``meta``: tables are initialised here; else its weights are kept).
        table_name_to_parameter_sharding: the plan; TT tables must be ``table_wise`` / ``customized_kernel``;
            an uncompressed table planned ``customized_kernel`` runs torchrec's ``fused`` kernel (any other
            plan of it is passed to torchrec as is).
        env, fused_params, device, qcomm_codecs_registry, module_fqn: as torchrec's.

    State: ``state_dict()`` -> ``embedding_bags.<t>.weight`` (uncompressed, torchrec's) and
    ``embedding_bags.<t>.cores.<i>`` (TT, one-shard ``ShardedTensor``s); the TT update's state is in
    ``fused_optimizer.state_dict()``, as fbgemm's is.
    """

    def __init__(
        self,
        module: TTEmbeddingBagCollection,
        table_name_to_parameter_sharding: dict[str, ParameterSharding],
        env: ShardingEnv,
        fused_params: dict[str, Any] | None = None,
        device: torch.device | None = None,
        qcomm_codecs_registry: dict[str, QuantizedCommCodecs] | None = None,
        module_fqn: str | None = None,
    ) -> None:
        if not isinstance(module, TTEmbeddingBagCollection):
            raise TypeError(
                f"ShardedTTEmbeddingBagCollection shards a TTEmbeddingBagCollection, got {type(module)}"
            )
        tt_names = module.compressed_tables()
        plan = _checked_plan(module, table_name_to_parameter_sharding, tt_names)
        # set before torchrec's __init__, whose construction hooks (overridden below) read it
        self._tt_names: list[str] = tt_names
        super().__init__(
            module=module,  # type: ignore[arg-type]
            table_name_to_parameter_sharding=plan,
            env=env,
            fused_params=fused_params,
            device=device,
            qcomm_codecs_registry=qcomm_codecs_registry,
            module_fqn=module_fqn,
        )
        if module.device.type != "meta":
            self._copy_weights_from(module)

    # --- construction hooks of ShardedEmbeddingBagCollection ------------------------------------------------

    @classmethod
    def create_grouped_sharding_infos(  # type: ignore[override]
        cls,
        module: TTEmbeddingBagCollection,
        table_name_to_parameter_sharding: dict[str, ParameterSharding],
        prefix: str,
        fused_params: dict[str, Any] | None,
        suffix: str | None = "weight",
    ) -> dict[str, list[EmbeddingShardingInfo]]:
        """torchrec's infos for the uncompressed tables, and TT infos carrying each table's
        :class:`TTKernelSpec` in its fused params, merged in the collection's table order."""
        tt_names = set(module.compressed_tables())
        configs = module.embedding_bag_configs()
        plain = [c.name for c in configs if c.name not in tt_names]
        infos: dict[str, EmbeddingShardingInfo] = {}
        if plain:
            view = _TablesView(module, plain)
            by_type = super().create_grouped_sharding_infos(
                view,  # type: ignore[arg-type]
                {n: table_name_to_parameter_sharding[n] for n in plain},
                prefix,
                fused_params,
                suffix,
            )
            infos.update({info.embedding_config.name: info for group in by_type.values() for info in group})
        names_by_table = dict(zip((c.name for c in configs), get_embedding_names_by_table(configs)))
        for config in configs:
            if config.name not in tt_names:
                continue
            table = module.embedding_bags[config.name]
            assert isinstance(table, TTEmbeddingBag)
            optimizer = resolve_tt_optimizer(table, config.name, fused_params)
            infos[config.name] = EmbeddingShardingInfo(
                embedding_config=EmbeddingTableConfig(
                    num_embeddings=config.num_embeddings,
                    embedding_dim=config.embedding_dim,
                    name=config.name,
                    data_type=config.data_type,
                    feature_names=list(config.feature_names),
                    pooling=config.pooling,
                    is_weighted=module.is_weighted(),
                    has_feature_processor=False,
                    embedding_names=names_by_table[config.name],
                ),
                param_sharding=table_name_to_parameter_sharding[config.name],
                param=table.cores[0],
                fused_params={_SPEC_KEY: TTKernelSpec.of(table, optimizer)},
            )
        _check_embedding_names(configs, infos, names_by_table)
        out: dict[str, list[EmbeddingShardingInfo]] = {}
        for config in configs:
            info = infos[config.name]
            out.setdefault(info.param_sharding.sharding_type, []).append(info)
        return out

    @classmethod
    def create_embedding_bag_sharding(  # type: ignore[override]
        cls,
        sharding_infos: list[EmbeddingShardingInfo],
        env: ShardingEnv,
        device: torch.device | None = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: dict[str, QuantizedCommCodecs] | None = None,
    ) -> EmbeddingSharding:
        if sharding_infos[0].param_sharding.sharding_type == TT_SHARDING_TYPE:
            return TwTTPooledEmbeddingSharding(
                sharding_infos, env, device, qcomm_codecs_registry=qcomm_codecs_registry
            )
        return super().create_embedding_bag_sharding(
            sharding_infos, env, device, permute_embeddings, qcomm_codecs_registry
        )

    def _initialize_torch_state(self, skip_registering: bool = False) -> None:
        """torchrec's torch state for the uncompressed tables, then the TT cores: ``embedding_bags.<t>.cores``
        (the live cores on the owning rank, empty parameters elsewhere) and their one-shard
        ``ShardedTensor``s for ``state_dict``."""
        super()._initialize_torch_state(skip_registering)
        local = self.tt_tables()
        specs = self.tt_specs()
        pg = self._env.process_group
        self._tt_sharded_cores: dict[str, ShardedTensor] = {}
        for name in self._tt_names:
            spec_of_plan = self.module_sharding_plan[name].sharding_spec
            assert spec_of_plan is not None
            placement = spec_of_plan.shards[0].placement  # type: ignore[attr-defined]
            table = local.get(name)
            spec = specs[name]
            holder = self.embedding_bags[name]
            if table is not None:
                holder.cores = table.cores
            else:
                holder.cores = nn.ParameterList([nn.Parameter(torch.empty(0)) for _ in spec.core_shapes()])
            for t, shape in enumerate(spec.core_shapes()):
                core = holder.cores[t]
                if spec.optimizer is not None:
                    # out of the dense optimizers' reach
                    # (torchrec.optim.optimizers.in_backward_optimizer_filter)
                    core._in_backward_optimizers = [EmptyFusedOptimizer()]  # type: ignore[attr-defined]
                self._tt_sharded_cores[f"embedding_bags.{name}.cores.{t}"] = _single_shard_tensor(
                    core if table is not None else None, shape, spec.dtype, placement, pg
                )
        if not skip_registering:
            self._register_state_dict_hook(_tt_post_state_dict_hook)
            self._register_load_state_dict_pre_hook(_tt_pre_load_state_dict_hook, with_module=True)

    def reset_parameters(self) -> None:
        """Re-initialise every local table: TT tables by their ``weight_init``, the others by their
        ``init_fn`` (data-parallel ones broadcast from rank 0, as torchrec does)."""
        if self._device is not None and self._device.type == "meta":
            return
        for table in self.tt_tables().values():
            table.reset_parameters()
        tt = set(self._tt_names)
        for config in self._embedding_bag_configs:
            if config.name in tt:
                continue
            assert config.init_fn is not None
            param = self.embedding_bags[config.name].weight
            config.init_fn(param)
            if self.module_sharding_plan[config.name].sharding_type == ShardingType.DATA_PARALLEL.value:
                with torch.no_grad():
                    dist.broadcast(param.data, src=0, group=self._env.process_group)

    # --- TT tables ------------------------------------------------------------------------------------------

    def tt_kernels(self) -> list[TTEmbeddingBagKernel]:
        """This rank's TT kernels."""
        return [
            k
            for lookup in self._lookups
            if isinstance(lookup, TTGroupedPooledEmbeddingsLookup)
            for k in lookup.tt_kernels()
        ]

    def tt_tables(self) -> dict[str, TTEmbeddingBag]:
        """``{name: TTEmbeddingBag}`` of the TT tables this rank holds."""
        tables = [k.tables.items() for k in self.tt_kernels()]
        return {name: table for items in tables for name, table in items}  # type: ignore[misc]

    def tt_specs(self) -> dict[str, TTKernelSpec]:
        """``{name: TTKernelSpec}`` of every TT table of the collection (all ranks)."""
        out = {}
        for infos in self.sharding_type_to_sharding_infos.values():
            for info in infos:
                spec = (info.fused_params or {}).get(_SPEC_KEY)
                if spec is not None:
                    out[info.embedding_config.name] = spec
        return out

    @torch.no_grad()
    def _copy_weights_from(self, module: TTEmbeddingBagCollection) -> None:
        """Keep a materialised module's weights: copy its tables into this rank's shards."""
        for name, table in self.tt_tables().items():
            source = module.embedding_bags[name]
            for core, src in zip(table.cores, source.cores, strict=True):  # type: ignore[arg-type]
                core.copy_(src)
        tt = set(self._tt_names)
        for config in self._embedding_bag_configs:
            if config.name in tt:
                continue
            ps = self.module_sharding_plan[config.name]
            weight = self.embedding_bags[config.name].weight
            if weight.numel() == 0:
                continue
            full = module.embedding_bags[config.name].weight
            if ps.sharding_type in (ShardingType.TABLE_WISE.value, ShardingType.DATA_PARALLEL.value):
                weight.copy_(full)
            else:
                raise NotImplementedError(
                    f"table {config.name!r}: keeping the weights of a {ps.sharding_type} table is not "
                    f"supported; shard a meta-device module instead"
                )


def _tt_post_state_dict_hook(
    module: ShardedTTEmbeddingBagCollection,
    destination: dict[str, Any],
    prefix: str,
    _local_metadata: dict[str, Any],
) -> None:
    for key, sharded in module._tt_sharded_cores.items():
        destination[prefix + key] = sharded


def _tt_pre_load_state_dict_hook(
    module: ShardedTTEmbeddingBagCollection, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    """``ShardedTensor`` (or full tensor) of a TT core -> what this rank holds of it (the core, or an empty
    tensor on the other ranks)."""
    local = module.tt_tables()
    for key in module._tt_sharded_cores:
        full_key = prefix + key
        if full_key not in state_dict:
            continue
        value = state_dict[full_key]
        table = key.split(".")[1]
        if table not in local:
            state_dict[full_key] = torch.empty(0)
        elif isinstance(value, ShardedTensor):
            shards = value.local_shards()
            if len(shards) != 1:
                raise ValueError(f"{full_key}: expected this rank's one shard of the core, got {len(shards)}")
            state_dict[full_key] = shards[0].tensor


def _checked_plan(
    module: TTEmbeddingBagCollection, plan: Mapping[str, ParameterSharding], tt_names: Sequence[str]
) -> dict[str, ParameterSharding]:
    """The plan with ``customized_kernel`` uncompressed tables mapped to torchrec's ``fused`` kernel; a TT
    table planned otherwise than ``table_wise`` / ``customized_kernel`` raises ``ValueError`` naming it."""
    names = [c.name for c in module.embedding_bag_configs()]
    missing = [n for n in names if n not in plan]
    if missing:
        raise ValueError(f"the sharding plan has no entry for tables {missing}")
    out = {}
    tt = set(tt_names)
    for name in names:
        ps = plan[name]
        if name in tt:
            if ps.sharding_type != TT_SHARDING_TYPE or ps.compute_kernel != TT_KERNEL:
                raise ValueError(
                    f"TT table {name!r} is planned {ps.sharding_type}/{ps.compute_kernel}; TT tables are "
                    f"sharded {TT_SHARDING_TYPE}/{TT_KERNEL} (plan with TTEmbeddingBagCollectionSharder and "
                    f"the TT estimators of ecorec.planner.torchrec_tt)"
                )
            out[name] = ps
        elif ps.compute_kernel == TT_KERNEL:
            out[name] = dataclasses.replace(ps, compute_kernel=EmbeddingComputeKernel.FUSED.value)
        else:
            out[name] = ps
    return out


def _check_embedding_names(
    configs: Sequence[EmbeddingBagConfig],
    infos: Mapping[str, EmbeddingShardingInfo],
    names_by_table: Mapping[str, list[str]],
) -> None:
    """A feature shared by a TT and an uncompressed table would be named differently by torchrec's half (which
    sees only the uncompressed tables) than by the collection: refuse it, naming the feature."""
    for config in configs:
        got = infos[config.name].embedding_config.embedding_names
        if list(got) != list(names_by_table[config.name]):
            raise ValueError(
                f"table {config.name!r}: a feature of it is shared by a TT and an uncompressed table "
                f"({got} vs {names_by_table[config.name]}); give TT and uncompressed tables distinct features"
            )


class TTEmbeddingBagCollectionSharder(BaseEmbeddingSharder[TTEmbeddingBagCollection]):
    """TorchRec ``ModuleSharder`` of :class:`ecorec.models.TTEmbeddingBagCollection`.

    Every table is offered ``table_wise`` with the ``customized_kernel`` (TT tables: the TT lookup; the
    collection's uncompressed tables: torchrec's fused TBE). ``fused_params`` as torchrec's sharders (e.g.
    ``{"optimizer": EmbOptimType.EXACT_ADAGRAD, "learning_rate": 0.1}``; an ``apply_optimizer_in_backward`` on
    the tables' parameters takes precedence, per table). For the planner, a TT table's shardable parameter is
    a ``meta`` tensor of its logical ``[N, D]`` shape (what torchrec's shard sizes describe); its storage and
    cost come from :mod:`ecorec.planner.torchrec_tt`.

    Example:
        >>> sharders = [TTEmbeddingBagCollectionSharder(), EmbeddingBagCollectionSharder()]
        >>> planner = EmbeddingShardingPlanner(topology, batch_size=b, enumerator=tt_enumerator(topology, b))
        >>> model = DistributedModelParallel(model, plan=planner.collective_plan(model, sharders, pg),
        ...                                  sharders=sharders)
    """

    def shard(
        self,
        module: TTEmbeddingBagCollection,
        params: dict[str, ParameterSharding],
        env: ShardingEnv,
        device: torch.device | None = None,
        module_fqn: str | None = None,
    ) -> ShardedTTEmbeddingBagCollection:
        return ShardedTTEmbeddingBagCollection(
            module=module,
            table_name_to_parameter_sharding=params,
            env=env,
            fused_params=self.fused_params,
            device=device,
            qcomm_codecs_registry=self.qcomm_codecs_registry,
            module_fqn=module_fqn,
        )

    def shardable_parameters(self, module: TTEmbeddingBagCollection) -> dict[str, nn.Parameter]:
        """``{table: parameter}``: an uncompressed table's weight; for a TT table a ``meta`` parameter of its
        logical ``[N, D]`` shape and dtype (no memory), carrying the cores' in-backward optimizer
        attributes."""
        out: dict[str, nn.Parameter] = {}
        for name, table in module.embedding_bags.items():
            if isinstance(table, TTEmbeddingBag):
                core = table.cores[0]
                logical = nn.Parameter(
                    torch.empty(table.num_embeddings, table.embedding_dim, dtype=core.dtype, device="meta"),
                    requires_grad=core.requires_grad,
                )
                for attr in ("_optimizer_classes", "_optimizer_kwargs"):
                    if hasattr(core, attr):
                        setattr(logical, attr, getattr(core, attr))
                out[name] = logical
            else:
                out[name] = table.weight
        return out

    def sharding_types(self, compute_device_type: str) -> list[str]:
        return [TT_SHARDING_TYPE]

    def compute_kernels(self, sharding_type: str, compute_device_type: str) -> list[str]:
        return [TT_KERNEL] if sharding_type == TT_SHARDING_TYPE else []

    @property
    def module_type(self) -> type[TTEmbeddingBagCollection]:
        return TTEmbeddingBagCollection

    @property
    def sharded_module_type(self) -> type[ShardedTTEmbeddingBagCollection]:
        return ShardedTTEmbeddingBagCollection
