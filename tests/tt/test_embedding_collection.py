"""TTEmbeddingBagCollection: torchrec's EmbeddingBagCollection contract; oracle: an EBC with equal weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchrec.models.dlrm import DLRM
from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.models import TTEmbeddingBagCollection, TTEmbeddingBagConfig
from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig

DIM = 8


def _tables(weighted: bool = False) -> list[EmbeddingBagConfig]:
    pooling = (
        PoolingType.SUM if weighted else PoolingType.MEAN
    )  # weights need sum pooling (as nn.EmbeddingBag)
    return [
        TTEmbeddingBagConfig(num_embeddings=20_000, embedding_dim=DIM, name="big", feature_names=["f1", "f2"],
                             tt_ranks=[4, 4], algorithm="ecorec", micro_batches=2),
        TTEmbeddingBagConfig(num_embeddings=30_000, embedding_dim=DIM, name="mean", feature_names=["f3"],
                             tt_ranks=[4, 4], algorithm="fbtt", pooling=pooling),
        TTEmbeddingBagConfig(num_embeddings=500, embedding_dim=DIM, name="small", feature_names=["f4"]),
        EmbeddingBagConfig(num_embeddings=700, embedding_dim=DIM, name="plain", feature_names=["f5"]),
    ]  # fmt: skip


def _features(weighted: bool, batch: int = 6, seed: int = 0) -> KeyedJaggedTensor:
    g = torch.Generator().manual_seed(seed)
    keys = ["f1", "f2", "f3", "f4", "f5"]
    rows = [20_000, 20_000, 30_000, 500, 700]
    lengths = torch.randint(0, 4, (len(keys) * batch,), generator=g)
    lengths[0] = 0  # an empty bag
    values = torch.cat(
        [
            torch.randint(0, n, (int(lengths[i * batch : (i + 1) * batch].sum()),), generator=g)
            for i, n in enumerate(rows)
        ]
    )
    weights = torch.rand(values.numel(), generator=g) if weighted else None
    return KeyedJaggedTensor.from_lengths_sync(keys, values, lengths, weights=weights)


def _reference_ebc(collection: TTEmbeddingBagCollection, weighted: bool) -> EmbeddingBagCollection:
    configs = [
        EmbeddingBagConfig(num_embeddings=c.num_embeddings, embedding_dim=c.embedding_dim, name=c.name,
                           feature_names=list(c.feature_names), pooling=c.pooling)
        for c in collection.embedding_bag_configs()
    ]  # fmt: skip
    ebc = EmbeddingBagCollection(configs, is_weighted=weighted)
    with torch.no_grad():
        for name, module in collection.embedding_bags.items():
            dense = module.full_weight() if isinstance(module, TTEmbeddingBag) else module.weight
            ebc.embedding_bags[name].weight.copy_(dense)
    return ebc


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_torchrec_ebc_with_the_same_dense_weights(weighted: bool) -> None:
    torch.manual_seed(0)
    collection = TTEmbeddingBagCollection(_tables(weighted), is_weighted=weighted)
    assert collection.compressed_tables() == ["big", "mean"]  # "small" is under tt_min_rows, "plain" is plain
    assert isinstance(collection.embedding_bags["small"], nn.EmbeddingBag)
    reference = _reference_ebc(collection, weighted)
    features = _features(weighted)
    got, expected = collection(features), reference(features)
    assert got.keys() == expected.keys() == ["f1", "f2", "f3", "f4", "f5"]
    assert got.length_per_key() == expected.length_per_key()
    assert (
        torch.equal(got.offset_per_key(), expected.offset_per_key())
        if isinstance(got.offset_per_key(), torch.Tensor)
        else got.offset_per_key() == expected.offset_per_key()
    )
    assert torch.allclose(got.values(), expected.values(), rtol=1e-5, atol=1e-7)
    # Gradients flow to the TT cores like to the dense tables they represent.
    grad = torch.randn(got.values().shape, generator=torch.Generator().manual_seed(1))
    got.values().backward(grad)
    expected.values().backward(grad)
    big = collection.embedding_bags["big"]
    dense_grad = torch.autograd.grad(
        big.full_weight(), list(big.cores), reference.embedding_bags["big"].weight.grad
    )
    for core, want in zip(big.cores, dense_grad):
        assert torch.allclose(core.grad, want, rtol=1e-4, atol=1e-6)


def test_inside_torchrec_dlrm_forward_and_backward() -> None:
    torch.manual_seed(0)
    collection = TTEmbeddingBagCollection(_tables(), optimizer=TTOptimizerConfig("sgd", 0.1))
    model = DLRM(
        embedding_bag_collection=collection, dense_in_features=4, dense_arch_layer_sizes=[16, DIM],
        over_arch_layer_sizes=[16, 1],
    )  # fmt: skip
    before = [core.detach().clone() for core in collection.embedding_bags["big"].cores]
    logits = model(torch.randn(6, 4), _features(False))
    assert logits.shape == (6, 1)
    nn.functional.binary_cross_entropy_with_logits(logits, torch.ones(6, 1)).backward()
    after = collection.embedding_bags["big"].cores
    assert any(not torch.equal(a, b) for a, b in zip(after, before))  # fused update applied in backward
    assert all(core.grad is None for core in after)
    assert collection.embedding_bags["plain"].weight.grad is not None  # plain tables: plain gradients


def test_contract_details() -> None:
    tables = _tables(weighted=True)
    collection = TTEmbeddingBagCollection(tables, is_weighted=True, tt_min_rows=600)
    assert collection.is_weighted() and collection.embedding_bag_configs() == tables
    assert collection.compressed_tables() == ["big", "mean"]  # a plain EmbeddingBagConfig is never compressed
    assert TTEmbeddingBagCollection(tables, tt_min_rows=1).compressed_tables() == ["big", "mean", "small"]
    names = set(collection.state_dict())
    assert {
        "embedding_bags.big.cores.0",
        "embedding_bags.small.weight",
        "embedding_bags.plain.weight",
    } <= names
    unnamed = TTEmbeddingBagConfig(num_embeddings=100, embedding_dim=DIM, name="solo")
    assert TTEmbeddingBagCollection([unnamed]).embedding_bag_configs()[0].feature_names == ["solo"]
    with pytest.raises(ValueError, match="Duplicate table name 'big'"):
        TTEmbeddingBagCollection([tables[0], tables[0]])
    meta = TTEmbeddingBagCollection(_tables(), device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())


def test_round_up_rows_reaches_the_tt_table() -> None:
    # 10_001 = 73 * 137: TT-Rec's rule (the default) rounds the rows up to 20 * 22 * 25 = 11_000;
    # round_up_rows=False keeps prod(p) == N.
    common = dict(num_embeddings=10_001, embedding_dim=DIM, tt_ranks=[4, 4])
    configs = [
        TTEmbeddingBagConfig(name="rounded", feature_names=["f1"], **common),
        TTEmbeddingBagConfig(name="exact", feature_names=["f2"], round_up_rows=False, **common),
    ]
    collection = TTEmbeddingBagCollection(configs)
    assert collection.embedding_bags["rounded"].shapes.p_shapes == (20, 22, 25)
    exact = collection.embedding_bags["exact"].shapes.p_shapes
    assert exact == (1, 73, 137) and math.prod(exact) == 10_001


@pytest.mark.parametrize(("feature", "table", "rows"), [("f2", "f1/f2", 20_000), ("f5", "f5", 700)])
def test_out_of_range_ids_name_the_features(feature: str, table: str, rows: int) -> None:
    """A bad id of a TT table (shared by f1, f2) or of an uncompressed one names the table's features."""
    collection = TTEmbeddingBagCollection(_tables())
    features = _features(False).to_dict()
    bad = features[feature].values().clone()
    bad[-1] = rows
    keys = ["f1", "f2", "f3", "f4", "f5"]
    values = torch.cat([bad if k == feature else features[k].values() for k in keys])
    lengths = torch.cat([features[k].lengths() for k in keys])
    kjt = KeyedJaggedTensor.from_lengths_sync(keys, values, lengths)
    with pytest.raises(
        ValueError, match=rf"table/feature '{table}': id {rows} at position .* outside \[0, {rows}\)"
    ):
        collection(kjt)
