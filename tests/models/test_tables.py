"""Per-table modules: initial weights depend on (seed, table name) only, not on which tables a rank builds."""

from __future__ import annotations

import pytest
import torch

from ecorec.models import (
    TT_INITS,
    EmbeddingOptimizerSettings,
    TableSettings,
    TableSpec,
    build_tables,
    uncompressed_init,
    uncompressed_init_std,
)
from ecorec.models.tables import derive_seed, is_tt_table, pool_table
from ecorec.tt.init import WEIGHT_INITS

SPECS = [TableSpec("small", 40, 8), TableSpec("big", 3000, 8), TableSpec("mid", 1500, 8)]


def test_derive_seed_is_stable_and_name_dependent():
    assert derive_seed(0, "table", "a") == derive_seed(0, "table", "a")
    assert (
        len({derive_seed(0, "table", "a"), derive_seed(0, "table", "b"), derive_seed(1, "table", "a")}) == 3
    )
    assert 0 <= derive_seed(123, "x") < 2**63


def test_uncompressed_init_is_torchrec_uniform_and_placement_independent():
    all_tables = build_tables(SPECS, TableSettings(algorithm="none"), seed=3)
    only_mid = build_tables(SPECS, TableSettings(algorithm="none"), seed=3, names=["mid"])
    assert torch.equal(all_tables["mid"].weight, only_mid["mid"].weight)
    weight = uncompressed_init(SPECS[1], seed=3)
    bound = (1 / 3000) ** 0.5
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound
    assert not torch.equal(weight, uncompressed_init(SPECS[1], seed=4))


def test_uncompressed_tables_pool_like_embedding_bag():
    tables = build_tables(SPECS, TableSettings(algorithm="none"), seed=0)
    values, offsets = torch.tensor([1, 5, 5, 39]), torch.tensor([0, 3, 3, 4])
    expected = torch.nn.functional.embedding_bag(values, tables["small"].weight, offsets[:-1], mode="sum")
    torch.testing.assert_close(pool_table(tables["small"], values, offsets), expected)
    assert not any(is_tt_table(t) for t in tables.values())


def test_unknown_and_duplicate_tables_are_rejected():
    with pytest.raises(ValueError, match="unknown tables"):
        build_tables(SPECS, TableSettings(algorithm="none"), seed=0, names=["nope"])
    with pytest.raises(ValueError, match="unique"):
        build_tables([SPECS[0], SPECS[0]], TableSettings(algorithm="none"), seed=0)
    with pytest.raises(ValueError, match="algorithm"):
        TableSettings(algorithm="tt")


def test_tt_tables_by_threshold_and_placement_independent():
    settings = TableSettings(algorithm="ecorec", tt_ranks=(4, 4), tt_min_rows=1000)
    fused = EmbeddingOptimizerSettings("adagrad", lr=0.1)
    all_tables = build_tables(SPECS, settings, seed=2, optimizer=fused)
    assert [is_tt_table(all_tables[s.name]) for s in SPECS] == [False, True, True]
    micro = TableSettings(algorithm="ecorec", tt_ranks=(4, 4), tt_min_rows=1000, micro_batches=3)
    subset = build_tables(SPECS, micro, seed=2, names=["mid"], optimizer=fused)
    for a, b in zip(all_tables["mid"].cores, subset["mid"].cores):
        assert torch.equal(a, b)
    # the TT table pools like an EmbeddingBag over its dense reconstruction
    values, offsets = torch.tensor([0, 1499, 7, 7]), torch.tensor([0, 2, 2, 4])
    full = all_tables["mid"].full_weight()
    expected = torch.nn.functional.embedding_bag(values, full, offsets[:-1], mode="sum")
    torch.testing.assert_close(pool_table(all_tables["mid"], values, offsets), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algorithm", ["none", "ecorec"])
def test_out_of_range_ids_name_the_table(algorithm):
    """TT and uncompressed tables alike: the error names the feature, the id and the table size (torch's own
    message for nn.EmbeddingBag names nothing)."""
    from ecorec.models import TableSettings, TableSpec, build_tables

    specs = [TableSpec("clicks", 30, 4), TableSpec("user_id", 50, 4)]
    tables = build_tables(specs, TableSettings(algorithm, (2, 2), tt_min_rows=10), seed=0)
    values, offsets = torch.tensor([3, 50, 7]), torch.tensor([0, 1, 3])
    with pytest.raises(
        ValueError, match=r"table/feature 'user_id': id 50 at position 1 .* outside \[0, 50\)"
    ):
        pool_table(tables["user_id"], values, offsets, name="user_id")
    with pytest.raises(ValueError, match=r"table/feature 'clicks': id -1 at position 0"):
        pool_table(tables["clicks"], torch.tensor([-1]), torch.tensor([0, 1]), name="clicks")
    assert pool_table(tables["user_id"], torch.tensor([3, 49, 7]), offsets, name="user_id").shape == (2, 4)


def test_tt_only_where_the_cores_are_smaller_by_the_factor():
    """The oracle: the parameters of the TTEmbeddingBag actually built, and N*D for an uncompressed table."""
    from ecorec.models import tt_compression_ratio, tt_num_parameters

    specs = [TableSpec("two_rows", 2, 16), TableSpec("t500", 500, 16), TableSpec("t1200", 1200, 16)]
    built = build_tables(specs, TableSettings("ecorec", (16, 16), tt_min_rows=0, tt_min_compression=0.0), 0)
    for spec in specs:
        assert tt_num_parameters(spec, (16, 16)) == sum(p.numel() for p in built[spec.name].parameters())
    assert tt_compression_ratio(specs[0], (16, 16)) < 1 < tt_compression_ratio(specs[1], (16, 16)) < 2
    # default factor 1.0: a TT table is never larger than the table it replaces (the 2-row table)
    default = TableSettings("ecorec", (16, 16), tt_min_rows=0)
    assert [default.compresses(s) for s in specs] == [False, True, True]
    settings = TableSettings("ecorec", (16, 16), tt_min_rows=0, tt_min_compression=2.0)
    tables = build_tables(specs, settings, seed=0)
    assert [is_tt_table(tables[s.name]) for s in specs] == [False, False, True]
    kinds = [settings.table_kind(s) for s in specs]
    assert [k["kind"] for k in kinds] == ["uncompressed", "uncompressed", "tt"]
    assert [k["parameters"] for k in kinds] == [
        sum(p.numel() for p in tables[s.name].parameters()) for s in specs
    ]
    assert kinds[2]["compression"] == pytest.approx(1200 * 16 / kinds[2]["parameters"])
    assert "< tt_min_compression=2.0" in kinds[1]["reason"]


@pytest.mark.parametrize("update", ["fused", "plain"])
def test_per_kind_learning_rates(update):
    """One SGD step: the TT table moves by tt_lr * gradient, the uncompressed one by lr * gradient; the
    oracle is the same step with tt_lr = lr (the TT move scales exactly with tt_lr, the other not at all)."""
    from ecorec.models import ModelSettings, build_head
    from ecorec.parallel import DenseOptimizerSettings, build_distributed_model
    from tests.parallel.harness import make_global_batches, rank_batch

    specs = [TableSpec("plain", 30, 8), TableSpec("tt", 2000, 8)]
    settings = TableSettings("ecorec", (4, 4), tt_min_rows=1000)
    head_settings = ModelSettings(kind="dlrm", embedding_dim=8, dense_arch=(8,), over_arch=(8, 1))
    batch = rank_batch(make_global_batches(specs, 1, 16, 3, seed=1)[0], 0, 1, "local", ["plain", "tt"])

    def step(tt_lr):
        model = build_distributed_model(
            "dp",
            specs,
            build_head(head_settings, 3, 2, 0),
            table_settings=settings,
            dense_optimizer=DenseOptimizerSettings(kind="sgd", lr=0.1),
            embedding_optimizer=EmbeddingOptimizerSettings("sgd", lr=0.5, update=update, tt_lr=tt_lr),
            seed=0,
        )
        tables = model.strategy.tables
        before = {n: [p.detach().clone() for p in tables[n].parameters()] for n in ("plain", "tt")}
        model.set_learning_rates(0.1, 0.5, tt_lr)
        model.train_step(iter([batch]))
        moves = {n: [p.detach() - b for p, b in zip(tables[n].parameters(), before[n])] for n in before}
        return {**moves, "tt_weights": before["tt"]}

    same, tenth = step(0.5), step(0.05)
    for got, want in zip(tenth["plain"], same["plain"]):
        torch.testing.assert_close(got, want)
    assert any(d.abs().max() > 0 for d in same["tt"])
    for got, want, w in zip(tenth["tt"], same["tt"], same["tt_weights"]):
        ulp = torch.finfo(torch.float32).eps * float(w.abs().max())  # float32 rounding of w - w0
        torch.testing.assert_close(got, want / 10, rtol=1e-4, atol=2 * ulp)


@pytest.mark.parametrize("bad", ["tt", "plain"])
def test_negative_kjt_lengths_name_the_feature_on_tt_and_uncompressed_tables(bad):
    """Once torch's "Expected i < index_size" (uncompressed) or an error about offsets never passed (TT)."""
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    from ecorec.models import TTEmbeddingBagCollection, TTEmbeddingBagConfig
    from ecorec.models.rec_model import pooled_embeddings

    specs = [TableSpec("tt", 20_000, 8), TableSpec("plain", 50, 8)]
    tables = build_tables(specs, TableSettings(algorithm="ecorec", tt_ranks=[4, 4], tt_min_rows=1000), seed=0)
    assert is_tt_table(tables["tt"]) and not is_tt_table(tables["plain"])
    collection = TTEmbeddingBagCollection(
        [
            TTEmbeddingBagConfig(name=s.name, num_embeddings=s.num_embeddings, embedding_dim=8,
                                 feature_names=[s.name], tt_ranks=[4, 4])
            for s in specs
        ],
        tt_min_rows=1000,
    )  # fmt: skip
    good = [1, 1, 1, 1]
    wrong = [3, -1, 1, 1]  # sums like a good one: only the sign gives it away
    lengths = torch.tensor(wrong + good if bad == "tt" else good + wrong)
    kjt = KeyedJaggedTensor(keys=["tt", "plain"], values=torch.arange(8) % 50, lengths=lengths)
    message = rf"feature '{bad}': lengths must be >= 0, got -1 for bag 1 of 4"
    with pytest.raises(ValueError, match=message):
        pooled_embeddings(tables, kjt, ["tt", "plain"])  # RecModel and the dp mode
    with pytest.raises(ValueError, match=message):
        collection(kjt)
    values, offsets = torch.arange(4), torch.tensor([0, 3, 2, 3, 4])  # the offsets of lengths [3, -1, 1, 1]
    with pytest.raises(ValueError, match=rf"feature '{bad}': lengths must be >= 0"):
        pool_table(tables[bad], values % 50, offsets, name=bad)  # what mp / bwp / twp call per table


def test_kjt_lengths_must_count_its_values():
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    from ecorec.models.tables import check_kjt

    kjt = KeyedJaggedTensor(keys=["a", "b"], values=torch.arange(9), lengths=torch.ones(8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"keys \['a', 'b'\]: its lengths sum to 8 but it has 9 values"):
        check_kjt(kjt)


@pytest.mark.parametrize("ranks", [(8, 8), (16,)])
def test_tt_tables_start_at_the_scale_of_the_table_they_replace(ranks):
    """The default TT init (TT-Rec's sampled Gaussian) gives the reconstructed rows the std of the
    uncompressed init (oracle: the empirical std of uncompressed_init); the artifact's "normal" (every core
    entry N(0, 1/N)) starts orders of magnitude smaller."""
    spec = TableSpec("t", 5000, 16)
    dense_std = float(uncompressed_init(spec, seed=1).std())
    assert dense_std == pytest.approx(uncompressed_init_std(5000), rel=0.02)
    for seed in range(3):
        table = build_tables([spec], TableSettings("ecorec", ranks, tt_min_rows=0), seed=seed)["t"]
        assert is_tt_table(table) and table.weight_init == "sampled_gaussian"
        weight = table.full_weight().detach()
        assert abs(float(weight.mean())) < 0.05 * dense_std
        assert float(weight.std()) == pytest.approx(dense_std, rel=0.15)
    normal = build_tables([spec], TableSettings("ecorec", ranks, tt_min_rows=0, tt_init="normal"), seed=0)[
        "t"
    ]
    assert float(normal.full_weight().detach().std()) < 0.1 * dense_std
    given = TableSettings("ecorec", ranks, tt_min_rows=0, tt_init_std=0.5)
    assert float(build_tables([spec], given, seed=0)["t"].full_weight().detach().std()) == pytest.approx(
        0.5, rel=0.15
    )
    with pytest.raises(ValueError, match="tt_init must be one of"):
        TableSettings(tt_init="xavier")
    with pytest.raises(ValueError, match="tt_init_std is not used by tt_init 'uniform'"):
        TableSettings(tt_init="uniform", tt_init_std=0.1)
    assert set(TT_INITS) == set(WEIGHT_INITS)
