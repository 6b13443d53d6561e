"""The synthetic generator's co-occurrence knob (``communities`` / ``locality``): off by default and then
byte-identical, and when on, the share of a sample's indices on its own community's rows follows
``locality + (1 - locality) / K``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ecorec.data.synthetic import SyntheticConfig, SyntheticDatasetGenerator

BASE = SyntheticConfig(
    num_tables=4,
    num_samples=1024,
    rows_min=2000,
    rows_max=20000,
    reference_batch_size=512,
    num_dense=2,
    seed=4,
)


def test_knob_off_is_byte_identical():
    plain = SyntheticDatasetGenerator(BASE)
    for off in (dataclasses.replace(BASE, communities=8), dataclasses.replace(BASE, locality=0.7)):
        gen = SyntheticDatasetGenerator(off)
        for i in range(plain.num_batches):
            assert gen.batch(i).equals(plain.batch(i))
        assert off.to_json() == BASE.to_json()  # metadata.json unchanged too
    assert "communities" not in BASE.to_json()


@pytest.mark.parametrize("locality", [0.0, 0.5, 0.9])
def test_own_community_share_follows_locality(locality):
    K = 4
    cfg = dataclasses.replace(BASE, communities=K, locality=locality)
    gen = SyntheticDatasetGenerator(cfg)
    rank_of = []
    for pop in gen._popularity:
        r = np.empty(pop.num_rows, dtype=np.int64)
        r[pop.rows_by_rank.astype(np.int64)] = np.arange(pop.num_rows)
        rank_of.append(r)
    own = total = 0
    for i in range(gen.num_batches):
        batch = gen.batch(i)
        n = batch.num_rows
        comm = gen.sample_communities(i, n)
        for t, name in enumerate(gen.features):
            col = batch.column(name)
            lengths = np.diff(col.offsets.to_numpy())
            values = col.values.to_numpy()
            c = np.repeat(comm, lengths)
            own += int((rank_of[t][values] % K == c).sum())
            total += values.size
    share = own / total
    expected = locality + (1 - locality) / K
    assert share == pytest.approx(expected, abs=0.03), (share, expected)


def test_bad_knob_values():
    with pytest.raises(ValueError, match="locality in \\[0, 1\\]"):
        dataclasses.replace(BASE, communities=4, locality=1.5)
