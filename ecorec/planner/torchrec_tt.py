"""TorchRec planner estimators for TT tables: ``EmbeddingShardingPlanner`` plans a model whose
:class:`ecorec.models.TTEmbeddingBagCollection` holds TT and uncompressed tables.

``EmbeddingShardingPlanner(topology, batch_size=b, enumerator=tt_enumerator(topology, batch_size=b))`` (with
the sharders ``[TTEmbeddingBagCollectionSharder(), EmbeddingBagCollectionSharder()]`` of
:mod:`ecorec.parallel.torchrec_tt`); :func:`tt_enumerator` is torchrec's ``EmbeddingEnumerator`` with the
estimators of :func:`tt_shard_estimators`. Each estimator handles the sharding options of TT tables itself and
gives every other option to torchrec's own estimator (an uncompressed table of a TT collection is estimated as
the ``fused`` table it runs as):

- :class:`TTEmbeddingStorageEstimator`: a TT table costs exactly its cores' bytes plus its fused update's
  state (``ecorec.planner.cost_model.tt_table_memory``: Adagrad one value per core entry, row-wise Adagrad
  one per core row, SGD none), in the memory of the compute device (HBM on GPUs, DDR on CPUs). Unlike
  torchrec's estimate of an uncompressed table, no input/output buffers are added: they are the same
  ``[b, D]`` blocks an uncompressed table of the same shape has, and small beside its table.
- :class:`TTEmbeddingPerfEstimator`: compute from this project's cost model
  (:func:`ecorec.planner.cost_model.estimate_table_cost`: the TT GEMM FLOPs of the table's algorithm at the
  global batch, table-wise), in seconds through a :class:`~ecorec.planner.cost_model.CostCalibration` when
  given (``t = a * flops + b``, split forward/backward by their FLOPs), else at a nominal rate
  (:data:`DEFAULT_TT_RATES`); communication exactly as torchrec's estimator models a table-wise table of the
  same ``[N, D]`` shape (the pooled all-to-all and the input dist do not depend on how the table is stored).
  Lookup statistics: measured
  rows of ``ecorec.stats`` at the global batch when given, else ids drawn uniformly (an upper bound on the
  distinct rows and prefixes a skewed workload has).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from torchrec.distributed.embedding_types import EmbeddingComputeKernel
from torchrec.distributed.planner.enumerators import EmbeddingEnumerator
from torchrec.distributed.planner.shard_estimators import EmbeddingPerfEstimator, EmbeddingStorageEstimator
from torchrec.distributed.planner.types import (
    ParameterConstraints,
    Perf,
    Shard,
    SharderDataMap,
    ShardEstimator,
    ShardingOption,
    Storage,
    Topology,
)

from ecorec.models import TTEmbeddingBagCollection
from ecorec.models.embedding_collection import resolve_tt_optimizer
from ecorec.planner.cost_model import CostCalibration, TableCost, estimate_table_cost, tt_table_memory
from ecorec.tt import TTEmbeddingBag, TTShapes
from ecorec.types import Algorithm

__all__ = [
    "DEFAULT_TT_RATES",
    "TTEmbeddingPerfEstimator",
    "TTEmbeddingStorageEstimator",
    "tt_enumerator",
    "tt_option_table",
    "tt_shard_estimators",
    "uniform_lookup_stats",
]

#: Nominal ``(FLOP/s, seconds per lookup)`` of TT GEMMs when no calibration is given, the
#: ``t = a * flops + b`` of :class:`CostCalibration` with ``a = 1 / rate``: orders of magnitude of this
#: project's torch kernels (a few GFLOP/s and about half a millisecond of per-call work, forward and
#: backward, on one CPU core; a GPU's small batched GEMMs at about 1 TFLOP/s and tens of microseconds of
#: launches). Calibrate for real plans.
DEFAULT_TT_RATES = {"cpu": (5.0e9, 5.0e-4), "cuda": (1.0e12, 5.0e-5)}
_FUSED = EmbeddingComputeKernel.FUSED.value


def tt_option_table(option: ShardingOption) -> TTEmbeddingBag | None:
    """The TT table a sharding option places, or ``None`` for any other option."""
    module = option.module[1]
    if not isinstance(module, TTEmbeddingBagCollection):
        return None
    table = module.embedding_bags[option.name] if option.name in module.embedding_bags else None
    return table if isinstance(table, TTEmbeddingBag) else None


def _is_tt_collection(option: ShardingOption) -> bool:
    return isinstance(option.module[1], TTEmbeddingBagCollection)


def _fused_proxy(option: ShardingOption) -> ShardingOption:
    """A shallow copy of ``option`` with torchrec's ``fused`` kernel and fresh shards, for torchrec's own
    estimators (the TT collection's uncompressed tables run that kernel; a TT table's communication is that of
    a fused table of its logical shape)."""
    proxy = copy.copy(option)
    proxy.compute_kernel = _FUSED
    proxy.shards = [Shard(size=list(s.size), offset=list(s.offset)) for s in option.shards]
    return proxy


def uniform_lookup_stats(shapes: TTShapes, nnz: float) -> dict[str, Any]:
    """Expected lookup counts of ``nnz`` ids drawn uniformly from ``[0, N)``: ``{"nnz", "unique", "groups",
    "level_counts"}`` as ``ecorec.stats`` measures them (distinct level-``k`` prefixes ``n_k = M_k (1 - (1 -
    1/M_k)^nnz)`` with ``M_k = ceil(N / div_k)`` possible prefixes; ``unique = n_{d-1}``, ``groups =
    n_{d-2}``)."""
    counts = []
    for divisor in shapes.prefix_divisors():
        m = math.ceil(shapes.num_embeddings / divisor)
        counts.append(m * -math.expm1(nnz * math.log1p(-1.0 / m)) if m > 1 else min(1.0, nnz))
    return {"nnz": nnz, "unique": counts[-1], "groups": counts[-2], "level_counts": counts}


class TTEmbeddingStorageEstimator(ShardEstimator):
    """Storage of TT tables: cores + fused optimizer state (module docstring); torchrec's estimator for the
    rest.

    Args:
        topology, constraints: as torchrec's ``EmbeddingStorageEstimator`` (which estimates the other
        options).
    """

    def __init__(
        self, topology: Topology, constraints: dict[str, ParameterConstraints] | None = None
    ) -> None:
        self._topology = topology
        self._torchrec = EmbeddingStorageEstimator(topology=topology, constraints=constraints)

    def estimate(self, sharding_options: list[ShardingOption], sharder_data_map: SharderDataMap) -> None:
        others, proxies = [], []
        for option in sharding_options:
            table = tt_option_table(option)
            if table is not None:
                fused = sharder_data_map[option.module_type_key].fused_params
                optimizer = resolve_tt_optimizer(table, option.name, fused)
                params, state = tt_table_memory(
                    table.shapes,
                    None if optimizer is None else optimizer.kind.value,
                    table.cores[0].element_size(),
                )
                on_gpu = self._topology.compute_device in ("cuda", "mtia")
                for shard in option.shards:
                    shard.storage = Storage(
                        hbm=params + state if on_gpu else 0, ddr=0 if on_gpu else params + state
                    )
            elif _is_tt_collection(option):
                proxies.append((option, _fused_proxy(option)))
            else:
                others.append(option)
        _estimate_with(self._torchrec, others, proxies, sharder_data_map, storage=True)


class TTEmbeddingPerfEstimator(ShardEstimator):
    """Wall time of TT tables from this project's cost model (module docstring); torchrec's estimator for the
    rest and for every option's communication.

    Args:
        topology, constraints: as torchrec's ``EmbeddingPerfEstimator``.
        calibration: seconds per FLOP and per call of each algorithm on this device
            (``CostCalibration.load(path)``); default: :data:`DEFAULT_TT_RATES` of the topology's device.
        flops_per_second: overrides the default's FLOP rate (not allowed with a calibration).
        table_stats: ``{table: row of ecorec.stats}`` (``nnz``, ``unique``, ``groups``, ``level_counts``,
            ``batch_size``) measured at the global batch (local batch x world size); tables without a row get
            :func:`uniform_lookup_stats` over ``batch x world x pooling`` ids.
    """

    def __init__(
        self,
        topology: Topology,
        constraints: dict[str, ParameterConstraints] | None = None,
        *,
        calibration: CostCalibration | None = None,
        flops_per_second: float | None = None,
        table_stats: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._topology = topology
        self._torchrec = EmbeddingPerfEstimator(topology=topology, constraints=constraints)
        if calibration is None:
            device = topology.compute_device
            if device not in DEFAULT_TT_RATES:
                raise ValueError(
                    f"TTEmbeddingPerfEstimator: no default TT rate for compute device {device!r}; pass a "
                    f"calibration"
                )
            rate, per_call = DEFAULT_TT_RATES[device]
            rate = rate if flops_per_second is None else flops_per_second
            if not rate > 0:
                raise ValueError(f"TTEmbeddingPerfEstimator: flops_per_second must be > 0, got {rate}")
            fit = (1.0 / rate, per_call)
            calibration = CostCalibration(
                device=device,
                fits={a.value: fit for a in Algorithm.tt()},
                source="nominal (DEFAULT_TT_RATES)",
            )
        elif flops_per_second is not None:
            raise ValueError("TTEmbeddingPerfEstimator: give a calibration or flops_per_second, not both")
        self.calibration = calibration
        self._table_stats = dict(table_stats or {})

    def table_cost(self, option: ShardingOption, table: TTEmbeddingBag) -> TableCost:
        """The cost model's :class:`TableCost` of a TT option (table-wise: the global batch on one rank)."""
        world = self._topology.world_size
        global_batch = option.batch_size * world
        s = table.shapes
        row: dict[str, Any] = {
            "table": option.name,
            "num_embeddings": s.num_embeddings,
            "embedding_dim": s.embedding_dim,
            "tt_p_shapes": list(s.p_shapes),
            "tt_q_shapes": list(s.q_shapes),
            "tt_ranks": list(s.ranks),
            "batch_size": global_batch,
        }
        measured = self._table_stats.get(option.name)
        if measured is not None:
            row |= {k: measured[k] for k in ("nnz", "unique", "groups", "level_counts", "batch_size")}
        else:
            row |= uniform_lookup_stats(s, global_batch * float(sum(option.input_lengths)))
        return estimate_table_cost(row, table.algorithm, global_batch_size=global_batch, world_size=world)

    def _seconds(self, cost: TableCost) -> tuple[float, float]:
        total = self.calibration.seconds(cost)
        share = cost.forward_flops / cost.flops if cost.flops > 0 else 0.5
        return total * share, total * (1.0 - share)

    def estimate(self, sharding_options: list[ShardingOption], sharder_data_map: SharderDataMap) -> None:
        others, proxies, tt = [], [], []
        for option in sharding_options:
            table = tt_option_table(option)
            if table is not None:
                proxy = _fused_proxy(option)
                proxies.append((None, proxy))
                tt.append((option, table, proxy))
            elif _is_tt_collection(option):
                proxies.append((option, _fused_proxy(option)))
            else:
                others.append(option)
        _estimate_with(self._torchrec, others, proxies, sharder_data_map, storage=False)
        for option, table, proxy in tt:
            forward, backward = self._seconds(self.table_cost(option, table))
            for shard, comms in zip(option.shards, proxy.shards, strict=True):
                assert comms.perf is not None
                shard.perf = Perf(
                    fwd_compute=forward,
                    fwd_comms=comms.perf.fwd_comms,
                    bwd_compute=backward,
                    bwd_comms=comms.perf.bwd_comms,
                    input_dist_comms=comms.perf.input_dist_comms,
                )


def _estimate_with(
    estimator: ShardEstimator,
    others: list[ShardingOption],
    proxies: Sequence[tuple[ShardingOption | None, ShardingOption]],
    sharder_data_map: SharderDataMap,
    *,
    storage: bool,
) -> None:
    """Run torchrec's ``estimator`` on ``others`` and on the proxies; copy each proxy's estimate back into its
    option (``None``: the caller reads the proxy)."""
    if others:
        estimator.estimate(others, sharder_data_map)
    if not proxies:
        return
    estimator.estimate([p for _, p in proxies], sharder_data_map)
    for option, proxy in proxies:
        if option is None:
            continue
        for shard, estimated in zip(option.shards, proxy.shards, strict=True):
            if storage:
                shard.storage = estimated.storage
            else:
                shard.perf = estimated.perf


def tt_shard_estimators(
    topology: Topology,
    constraints: dict[str, ParameterConstraints] | None = None,
    *,
    calibration: CostCalibration | None = None,
    flops_per_second: float | None = None,
    table_stats: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ShardEstimator]:
    """``[TTEmbeddingPerfEstimator, TTEmbeddingStorageEstimator]`` for ``EmbeddingShardingPlanner(...,
    estimator=...)`` (the same constraints as the planner's)."""
    return [
        TTEmbeddingPerfEstimator(
            topology,
            constraints,
            calibration=calibration,
            flops_per_second=flops_per_second,
            table_stats=table_stats,
        ),
        TTEmbeddingStorageEstimator(topology, constraints),
    ]


def tt_enumerator(
    topology: Topology,
    batch_size: int,
    constraints: dict[str, ParameterConstraints] | None = None,
    **estimator_settings: Any,
) -> EmbeddingEnumerator:
    """torchrec's ``EmbeddingEnumerator`` with :func:`tt_shard_estimators` (``estimator_settings``: its
    ``calibration``, ``flops_per_second``, ``table_stats``), for ``EmbeddingShardingPlanner(enumerator=...)``;
    pass the planner the same ``topology``, ``batch_size`` and ``constraints``."""
    return EmbeddingEnumerator(
        topology=topology,
        batch_size=batch_size,
        constraints=constraints,
        estimator=tt_shard_estimators(topology, constraints, **estimator_settings),
    )
