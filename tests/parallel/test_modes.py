"""Every distributed mode trains exactly like one process on the global batch.

One 2-rank gloo launch runs dp, mp, bwp, twp (reordered, sloped stages), twp with one stage, and torchrec for
5 steps each on the same tiny synthetic batches; the parent process computes the single-process oracle (one
``RecModel`` on the whole global batch, mean BCE, the same optimizers) and compares, step by step, the global
loss (1e-5 relative, float32) and the final table weights.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F

from ecorec.models import (
    EmbeddingOptimizerSettings,
    ModelSettings,
    RecModel,
    TableSettings,
    TableSpec,
    build_head,
    build_tables,
    is_tt_table,
)
from ecorec.parallel import (
    DenseOptimizerSettings,
    build_distributed_model,
    make_dense_optimizer,
    make_embedding_optimizer,
)
from ecorec.train.metrics import auroc, evaluate
from tests.parallel.harness import make_global_batches, pad_tail, rank_batch, run_ranks

SEED = 7
STEPS = 5
GLOBAL_BATCH = 16
NUM_DENSE = 5
WORLD = 2
SPECS = [TableSpec(f"t{i}", rows, 8) for i, rows in enumerate([50, 7, 120, 33, 80, 16])]
FEATURES = [s.name for s in SPECS]
MODEL = ModelSettings(kind="dlrm", embedding_dim=8, interaction="dot", dense_arch=(16, 8), over_arch=(16, 1))
TABLES = TableSettings(algorithm="none")
PLACEMENT = {0: ["t0", "t2", "t3", "t5"], 1: ["t1", "t4"]}
# twp: each rank's tables in execution order cheapest first (the reverse of a greedy, cost-descending list)
# and sloped stage sizes (3, 1) on rank 0.
TWP_STAGES = {0: [["t5", "t3", "t2"], ["t0"]], 1: [["t4"], ["t1"]]}


@dataclass(frozen=True)
class Case:
    mode: str
    dense: DenseOptimizerSettings
    embedding: EmbeddingOptimizerSettings
    extra: dict
    tables: TableSettings = field(default=TABLES)


ADAM = DenseOptimizerSettings(kind="adam", lr=0.01)
ADAGRAD_EMB = EmbeddingOptimizerSettings("adagrad", lr=0.1, update="plain")
CASES = {
    "dp": Case("dp", ADAM, EmbeddingOptimizerSettings("rowwise_adagrad", lr=0.1, update="plain"), {}),
    "mp": Case("mp", ADAM, ADAGRAD_EMB, {}),
    "bwp": Case(
        "bwp",
        DenseOptimizerSettings(kind="adagrad", lr=0.05),
        EmbeddingOptimizerSettings("sgd", lr=0.5, update="plain"),
        {"num_micro_batches": 2},
    ),
    "twp": Case("twp", ADAM, ADAGRAD_EMB, {"stages": TWP_STAGES}),
    "twp_one_stage": Case(
        "twp", ADAM, ADAGRAD_EMB, {"stages": {r: [names] for r, names in PLACEMENT.items()}}
    ),
    "torchrec": Case(
        "torchrec",
        DenseOptimizerSettings(kind="sgd", lr=0.1),
        EmbeddingOptimizerSettings("adagrad", lr=0.1),
        {},
    ),
}
CASES["torchrec_rowwise"] = Case("torchrec", ADAM, EmbeddingOptimizerSettings("rowwise_adagrad", lr=0.1), {})
# Tables with >= 40 rows (t0, t2, t4) are TT; fused updates happen inside the TT backward (dp sums the
# core gradients in the TT gradient hook first); bwp asks for a fused update and trains plain gradients
# with the equivalent torch optimizer instead; twp passes num_micro_uidx=2 to the TT tables.
TT = TableSettings(algorithm="ecorec", tt_ranks=(3, 3), tt_min_rows=40)
TT_MICRO = TableSettings(algorithm="ecorec", tt_ranks=(3, 3), tt_min_rows=40, micro_batches=2)
CASES |= {
    "dp_tt_fused": Case("dp", ADAM, EmbeddingOptimizerSettings("adagrad", lr=0.1), {}, TT),
    "dp_tt_plain": Case("dp", ADAM, EmbeddingOptimizerSettings("sgd", lr=0.5, update="plain"), {}, TT),
    "mp_tt_fused": Case("mp", ADAM, EmbeddingOptimizerSettings("sgd", lr=0.5), {}, TT),
    "bwp_tt_fused": Case(
        "bwp", ADAM, EmbeddingOptimizerSettings("rowwise_adagrad", lr=0.1), {"num_micro_batches": 2}, TT
    ),
    "twp_tt_fused": Case(
        "twp",
        ADAM,
        EmbeddingOptimizerSettings("rowwise_adagrad", lr=0.1),
        {"stages": TWP_STAGES},
        TT_MICRO,
    ),
    # TorchRec's DMP over a TTEmbeddingBagCollection (ecorec.parallel.torchrec_tt): TT tables in the TT
    # sharder's kernel, the small ones in fbgemm's fused TBE; the same tables and optimizers as mp_tt_adagrad.
    "torchrec_tt": Case("torchrec", ADAM, EmbeddingOptimizerSettings("adagrad", lr=0.1, tt_lr=0.2), {}, TT),
    "mp_tt_adagrad": Case("mp", ADAM, EmbeddingOptimizerSettings("adagrad", lr=0.1, tt_lr=0.2), {}, TT),
}


def _batches():
    return make_global_batches(SPECS, STEPS, GLOBAL_BATCH, NUM_DENSE, seed=SEED)


def _dense_weight(table: torch.nn.Module) -> torch.Tensor:
    return (table.full_weight() if is_tt_table(table) else table.weight).detach().clone()


def _final_weights(model, rank: int) -> dict[str, list]:
    """``{table: [(row offset, col offset, tensor)]}`` of the weights this rank holds."""
    if hasattr(model, "strategy"):
        if model.mode.value == "dp" and rank != 0:
            return {}
        return {n: [(0, 0, _dense_weight(t))] for n, t in model.strategy.tables.items()}
    return model.local_table_weights()


RESUME_AT = 3
EVAL_REAL = 11  # the padded evaluation batch: 11 real samples of G = 16 (rank 1 holds 3 real, 5 padding)


def _build(case: Case, world_size: int):
    return build_distributed_model(
        case.mode,
        SPECS,
        build_head(MODEL, NUM_DENSE, len(SPECS), SEED),
        table_settings=case.tables,
        dense_optimizer=case.dense,
        embedding_optimizer=case.embedding,
        seed=SEED,
        placement=PLACEMENT,
        local_batch_size=GLOBAL_BATCH // world_size,
        **case.extra,
    )


def _stream(model, batches, rank: int, world_size: int):
    layout, features = model.input_layout.value, model.input_features
    return iter(rank_batch(gb, rank, world_size, layout, features) for gb in batches)


def _worker(rank: int, world_size: int, out_dir: str) -> None:
    batches = _batches()
    for key, case in CASES.items():
        model = _build(case, world_size)
        stream = _stream(model, batches, rank, world_size)
        losses, snapshot = [], io.BytesIO()
        for step in range(STEPS):
            if step == RESUME_AT:
                torch.save(model.state_dict(), snapshot)
            losses.append(model.train_step(stream).loss)
        # a fresh model restored from the state after RESUME_AT steps continues with the same losses
        resumed = _build(case, world_size)
        snapshot.seek(0)
        resumed.load_state_dict(torch.load(snapshot, weights_only=True))
        stream = _stream(resumed, batches[RESUME_AT:], rank, world_size)
        resumed_losses = [resumed.train_step(stream).loss for _ in range(STEPS - RESUME_AT)]
        # the last, short batch of a split, padded to full size and masked: every mode scores exactly the
        # real samples (compared with the oracle's predictions on those 11 samples alone)
        padded = rank_batch(
            pad_tail(batches[0], EVAL_REAL), rank, world_size, model.input_layout.value, model.input_features
        )
        b = GLOBAL_BATCH // world_size
        padded.mask = torch.arange(rank * b, (rank + 1) * b) < EVAL_REAL
        scored = evaluate(model.predict, [padded])
        torch.save(
            {
                "losses": losses,
                "resumed": resumed_losses,
                "weights": _final_weights(model, rank),
                "eval": scored,
                "placement": model.placement() if hasattr(model, "placement") else None,
            },
            f"{out_dir}/{key}-{rank}.pt",
        )


def _reference(case: Case) -> tuple[list[float], dict[str, torch.Tensor], dict]:
    """One process, the whole global batch, the tables as configured (fused TT updates in backward, one TT
    micro-batch), mean BCE."""
    settings = TableSettings(case.tables.algorithm, case.tables.tt_ranks, case.tables.tt_min_rows)
    tables = build_tables(SPECS, settings, SEED, optimizer=case.embedding)
    model = RecModel(tables, build_head(MODEL, NUM_DENSE, len(SPECS), SEED))
    dense_opt = make_dense_optimizer(model.head.parameters(), case.dense)
    fused = case.embedding.update == "fused"
    plain = [p for t in tables.values() if not (fused and is_tt_table(t)) for p in t.parameters()]
    emb_opt = make_embedding_optimizer(plain, case.embedding)
    losses = []
    for gb in _batches():
        batch = rank_batch(gb, 0, 1, "local", FEATURES)
        loss = F.binary_cross_entropy_with_logits(model(batch.dense, batch.sparse), batch.labels)
        dense_opt.zero_grad()
        emb_opt.zero_grad()
        loss.backward()
        dense_opt.step()
        emb_opt.step()
        losses.append(loss.item())
    real = rank_batch(_batches()[0], 0, 1, "local", FEATURES)
    with torch.no_grad():
        logits = model(real.dense[:EVAL_REAL], _first_samples(real.sparse, EVAL_REAL))
    labels = real.labels[:EVAL_REAL]
    scored = {
        "auroc": auroc(logits, labels),
        "bce": float(F.binary_cross_entropy_with_logits(logits, labels)),
        "samples": EVAL_REAL,
    }
    return losses, {n: _dense_weight(t) for n, t in tables.items()}, scored


def _first_samples(kjt, n: int):
    """The KJT of the first ``n`` samples of every feature."""
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    lengths, values = [], []
    for name in kjt.keys():
        jt = kjt[name]
        lengths.append(jt.lengths()[:n])
        values.append(jt.values()[: int(jt.lengths()[:n].sum())])
    return KeyedJaggedTensor.from_lengths_sync(
        keys=kjt.keys(), values=torch.cat(values), lengths=torch.cat(lengths)
    )


@pytest.fixture(scope="module")
def distributed_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("modes")
    run_ranks(_worker, WORLD, str(out))
    results = {}
    for key in CASES:
        per_rank = [torch.load(out / f"{key}-{r}.pt") for r in range(WORLD)]
        weights: dict[str, torch.Tensor] = {}
        for r in range(WORLD):
            for name, shards in per_rank[r]["weights"].items():
                spec = next(s for s in SPECS if s.name == name)
                full = weights.setdefault(
                    name, torch.full((spec.num_embeddings, spec.embedding_dim), float("nan"))
                )
                for r0, c0, tensor in shards:
                    full[r0 : r0 + tensor.shape[0], c0 : c0 + tensor.shape[1]] = tensor
        results[key] = {
            "losses": [p["losses"] for p in per_rank],
            "resumed": per_rank[0]["resumed"],
            "eval": [p["eval"] for p in per_rank],
            "placement": per_rank[0]["placement"],
            "weights": weights,
        }
    return results


@pytest.mark.parametrize("key", list(CASES))
def test_mode_matches_single_process(distributed_runs, key):
    ref_losses, ref_weights, ref_eval = _reference(CASES[key])
    run = distributed_runs[key]
    assert run["losses"][0] == run["losses"][1], "every rank must report the same global loss"
    # float32, 5 steps of Adam/Adagrad/SGD: agreement to 1e-5 relative.
    torch.testing.assert_close(torch.tensor(run["losses"][0]), torch.tensor(ref_losses), rtol=1e-5, atol=0)
    assert ref_losses[-1] != ref_losses[0], "the oracle must actually train"
    assert sorted(run["weights"]) == FEATURES
    for name in FEATURES:
        torch.testing.assert_close(run["weights"][name], ref_weights[name], rtol=1e-5, atol=1e-6)
    # the padded last batch: the real samples only, the same on every rank, as the oracle scores them
    assert run["eval"][0] == run["eval"][1]
    assert run["eval"][0]["samples"] == EVAL_REAL
    assert run["eval"][0]["auroc"] == pytest.approx(ref_eval["auroc"], abs=1e-6)
    assert run["eval"][0]["bce"] == pytest.approx(ref_eval["bce"], rel=1e-5)


def test_twp_equals_mp(distributed_runs):
    # Same tables, data and optimizers: staging only changes when each all-to-all runs, not what it carries.
    mp_losses = distributed_runs["mp"]["losses"][0]
    assert distributed_runs["twp_one_stage"]["losses"][0] == mp_losses
    torch.testing.assert_close(
        torch.tensor(distributed_runs["twp"]["losses"][0]), torch.tensor(mp_losses), rtol=1e-6, atol=0
    )
    for name in FEATURES:
        torch.testing.assert_close(
            distributed_runs["twp"]["weights"][name],
            distributed_runs["mp"]["weights"][name],
            rtol=1e-6,
            atol=0,
        )


def test_torchrec_tt_equals_mp(distributed_runs):
    # TorchRec's own dists, pipeline and fused-optimizer plumbing around the TT tables change nothing of what
    # is computed: the mp mode's losses (1e-6) and weights. Weights to the single-process tolerance: the small
    # tables step with fbgemm's Adagrad here and torch's in mp (measured: 3e-7 absolute after 5 steps).
    mp, trec = distributed_runs["mp_tt_adagrad"], distributed_runs["torchrec_tt"]
    placed = [name for names in trec["placement"].values() for name in names]
    assert sorted(placed) == sorted(FEATURES), "table-wise: every table on exactly one rank"
    assert trec["losses"][0] != mp["losses"][0][:1] * len(mp["losses"][0]), "the runs must actually train"
    torch.testing.assert_close(
        torch.tensor(trec["losses"][0]), torch.tensor(mp["losses"][0]), rtol=1e-6, atol=0
    )
    for name in FEATURES:
        torch.testing.assert_close(trec["weights"][name], mp["weights"][name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("key", list(CASES))
def test_state_dict_round_trip_resumes_every_mode_exactly(distributed_runs, key):
    # model, optimizer and TT fused-optimizer state of every rank, saved after 3 steps into a fresh model
    run = distributed_runs[key]
    assert run["resumed"] == run["losses"][0][RESUME_AT:]
