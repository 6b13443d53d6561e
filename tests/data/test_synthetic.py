"""The synthetic generator: calibration to a stats file, determinism, pooling, hot rows, planted labels."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from ecorec.data.locality_stats import (
    LocalityAccumulator,
    locality_source_name,
    read_locality_stats,
    total_variation,
    write_locality_stats,
)
from ecorec.data.parquet import read_metadata
from ecorec.data.sources import default_locality_stats_path
from ecorec.data.synthetic import (
    SyntheticConfig,
    SyntheticDatasetGenerator,
    generate_synthetic_dataset,
    synthetic_meta_dlrm_tensors,
    synthetic_table_lookup,
)

#: Stated tolerance: total variation distance between the generated and the target "histogram of col sizes".
TV_TOLERANCE = 0.02
#: The index ratio is matched only approximately (ecorec.data.synthetic docstring). At a small reference
#: batch (2048, 8 tables of >= 10k rows: few hot rows per table) measured TV 0.08-0.17; this bound catches a
#: regression.
INDEX_RATIO_TV_BOUND = 0.2
#: Issue 14's goal for the hot tail, at the default config's reference batch (4096): TV <= 0.05 of the index
#: ratio, on the packaged file and on a stats file of another shape (measured 0.016-0.045, below).
HOT_TAIL_TV_GOAL = 0.05


def _bucket(counts: np.ndarray, num_buckets: int) -> np.ndarray:
    """Independent bucketing: count c in (2^(k-1), 2^k] -> k, the open bucket last."""
    return np.minimum(np.ceil(np.log2(counts)).astype(int), num_buckets - 1)


def _reuse_histograms(dataset, reference_batch_size: int, num_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """From the files: the fraction of unique (table, row) pairs per bucket and the fraction of indices in the
    rows of each bucket, over the dataset's reference batches."""
    meta = read_metadata(dataset)
    table = pq.read_table(dataset / meta.files[0].path) if len(meta.files) == 1 else None
    assert table is not None
    hist = np.zeros(num_buckets)
    ratio = np.zeros(num_buckets)
    for start in range(0, meta.num_samples, reference_batch_size):
        for feature in meta.features:
            rows = (
                table.column(feature).slice(start, reference_batch_size).combine_chunks().flatten().to_numpy()
            )
            counts = np.unique(rows, return_counts=True)[1]
            hist += np.bincount(_bucket(counts, num_buckets), minlength=num_buckets)
            ratio += np.bincount(_bucket(counts, num_buckets), weights=counts, minlength=num_buckets)
    return hist / hist.sum(), ratio / ratio.sum()


def _reuse_histogram(dataset, reference_batch_size: int, num_buckets: int) -> np.ndarray:
    """Fraction of unique (table, row) pairs per bucket over the dataset's reference batches (from files)."""
    return _reuse_histograms(dataset, reference_batch_size, num_buckets)[0]


def test_matches_the_packaged_stats_within_tolerance(tmp_path):
    config = SyntheticConfig(
        num_tables=8, num_samples=8192, rows_min=10_000, rows_max=1_000_000, reference_batch_size=2048
    )
    meta = generate_synthetic_dataset(tmp_path / "ds", config, row_group_size=2048)
    target = read_locality_stats(default_locality_stats_path()).mean()
    achieved = _reuse_histogram(tmp_path / "ds", 2048, len(target.edges))
    assert total_variation(achieved, target.col_size_hist) <= TV_TOLERANCE
    reuse = meta.provenance["reuse"]
    np.testing.assert_allclose(reuse["achieved_col_size_hist"], achieved, atol=1e-12)
    assert reuse["col_size_total_variation"] == pytest.approx(total_variation(achieved, target.col_size_hist))
    # The published mean pooling (13.6) per sample per table, within sampling noise.
    table = pq.read_table(tmp_path / "ds" / meta.files[0].path)
    total = sum(len(table.column(f).combine_chunks().flatten()) for f in meta.features)
    assert table.num_rows == 8192
    assert total / (8 * 8192) == pytest.approx(target.mean_pooling(), rel=0.03)
    # The achieved statistics are also written in the published format.
    written = read_locality_stats(tmp_path / "ds" / "locality_stats.txt").blocks[0]
    np.testing.assert_allclose(written.col_size_hist, achieved, atol=5e-4)
    assert written.batch_size == 2048 and written.num_batches == 4
    assert written.reference_num_tables == 8


@pytest.mark.parametrize("seed", [0, 1])
def test_index_ratio_is_approximately_matched(tmp_path, seed):
    config = SyntheticConfig(
        num_tables=8,
        num_samples=8192,
        rows_min=10_000,
        rows_max=1_000_000,
        reference_batch_size=2048,
        seed=seed,
    )
    meta = generate_synthetic_dataset(tmp_path / "ds", config, row_group_size=2048)
    target = read_locality_stats(default_locality_stats_path()).mean()
    _, ratio = _reuse_histograms(tmp_path / "ds", 2048, len(target.edges))
    tv = total_variation(ratio, target.index_ratio)
    assert tv <= INDEX_RATIO_TV_BOUND
    reuse = meta.provenance["reuse"]
    np.testing.assert_allclose(reuse["achieved_index_ratio"], ratio, atol=1e-12)
    assert reuse["index_ratio_total_variation"] == pytest.approx(tv)


def test_batch_size_differing_from_the_stats_file_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="ecorec.data.synthetic"):
        SyntheticDatasetGenerator(SyntheticConfig(num_tables=2, num_samples=100, rows=(500, 500)))
    assert "measured at batch size 131072" in caplog.text
    assert "reference_batch_size=4096" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ecorec.data.synthetic"):
        SyntheticDatasetGenerator(
            SyntheticConfig(num_tables=2, num_samples=100, rows=(500, 500), reference_batch_size=131072)
        )
    assert "measured at batch size" not in caplog.text


def test_own_locality_stats_file_can_be_fed_back(tmp_path, caplog):
    first_config = SyntheticConfig(
        num_tables=8, num_samples=8192, rows_min=20_000, rows_max=1_000_000, reference_batch_size=2048, seed=4
    )
    first = generate_synthetic_dataset(tmp_path / "first", first_config, row_group_size=2048)
    stats_file = tmp_path / "first" / "locality_stats.txt"
    published = read_locality_stats(stats_file).blocks[0]
    assert published.source.startswith("first_t8_bs2048")
    assert published.reference_num_tables == 8
    # Fed back with another seed and another number of tables: the table count comes from the file.
    config = SyntheticConfig(
        num_tables=6,
        num_samples=8192,
        rows_min=20_000,
        rows_max=1_000_000,
        stats_file=str(stats_file),
        reference_batch_size=2048,
        seed=9,
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ecorec.data.synthetic"):
        second = generate_synthetic_dataset(tmp_path / "second", config, row_group_size=2048)
    assert caplog.text == ""  # same batch size, table count in the name: nothing to warn about
    achieved_first = sum(first.provenance["table_mean_pooling_achieved"]) / 8
    assert second.provenance["mean_pooling"] == pytest.approx(published.avg_indices / (8 * 2048))
    assert second.provenance["mean_pooling"] == pytest.approx(achieved_first, rel=1e-3)
    achieved = _reuse_histogram(tmp_path / "second", 2048, len(published.edges))
    assert total_variation(achieved, published.col_size_hist) <= TV_TOLERANCE  # measured 0.008


def test_stats_file_without_a_table_count_falls_back_to_num_tables(tmp_path, caplog):
    stats = tmp_path / "no_count.txt"
    stats.write_text(HAND_MADE.replace("hand_t1_bs1000.pt", "hand_made.pt"))
    config = SyntheticConfig(
        num_tables=2, num_samples=2000, rows=(10**6, 10**6), stats_file=str(stats), reference_batch_size=1000
    )
    with caplog.at_level(logging.WARNING, logger="ecorec.data.synthetic"):
        meta = generate_synthetic_dataset(tmp_path / "ds", config, row_group_size=1000)
    assert "has no table count in its name" in caplog.text and "num_tables=2" in caplog.text
    assert meta.provenance["mean_pooling"] == pytest.approx(1787 / (2 * 1000))
    achieved = _reuse_histogram(tmp_path / "ds", 1000, 4)
    assert total_variation(achieved, [0.5, 0.3, 0.2, 0.0]) <= TV_TOLERANCE


HAND_MADE = """\
hand_t1_bs1000.pt
Locality stats after processing 1 batches of size 1000
Avg # of indices: 1787
Avg # of unique cols: 1000
Avg col size: 1.8
Histogram of col sizes:
(0, 1]: 0.500
(1, 2]: 0.300
(2, 4]: 0.200
(4+: 0.000
[0, 1, 2, 4]
['0.000', '0.500', '0.800', '1.000', '1.000']
Ratio of index distribution at different column sizes:
(0, 1]: 0.280
(1, 2]: 0.336
(2, 4]: 0.384
(4+: 0.000
[0, 1, 2, 4]
['0.000', '0.280', '0.616', '1.000', '1.000']
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_index_ratio_hot_tail_within_the_goal_on_the_packaged_file(tmp_path, seed):
    """Packaged file, the default's reference batch 4096: measured TV 0.040 / 0.045 / 0.039 (seeds 0/1/2)."""
    config = SyntheticConfig(
        num_tables=16,
        num_samples=16384,
        rows_min=1000,
        rows_max=1_000_000,
        reference_batch_size=4096,
        seed=seed,
    )
    generate_synthetic_dataset(tmp_path / "ds", config, row_group_size=4096)
    target = read_locality_stats(default_locality_stats_path()).mean()
    _, ratio = _reuse_histograms(tmp_path / "ds", 4096, len(target.edges))
    assert total_variation(ratio, target.index_ratio) <= HOT_TAIL_TV_GOAL


def _zipf_stats_file(
    path, *, batch_size: int, num_tables: int, rows: int, pooling: int, alpha: float
) -> None:
    """A stats file of the published format measured on an independent Zipf(alpha) stream (another shape than
    the packaged file: no locality structure, a different pooling and skew)."""
    rng = np.random.default_rng(123)
    weights = 1.0 / np.arange(1, rows + 1) ** alpha
    weights /= weights.sum()
    acc = LocalityAccumulator()
    for _ in range(4):
        for _ in range(num_tables):
            ids = rng.choice(rows, size=batch_size * pooling, p=weights)
            acc.add(np.unique(ids, return_counts=True)[1])
        acc.end_batch()
    name = locality_source_name("zipf", num_tables, batch_size)
    write_locality_stats(path, [acc.block(name, batch_size=batch_size)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_index_ratio_hot_tail_within_the_goal_on_another_stats_file(tmp_path, seed):
    """A Zipf(1.05) file, pooling 8, 1M rows: measured TV 0.036 / 0.017 / 0.016 (seeds 0/1/2). Not every
    shape meets the goal for every seed: at pooling 3 (200k rows) seed 1 gives 0.062 (alpha 1.05) and 0.066
    (alpha 1.2)."""
    stats = tmp_path / "zipf_stats.txt"
    _zipf_stats_file(stats, batch_size=4096, num_tables=8, rows=1_000_000, pooling=8, alpha=1.05)
    target = read_locality_stats(stats).blocks[0]
    config = SyntheticConfig(
        num_tables=8,
        num_samples=16384,
        rows_min=1_000_000,
        rows_max=1_000_000,
        stats_file=str(stats),
        reference_batch_size=4096,
        seed=seed,
    )
    generate_synthetic_dataset(tmp_path / "ds", config, row_group_size=4096)
    col_sizes, ratio = _reuse_histograms(tmp_path / "ds", 4096, len(target.edges))
    assert total_variation(ratio, target.index_ratio) <= HOT_TAIL_TV_GOAL
    assert total_variation(col_sizes, target.col_size_hist) <= TV_TOLERANCE


def test_matches_a_hand_made_stats_file(tmp_path):
    stats = tmp_path / "hand_stats.txt"
    stats.write_text(HAND_MADE)
    config = SyntheticConfig(
        num_tables=3,
        num_samples=4096,
        rows=(10**6, 10**6, 10**6),
        stats_file=str(stats),
        reference_batch_size=1024,
        seed=3,
    )
    generate_synthetic_dataset(tmp_path / "ds", config, row_group_size=1024)
    achieved = _reuse_histogram(tmp_path / "ds", 1024, 4)
    assert total_variation(achieved, [0.5, 0.3, 0.2, 0.0]) <= TV_TOLERANCE
    assert achieved[3] == 0.0  # nothing accessed more than 4 times per batch
    # mean pooling from the file: 1787 / (1 table in the name * 1000 samples)
    meta = read_metadata(tmp_path / "ds")
    assert meta.provenance["mean_pooling"] == pytest.approx(1.787)


def test_deterministic_per_seed(tmp_path):
    config = SyntheticConfig(
        num_tables=3, num_samples=700, rows_min=20, rows_max=2000, reference_batch_size=256
    )
    a = generate_synthetic_dataset(tmp_path / "a", config, row_group_size=128)
    b = generate_synthetic_dataset(tmp_path / "b", config, row_group_size=128)
    c = generate_synthetic_dataset(tmp_path / "c", SyntheticConfig(**{**config.to_json(), "seed": 1}))
    assert [f.sha256 for f in a.files] == [f.sha256 for f in b.files]
    assert [f.sha256 for f in a.files] != [f.sha256 for f in c.files]
    assert a.num_embeddings == b.num_embeddings != c.num_embeddings


def test_dataset_facts(small_synthetic):
    meta = read_metadata(small_synthetic)
    config = meta.provenance["settings"]
    assert meta.source == "synthetic" and meta.has_labels and meta.num_dense == 5
    assert len(meta.features) == 6 and meta.num_samples == 3000
    for feature in meta.features:
        rows = meta.num_embeddings[feature]
        assert config["rows_min"] <= rows <= config["rows_max"]
    lengths, largest = [], {}
    for f in meta.files:
        table = pq.read_table(small_synthetic / f.path)
        for feature in meta.features:
            column = table.column(feature).combine_chunks()
            lengths.append(np.diff(column.offsets.to_numpy()))
            largest[feature] = max(largest.get(feature, -1), int(column.flatten().to_numpy().max()))
    lengths = np.concatenate(lengths)
    assert (lengths == 0).mean() > 0.01  # some empty bags
    assert all(largest[f] < meta.num_embeddings[f] for f in meta.features)
    labels = np.concatenate(
        [pq.read_table(small_synthetic / f.path).column("label").to_numpy() for f in meta.files]
    )
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert json.loads((small_synthetic / "metadata.json").read_text())["provenance"]["environment"]["torch"]


def test_hot_rows_persist_across_batches(tmp_path):
    config = SyntheticConfig(
        num_tables=1, num_samples=4096, rows=(200_000,), reference_batch_size=2048, seed=5
    )
    meta = generate_synthetic_dataset(tmp_path / "ds", config, row_group_size=2048)
    rows = pq.read_table(tmp_path / "ds" / meta.files[0].path).column("f0")
    tops = []
    for start in (0, 2048):
        values, counts = np.unique(
            rows.slice(start, 2048).combine_chunks().flatten().to_numpy(), return_counts=True
        )
        tops.append(set(values[np.argsort(-counts)[:20]]))
    assert len(tops[0] & tops[1]) >= 10


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC (ties averaged)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores[np.diff(np.sort(scores), prepend=np.nan) == 0]):
        tie = scores == value
        ranks[tie] = ranks[tie].mean()
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_planted_labels_are_learnable(tmp_path):
    config = SyntheticConfig(
        num_tables=8, num_samples=32768, rows_min=1000, rows_max=100_000, reference_batch_size=4096, seed=11
    )
    meta = generate_synthetic_dataset(
        tmp_path / "ds", config, row_group_size=4096, splits={"train": 0.75, "test": 0.25}
    )
    table = pq.read_table(tmp_path / "ds" / meta.files[0].path)
    labels = table.column("label").to_numpy()
    dense = table.column("dense").combine_chunks().flatten().to_numpy().reshape(-1, config.num_dense)
    assert 0.15 < labels.mean() < 0.6

    # The planted logit, recomputed from the stored data and the generator's parameters, ranks labels well.
    generator = SyntheticDatasetGenerator(config)
    logit = config.label_bias + dense @ generator.dense_weights
    for t in generator.planted:
        column = table.column(f"f{t}").combine_chunks()
        bag = np.repeat(np.arange(len(labels)), np.diff(column.offsets.to_numpy()))
        effects = generator._effects[int(t)][column.flatten().to_numpy()]
        logit += np.bincount(bag, weights=effects, minlength=len(labels)) / np.sqrt(
            max(generator.table_mean_pooling[t], 1.0)
        )
    assert _auc(logit, labels) >= 0.7

    # A logistic regression on hashed one-hot sparse features + dense, trained on train, beats 0.6 on test.
    buckets = 1 << 18
    ids, bags = [], []
    for t, feature in enumerate(meta.features):
        column = table.column(feature).combine_chunks()
        ids.append((column.flatten().to_numpy() * 1_000_003 + t * 7919) % buckets)
        bags.append(np.repeat(np.arange(len(labels)), np.diff(column.offsets.to_numpy())))
    ids, bags = np.concatenate(ids), np.concatenate(bags)
    order = np.argsort(bags, kind="stable")
    ids, bags = torch.from_numpy(ids[order]), torch.from_numpy(bags[order])
    offsets = torch.searchsorted(bags, torch.arange(len(labels)))
    torch.manual_seed(0)
    sparse = torch.nn.EmbeddingBag(buckets, 1, mode="sum")
    torch.nn.init.zeros_(sparse.weight)
    linear = torch.nn.Linear(config.num_dense, 1)
    optimizer = torch.optim.Adagrad([*sparse.parameters(), *linear.parameters()], lr=0.1)
    y = torch.from_numpy(labels)
    x = torch.from_numpy(dense.copy())
    train_stop = meta.splits["train"][1]

    def scores(lo: int, hi: int) -> torch.Tensor:
        start, stop = int(offsets[lo]), int(offsets[hi]) if hi < len(labels) else len(ids)
        return (sparse(ids[start:stop], offsets[lo:hi] - start) + linear(x[lo:hi])).squeeze(1)

    for _ in range(3):
        for lo in range(0, train_stop, 1024):
            hi = min(lo + 1024, train_stop)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(scores(lo, hi), y[lo:hi])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        test_scores = scores(train_stop, len(labels)).numpy()
    assert _auc(test_scores, labels[train_stop:]) >= 0.6


def _train_small_dlrm(dataset, num_dense: int, use_sparse: bool, epochs: int = 4) -> float:
    """Train a minimal DLRM (an EmbeddingBag per table + a bottom MLP on the dense features -> concat -> top
    MLP) with Adagrad on the train split; return its AUROC on the test split (torchmetrics)."""
    from torch import nn
    from torchmetrics.classification import BinaryAUROC

    from ecorec.data import ParquetBatchLoader

    meta = read_metadata(dataset)
    dim = 8
    torch.manual_seed(0)
    tables = nn.ModuleList(nn.EmbeddingBag(meta.num_embeddings[f], dim, mode="sum") for f in meta.features)
    for table in tables:
        nn.init.normal_(table.weight, std=0.01)
    bottom = nn.Sequential(nn.Linear(num_dense, dim), nn.ReLU())
    top = nn.Sequential(nn.Linear(dim * (1 + len(tables)), 16), nn.ReLU(), nn.Linear(16, 1))
    params = [*bottom.parameters(), *top.parameters(), *(tables.parameters() if use_sparse else ())]
    optimizer = torch.optim.Adagrad(params, lr=0.1)

    def logits(batch) -> torch.Tensor:
        parts = [bottom(batch.dense)]
        jagged = batch.sparse.to_dict()
        for feature, table in zip(meta.features, tables):
            if use_sparse:
                parts.append(table(jagged[feature].values(), jagged[feature].offsets()[:-1]))
            else:
                parts.append(torch.zeros(len(batch.labels), dim))
        return top(torch.cat(parts, dim=1)).squeeze(1)

    train = ParquetBatchLoader(dataset, split="train", global_batch_size=256, shuffle=True, prefetch=0)
    for _ in range(epochs):
        for batch in train:
            loss = nn.functional.binary_cross_entropy_with_logits(logits(batch), batch.labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    test = ParquetBatchLoader(dataset, split="test", global_batch_size=256, drop_last=False, prefetch=0)
    auroc = BinaryAUROC()
    with torch.no_grad():
        for batch in test:
            auroc.update(torch.sigmoid(logits(batch)), batch.labels.long())
    return float(auroc.compute())


#: AUROC of the small DLRM on the synthetic test split: measured 0.74-0.77 over seeds 0-2 (dense features
#: alone: 0.61-0.70); the bounds keep a margin.
DLRM_MIN_AUROC = 0.65
SPARSE_MIN_GAIN = 0.03


def test_a_small_dlrm_learns_the_planted_model(tmp_path):
    config = SyntheticConfig(
        num_tables=4, num_samples=8192, rows_min=100, rows_max=2000, reference_batch_size=1024, num_dense=4
    )
    generate_synthetic_dataset(
        tmp_path / "ds", config, row_group_size=256, splits={"train": 0.8, "test": 0.2}
    )
    auroc = _train_small_dlrm(tmp_path / "ds", config.num_dense, use_sparse=True)
    assert auroc >= DLRM_MIN_AUROC
    # The embeddings carry signal of their own: the same model with zeros for them does clearly worse.
    dense_only = _train_small_dlrm(tmp_path / "ds", config.num_dense, use_sparse=False)
    assert auroc >= dense_only + SPARSE_MIN_GAIN


def test_table_lookup_is_calibrated_and_deterministic():
    indices, offsets = synthetic_table_lookup(500_000, 8192, seed=2)
    again, _ = synthetic_table_lookup(500_000, 8192, seed=2)
    other, _ = synthetic_table_lookup(500_000, 8192, seed=2, batch_index=1)
    assert offsets.shape == (8193,) and offsets[0] == 0 and offsets[-1] == indices.numel()
    assert bool((offsets.diff() >= 0).all()) and indices.dtype == torch.int64
    assert 0 <= int(indices.min()) and int(indices.max()) < 500_000
    assert torch.equal(indices, again) and not torch.equal(indices[:100], other[:100])
    target = read_locality_stats(default_locality_stats_path()).mean()
    assert indices.numel() / 8192 == pytest.approx(target.mean_pooling(), rel=0.05)
    counts = np.unique(indices.numpy(), return_counts=True)[1]
    hist = np.bincount(_bucket(counts, 17), minlength=17)
    assert total_variation(hist, target.col_size_hist) <= 0.05
    # The same popularity: the hottest rows of two batches overlap.
    top = set(torch.bincount(indices).topk(10).indices.tolist())
    top_other = set(torch.bincount(other).topk(10).indices.tolist())
    assert len(top & top_other) >= 5


def test_meta_layout_tensors_are_consistent():
    indices, offsets, lengths = synthetic_meta_dlrm_tensors(4, 300, rows=(10, 100, 1000, 10_000), seed=1)
    assert lengths.shape == (4, 300) and offsets.shape == (1201,)
    torch.testing.assert_close(offsets[1:], lengths.reshape(-1).cumsum(0))
    for t, rows in enumerate((10, 100, 1000, 10_000)):
        values = indices[offsets[t * 300] : offsets[(t + 1) * 300]]
        assert int(values.max()) < rows


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"unknown synthetic dataset settings \['num_tabels'\]"):
        SyntheticConfig.from_mapping({"num_tabels": 3})
    with pytest.raises(ValueError, match="rows_min"):
        SyntheticConfig(rows_min=10, rows_max=5)
    with pytest.raises(ValueError, match="SyntheticConfig.rows"):
        SyntheticConfig(num_tables=2, rows=(5,))
    with pytest.raises(ValueError, match="planted_tables"):
        SyntheticConfig(num_tables=2, planted_tables=3)


def test_blocks_of_different_batch_sizes_warn_and_use_the_configured_size(tmp_path, caplog):
    from ecorec.data.locality_stats import write_locality_stats
    from ecorec.data.synthetic import load_target_stats

    packaged = read_locality_stats(default_locality_stats_path()).blocks[0]
    other = packaged.__class__(**{**packaged.__dict__, "batch_size": 4096, "source": "x_t788_bs4096"})
    path = tmp_path / "mixed.txt"
    write_locality_stats(path, [packaged, other])
    with caplog.at_level(logging.WARNING):
        block = load_target_stats(path, 4096)
    assert "its blocks disagree: measured at batch sizes [4096, 131072]" in caplog.text
    assert block.batch_size == 4096 and block.source == "x_t788_bs4096"
