"""TT tables on TorchRec's own terms (``ecorec.parallel.torchrec_tt``, ``ecorec.planner.torchrec_tt``).

One 2-rank gloo launch trains torchrec's ``DLRMTrain`` whose ``TTEmbeddingBagCollection`` holds TT tables and
uncompressed ones, the way a TorchRec user writes it (``apply_optimizer_in_backward``, the planner with the TT
estimators, ``DistributedModelParallel`` with ``[TTEmbeddingBagCollectionSharder(),
EmbeddingBagCollectionSharder()]``, ``CombinedOptimizer``), three times from the same weights: a plain loop
(saving a ``torch.distributed.checkpoint`` of ``dmp.state_dict()`` and the optimizer after step 3),
``TrainPipelineSparseDist``, and a fresh DMP loaded from the checkpoint. Oracles: one process training the
unsharded model on the global batch (losses and every table's weights), the plain loop (pipeline), the
uninterrupted run (resume). The planner tests need no process group.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from fbgemm_gpu.split_embedding_configs import EmbOptimType
from torch import nn
from torchrec.datasets.utils import Batch as TorchRecBatch
from torchrec.distributed.embedding_types import EmbeddingComputeKernel
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
from torchrec.distributed.planner.storage_reservations import FixedPercentageStorageReservation
from torchrec.distributed.planner.types import PlannerError
from torchrec.distributed.sharding_plan import construct_module_sharding_plan, table_wise
from torchrec.distributed.train_pipeline import TrainPipelineSparseDist
from torchrec.distributed.types import ShardingEnv, ShardingPlan
from torchrec.models.dlrm import DLRM, DLRMTrain
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.optim import RowWiseAdagrad
from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from torchrec.optim.optimizers import in_backward_optimizer_filter

from ecorec.models import TableSpec, TTEmbeddingBagCollection, TTEmbeddingBagConfig
from ecorec.models.embedding_collection import resolve_tt_optimizer
from ecorec.parallel.torchrec_tt import (
    TT_KERNEL,
    ShardedTTEmbeddingBagCollection,
    TTEmbeddingBagCollectionSharder,
)
from ecorec.planner.cost_model import estimate_table_cost
from ecorec.planner.torchrec_tt import TTEmbeddingPerfEstimator, tt_enumerator, uniform_lookup_stats
from ecorec.tt import TTOptimizerConfig
from tests.parallel.harness import make_global_batches, rank_batch, run_ranks

SEED = 3
WORLD = 2
STEPS = 5
RESUME_AT = 3
LOCAL_BATCH = 8
NUM_DENSE = 4
DIM = 8
TT_MIN_ROWS = 100
ROWS = {"t0": 400, "t1": 30, "t2": 250, "t3": 12, "t4": 180}
SPECS = [TableSpec(name, rows, DIM) for name, rows in ROWS.items()]
FEATURES = list(ROWS)
TT_TABLES = [n for n, rows in ROWS.items() if rows >= TT_MIN_ROWS]


def _table_configs() -> list[EmbeddingBagConfig]:
    """Large tables TT, small ones uncompressed: the only change a TorchRec user makes to the table list."""
    out: list[EmbeddingBagConfig] = []
    for name, rows in ROWS.items():
        common = {"name": name, "num_embeddings": rows, "embedding_dim": DIM, "feature_names": [name]}
        out.append(
            TTEmbeddingBagConfig(**common, tt_ranks=[3, 3])
            if name in TT_TABLES
            else EmbeddingBagConfig(**common)
        )
    return out


def _model(seed: int, device: str = "cpu") -> DLRMTrain:
    """torchrec's DLRM over a TTEmbeddingBagCollection, with the embedding optimizer applied in backward
    (torch's Adagrad; the TT sharder maps it onto the TT tables' fused update, fbgemm onto the others)."""
    torch.manual_seed(seed)
    tables = TTEmbeddingBagCollection(_table_configs(), device=device, tt_min_rows=TT_MIN_ROWS)
    model = DLRMTrain(DLRM(tables, NUM_DENSE, [16, DIM], [16, 1]))  # type: ignore[arg-type]
    apply_optimizer_in_backward(
        torch.optim.Adagrad, model.model.sparse_arch.parameters(), {"lr": 0.1, "eps": 1e-8}
    )
    return model


def _dense_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=0.01)


def _sharders():
    return [TTEmbeddingBagCollectionSharder(), EmbeddingBagCollectionSharder()]


def _sharded(seed: int) -> tuple[DistributedModelParallel, CombinedOptimizer, ShardingPlan]:
    model = _model(seed)
    topology = Topology(world_size=WORLD, compute_device="cpu", local_world_size=WORLD)
    planner = EmbeddingShardingPlanner(
        topology=topology, batch_size=LOCAL_BATCH, enumerator=tt_enumerator(topology, LOCAL_BATCH)
    )
    plan = planner.collective_plan(model, _sharders(), dist.group.WORLD)
    dmp = DistributedModelParallel(
        model,
        device=torch.device("cpu"),
        plan=plan,
        sharders=_sharders(),
        env=ShardingEnv.from_process_group(dist.group.WORLD),
    )
    dense = KeyedOptimizerWrapper(
        dict(in_backward_optimizer_filter(dmp.named_parameters())), _dense_optimizer
    )
    return dmp, CombinedOptimizer([dmp.fused_optimizer, dense]), plan


def _batches(rank: int, world: int) -> list[TorchRecBatch]:
    """Rank ``rank``'s slice of the global batches of ``WORLD * LOCAL_BATCH`` samples (``world=1``: all)."""
    out = []
    for gb in make_global_batches(SPECS, STEPS, LOCAL_BATCH * WORLD, NUM_DENSE, seed=SEED):
        b = rank_batch(gb, rank, world, "local", FEATURES)
        out.append(TorchRecBatch(dense_features=b.dense, sparse_features=b.sparse, labels=b.labels))
    return out


def _global_loss(local: torch.Tensor) -> float:
    total = local.detach().clone()
    dist.all_reduce(total)
    return float(total) / dist.get_world_size()


def _plain_step(dmp: nn.Module, optimizer: CombinedOptimizer, batch: TorchRecBatch) -> float:
    optimizer.zero_grad()
    loss, _ = dmp(batch)
    loss.backward()
    optimizer.step()
    return _global_loss(loss)


def _local_weights(dmp: DistributedModelParallel) -> dict[str, torch.Tensor]:
    """Dense ``[N, D]`` weights of the tables this rank holds (TT: reconstructed from the cores)."""
    sharded = next(m for m in dmp.modules() if isinstance(m, ShardedTTEmbeddingBagCollection))
    out = {name: table.full_weight().detach().clone() for name, table in sharded.tt_tables().items()}
    for key, value in dmp.state_dict().items():
        parts = key.split(".")
        if parts[-1] == "weight" and parts[-3] == "embedding_bags":
            for shard in value.local_shards():
                out[parts[-2]] = shard.tensor.detach().clone()
    return out


def _worker(rank: int, world: int, out_dir: str) -> None:
    batches = _batches(rank, world)
    checkpoint = f"{out_dir}/checkpoint"
    dmp, optimizer, plan = _sharded(SEED)
    plain = []
    for step, batch in enumerate(batches):
        if step == RESUME_AT:
            dcp.save(
                {"model": dmp.state_dict(), "optimizer": optimizer.state_dict()}, checkpoint_id=checkpoint
            )
        plain.append(_plain_step(dmp, optimizer, batch))
    weights = _local_weights(dmp)
    fused_keys = sorted(dmp.fused_optimizer.state_dict()["state"])

    dmp, optimizer, _ = _sharded(SEED)
    pipeline = TrainPipelineSparseDist(dmp, optimizer, torch.device("cpu"), execute_all_batches=True)
    stream = iter(batches)
    piped = [_global_loss(pipeline.progress(stream)[0]) for _ in range(STEPS)]

    dmp, optimizer, _ = _sharded(SEED + 1)  # other initial weights: only the checkpoint can make them equal
    optimizer.init_state()
    state = {"model": dmp.state_dict(), "optimizer": optimizer.state_dict()}
    dcp.load(state, checkpoint_id=checkpoint)
    dmp.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    resumed = [_plain_step(dmp, optimizer, batch) for batch in batches[RESUME_AT:]]
    torch.save(
        {
            "plain": plain,
            "pipeline": piped,
            "resumed": resumed,
            "weights": weights,
            "fused_keys": fused_keys,
            "plan": {
                n: (p.sharding_type, p.compute_kernel, p.ranks)
                for n, p in plan.plan["model.sparse_arch.embedding_bag_collection"].items()
            },
        },
        f"{out_dir}/rank-{rank}.pt",
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("torchrec_tt")
    run_ranks(_worker, WORLD, str(out))
    return [torch.load(out / f"rank-{r}.pt") for r in range(WORLD)]


def _single_process() -> tuple[list[float], dict[str, torch.Tensor]]:
    """The oracle: the unsharded model, the global batch, torch's Adagrad in backward on every table, Adam on
    the dense part."""
    model = _model(SEED)
    dense = _dense_optimizer([p for _, p in in_backward_optimizer_filter(model.named_parameters())])
    losses = []
    for batch in _batches(0, 1):
        dense.zero_grad()
        loss, _ = model(batch)
        loss.backward()
        dense.step()
        losses.append(loss.item())
    tables = model.model.sparse_arch.embedding_bag_collection.embedding_bags
    weights = {
        n: (t.full_weight() if n in TT_TABLES else t.weight).detach().clone() for n, t in tables.items()
    }
    return losses, weights


def test_dmp_trains_like_one_process(runs):
    losses, weights = _single_process()
    assert runs[0]["plain"] == runs[1]["plain"], "every rank reports the same global loss"
    assert losses[-1] != losses[0], "the oracle must actually train"
    # float32, 5 steps of Adam/Adagrad: 1e-5 relative (fbgemm's Adagrad vs torch's on the small tables).
    torch.testing.assert_close(torch.tensor(runs[0]["plain"]), torch.tensor(losses), rtol=1e-5, atol=0)
    held = [name for run in runs for name in run["weights"]]
    assert sorted(held) == sorted(FEATURES), "every table is held by exactly one rank"
    for run in runs:
        for name, weight in run["weights"].items():
            torch.testing.assert_close(weight, weights[name], rtol=1e-5, atol=1e-6)


def test_plan_is_table_wise_customized_kernel_for_every_table(runs):
    plan = runs[0]["plan"]
    assert plan == runs[1]["plan"]
    assert sorted(plan) == sorted(FEATURES)
    assert {(kind, kernel) for kind, kernel, _ in plan.values()} == {("table_wise", TT_KERNEL)}
    assert {tuple(ranks) for _, _, ranks in plan.values()} == {(0,), (1,)}, "the planner uses both ranks"


def test_tt_update_is_in_torchrec_fused_optimizer(runs):
    # dmp.fused_optimizer (what CombinedOptimizer wraps) holds the Adagrad state of every TT core of the rank
    keys = runs[0]["fused_keys"] + runs[1]["fused_keys"]
    tt_keys = [k for k in keys if ".cores." in k]
    want = [
        f"model.sparse_arch.embedding_bag_collection.embedding_bags.{n}.cores.{t}"
        for n in TT_TABLES
        for t in range(3)
    ]
    assert sorted(tt_keys) == sorted(want)


def test_pipeline_matches_plain_loop(runs):
    for run in runs:
        torch.testing.assert_close(
            torch.tensor(run["pipeline"]), torch.tensor(run["plain"]), rtol=1e-6, atol=0
        )


def test_sharded_checkpoint_resumes_exactly(runs):
    for run in runs:
        assert run["resumed"] == run["plain"][RESUME_AT:]


# ---- planner (no process group) ----------------------------------------------------------------------------


class _TwoCollections(nn.Module):
    """A TT collection (TT and plain tables) beside an ordinary EBC: both sharders plan it."""

    def __init__(self, rows: dict[str, int], optimizer: type[torch.optim.Optimizer]) -> None:
        super().__init__()
        configs = [
            TTEmbeddingBagConfig(
                name=n, num_embeddings=r, embedding_dim=16, feature_names=[n], tt_ranks=[8, 8]
            )
            for n, r in rows.items()
        ]
        self.tt = TTEmbeddingBagCollection(configs, device="meta", tt_min_rows=10_000)
        self.ebc = EmbeddingBagCollection(
            [EmbeddingBagConfig(name="u", num_embeddings=5000, embedding_dim=16, feature_names=["u"])],
            device=torch.device("meta"),
        )
        apply_optimizer_in_backward(optimizer, self.parameters(), {"lr": 0.1})


PLANNER_ROWS = {"a": 400_000, "b": 300_000, "c": 200_000, "d": 100_000, "e": 2_000}  # e: uncompressed


def _plan(model: nn.Module, cap: int | None) -> tuple[ShardingPlan, list]:
    """The plan (no storage reserved: the cap is what the tables may use) and the enumerated options."""
    topology = Topology(world_size=2, compute_device="cpu", local_world_size=2, ddr_cap=cap)
    enumerator = tt_enumerator(topology, 64)
    planner = EmbeddingShardingPlanner(
        topology=topology,
        batch_size=64,
        enumerator=enumerator,
        storage_reservation=FixedPercentageStorageReservation(0.0),
    )
    return planner.plan(model, _sharders()), enumerator.enumerate(model, _sharders())


OPTIMIZER_KIND = {torch.optim.Adagrad: "adagrad", RowWiseAdagrad: "rowwise_adagrad", torch.optim.SGD: "sgd"}


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_KIND))
def test_tt_storage_is_cores_plus_optimizer_state(optimizer):
    model = _TwoCollections(PLANNER_ROWS, optimizer)
    assert model.tt.compressed_tables() == ["a", "b", "c", "d"]
    _, options = _plan(model, cap=None)
    tt_options = [o for o in options if o.name in model.tt.compressed_tables()]
    assert sorted(o.name for o in tt_options) == ["a", "b", "c", "d"], "one option per TT table"
    for option in tt_options:
        table = model.tt.embedding_bags[option.name]
        cores = list(table.cores)
        core_bytes = sum(c.numel() * c.element_size() for c in cores)
        state = {  # ecorec.tt.optim: Adagrad one value per core entry, row-wise Adagrad one per core row
            torch.optim.Adagrad: core_bytes,
            RowWiseAdagrad: sum(c.shape[0] * c.element_size() for c in cores),
            torch.optim.SGD: 0,
        }[optimizer]
        assert [(s.storage.ddr, s.storage.hbm) for s in option.shards] == [(core_bytes + state, 0)]
        # the bytes the cost model gives the project's own planner
        shapes = table.shapes
        row = {
            "table": option.name,
            "num_embeddings": shapes.num_embeddings,
            "embedding_dim": shapes.embedding_dim,
            "tt_p_shapes": shapes.p_shapes,
            "tt_q_shapes": shapes.q_shapes,
            "tt_ranks": shapes.ranks,
            "batch_size": 128,
            **uniform_lookup_stats(shapes, 128.0),
        }
        cost = estimate_table_cost(
            row, "ecorec", global_batch_size=128, world_size=2, optimizer=OPTIMIZER_KIND[optimizer]
        )
        assert cost.memory_bytes == core_bytes + state


def _storage_by_rank(plan: ShardingPlan, options: list) -> tuple[dict[int, int], list[str]]:
    """Bytes the plan puts on each rank (from the estimates of the options it chose) and the tables placed."""
    used = {0: 0, 1: 0}
    placed = []
    for module_plan in plan.plan.values():
        for name, ps in module_plan.items():  # type: ignore[union-attr]
            placed.append(name)
            option = next(
                o
                for o in options
                if (o.name, o.sharding_type, o.compute_kernel) == (name, ps.sharding_type, ps.compute_kernel)
            )
            for rank, shard in zip(ps.ranks, option.shards, strict=True):
                used[rank] += shard.storage.ddr
    return used, placed


def test_planner_respects_memory_cap_and_places_every_table_once():
    model = _TwoCollections(PLANNER_ROWS, torch.optim.Adagrad)
    free_plan, options = _plan(model, cap=None)
    tw = {o.name: o.shards[0].storage.ddr for o in options if o.sharding_type == "table_wise"}
    # a cap under which the big uncompressed table "u" must sit alone on one rank and every other table on the
    # other (u + the smallest other table exceeds it; all the others fit)
    rest = sum(v for n, v in tw.items() if n != "u")
    cap = max(tw["u"], rest) + 1
    assert tw["u"] + min(v for n, v in tw.items() if n != "u") > cap
    free_used, _ = _storage_by_rank(free_plan, options)
    assert max(free_used.values()) > cap, "without the cap the planner packs the tables otherwise"
    plan, _ = _plan(model, cap=cap)
    used, placed = _storage_by_rank(plan, options)
    assert sorted(placed) == sorted([*PLANNER_ROWS, "u"]), "every table placed exactly once"
    assert max(used.values()) <= cap
    ranks = {name: tuple(ps.ranks) for mp in plan.plan.values() for name, ps in mp.items()}  # type: ignore[union-attr]
    assert len({ranks[n] for n in PLANNER_ROWS}) == 1 and ranks["u"] != ranks["a"]
    assert all(
        (ps.sharding_type, ps.compute_kernel) == ("table_wise", TT_KERNEL) for ps in plan.plan["tt"].values()
    )
    with pytest.raises(PlannerError, match="Unable to find a plan"):
        _plan(model, cap=tw["u"] - 1)


def test_perf_estimate_comes_from_the_cost_model():
    model = _TwoCollections(PLANNER_ROWS, torch.optim.Adagrad)
    _, options = _plan(model, cap=None)
    topology = Topology(world_size=2, compute_device="cpu", local_world_size=2)
    estimator = TTEmbeddingPerfEstimator(topology)
    u_tw = next(o for o in options if (o.name, o.sharding_type) == ("u", "table_wise"))
    for name in model.tt.compressed_tables():
        option = next(o for o in options if o.name == name)
        perf = option.shards[0].perf
        cost = estimator.table_cost(option, model.tt.embedding_bags[name])
        # compute: the cost model's FLOPs through the (here nominal) calibration, split by forward/backward
        # FLOPs
        assert perf.fwd_compute + perf.bwd_compute == pytest.approx(estimator.calibration.seconds(cost))
        assert perf.fwd_compute / perf.bwd_compute == pytest.approx(cost.forward_flops / cost.backward_flops)
        # communication: torchrec's table-wise model, the same as an uncompressed table of the same dim
        u = u_tw.shards[0].perf
        assert (perf.fwd_comms, perf.bwd_comms, perf.input_dist_comms) == (
            u.fwd_comms,
            u.bwd_comms,
            u.input_dist_comms,
        )
        assert perf.fwd_comms > 0
    bigger = estimator.table_cost(next(o for o in options if o.name == "a"), model.tt.embedding_bags["a"])
    smaller = estimator.table_cost(next(o for o in options if o.name == "d"), model.tt.embedding_bags["d"])
    assert bigger.flops > smaller.flops, "more distinct rows and prefixes cost more TT FLOPs"


# ---- optimizer resolution and plan checks (no process group) -----------------------------------------------


def test_tt_optimizer_follows_torchrec_sources():
    config = TTEmbeddingBagConfig(
        name="t", num_embeddings=1000, embedding_dim=8, feature_names=["t"], tt_ranks=[2, 2]
    )
    plain = TTEmbeddingBagCollection([config], tt_min_rows=1).embedding_bags["t"]
    assert resolve_tt_optimizer(plain, "t") is None
    assert resolve_tt_optimizer(
        plain, "t", {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.3}
    ) == TTOptimizerConfig("rowwise_adagrad", 0.3, 1e-8)
    apply_optimizer_in_backward(torch.optim.SGD, plain.parameters(), {"lr": 0.2})
    # the in-backward optimizer wins over the sharder's fused params, as for torchrec's own tables
    assert resolve_tt_optimizer(
        plain, "t", {"optimizer": EmbOptimType.EXACT_ADAGRAD, "learning_rate": 0.3}
    ) == TTOptimizerConfig("sgd", 0.2)
    own = TTEmbeddingBagCollection([config], tt_min_rows=1, optimizer=TTOptimizerConfig("adagrad", 0.1, 1e-8))
    table = own.embedding_bags["t"]
    assert resolve_tt_optimizer(table, "t") == TTOptimizerConfig("adagrad", 0.1, 1e-8)
    apply_optimizer_in_backward(torch.optim.SGD, table.parameters(), {"lr": 0.1})
    with pytest.raises(ValueError, match="TT table 't': its TTEmbeddingBagCollection optimizer"):
        resolve_tt_optimizer(table, "t")
    fresh = TTEmbeddingBagCollection([config], tt_min_rows=1).embedding_bags["t"]
    with pytest.raises(ValueError, match="TT table 't': fused optimizer .*adam.* has no TT update"):
        resolve_tt_optimizer(fresh, "t", {"optimizer": EmbOptimType.ADAM, "learning_rate": 0.1})
    apply_optimizer_in_backward(torch.optim.Adagrad, fresh.parameters(), {"lr": 0.1, "weight_decay": 0.01})
    with pytest.raises(ValueError, match="TT table 't': fused param weight_decay=0.01 has no TT counterpart"):
        resolve_tt_optimizer(fresh, "t")


def test_tt_table_planned_otherwise_is_refused_by_name():
    collection = TTEmbeddingBagCollection(_table_configs(), device="meta", tt_min_rows=TT_MIN_ROWS)
    sharder = TTEmbeddingBagCollectionSharder()
    per_table = {n: table_wise(rank=0, compute_kernel=TT_KERNEL) for n in FEATURES}
    per_table["t2"] = table_wise(rank=0, compute_kernel=EmbeddingComputeKernel.FUSED.value)
    plan = construct_module_sharding_plan(
        collection,
        per_table,
        sharder=sharder,
        local_size=2,
        world_size=2,
        device_type="cpu",  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError, match="TT table 't2' is planned table_wise/fused"):
        ShardedTTEmbeddingBagCollection(collection, plan, env=None)  # type: ignore[arg-type]
    del plan["t4"]
    with pytest.raises(ValueError, match=r"no entry for tables \['t4'\]"):
        ShardedTTEmbeddingBagCollection(collection, plan, env=None)  # type: ignore[arg-type]


# ---- the example, as a user runs it ------------------------------------------------------------------------


def test_example_runs_under_torchrun(repo_root, tmp_path):
    script = repo_root / "examples" / "torchrec_tt_dlrm.py"
    rows = ",".join(["20000"] * 4 + ["300"] * 22)
    args = [
        "--num_embeddings_per_feature",
        rows,
        "--batch_size",
        "32",
        "--num_batches",
        "3",
        "--eval_batches",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
    ]
    done = subprocess.run(
        [*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TT: 3 batches of 32 per rank" in done.stdout
    # the ranks together hold every table exactly once: 4 TT tables as their cores, 22 plain ones whole
    spec = importlib.util.spec_from_file_location("torchrec_tt_dlrm", script)
    example = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(example)  # type: ignore[union-attr]
    configs = example.table_configs(example.parse_args(args))
    collection = TTEmbeddingBagCollection(configs, device="meta", tt_min_rows=10_000)
    expected = sum(p.numel() * 4 for p in collection.parameters())
    held = [int(n) for n in re.findall(r"embedding tables (\d+) bytes", done.stdout)]
    assert len(held) == 2 and sum(held) == expected
    assert collection.compressed_tables() == [f"t_cat_{i}" for i in range(4)]
