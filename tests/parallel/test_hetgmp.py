"""The ``hetgmp`` mode against a single process, its staleness bound, exactly-once updates, and its fetch
counts against the partition's prediction.

One 2-rank gloo launch trains every case for a few steps on tiny tables with unequal per-rank sample lists
(``rank_step_samples``); the parent computes the oracle: one ``RecModel`` on the concatenated global batch
(rank 0's samples, then rank 1's), mean BCE, the same optimizers.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.data.partitioned import rank_step_samples
from ecorec.models import (
    EmbeddingOptimizerSettings,
    ModelSettings,
    RecModel,
    TableSettings,
    TableSpec,
    build_head,
    build_tables,
)
from ecorec.parallel import (
    DenseOptimizerSettings,
    HetGMPEmbeddings,
    HetGMPSettings,
    ShardingEnv,
    build_distributed_model,
    make_dense_optimizer,
    make_embedding_optimizer,
)
from ecorec.planner.partition import count_remote_fetches, graph_from_lists
from tests.parallel.harness import run_ranks

SEED = 11
WORLD = 2
B = 4  # local batch
STEPS = 6
NUM_DENSE = 3
SPECS = [TableSpec("a", 23, 4), TableSpec("b", 17, 4), TableSpec("c", 30, 4)]
FEATURES = [s.name for s in SPECS]
OFFSETS = np.cumsum([0] + [s.num_embeddings for s in SPECS])
E = int(OFFSETS[-1])
N = 40
MODEL = ModelSettings(kind="wide_deep", embedding_dim=4, deep_layers=(8, 8))
DENSE_OPT = DenseOptimizerSettings(kind="sgd", lr=0.1)
SGD = EmbeddingOptimizerSettings("sgd", lr=0.5, update="plain")
ADAGRAD = EmbeddingOptimizerSettings("rowwise_adagrad", lr=0.2, update="plain")


def _data():
    """Per-sample id lists (skewed, so rows repeat), dense, labels, the data partition, owners, mirrors."""
    rng = np.random.default_rng(0)
    ids = {
        s.name: [
            (rng.random(rng.integers(0, 4)) ** 2 * s.num_embeddings).astype(int).tolist() for _ in range(N)
        ]
        for s in SPECS
    }
    dense = rng.random((N, NUM_DENSE)).astype(np.float32)
    labels = (rng.random(N) < 0.4).astype(np.float32)
    data = np.zeros(N, dtype=np.int64)
    data[rng.permutation(N)[:16]] = 1  # rank 0: 24 samples, rank 1: 16
    owner = rng.integers(0, WORLD, E)
    mirrors = []
    for r in range(WORLD):
        others = rng.permutation(np.flatnonzero(owner != r))
        mirrors.append(np.sort(others[: others.size // 2]))
    return ids, dense, labels, data, owner, mirrors


IDS, DENSE, LABELS, DATA, OWNER, MIRRORS = _data()


@dataclass
class Batch:
    sparse: KeyedJaggedTensor
    dense: torch.Tensor
    labels: torch.Tensor


def _batch(samples: np.ndarray) -> Batch:
    lengths, values = [], []
    for f in FEATURES:
        for s in samples:
            lengths.append(len(IDS[f][s]))
            values.extend(IDS[f][s])
    kjt = KeyedJaggedTensor.from_lengths_sync(
        keys=FEATURES, values=torch.tensor(values, dtype=torch.long), lengths=torch.tensor(lengths)
    )
    return Batch(kjt, torch.from_numpy(DENSE[samples]), torch.from_numpy(LABELS[samples]))


def _rank_samples(rank: int, step: int) -> np.ndarray:
    return rank_step_samples(np.flatnonzero(DATA == rank), B, step, rank=rank, seed=3, shuffle=True)


CASES = {
    "sync": (SGD, 0, False, False),
    "sync_mirrors_prefetch": (SGD, 0, True, True),
    "sync_adagrad_mirrors": (ADAGRAD, 0, True, False),
    "sync_adagrad_mirrors_prefetch": (ADAGRAD, 0, True, True),
    "bound1": (SGD, 1, True, False),
    "bound3_prefetch": (SGD, 3, True, True),
    "bound100_adagrad": (ADAGRAD, 100, True, False),
}


#: The case saved mid-run (bound 100: mirrors hold unpushed updates at the save) and resumed for EXTRA steps.
RESUME_CASE = "bound100_adagrad"
EXTRA = 3


@contextlib.contextmanager
def _no_collectives():
    """Any torch.distributed collective inside raises (so a collective state_dict fails instead of hanging
    when one rank saves alone)."""
    names = ("all_to_all_single", "all_reduce", "all_gather", "all_gather_object", "broadcast", "barrier")
    saved = {n: getattr(dist, n) for n in names}

    def refuse(*args, **kwargs):
        raise AssertionError("a collective inside state_dict()")

    try:
        for n in names:
            setattr(dist, n, refuse)
        yield
    finally:
        for n, fn in saved.items():
            setattr(dist, n, fn)


def _model(rank: int, key: str):
    opt, bound, use_mirrors, prefetch = CASES[key]
    mirrors = MIRRORS[rank] if use_mirrors else np.zeros(0, dtype=np.int64)
    return build_distributed_model(
        "hetgmp",
        SPECS,
        build_head(MODEL, NUM_DENSE, len(SPECS), SEED),
        table_settings=TableSettings(algorithm="none"),
        dense_optimizer=DENSE_OPT,
        embedding_optimizer=opt,
        seed=SEED,
        hetgmp=HetGMPSettings(OWNER, mirrors, bound, prefetch),
    )


def _resume_worker(rank: int, out_dir: str) -> None:
    """Train RESUME_CASE, save its state_dict with collectives forbidden, load it into a fresh model, and
    continue both for EXTRA steps on the same batches."""
    model = _model(rank, RESUME_CASE)
    for t in range(STEPS):
        model.train_step(iter([_batch(_rank_samples(rank, t))]))
    with _no_collectives():
        saved = copy.deepcopy(model.state_dict())
    pending = int(model.strategy.store.pending_count.sum())
    twin = _model(rank, RESUME_CASE)
    twin.load_state_dict(saved)
    out = {"pending_at_save": pending}
    for name, m in (("losses", model), ("twin_losses", twin)):
        out[name] = [
            m.train_step(iter([_batch(_rank_samples(rank, t))])).loss for t in range(STEPS, STEPS + EXTRA)
        ]
        m.strategy.flush()
        out[name.replace("losses", "weights")] = m.strategy.owned_rows()[1].clone()
    torch.save(out, f"{out_dir}/resume-{rank}.pt")


def _worker(rank: int, world_size: int, out_dir: str) -> None:
    _resume_worker(rank, out_dir)
    for key in CASES:
        model = _model(rank, key)
        stream = iter(_batch(_rank_samples(rank, t)) for t in range(STEPS))
        losses = [model.train_step(stream).loss for _ in range(STEPS)]
        strategy = model.strategy
        per_step = list(strategy.stats.per_step_fetched)
        strategy.flush()
        ids, weights = strategy.owned_rows()
        st = strategy.store
        torch.save(
            {
                "losses": losses,
                "ids": ids.clone(),
                "weights": weights.clone(),
                "stats": strategy.stats.as_dict(),
                "per_step": per_step,
                "created": strategy.created_grad.clone(),
                "applied": strategy.applied_grad.clone(),
                "created_count": strategy.created_count,
                "owned_versions": int(st.version[: st.n_own].sum()),
                "pending": int(st.pending_count.sum()),
            },
            f"{out_dir}/{key}-{rank}.pt",
        )


def _reference(opt: EmbeddingOptimizerSettings) -> tuple[list[float], torch.Tensor]:
    tables = build_tables(SPECS, TableSettings(algorithm="none"), SEED)
    model = RecModel(tables, build_head(MODEL, NUM_DENSE, len(SPECS), SEED))
    dense_opt = make_dense_optimizer(model.head.parameters(), DENSE_OPT)
    emb_opt = make_embedding_optimizer([p for t in tables.values() for p in t.parameters()], opt)
    losses = []
    for t in range(STEPS):
        batch = _batch(np.concatenate([_rank_samples(r, t) for r in range(WORLD)]))
        loss = F.binary_cross_entropy_with_logits(model(batch.dense, batch.sparse), batch.labels)
        dense_opt.zero_grad()
        emb_opt.zero_grad()
        loss.backward()
        dense_opt.step()
        emb_opt.step()
        losses.append(loss.item())
    return losses, torch.cat([tables[f].weight.detach() for f in FEATURES])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("hetgmp")
    run_ranks(_worker, WORLD, str(out))
    runs = {key: [torch.load(out / f"{key}-{r}.pt") for r in range(WORLD)] for key in CASES}
    return runs | {"resume": [torch.load(out / f"resume-{r}.pt") for r in range(WORLD)]}


def _assembled(per_rank) -> torch.Tensor:
    full = torch.full((E, 4), float("nan"))
    for r in per_rank:
        full[r["ids"]] = r["weights"]
    return full


@pytest.mark.parametrize("key", [k for k in CASES if CASES[k][1] == 0])
def test_bound0_equals_single_process(runs, key):
    ref_losses, ref_weights = _reference(CASES[key][0])
    per_rank = runs[key]
    for r in per_rank:
        assert r["losses"] == pytest.approx(ref_losses, rel=1e-5)
    weights = _assembled(per_rank)
    assert not torch.isnan(weights).any()
    torch.testing.assert_close(weights, ref_weights, rtol=1e-5, atol=1e-6)
    assert all(r["stats"]["max_staleness"] == 0 for r in per_rank)


@pytest.mark.parametrize("key", list(CASES))
def test_staleness_bound_and_exactly_once(runs, key):
    bound = CASES[key][1]
    per_rank = runs[key]
    for r in per_rank:
        assert r["stats"]["max_staleness"] <= bound
        assert r["pending"] == 0
    created = sum(r["created"] for r in per_rank)
    applied = sum(r["applied"] for r in per_rank)
    # float32 sums in another order (a lost or doubled row gradient would be ~1e-2 of the total)
    torch.testing.assert_close(applied, created, rtol=1e-6, atol=1e-9)
    # every occurrence-weighted update reached its owner's clock exactly once
    assert sum(r["owned_versions"] for r in per_rank) == sum(r["created_count"] for r in per_rank)


def test_bounded_runs_read_stale_mirrors(runs):
    """The bound is used: with bound 3 some mirrors are served locally although the owner moved on."""
    assert max(r["stats"]["max_staleness"] for r in runs["bound3_prefetch"]) > 0
    assert sum(r["stats"]["local_mirror_reads"] for r in runs["bound100_adagrad"]) > 0


def test_predicted_fetches_equal_counted(runs):
    samples = [
        sorted({int(OFFSETS[f]) + i for f, name in enumerate(FEATURES) for i in IDS[name][s]})
        for s in range(N)
    ]
    graph = graph_from_lists(samples, E)
    predicted = count_remote_fetches(
        graph, DATA, OWNER, world_size=WORLD, batch_size=B, steps=STEPS, seed=3, shuffle=True
    )
    for rank, r in enumerate(runs["sync"]):
        assert r["per_step"] == predicted[:, rank].tolist()
    assert predicted.sum() > 0


def test_state_dict_is_local_and_resumes_exactly(runs):
    """Each rank's state_dict() ran with every collective forbidden (so one rank can save alone), and a fresh
    model loaded from it continues exactly as the saved one: the mirrors' unpushed updates are in it."""
    for r in runs["resume"]:
        assert r["pending_at_save"] > 0  # there was something a flush would have pushed
        assert r["twin_losses"] == r["losses"]
        torch.testing.assert_close(r["twin_weights"], r["weights"], rtol=0, atol=0)


def test_hetgmp_embeddings_take_a_sharding_env():
    """Like every strategy, the store takes a ShardingEnv: its rank decides the owned rows (oracle: the owner
    array); anything else, a placement or owners beyond the world are refused by name."""
    env = ShardingEnv(rank=1, world_size=WORLD)
    store = HetGMPEmbeddings(SPECS, env, OWNER, MIRRORS[1], SGD, bound=0, seed=SEED)
    assert store.rank == 1 and store.world_size == WORLD and store.env is env
    st = store.store
    assert st.ids[: st.n_own].tolist() == np.flatnonzero(OWNER == 1).tolist()
    assert st.ids[st.n_own :].tolist() == MIRRORS[1].tolist()
    with pytest.raises(TypeError, match="env: expected a ShardingEnv"):
        HetGMPEmbeddings(SPECS, None, OWNER, MIRRORS[1], SGD, bound=0, seed=SEED)
    with pytest.raises(ValueError, match="not tables"):
        HetGMPEmbeddings(SPECS, ShardingEnv(placement={0: FEATURES}), OWNER, [], SGD, bound=0, seed=SEED)
    with pytest.raises(ValueError, match=r"owner: ranks must be in \[0, 1\)"):
        HetGMPEmbeddings(SPECS, ShardingEnv(), OWNER, [], SGD, bound=0, seed=SEED)
