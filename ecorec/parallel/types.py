"""What the distributed modes are, where tables live, and the settings they share (plain data, no behaviour).

Kept apart from the strategies (``dp.py``, ``mp.py``, ``bwp.py``, ``twp.py``, ``torchrec_baseline.py``) the
way torchrec keeps ``ShardingType`` and ``ShardingPlan`` apart from its sharders: YAML configs, plan JSON
files and the CLI share the enum values as their vocabulary.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.types import ParallelMode  # defined once, torch-free (re-exported here)

__all__ = [
    "BatchLike",
    "DenseOptimizerSettings",
    "HetGMPSettings",
    "InputLayout",
    "ParallelMode",
    "StepOutput",
    "TablePlacement",
    "validate_placement",
]


class InputLayout(enum.StrEnum):
    """Which samples and features a rank's sparse input holds
    (``ecorec.data.ParquetBatchLoader(layout=...)``)."""

    LOCAL = "local"
    """The rank's ``b`` samples, every feature it is asked for (data parallel)."""
    GLOBAL = "global"
    """All ``G = R*b`` samples of the global batch, for the rank's own tables (model parallel)."""


TablePlacement = Mapping[int, Sequence[str]]
"""``{rank: [table names]}``: which rank owns which tables (the planner's plan, without its costs)."""


class BatchLike(Protocol):
    """What a strategy reads from a batch (``ecorec.data.Batch`` satisfies it).

    ``sparse``: KJT of the rank's features, local or global samples depending on the strategy's layout;
    ``dense``: ``[b, num_dense]``; ``labels``: ``[b]`` (always the rank's local samples).
    """

    sparse: KeyedJaggedTensor
    dense: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class DenseOptimizerSettings:
    """Optimizer of the dense (MLP) parameters: ``kind`` in sgd, adagrad, adam."""

    kind: str = "sgd"
    lr: float = 0.1
    eps: float = 1e-8
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("sgd", "adagrad", "adam"):
            raise ValueError(f"dense optimizer kind must be sgd, adagrad or adam, got {self.kind!r}")
        if not self.lr >= 0:
            raise ValueError(f"dense optimizer lr must be >= 0, got {self.lr}")


@dataclass(frozen=True)
class HetGMPSettings:
    """What the ``hetgmp`` mode needs beyond the other modes' settings.

    ``owner``: ``[E]`` owner rank of every global row (the partition's ``embed_partition``); ``mirrors``: the
    global ids this rank mirrors (``Partition.mirrors_of(rank, store_rate)``); ``bound``: staleness bound in
    occurrence-weighted updates; ``prefetch``: pull step t+1's rows during step t.
    """

    owner: Any
    mirrors: Any
    bound: int = 0
    prefetch: bool = False


@dataclass
class StepOutput:
    """What one training step reports.

    ``loss``: the global mean BCE over the global batch (identical on every rank); ``logits``/``labels``: the
    rank's local ``[b]`` predictions and labels (detached).
    """

    loss: float
    logits: torch.Tensor
    labels: torch.Tensor
    extra: dict[str, float] = field(default_factory=dict)


def validate_placement(placement: TablePlacement, tables: Sequence[str], world_size: int) -> None:
    """Check that ``placement`` puts every table of ``tables`` on exactly one rank in ``[0, world_size)``.

    Raises ``ValueError`` naming the offending rank or table, before any collective runs.
    """
    ranks = set(placement)
    if ranks != set(range(world_size)):
        raise ValueError(
            f"placement must have an entry for each rank 0..{world_size - 1}, got ranks {sorted(ranks)}"
        )
    seen: dict[str, int] = {}
    for rank in range(world_size):
        for name in placement[rank]:
            if name in seen:
                raise ValueError(f"placement puts table {name!r} on ranks {seen[name]} and {rank}")
            seen[name] = rank
    missing = [t for t in tables if t not in seen]
    unknown = [t for t in seen if t not in set(tables)]
    if missing:
        raise ValueError(f"placement leaves tables without a rank: {missing[:10]}")
    if unknown:
        raise ValueError(f"placement names unknown tables: {unknown[:10]}")
