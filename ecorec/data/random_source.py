"""The ``random`` source: batches generated on the fly, no files (throughput runs with no data, like
torchrec's ``RandomRecDataset`` in TorchRec's DLRM example).

Sizes come from :class:`RandomSourceConfig`: rows per table, pooling per feature, dense count, samples per
split. Each split is a virtual dataset of ``num_samples`` samples, cut into global batches as
:class:`~ecorec.data.loader.ParquetBatchLoader` cuts a Parquet split (same sample-to-rank assignment, same
:class:`~ecorec.data.loader.Batch`, same ``local`` / ``global`` layouts, same resumable position), so the
trainer needs nothing else.

Determinism: the samples of rank ``r``'s slice of global batch ``i`` of a split come from a generator seeded
with ``(seed, split, i, r)`` alone: the same for the same seed and rank (whatever the epoch, the layout or the
order batches are visited in), different across ranks. In the ``global`` layout a rank generates every
rank's slice of the batch and concatenates them per feature, so its sparse input equals the union of the
``local`` batches.

Per sample: feature ``f`` has a length drawn uniformly from ``[min_pooling[f], pooling[f]]`` and that many
row ids uniform in ``[0, num_embeddings[f])``; ``dense`` is uniform in ``[0, 1)`` float32; the label is 0 or 1
with probability 1/2 (float32). Nothing can be learned from it: AUROC stays near 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ecorec.data.loader import Batch
from ecorec.data.parquet import DatasetMetadata
from ecorec.data.split_batches import Layout, SplitBatches, jagged_kjt

__all__ = ["RANDOM_SPLITS", "RandomBatchLoader", "RandomSourceConfig", "random_metadata"]

RANDOM_SPLITS = ("train", "val", "test")
_SPLIT_IDS = {name: i for i, name in enumerate(RANDOM_SPLITS)}


@dataclass(frozen=True)
class RandomSourceConfig:
    """Sizes of the generated data.

    Attributes:
        num_embeddings_per_feature: rows of each feature's table (one feature ``f<i>`` per entry).
        pooling: largest number of ids per sample, one value for all features or one per feature.
        min_pooling: smallest number of ids per sample (same forms; ``None``: equal to ``pooling``, a fixed
            length; 1 and 1 is one-hot Criteo).
        num_dense: dense features per sample (may be 0).
        num_samples: samples of each split ``train`` / ``val`` / ``test`` (a split may be 0: absent).
        feature_names: names of the features (default ``f0 .. f{T-1}``).
    """

    num_embeddings_per_feature: Sequence[int]
    pooling: int | Sequence[int] = 1
    min_pooling: int | Sequence[int] | None = None
    num_dense: int = 13
    num_samples: dict[str, int] = field(default_factory=lambda: {"train": 65536, "val": 8192, "test": 8192})
    feature_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        rows = list(self.num_embeddings_per_feature)
        if not rows or min(int(n) for n in rows) < 1:
            raise ValueError(f"num_embeddings_per_feature: needs >= 1 table of >= 1 rows, got {rows}")
        names = self.names
        if len(names) != len(rows) or len(set(names)) != len(names):
            raise ValueError(f"feature_names: {len(rows)} distinct names needed, got {list(names)}")
        hi, lo = self.max_lengths, self.min_lengths
        if min(lo) < 0 or any(a > b for a, b in zip(lo, hi)):
            raise ValueError(f"pooling / min_pooling: need 0 <= min_pooling <= pooling, got {lo} and {hi}")
        if self.num_dense < 0:
            raise ValueError(f"num_dense: must be >= 0, got {self.num_dense}")
        unknown = sorted(set(self.num_samples) - set(RANDOM_SPLITS))
        if unknown or min(self.num_samples.values(), default=0) < 0 or not self.num_samples.get("train"):
            raise ValueError(
                f"num_samples: sample counts >= 0 for {RANDOM_SPLITS} (train > 0), got {self.num_samples}"
            )

    @property
    def names(self) -> tuple[str, ...]:
        if self.feature_names is not None:
            return tuple(self.feature_names)
        return tuple(f"f{i}" for i in range(len(self.num_embeddings_per_feature)))

    def _per_feature(self, value: int | Sequence[int], what: str) -> tuple[int, ...]:
        t = len(self.num_embeddings_per_feature)
        if isinstance(value, int):
            return (int(value),) * t
        out = tuple(int(v) for v in value)
        if len(out) != t:
            raise ValueError(f"{what}: one value or {t} values (one per feature), got {list(out)}")
        return out

    @property
    def max_lengths(self) -> tuple[int, ...]:
        return self._per_feature(self.pooling, "pooling")

    @property
    def min_lengths(self) -> tuple[int, ...]:
        return (
            self.max_lengths
            if self.min_pooling is None
            else self._per_feature(self.min_pooling, "min_pooling")
        )


def random_metadata(config: RandomSourceConfig) -> DatasetMetadata:
    """The in-memory :class:`DatasetMetadata` of the generated data (no files; splits consecutive)."""
    splits: dict[str, tuple[int, int]] = {}
    start = 0
    for name in RANDOM_SPLITS:
        n = int(config.num_samples.get(name, 0))
        if n:
            splits[name] = (start, start + n)
            start += n
    return DatasetMetadata(
        source="random",
        features=config.names,
        num_embeddings={f: int(n) for f, n in zip(config.names, config.num_embeddings_per_feature)},
        num_dense=config.num_dense,
        has_labels=True,
        num_samples=start,
        row_group_size=1,
        splits=splits,
        files=(),
        provenance={
            "pooling": list(config.max_lengths),
            "min_pooling": list(config.min_lengths),
            "generator": "ecorec.data.random_source",
        },
    )


class RandomBatchLoader(SplitBatches):
    """Batches of one split of the ``random`` source for one rank; the interface of ``ParquetBatchLoader``.

    Args:
        config: the sizes (:class:`RandomSourceConfig`).
        split: ``train``, ``val`` or ``test``.
        global_batch_size / rank / world_size / features / layout / shuffle / seed / drop_last: as for
            ``ParquetBatchLoader``.
        pin_memory: yield batches in pinned host memory (needs CUDA).

    Example::

        cfg = RandomSourceConfig([1000, 50], pooling=[3, 1], num_dense=13)
        for batch in RandomBatchLoader(cfg, global_batch_size=512, rank=r, world_size=R):
            out = model(batch.sparse, batch.dense)   # batch.sparse: KJT [F * 512/R], dense [512/R, 13]
    """

    def __init__(
        self,
        config: RandomSourceConfig,
        *,
        split: str = "train",
        global_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        features: Sequence[str] | None = None,
        layout: Layout = "local",
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
        prefetch: int = 0,
    ) -> None:
        del prefetch  # generation is cheap and in the caller's thread
        self.config = config
        meta = random_metadata(config)
        self._init_split(
            meta,
            where="random source",
            split=split,
            global_batch_size=global_batch_size,
            rank=rank,
            world_size=world_size,
            features=features,
            layout=layout,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.pin_memory = pin_memory
        index = {f: i for i, f in enumerate(meta.features)}
        self._rows = [int(config.num_embeddings_per_feature[index[f]]) for f in self.features]
        self._hi = [config.max_lengths[index[f]] for f in self.features]
        self._lo = [config.min_lengths[index[f]] for f in self.features]

    @property
    def has_labels(self) -> bool:
        return True

    @property
    def num_dense(self) -> int:
        return self.config.num_dense

    def _slices(self, batch: int) -> list[int]:
        """Samples of each rank's slice of global batch ``batch`` (``ceil(n / R)`` each for a partial one)."""
        if not 0 <= batch < self._num_batches:
            raise IndexError(f"batch {batch} outside [0, {self._num_batches})")
        start = self.split_start + batch * self.global_batch_size
        n = min(self.global_batch_size, self.split_stop - start)
        per_rank = math.ceil(n / self.world_size)
        return [max(0, min(per_rank, n - r * per_rank)) for r in range(self.world_size)]

    def _generate(self, batch: int, rank: int, n: int) -> tuple[list[np.ndarray], list[np.ndarray], Any, Any]:
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[self.split], batch, rank])
        lengths = [rng.integers(lo, hi + 1, size=n, dtype=np.int64) for lo, hi in zip(self._lo, self._hi)]
        values = [
            rng.integers(0, rows, size=int(ln.sum()), dtype=np.int64) for rows, ln in zip(self._rows, lengths)
        ]
        dense = rng.random((n, self.config.num_dense), dtype=np.float32)
        labels = rng.integers(0, 2, size=n).astype(np.float32)
        return values, lengths, dense, labels

    def batch(self, index: int) -> Batch:
        """Global batch ``index`` (in split order, ignoring shuffle and position)."""
        sizes = self._slices(index)
        ranks = range(self.world_size) if self.layout == "global" else [self.rank]
        parts = {r: self._generate(index, r, sizes[r]) for r in ranks}
        _, _, dense, labels = parts[self.rank]
        values, lengths = [], []
        for f in range(len(self.features)):
            for r in ranks:
                values.append(parts[r][0][f])
                lengths.append(parts[r][1][f])
        kjt = jagged_kjt(self.features, values, lengths)
        out = Batch(sparse=kjt, dense=torch.from_numpy(dense), labels=torch.from_numpy(labels))
        return out.pin_memory() if self.pin_memory else out

    def __iter__(self) -> Iterator[Batch]:
        """One epoch from the current position; afterwards the position is the start of the next epoch."""
        for index in self._remaining_batches():
            batch = self.batch(int(index))
            self._next += 1
            yield batch
        self._roll_over()
