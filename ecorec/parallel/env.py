"""Where this rank's part of a distributed model lives: :class:`ShardingEnv`, the one context object every
embedding strategy takes (like torchrec's ``ShardingEnv``), and the one place placements are checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ecorec.parallel.comm import CommMeter, world_of
from ecorec.parallel.types import TablePlacement, validate_placement

__all__ = ["ShardingEnv"]


@dataclass(frozen=True)
class ShardingEnv:
    """Rank, world size, process group, device and table placement of one rank.

    Attributes:
        rank, world_size: of ``group`` (``0, 1`` without torch.distributed).
        group: the process group of the collectives (``None``: the default group).
        device: where the tables and pooled embeddings live.
        placement: ``{rank: [tables]}`` for the modes that place whole tables (``None`` for dp); checked
            against the features by :meth:`for_features`.
        comm_meter: where the rank's exchanges record bytes sent and time blocked (``None``: not metered).
    """

    rank: int = 0
    world_size: int = 1
    group: dist.ProcessGroup | None = None
    device: torch.device = torch.device("cpu")
    placement: Mapping[int, list[str]] | None = None
    comm_meter: CommMeter | None = field(default=None, compare=False)

    @classmethod
    def from_group(
        cls,
        group: dist.ProcessGroup | None = None,
        *,
        device: torch.device | str | None = None,
        placement: TablePlacement | None = None,
        comm_meter: CommMeter | None = None,
    ) -> ShardingEnv:
        """The env of this process in ``group`` (rank and world size from torch.distributed)."""
        rank, world_size = world_of(group)
        placed = {int(r): list(names) for r, names in placement.items()} if placement is not None else None
        return cls(
            rank=rank,
            world_size=world_size,
            group=group,
            device=torch.device(device) if device is not None else torch.device("cpu"),
            placement=placed,
            comm_meter=comm_meter,
        )

    def for_features(self, features: Sequence[str]) -> ShardingEnv:
        """Check the placement against ``features`` (every table on exactly one rank of ``[0, world_size)``;
        ``ValueError`` naming the rank or table) and return ``self``; ``ValueError`` if there is none."""
        if self.placement is None:
            raise ValueError("this mode places whole tables on ranks: it needs a placement {rank: [tables]}")
        validate_placement(self.placement, features, self.world_size)
        return self

    def tables_of(self, rank: int | None = None) -> list[str]:
        """The tables the placement gives ``rank`` (default: this rank)."""
        if self.placement is None:
            raise ValueError("no placement in this ShardingEnv")
        return list(self.placement[self.rank if rank is None else rank])

    def check_holds(self, table_names: Sequence[str]) -> None:
        """``ValueError`` unless this rank holds exactly the tables its placement gives it."""
        mine = self.tables_of()
        if sorted(table_names) != sorted(mine):
            raise ValueError(
                f"rank {self.rank} holds tables {sorted(table_names)[:10]} but the placement gives it "
                f"{sorted(mine)[:10]}"
            )
