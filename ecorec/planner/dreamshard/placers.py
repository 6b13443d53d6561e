"""Every placer of a task's tables under one interface: :func:`place` ``(placer, task, context)``.

Placers (:class:`Placer`):

- DreamShard's baselines ``random``, ``size_greedy``, ``dim_greedy``, ``lookup_greedy``,
  ``size_lookup_greedy`` and EcoRec's ``greedy`` (FLOP-cost LPT), all through
  :func:`ecorec.planner.sharding.plan_sharding` (``random`` honours the cap here; DreamShard's does not);
- ``torchrec``: TorchRec's ``EmbeddingShardingPlanner`` restricted to table-wise sharding (its analytic perf
  and storage model, its proposers and greedy partitioner), on a CPU/CUDA topology with the cap as device
  memory;
- ``dreamshard``: the trained policy's argmax on the estimated MDP (:mod:`ecorec.planner.dreamshard.policy`);
- ``neuroshard``: NeuroShard's table-wise search with the pre-trained cost network: for each dim cap
  ``s`` of ``dim_caps`` (default 1.00, 1.05, ..., 1.50), tables sorted by predicted single-table compute
  (forward + backward heads) descending, each to the device whose fused shard **re-predicted with it** has
  the lowest compute, among devices with memory room and ``dim sum <= s * total dim / R``; the plan of the
  cap with the lowest simulated cost (max over devices of the three heads' sum) wins;
- ``neuroshard_cw``: NeuroShard's column-wise beam search around it: ``beam_width`` states, at most
  ``beam_steps`` steps; a step halves one table (dim/2 divisible by 4) among the ``beam_candidates``
  largest by bytes and by predicted compute, and reruns the table-wise search.

Every placer honours the task's per-device cap (:meth:`PlacerContext.task_cap`: ``cap_bytes``, or
``cap_ratio`` times the task's mean bytes per device) and is checked by
:func:`ecorec.planner.dreamshard.placement.check_placement`; one that cannot place a task raises
:class:`PlacementFailure` (reported by evaluations, never dropped).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ecorec.planner.dreamshard.cost_net import CostNet
from ecorec.planner.dreamshard.features import FeatureScaler, TableCatalog
from ecorec.planner.dreamshard.placement import (
    LinkModel,
    MemoryModel,
    Placement,
    PlacementFailure,
    Shard,
    check_placement,
    placement_from_devices,
)
from ecorec.planner.dreamshard.policy import CostNetSimulator, PlacementProblem, PolicyNet, place_with_policy
from ecorec.planner.dreamshard.tasks import Task, TaskTable
from ecorec.planner.sharding import PlanError, ShardingMethod, TableProfile, plan_sharding


class Placer(enum.StrEnum):
    RANDOM = "random"
    SIZE_GREEDY = "size_greedy"
    DIM_GREEDY = "dim_greedy"
    LOOKUP_GREEDY = "lookup_greedy"
    SIZE_LOOKUP_GREEDY = "size_lookup_greedy"
    GREEDY = "greedy"
    TORCHREC = "torchrec"
    DREAMSHARD = "dreamshard"
    NEUROSHARD = "neuroshard"
    NEUROSHARD_CW = "neuroshard_cw"


#: Placers that need no learned model.
BASELINES = (
    Placer.RANDOM,
    Placer.SIZE_GREEDY,
    Placer.DIM_GREEDY,
    Placer.LOOKUP_GREEDY,
    Placer.SIZE_LOOKUP_GREEDY,
    Placer.GREEDY,
    Placer.TORCHREC,
)
#: Heuristic greedy baselines ("the best greedy" is the best of these on the measured cost).
GREEDY_BASELINES = (
    Placer.SIZE_GREEDY,
    Placer.DIM_GREEDY,
    Placer.LOOKUP_GREEDY,
    Placer.SIZE_LOOKUP_GREEDY,
    Placer.GREEDY,
)
DEFAULT_DIM_CAPS = tuple(round(1.0 + 0.05 * k, 2) for k in range(11))


@dataclass
class PlacerContext:
    """What placers know: table statistics, memory, devices, the cap, and the learned models if any.

    Attributes:
        cap_bytes: per-device bytes of every task (``None``: no absolute cap).
        cap_ratio: per-device bytes of a task relative to its mean bytes per device (at least its largest
            table: a cap that binds but can be met; ``None``: none). With both, the smaller cap holds.
        batch_size: the global batch the costs are for (FLOP cost of ``greedy``, TorchRec's batch).
        link: the devices' links when known (the benchmark's ``comm="link"``): the learned placers' simulated
            communication is then the link's, the cost network predicting the compute.
        kind, tt_ranks, tt_min_rows, algorithm: the tables being placed (FLOP cost of ``greedy``).
    """

    catalog: TableCatalog
    memory: MemoryModel
    num_devices: int
    cap_bytes: float | None
    batch_size: int
    kind: str = "uncompressed"
    tt_ranks: Sequence[int] = (16, 16)
    tt_min_rows: int = 1000
    algorithm: str = "ecorec"
    scaler: FeatureScaler | None = None
    cost_net: CostNet | None = None
    policy: PolicyNet | None = None
    seed: int = 0
    dim_caps: Sequence[float] = DEFAULT_DIM_CAPS
    beam_width: int = 3
    beam_steps: int = 3
    beam_candidates: int = 10
    device_type: str = "cpu"
    cap_ratio: float | None = None
    link: LinkModel | None = None
    _features: dict[TaskTable, np.ndarray] = field(default_factory=dict, repr=False)

    def task_cap(self, tables: Sequence[TaskTable]) -> float | None:
        """The per-device byte cap of a task of ``tables`` (see ``cap_bytes`` and ``cap_ratio``)."""
        caps = [] if self.cap_bytes is None else [float(self.cap_bytes)]
        if self.cap_ratio is not None and tables:
            sizes = [self.memory.bytes(t) for t in tables]
            caps.append(max(self.cap_ratio * sum(sizes) / self.num_devices, float(max(sizes))))
        return min(caps) if caps else None

    def features(self, tables: Sequence[TaskTable]) -> torch.Tensor:
        """Normalised features ``[T, F]`` of ``tables`` (``global`` scaling is per table, so memoised)."""
        if self.scaler is None:
            raise ValueError("this placer needs a feature scaler (a trained cost network's)")
        if self.scaler.mode == "task":
            return torch.as_tensor(self.scaler.transform(self.catalog.raw(tables)))
        missing = [t for t in tables if t not in self._features]
        if missing:
            for t, row in zip(missing, self.scaler.transform(self.catalog.raw(missing)), strict=True):
                self._features[t] = row
        return torch.as_tensor(np.stack([self._features[t] for t in tables]))


def flop_cost(context: PlacerContext, table: TaskTable) -> float:
    """Forward + backward FLOPs of one table at ``context.batch_size`` (EcoRec's cost model): multiply-adds
    ``2 * nnz * dim`` for an uncompressed table, the TT GEMM FLOPs of ``algorithm`` for a TT table (from the
    statistics columns ``nnz``, ``unique``, ``groups``, ``level_counts``, ``tt_p_shapes``)."""
    catalog = context.catalog
    row = catalog._row(table.name)
    nnz = float(row["nnz"]) if "nnz" in row else catalog.pooling_factor(table.name) * context.batch_size
    rows = catalog.rows(table.name)
    if context.kind == "uncompressed" or rows < context.tt_min_rows:
        return 2.0 * nnz * table.dim
    from ecorec.tt import TTShapes
    from ecorec.tt.costs import tt_gemm_flops

    shapes = TTShapes.from_sizes(
        rows,
        table.dim,
        list(context.tt_ranks),
        p_shapes=list(row["tt_p_shapes"]),
        num_cores=len(context.tt_ranks) + 1,
    )
    levels = [round(c) for c in row["level_counts"]]
    forward, backward = tt_gemm_flops(
        shapes, round(nnz), round(row["unique"]), round(row["groups"]), context.algorithm, level_counts=levels
    )
    return float(forward + backward)


def _sharding_baseline(placer: Placer, task: Task, context: PlacerContext) -> Placement:
    profiles = [
        TableProfile(
            name=t.name,
            num_embeddings=context.catalog.rows(t.name),
            embedding_dim=t.dim,
            pooling_factor=context.catalog.pooling_factor(t.name),
            cost=flop_cost(context, t) if placer is Placer.GREEDY else 0.0,
            memory_bytes=context.memory.bytes(t),
        )
        for t in task.tables
    ]
    try:
        plan = plan_sharding(
            profiles,
            context.num_devices,
            ShardingMethod(placer.value),
            context.task_cap(task.tables),
            seed=context.seed,
        )
    except PlanError as err:
        raise PlacementFailure(f"{placer}: task {task.id}: {err}") from err
    where = plan.table_to_rank()
    return placement_from_devices(task.tables, [where[t.name] for t in task.tables], context.num_devices)


def _torchrec(task: Task, context: PlacerContext) -> Placement:
    import logging

    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
    from torchrec.distributed.planner.storage_reservations import FixedPercentageStorageReservation
    from torchrec.distributed.planner.types import PlannerError
    from torchrec.modules.embedding_configs import EmbeddingBagConfig
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    tables = [
        EmbeddingBagConfig(
            name=t.name,
            num_embeddings=context.catalog.rows(t.name),
            embedding_dim=t.dim,
            feature_names=[t.name],
        )
        for t in task.tables
    ]
    task_cap = context.task_cap(task.tables)
    cap = int(task_cap) if task_cap is not None else None
    on_gpu = context.device_type == "cuda"
    topology = Topology(
        world_size=context.num_devices,
        compute_device=context.device_type,
        hbm_cap=cap if on_gpu else None,
        ddr_cap=None if on_gpu else cap,
    )
    constraints = {
        t.name: ParameterConstraints(
            sharding_types=["table_wise"], pooling_factors=[context.catalog.pooling_factor(t.name)]
        )
        for t in task.tables
    }
    planner = EmbeddingShardingPlanner(
        topology=topology,
        batch_size=context.batch_size // context.num_devices,
        constraints=constraints,
        storage_reservation=FixedPercentageStorageReservation(0.0),
        debug=False,
    )
    module = EmbeddingBagCollection(tables=tables, device=torch.device("meta"))
    quiet = logging.getLogger("torchrec.distributed.planner")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        plan = planner.plan(module, [EmbeddingBagCollectionSharder()])
    except PlannerError as err:
        raise PlacementFailure(f"torchrec: task {task.id}: {str(err).splitlines()[0]}") from err
    finally:
        quiet.setLevel(level)
    shardings = next(iter(plan.plan.values()))
    devices = []
    for t in task.tables:
        ranks = shardings[t.name].ranks
        if shardings[t.name].sharding_type != "table_wise" or not ranks or len(ranks) != 1:
            raise PlacementFailure(f"torchrec: table {t.name!r} not placed table-wise: {shardings[t.name]}")
        devices.append(int(ranks[0]))
    return placement_from_devices(task.tables, devices, context.num_devices)


def make_problem(task_tables: Sequence[TaskTable], context: PlacerContext) -> PlacementProblem:
    """The estimated MDP of one task (DreamShard): features, bytes, the cap, and the placing order (descending
    predicted single-table cost)."""
    if context.cost_net is None:
        raise ValueError("dreamshard needs a trained cost network")
    features = context.features(task_tables)
    simulator = CostNetSimulator(
        context.cost_net, features, context.num_devices, [t.dim for t in task_tables], context.link
    )
    costs = simulator.table_costs().tolist()
    order = sorted(range(len(task_tables)), key=lambda i: (-costs[i], i))
    sizes = [context.memory.bytes(t) for t in task_tables]
    cap = context.task_cap(task_tables)
    return PlacementProblem(features, sizes, cap, context.num_devices, simulator, order)


def _dreamshard(task: Task, context: PlacerContext) -> Placement:
    if context.policy is None:
        raise ValueError("dreamshard needs a trained policy")
    devices = place_with_policy(context.policy, make_problem(task.tables, context))
    return placement_from_devices(task.tables, devices, context.num_devices)


class _ShardPredictor:
    """Kernel predictions of fused shards from summed encodings (memoised encodings; scaled units)."""

    def __init__(self, context: PlacerContext, shards: Sequence[TaskTable]) -> None:
        assert context.cost_net is not None
        self.net = context.cost_net
        with torch.no_grad():
            self.encodings = self.net.encode(context.features(shards))
            self.single = self.net.kernel_from_encoding(self.encodings)  # [S, 3]

    def kernels(self, sums: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net.kernel_from_encoding(sums)


def _table_wise_search(
    shards: Sequence[TaskTable], context: PlacerContext, cap_bytes: float | None
) -> tuple[list[int], float] | None:
    """NeuroShard's greedy grid over dim caps: the best (devices, simulated cost), ``None`` if no cap fits
    (``cap_bytes``: the task's per-device bytes)."""
    predictor = _ShardPredictor(context, shards)
    compute = (predictor.single[:, 0] + predictor.single[:, 2]).tolist()
    order = sorted(range(len(shards)), key=lambda i: (-compute[i], i))
    sizes = [context.memory.bytes(s) for s in shards]
    total_dim = sum(s.dim for s in shards)
    cap = math.inf if cap_bytes is None else cap_bytes
    empty = torch.zeros_like(predictor.encodings[0])
    best: tuple[list[int], float] | None = None
    for s in context.dim_caps:
        dim_cap = s * total_dim / context.num_devices
        sums = empty.unsqueeze(0).repeat(context.num_devices, 1)
        used, dims = [0] * context.num_devices, [0] * context.num_devices
        devices = [-1] * len(shards)
        feasible = True
        for i in order:
            legal = [
                r
                for r in range(context.num_devices)
                if used[r] + sizes[i] <= cap and dims[r] + shards[i].dim <= dim_cap + 1e-9
            ]
            if not legal:
                feasible = False
                break
            kernels = predictor.kernels(sums[legal] + predictor.encodings[i])
            fused = (kernels[:, 0] + kernels[:, 2]).tolist()
            r = legal[min(range(len(legal)), key=lambda k: (fused[k], legal[k]))]
            devices[i] = r
            sums[r] += predictor.encodings[i]
            used[r] += sizes[i]
            dims[r] += shards[i].dim
        if not feasible:
            continue
        # simulated cost: max over devices of the three heads (an empty device: the empty encoding's)
        counts = np.bincount(devices, minlength=context.num_devices)
        with torch.no_grad():
            empty_enc = context.cost_net.empty_encoding() if context.cost_net is not None else empty
        dev = sums + torch.as_tensor(counts == 0, dtype=sums.dtype).unsqueeze(1) * empty_enc
        kernels = predictor.kernels(dev)
        if context.link is not None and context.cost_net is not None:
            comm = torch.tensor(context.link.device_ms(dims)) / float(context.cost_net.scale)
            cost = float((kernels[:, 0] + kernels[:, 2] + comm).max())
        else:
            cost = float(kernels.sum(dim=1).max())
        if best is None or cost < best[1]:
            best = (devices, cost)
    return best


def _neuroshard(task: Task, context: PlacerContext) -> Placement:
    found = _table_wise_search(task.tables, context, context.task_cap(task.tables))
    if found is None:
        raise PlacementFailure(f"neuroshard: task {task.id}: no dim cap of {list(context.dim_caps)} fits")
    return placement_from_devices(task.tables, found[0], context.num_devices)


def _neuroshard_cw(task: Task, context: PlacerContext) -> Placement:
    """Column-wise beam search; a state is a tuple of shards ``(table, column, dim)``."""
    State = tuple[tuple[str, int, int], ...]
    cap = context.task_cap(task.tables)

    def evaluate(state: State) -> tuple[list[int], float] | None:
        return _table_wise_search([TaskTable(n, d) for n, _, d in state], context, cap)

    start: State = tuple((t.name, 0, t.dim) for t in task.tables)
    results: dict[State, tuple[list[int], float] | None] = {start: evaluate(start)}
    beam = [start]
    for _ in range(context.beam_steps):
        candidates: set[State] = set()
        for state in beam:
            shards = [TaskTable(n, d) for n, _, d in state]
            predictor = _ShardPredictor(context, shards)
            compute = (predictor.single[:, 0] + predictor.single[:, 2]).tolist()
            by_size = sorted(range(len(state)), key=lambda i: -context.memory.bytes(shards[i]))
            by_cost = sorted(range(len(state)), key=lambda i: -compute[i])
            picks = set(by_size[: context.beam_candidates]) | set(by_cost[: context.beam_candidates])
            for i in sorted(picks):
                name, column, dim = state[i]
                if dim % 2 or (dim // 2) % 4:
                    continue
                half = dim // 2
                candidates.add(
                    state[:i] + ((name, column, half), (name, column + half, half)) + state[i + 1 :]
                )
        for state in candidates - results.keys():
            results[state] = evaluate(state)
        ranked = sorted(
            (s for s, r in results.items() if r is not None),
            key=lambda s: results[s][1],  # type: ignore[index]
        )
        if not ranked or ranked[: context.beam_width] == beam:
            break
        beam = ranked[: context.beam_width]
    feasible = [(r[1], s) for s, r in results.items() if r is not None]
    if not feasible:
        raise PlacementFailure(f"neuroshard_cw: task {task.id}: no column split fits the cap")
    _, state = min(feasible)
    devices = results[state][0]  # type: ignore[index]
    shards = tuple(Shard(n, d, r, c) for (n, c, d), r in zip(state, devices, strict=True))
    return Placement(context.num_devices, shards)


def place(placer: Placer | str, task: Task, context: PlacerContext) -> Placement:
    """Place ``task`` with ``placer``; the placement is checked (coverage, cap) before it is returned.

    Raises:
        PlacementFailure: the placer found no placement within the cap.
        ValueError: an unknown placer, or a learned placer without its models.
    """
    try:
        placer = Placer(placer)
    except ValueError as err:
        raise ValueError(f"unknown placer {placer!r}; choose one of {[p.value for p in Placer]}") from err
    if placer in (Placer.TORCHREC,):
        placement = _torchrec(task, context)
    elif placer is Placer.DREAMSHARD:
        placement = _dreamshard(task, context)
    elif placer is Placer.NEUROSHARD:
        placement = _neuroshard(task, context)
    elif placer is Placer.NEUROSHARD_CW:
        placement = _neuroshard_cw(task, context)
    else:
        placement = _sharding_baseline(placer, task, context)
    try:
        check_placement(task, placement, context.memory, context.task_cap(task.tables))
    except PlacementFailure as err:
        raise PlacementFailure(f"{placer}: {err}") from err
    return placement
