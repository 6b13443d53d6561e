"""Batches of a Parquet dataset as torchrec ``KeyedJaggedTensor`` + dense + labels, for one rank.

Sample-to-rank assignment (identical in both layouts and in every parallel mode): global batch ``i`` of a
split is samples ``[i*G, (i+1)*G)`` of the split (batches visited in order, or in a seeded per-epoch
permutation); rank ``r`` of ``R`` owns the contiguous slice ``[r*b, (r+1)*b)`` of it, ``b = G / R``.

- ``layout="local"`` (data parallel): the sparse features of my ``b`` samples;
- ``layout="global"`` (model parallel): the sparse features of all ``G`` samples of the batch (for my tables);
- ``dense`` and ``labels`` are always my ``b`` samples.

Only the files and columns needed are read, by a background thread that keeps ``prefetch`` batches ready.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor
from torchrec.streamable import Pipelineable

from ecorec.data.parquet import DENSE, LABEL, ParquetRangeReader, jagged_arrays, read_metadata
from ecorec.data.split_batches import Layout, SplitBatches, jagged_kjt
from ecorec.data.verify import verify_files

__all__ = ["Batch", "Layout", "ParquetBatchLoader"]


@dataclass
class Batch(Pipelineable):
    """One rank's batch (a torchrec ``Pipelineable``, so train pipelines can move it across devices/streams).

    Attributes:
        sparse: KJT with keys = the requested features (in that order), ``values`` int64 ``[nnz]``,
            ``lengths`` int64 ``[F * B_s]`` where ``B_s`` is ``b`` (local layout) or ``G`` (global layout).
        dense: ``[b, num_dense]`` float32 (``num_dense`` may be 0).
        labels: ``[b]`` float32 (zeros for a dataset without labels: see ``ParquetBatchLoader.has_labels``).
        mask: ``[b]`` bool, False for padding samples (``ParquetBatchLoader(pad_last=True)``: the last batch
            of a split filled up to full size with empty bags, zero dense features and label 0); ``None``
            when every sample is real.
    """

    sparse: KeyedJaggedTensor
    dense: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(
            sparse=self.sparse.to(device=torch.device(device), non_blocking=non_blocking),
            dense=self.dense.to(device=device, non_blocking=non_blocking),
            labels=self.labels.to(device=device, non_blocking=non_blocking),
            mask=None if self.mask is None else self.mask.to(device=device, non_blocking=non_blocking),
        )

    def record_stream(self, stream: torch.Stream) -> None:
        self.sparse.record_stream(stream)  # type: ignore[arg-type]
        self.dense.record_stream(stream)  # type: ignore[arg-type]
        self.labels.record_stream(stream)  # type: ignore[arg-type]
        if self.mask is not None:
            self.mask.record_stream(stream)  # type: ignore[arg-type]

    def pin_memory(self) -> Batch:
        mask = None if self.mask is None else self.mask.pin_memory()
        return Batch(self.sparse.pin_memory(), self.dense.pin_memory(), self.labels.pin_memory(), mask)


class _Stop:
    """Queue sentinel: the epoch ended."""


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ParquetBatchLoader(SplitBatches):
    """Iterates over one split of a Parquet dataset in global batches, yielding this rank's :class:`Batch`.

    Args:
        path: dataset folder (``metadata.json`` inside).
        split: a split named in the metadata (``train``, ``val``, ``test``).
        global_batch_size: ``G``; must be divisible by ``world_size``.
        rank / world_size: this rank ``r`` and ``R``.
        features: sparse features to load, in KJT key order (default: all).
        layout: ``"local"`` or ``"global"`` (see the module docstring).
        shuffle / seed: visit the batches in a permutation drawn from ``(seed, epoch)``.
        prefetch: batches read ahead by a background thread (0: read in the caller's thread).
        drop_last: drop the split's last partial batch (training). If kept, its ``n < G`` samples are split
            as ``ceil(n / R)`` per rank (the last ranks may get fewer or none), unless ``pad_last``.
        pad_last: with ``drop_last=False``, fill the last partial batch up to ``G`` samples (rank ``r`` keeps
            its slice ``[r*b, (r+1)*b)``, the padding at the end) with empty bags, zero dense features and
            label 0, marked by ``Batch.mask``: every rank gets a full-size batch, so every parallel mode can
            evaluate it, and :func:`ecorec.train.metrics.evaluate` scores each real sample exactly once.
        pin_memory: yield batches in pinned (page-locked) host memory, pinned by the reading thread, for
            faster, asynchronous copies to a CUDA device (needs CUDA).
        verify: check the files this loader reads against ``metadata.json`` before the first batch (size
            always, sha256 once per file: :func:`ecorec.data.verify.verify_files`); ``False`` skips it.

    Iterating runs one epoch from the current position; :meth:`state_dict` / :meth:`load_state_dict` save and
    restore ``(epoch, batch)`` so that training resumes with exactly the remaining batches.

    Example::

        loader = ParquetBatchLoader("results/datasets/synthetic", split="train", global_batch_size=1024,
                                    rank=rank, world_size=world, features=my_tables, layout="global")
        for batch in loader:
            out = model(batch.sparse, batch.dense)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        split: str = "train",
        global_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        features: Sequence[str] | None = None,
        layout: Layout = "local",
        shuffle: bool = False,
        seed: int = 0,
        prefetch: int = 2,
        drop_last: bool = True,
        pin_memory: bool = False,
        pad_last: bool = False,
        verify: bool = True,
    ) -> None:
        meta = read_metadata(path)
        self._init_split(
            meta,
            where=f"{meta.root}",
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
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.prefetch = prefetch
        self.pin_memory = pin_memory
        if pad_last and drop_last:
            raise ValueError("pad_last=True needs drop_last=False (there is no partial batch to pad)")
        self.pad_last = pad_last
        self._columns = (
            *((LABEL,) if meta.has_labels else ()),
            *((DENSE,) if meta.num_dense else ()),
            *self.features,
        )
        self.verification = verify_files(meta, self._columns) if verify else None

    # -- facts -----------------------------------------------------------------------------------------------

    @property
    def has_labels(self) -> bool:
        return self.metadata.has_labels

    @property
    def num_dense(self) -> int:
        return self.metadata.num_dense

    def sample_ranges(self, batch: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Dataset sample ranges of global batch ``batch``: ``((global start, stop), (my start, stop))``."""
        if not 0 <= batch < self._num_batches:
            raise IndexError(f"batch {batch} outside [0, {self._num_batches})")
        start = self.split_start + batch * self.global_batch_size
        stop = min(start + self.global_batch_size, self.split_stop)
        per_rank = (  # = b for a full batch
            self.local_batch_size if self.pad_last else math.ceil((stop - start) / self.world_size)
        )
        mine = (min(start + self.rank * per_rank, stop), min(start + (self.rank + 1) * per_rank, stop))
        return (start, stop), mine

    # -- reading ---------------------------------------------------------------------------------------------

    def _read(self, reader: ParquetRangeReader, batch: int) -> Batch:
        (g0, g1), (l0, l1) = self.sample_ranges(batch)
        sparse_range = (l0, l1) if self.layout == "local" else (g0, g1)
        columns = reader.read(*sparse_range, self.features)
        values, lengths = (
            zip(*(jagged_arrays(columns[f]) for f in self.features)) if self.features else ((), ())
        )
        n = l1 - l0
        pad = self.local_batch_size - n if self.pad_last else 0
        if self.pad_last:  # empty bags after each feature's real samples
            wanted = self.local_batch_size if self.layout == "local" else self.global_batch_size
            extra = np.zeros(wanted - (sparse_range[1] - sparse_range[0]), dtype=np.int64)
            lengths = tuple(np.concatenate([x, extra]) for x in lengths)
        kjt = jagged_kjt(self.features, values, lengths)
        mine = reader.read(l0, l1, [c for c in (LABEL, DENSE) if c in self._columns])
        if DENSE in mine:
            dense = mine[DENSE].flatten().to_numpy(zero_copy_only=False).reshape(n, self.num_dense)
        else:
            dense = np.zeros((n, 0), dtype=np.float32)
        labels = (
            mine[LABEL].to_numpy(zero_copy_only=False) if LABEL in mine else np.zeros(n, dtype=np.float32)
        )
        dense = np.array(dense, dtype=np.float32)  # a writable copy
        labels = np.array(labels, dtype=np.float32)
        mask = None
        if pad:
            dense = np.concatenate([dense, np.zeros((pad, self.num_dense), dtype=np.float32)])
            labels = np.concatenate([labels, np.zeros(pad, dtype=np.float32)])
            mask = torch.arange(self.local_batch_size) < n
        out = Batch(sparse=kjt, dense=torch.from_numpy(dense), labels=torch.from_numpy(labels), mask=mask)
        return out.pin_memory() if self.pin_memory else out

    def batch(self, index: int) -> Batch:
        """Global batch ``index`` (in split order, ignoring shuffle and position), read synchronously."""
        with ParquetRangeReader(self.metadata, self._columns, verify=False) as reader:
            return self._read(reader, index)

    def __iter__(self) -> Iterator[Batch]:
        """One epoch from the current position; afterwards the position is the start of the next epoch."""
        order = self._remaining_batches()
        if self.prefetch == 0:
            with ParquetRangeReader(self.metadata, self._columns, verify=False) as reader:
                for index in order:
                    batch = self._read(reader, int(index))
                    self._next += 1
                    yield batch
        else:
            yield from self._prefetched(order)
        self._roll_over()

    def _prefetched(self, order: np.ndarray) -> Iterator[Batch]:
        ready: queue.Queue[Batch | _Stop | _Failure] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: Batch | _Stop | _Failure) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                with ParquetRangeReader(self.metadata, self._columns, verify=False) as reader:
                    for index in order:
                        if stop.is_set() or not put(self._read(reader, int(index))):
                            return
                put(_Stop())
            except BaseException as err:  # handed to the consumer, re-raised there
                put(_Failure(err))

        worker = threading.Thread(target=produce, name="ParquetBatchLoader-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = ready.get()
                if isinstance(item, _Stop):
                    return
                if isinstance(item, _Failure):
                    raise item.error
                self._next += 1
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue, then let it exit
                with contextlib.suppress(queue.Empty):
                    ready.get_nowait()
                worker.join(timeout=0.05)
