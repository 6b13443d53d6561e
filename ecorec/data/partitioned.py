"""Per-rank sample schedules for partitioned training (HET-GMP): rank ``r`` trains on its own sample list.

A data partition gives every rank its own list of split samples, of unequal lengths. Every rank still steps
together with the same local batch ``b``: rank ``r``'s step ``t`` takes positions ``[t*b, (t+1)*b)`` of the
endless concatenation of passes over its list (pass ``k`` in ascending order, or, with ``shuffle``, in the
permutation drawn from ``(seed, r, k)``). A rank with fewer samples simply starts its next pass sooner (as
HET-GMP's workers, which each loop over their own shard for a fixed number of iterations); "an epoch" of the
run is ``ceil(N / (R*b))`` steps, the steps in which the split's ``N`` samples are seen once on average.

``rank_step_samples`` is the single definition of this schedule: the batch reader (``PartitionedBatchLoader``)
and the fetch predictor (``ecorec.planner.partition.count_remote_fetches``) both call it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import torch

from ecorec.data.loader import Batch
from ecorec.data.parquet import DENSE, LABEL, ParquetRangeReader, jagged_arrays, read_metadata
from ecorec.data.split_batches import jagged_kjt
from ecorec.data.verify import verify_files

__all__ = ["PartitionedBatchLoader", "rank_step_samples"]


def rank_step_samples(
    samples: np.ndarray, batch_size: int, step: int, *, rank: int = 0, seed: int = 0, shuffle: bool = False
) -> np.ndarray:
    """``[b]`` split-relative sample ids rank ``rank`` trains on at ``step`` (``samples``: its list)."""
    n = int(samples.size)
    if n == 0:
        raise ValueError(f"rank {rank} has no samples in its partition")
    if batch_size < 1 or step < 0:
        raise ValueError(f"batch_size must be >= 1 and step >= 0, got {batch_size}, {step}")
    pos = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
    passes, within = pos // n, pos % n
    out = np.empty(batch_size, dtype=np.int64)
    for k in np.unique(passes):
        order = np.random.default_rng([seed, rank, int(k)]).permutation(n) if shuffle else np.arange(n)
        sel = passes == k
        out[sel] = samples[order[within[sel]]]
    return out


class PartitionedBatchLoader:
    """This rank's batches under a data partition (``layout="local"``: its ``b`` samples, every feature).

    Args:
        path: dataset folder. split: the split the partition covers.
        samples: this rank's split-relative sample ids (``Partition.samples_of(rank)``).
        local_batch_size: ``b`` (the same on every rank).
        steps_per_epoch: steps one iteration yields (every rank must use the same number).
        rank, seed, shuffle: the schedule (``rank_step_samples``).
        features: sparse features in KJT key order (default all).
        verify: check the files read against ``metadata.json`` first (``ecorec.data.verify``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        split: str,
        samples: np.ndarray,
        local_batch_size: int,
        steps_per_epoch: int,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = False,
        features: Sequence[str] | None = None,
        verify: bool = True,
    ) -> None:
        self.metadata = read_metadata(path)
        meta = self.metadata
        if split not in meta.splits:
            raise ValueError(f"{meta.root}: no split {split!r}; the dataset has {sorted(meta.splits)}")
        self.split_start, self.split_stop = meta.splits[split]
        samples = np.asarray(samples, dtype=np.int64)
        if samples.size and (samples.min() < 0 or samples.max() >= self.split_stop - self.split_start):
            raise ValueError(f"{meta.root}: partition samples outside split {split!r}")
        self.samples = samples
        self.local_batch_size = local_batch_size
        self.steps_per_epoch = steps_per_epoch
        self.rank, self.seed, self.shuffle = rank, seed, shuffle
        self.features = tuple(meta.features if features is None else features)
        self._columns = (
            *((LABEL,) if meta.has_labels else ()),
            *((DENSE,) if meta.num_dense else ()),
            *self.features,
        )
        if verify:
            verify_files(meta, self._columns)
        self._step = 0

    def __len__(self) -> int:
        return self.steps_per_epoch

    def state_dict(self) -> dict[str, int]:
        """The position ``{"epoch", "batch"}`` as ``ParquetBatchLoader`` (``batch``: step in the epoch)."""
        return {"epoch": self._step // self.steps_per_epoch, "batch": self._step % self.steps_per_epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._step = int(state["epoch"]) * self.steps_per_epoch + int(state["batch"])

    def read_steps(self, reader: ParquetRangeReader, first: int, count: int) -> list[Batch]:
        """The batches of steps ``first .. first+count-1``: each row group holding some of their samples is
        read once for all of them, the samples are taken from it, and each batch is put back in schedule
        order.

        Reading a chunk of steps at once is what makes a scattered partition cheap to read: one step's
        ``b`` samples may touch every row group of the split, and a chunk of ``row_group_size / b`` steps
        touches each at most once too.
        """
        b = self.local_batch_size
        ids = np.concatenate(
            [
                rank_step_samples(self.samples, b, s, rank=self.rank, seed=self.seed, shuffle=self.shuffle)
                for s in range(first, first + count)
            ]
        )
        columns = self._gather(reader, ids + self.split_start)
        return [self._batch({c: a.slice(i * b, b) for c, a in columns.items()}, b) for i in range(count)]

    def _batch(self, columns: dict[str, pa.Array], n: int) -> Batch:
        """The ``Batch`` of ``n`` samples given as ``{column: [n] array}``."""
        meta = self.metadata
        values, lengths = (
            zip(*(jagged_arrays(columns[f]) for f in self.features)) if self.features else ((), ())
        )
        kjt = jagged_kjt(self.features, values, lengths)
        if meta.num_dense:
            dense = columns[DENSE].flatten().to_numpy(zero_copy_only=False).reshape(n, meta.num_dense)
        else:
            dense = np.zeros((n, 0), dtype=np.float32)
        labels = (
            columns[LABEL].to_numpy(zero_copy_only=False)
            if meta.has_labels
            else np.zeros(n, dtype=np.float32)
        )
        return Batch(
            sparse=kjt,
            dense=torch.from_numpy(np.array(dense, dtype=np.float32)),
            labels=torch.from_numpy(np.array(labels, dtype=np.float32)),
        )

    def _gather(self, reader: ParquetRangeReader, positions: np.ndarray) -> dict[str, pa.Array]:
        """``{column: [n] array}`` of the samples at dataset ``positions`` ``[n]``, in that order."""
        order = np.argsort(positions, kind="stable")
        ordered = positions[order]
        size = self.metadata.row_group_size
        groups = ordered // size
        pieces: dict[str, list[pa.Array]] = {c: [] for c in self._columns}
        for g in np.unique(groups):
            start = int(g) * size
            block = reader.read(start, min(start + size, self.metadata.num_samples))
            rows = pa.array(ordered[groups == g] - start)
            for c in self._columns:
                taken = block[c].take(rows)
                pieces[c].append(taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken)
        back = pa.array(np.argsort(order))  # sorted position -> schedule position
        return {c: pa.concat_arrays(chunks).take(back) for c, chunks in pieces.items()}

    def __iter__(self) -> Iterator[Batch]:
        """``steps_per_epoch`` batches from the current step."""
        end = (self._step // self.steps_per_epoch + 1) * self.steps_per_epoch
        chunk = max(1, self.metadata.row_group_size // self.local_batch_size)
        with ParquetRangeReader(self.metadata, self._columns, verify=False) as reader:
            while self._step < end:
                for batch in self.read_steps(reader, self._step, min(chunk, end - self._step)):
                    self._step += 1
                    yield batch
