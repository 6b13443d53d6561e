"""What every loader of one split in global batches shares (``ParquetBatchLoader``, ``RandomBatchLoader``).

The argument checks (rank, batch size, layout, split, features), the number of batches of the split, the
per-epoch batch order, the resumable position ``(epoch, next batch)`` with its ``state_dict`` /
``load_state_dict``, and the KJT built from per-feature jagged arrays. The loaders add how a batch is made
(read from Parquet, generated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.data.parquet import DatasetMetadata

__all__ = ["Layout", "SplitBatches", "jagged_kjt"]

Layout = Literal["local", "global"]

#: The settings a saved position is valid for (checked by ``load_state_dict``).
_POSITION_SETTINGS = ("split", "global_batch_size", "world_size", "num_batches", "shuffle", "seed")


def jagged_kjt(
    keys: Sequence[str], values: Sequence[np.ndarray], lengths: Sequence[np.ndarray]
) -> KeyedJaggedTensor:
    """KJT of ``keys`` from per-key-and-slice int64 arrays, concatenated in order.

    Args:
        keys: the KJT's keys (``F``).
        values: int64 arrays whose concatenation is the KJT's ``values`` ``[nnz]`` (may be empty: no values).
        lengths: int64 arrays whose concatenation is its ``lengths`` ``[F * B]`` (key-major).
    """
    return KeyedJaggedTensor(
        keys=list(keys),
        values=torch.from_numpy(np.concatenate(values) if values else np.zeros(0, dtype=np.int64)),
        lengths=torch.from_numpy(np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)),
    )


class SplitBatches:
    """Base of the loaders that cut one split of a :class:`DatasetMetadata` into global batches for one rank.

    Subclasses call :meth:`_init_split` in their ``__init__`` and iterate the indices of
    :meth:`_remaining_batches`, advancing ``self._next`` per batch yielded, then call :meth:`_roll_over`.
    """

    metadata: DatasetMetadata
    features: tuple[str, ...]
    split: str
    global_batch_size: int
    rank: int
    world_size: int
    local_batch_size: int
    layout: Layout
    shuffle: bool
    seed: int
    drop_last: bool
    split_start: int
    split_stop: int
    _num_batches: int
    _epoch: int
    _next: int

    def _init_split(
        self,
        metadata: DatasetMetadata,
        *,
        where: str,
        split: str,
        global_batch_size: int,
        rank: int,
        world_size: int,
        features: Sequence[str] | None,
        layout: Layout,
        shuffle: bool,
        seed: int,
        drop_last: bool,
    ) -> None:
        """Check the arguments (errors name ``where``) and set the split's batches and the position to 0."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        if global_batch_size < 1 or global_batch_size % world_size:
            raise ValueError(
                f"global_batch_size must be a positive multiple of world_size, got {global_batch_size} "
                f"and {world_size}"
            )
        if layout not in ("local", "global"):
            raise ValueError(f"layout must be 'local' or 'global', got {layout!r}")
        if split not in metadata.splits:
            raise ValueError(f"{where}: no split {split!r}; it has {sorted(metadata.splits)}")
        self.metadata = metadata
        self.features = tuple(metadata.features if features is None else features)
        unknown = [f for f in self.features if f not in metadata.features]
        if unknown or len(set(self.features)) != len(self.features):
            raise ValueError(f"{where}: unknown or repeated features {unknown or list(self.features)}")
        self.split = split
        self.global_batch_size = global_batch_size
        self.rank = rank
        self.world_size = world_size
        self.local_batch_size = global_batch_size // world_size
        self.layout = layout
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.split_start, self.split_stop = metadata.splits[split]
        size = self.split_stop - self.split_start
        self._num_batches = size // global_batch_size if drop_last else math.ceil(size / global_batch_size)
        self._epoch = 0
        self._next = 0

    # -- facts -----------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Batches per epoch."""
        return self._num_batches

    @property
    def epoch(self) -> int:
        return self._epoch

    def batch_order(self, epoch: int) -> np.ndarray:
        """``[num_batches]`` indices of the global batches in the order epoch ``epoch`` visits them."""
        if not self.shuffle:
            return np.arange(self._num_batches)
        return np.random.default_rng([self.seed, epoch]).permutation(self._num_batches)

    # -- position --------------------------------------------------------------------------------------------

    def _roll_over(self) -> None:
        """After the last batch of an epoch, the position is the start of the next epoch."""
        if self._next >= self._num_batches:
            self._epoch, self._next = self._epoch + 1, 0

    def _remaining_batches(self) -> np.ndarray:
        """The indices still to visit in this epoch (the next epoch's, if this one is finished)."""
        self._roll_over()
        return self.batch_order(self._epoch)[self._next :]

    def state_dict(self) -> dict[str, Any]:
        """The position (``epoch``, next ``batch``) and the settings it is valid for."""
        return {
            "epoch": self._epoch,
            "batch": self._next,
            "split": self.split,
            "global_batch_size": self.global_batch_size,
            "world_size": self.world_size,
            "num_batches": self._num_batches,
            "shuffle": self.shuffle,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state``'s position; the loader's settings must match those it was saved with."""
        mine = self.state_dict()
        for key in _POSITION_SETTINGS:
            if key in state and state[key] != mine[key]:
                raise ValueError(f"loader state: '{key}' is {state[key]!r} but this loader has {mine[key]!r}")
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or not 0 <= batch <= self._num_batches:
            raise ValueError(f"loader state: position (epoch {epoch}, batch {batch}) out of range")
        self._epoch, self._next = epoch, batch
