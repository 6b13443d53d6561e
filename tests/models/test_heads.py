"""Heads against independent oracles: torchrec's own DLRM / DLRM_DCN models, and float64 formulas."""

from __future__ import annotations

import pytest
import torch
from torchrec.models.dlrm import DLRM, DLRM_DCN
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.models import (
    CatInteraction,
    DCNHead,
    DLRMHead,
    ModelSettings,
    RecModel,
    TableSettings,
    TableSpec,
    WideDeepHead,
    build_head,
    build_tables,
)

B, D, NUM_DENSE = 6, 4, 3
SPECS = [TableSpec("a", 11, D), TableSpec("b", 7, D), TableSpec("c", 5, D)]


def _kjt(seed: int = 0) -> KeyedJaggedTensor:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 4, (len(SPECS) * B,), generator=gen)
    values = []
    for t, spec in enumerate(SPECS):
        n = int(lengths[t * B : (t + 1) * B].sum())
        values.append(torch.randint(0, spec.num_embeddings, (n,), generator=gen))
    return KeyedJaggedTensor.from_lengths_sync([s.name for s in SPECS], torch.cat(values), lengths)


def _torchrec_ebc(tables) -> EmbeddingBagCollection:
    configs = [
        EmbeddingBagConfig(
            name=s.name, embedding_dim=D, num_embeddings=s.num_embeddings, feature_names=[s.name]
        )
        for s in SPECS
    ]
    ebc = EmbeddingBagCollection(tables=configs)
    with torch.no_grad():
        for s in SPECS:
            ebc.embedding_bags[s.name].weight.copy_(tables[s.name].weight)
    return ebc


def _copy_archs(dst, head: DLRMHead) -> None:
    dst.dense_arch.load_state_dict(head.dense_arch.state_dict())
    dst.over_arch.load_state_dict(head.over_arch.state_dict())
    dst.inter_arch.load_state_dict(head.inter_arch.state_dict())


@pytest.mark.parametrize("interaction", ["dot", "dcn"])
def test_dlrm_head_equals_torchrec_dlrm(interaction):
    tables = build_tables(SPECS, TableSettings(algorithm="none"), seed=1)
    head = build_head(
        ModelSettings(interaction=interaction, embedding_dim=D, dense_arch=(8, D), over_arch=(8, 1)),
        NUM_DENSE,
        len(SPECS),
        seed=1,
    )
    ours = RecModel(tables, head)
    ebc = _torchrec_ebc(tables)
    if interaction == "dot":
        ref = DLRM(ebc, NUM_DENSE, [8, D], [8, 1])
    else:
        ref = DLRM_DCN(ebc, NUM_DENSE, [8, D], [8, 1], dcn_num_layers=2, dcn_low_rank_dim=8)
    _copy_archs(ref, head)
    dense, sparse = torch.rand(B, NUM_DENSE), _kjt()
    torch.testing.assert_close(ours(dense, sparse), ref(dense, sparse).squeeze(-1), rtol=1e-6, atol=1e-6)


def test_cat_head_is_the_concatenation_formula():
    head = DLRMHead(NUM_DENSE, 3, D, [5, D], [7, 1], interaction="cat").double()
    dense, sparse = torch.rand(B, NUM_DENSE, dtype=torch.float64), torch.rand(B, 3, D, dtype=torch.float64)
    hidden = torch.relu(
        head.dense_arch.model._mlp[1]._linear(torch.relu(head.dense_arch.model._mlp[0]._linear(dense)))
    )
    x = torch.cat([sparse.reshape(B, -1), hidden], dim=1)
    first, last = head.over_arch.model[0]._mlp[0]._linear, head.over_arch.model[1]
    expected = last(torch.relu(first(x))).squeeze(-1)
    torch.testing.assert_close(head(dense, sparse), expected)
    assert CatInteraction(3)(None, sparse).shape == (B, 3 * D)


def test_wide_deep_and_dcn_follow_hetgmp_formulas():
    dense, sparse = torch.rand(B, NUM_DENSE, dtype=torch.float64), torch.rand(B, 3, D, dtype=torch.float64)
    flat = sparse.reshape(B, -1)
    wdl = WideDeepHead(NUM_DENSE, 3, D, (6, 5)).double()
    w1, w2 = wdl.deep[0].weight, wdl.deep[2].weight
    deep = torch.relu(dense @ w1.T) @ w2.T
    torch.testing.assert_close(
        wdl(dense, sparse), (torch.cat([flat, deep], 1) @ wdl.wide.weight.T).squeeze(-1)
    )

    dcn = DCNHead(NUM_DENSE, 3, D, num_cross_layers=2, deep_layer_sizes=(6,)).double()
    x0 = torch.cat([flat, dense], 1)
    x = x0
    for layer in dcn.cross:
        x = x0 * (x @ layer.weight) + layer.bias + x
    deep = x0 @ dcn.deep[0].weight.T
    torch.testing.assert_close(dcn(dense, sparse), (torch.cat([x, deep], 1) @ dcn.out.weight.T).squeeze(-1))
    # HET-GMP initialisation: N(0, 0.01^2)
    assert 0.002 < dcn.deep[0].weight.std().item() < 0.02


def test_build_head_depends_only_on_the_seed():
    settings = ModelSettings(embedding_dim=D, dense_arch=(8, D), over_arch=(8, 1))
    a, b, c = (build_head(settings, NUM_DENSE, 3, seed=s) for s in (5, 5, 6))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interaction": "pairwise"}, "interaction must be one of"),
        ({"over_arch_layer_sizes": [8, 2]}, "ending in 1"),
        ({"dense_arch_layer_sizes": [8, 3]}, "must end with embedding_dim=4"),
        ({"num_dense": 0, "interaction": "dot"}, "needs dense features"),
    ],
)
def test_dlrm_head_rejects_bad_arguments(kwargs, message):
    args = {
        "num_dense": NUM_DENSE,
        "num_sparse_features": 3,
        "embedding_dim": D,
        "dense_arch_layer_sizes": [8, D],
        "over_arch_layer_sizes": [8, 1],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        DLRMHead(**args)


def test_cat_head_without_dense_features():
    head = DLRMHead(0, 3, D, [], [8, 1], interaction="cat")
    assert head(torch.zeros(B, 0), torch.rand(B, 3, D)).shape == (B,)
