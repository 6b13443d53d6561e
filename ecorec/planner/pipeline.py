"""Stage grouping for EcoRec's table-wise pipeline (twp).

Each rank runs its tables in ``K = num_micro_keys`` stages; stage i's all-to-all overlaps stage i+1's compute.
Two knobs shape the stages (spec section 2.7):

- *reordering*: run the cheapest tables first (``execution_order(..., reorder=True)``), so the first, exposed
  compute stage is short;
- *slope* (``skew_degree`` in [0, 1]): stage sizes follow a linear profile instead of equal sizes; in the
  forward pass (compute -> comm) the last stage is the smallest, so little communication is left exposed.

The backward pass runs the same stages in reverse order (comm -> compute): its group sizes are exactly the
forward ones reversed (the artifact recomputed them with a tie-breaking asymmetry; here they mirror by
construction).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ecorec.planner.sharding import ShardingPlan

logger = logging.getLogger(__name__)


def execution_order(
    plan: ShardingPlan | Mapping[int, Sequence[str]],
    costs: Mapping[str, float],
    reorder: bool = True,
) -> dict[int, list[str]]:
    """Per rank, the order in which its tables run.

    Args:
        plan: a ``ShardingPlan`` or a plain ``{rank: [tables]}`` mapping.
        costs: predicted cost of each table (the planner's cost model; any consistent unit).
        reorder: if True, cheapest first (ties by name); if False, the plan's own order.

    Returns:
        ``{rank: [tables]}`` in execution order.
    """
    assignment = plan.assignment if isinstance(plan, ShardingPlan) else plan
    missing = sorted({n for names in assignment.values() for n in names} - set(costs))
    if missing:
        raise KeyError(
            f"execution_order: no cost for tables {missing[:5]}{'...' if len(missing) > 5 else ''}"
        )
    if not reorder:
        return {int(rank): list(names) for rank, names in assignment.items()}
    return {int(rank): sorted(names, key=lambda n: (costs[n], n)) for rank, names in assignment.items()}


def stage_sizes(
    n_tables: int, num_micro_keys: int, skew_degree: float = 0.0, decreasing: bool = True
) -> list[int]:
    """Sizes of the pipeline stages (groups of consecutive tables) of one rank.

    The desired size of group i (i = 1..g) is ``n/g + k * (i - (g+1)/2)`` with ``k = skew_degree * k_max`` and
    ``k_max = 2(n - g) / (g(g - 1))``, the steepest slope that keeps the smallest group at 1; the profile is
    reversed when ``decreasing``. Integer sizes start at 1 and grow one table at a time where the desired size
    is furthest ahead (ties to the lowest index), on the decreasing profile; the result is sorted descending.
    ``decreasing=False`` returns exactly that list reversed, so the backward partition mirrors the forward
    one (the artifact recomputed it on the increasing profile, and its tie-breaking made them differ, e.g.
    ``(49, 4, 1)``: ``[24, 16, 8, 1]`` forward but ``[1, 9, 16, 23]`` backward). Every size is within 1 of
    the desired profile (``_desired_profile``). ``skew_degree=0`` gives near-equal sizes.

    Fewer tables than stages gives ``n_tables`` stages of one table (logged as a warning); no tables, no
    stages.

    Examples:
        ``stage_sizes(197, 4, 1.0)`` -> ``[98, 65, 33, 1]``;
        ``stage_sizes(197, 4, 0.0)`` -> ``[50, 49, 49, 49]``;
        ``stage_sizes(49, 4, 1.0, decreasing=False)`` -> ``[1, 8, 16, 24]``.
    """
    if n_tables < 0:
        raise ValueError(f"n_tables must be >= 0, got {n_tables}")
    if num_micro_keys < 1:
        raise ValueError(f"num_micro_keys must be >= 1, got {num_micro_keys}")
    if not 0.0 <= skew_degree <= 1.0:
        raise ValueError(f"skew_degree must be in [0, 1], got {skew_degree}")
    if n_tables == 0:
        return []
    groups = num_micro_keys
    if n_tables < groups:
        logger.warning(
            "stage_sizes: %d tables < num_micro_keys=%d stages; using %d stages of one table",
            n_tables,
            groups,
            n_tables,
        )
        groups = n_tables
    if groups == 1:
        return [n_tables]
    # The decreasing partition is computed once; the increasing one is its exact mirror image.
    desired = _desired_profile(n_tables, groups, skew_degree, decreasing=True)
    sizes = [1] * groups
    for _ in range(n_tables - groups):
        gap = [d - s for d, s in zip(desired, sizes)]
        sizes[max(range(groups), key=lambda i: (gap[i], -i))] += 1
    sizes.sort(reverse=True)
    return sizes if decreasing else sizes[::-1]


def _desired_profile(n_tables: int, groups: int, skew_degree: float, decreasing: bool = True) -> list[float]:
    """The real-valued linear profile of spec section 2.7 that :func:`stage_sizes` rounds.

    Group ``i = 1..g`` gets ``n/g + k * (i - (g+1)/2)`` with ``k = skew_degree * 2(n - g) / (g(g - 1))``
    (``k = 0`` for one group); reversed (largest first) when ``decreasing``. The values sum to ``n`` and the
    smallest is ``>= 1`` for ``n >= g``.
    """
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    k = skew_degree * 2.0 * (n_tables - groups) / (groups * (groups - 1)) if groups > 1 else 0.0
    centre = (groups + 1) / 2.0
    desired = [n_tables / groups + k * (i - centre) for i in range(1, groups + 1)]
    return desired[::-1] if decreasing else desired


def split_into_stages(tables: Sequence[str], sizes: Sequence[int]) -> list[list[str]]:
    """Cut an ordered table list into consecutive stages of the given sizes."""
    if sum(sizes) != len(tables):
        raise ValueError(f"stage sizes {list(sizes)} sum to {sum(sizes)}, not to {len(tables)} tables")
    stages, start = [], 0
    for size in sizes:
        stages.append(list(tables[start : start + size]))
        start += size
    return stages


def pipeline_stages(
    order: Sequence[str], num_micro_keys: int, skew_degree: float = 0.0
) -> tuple[list[list[str]], list[list[str]]]:
    """Forward and backward stages of one rank's ordered tables.

    Forward: consecutive groups with ``stage_sizes(..., decreasing=True)`` (largest first, the smallest stage
    last). Backward: the same groups in reverse order, so the first backward stage is the last forward one.
    """
    sizes = stage_sizes(len(order), num_micro_keys, skew_degree, decreasing=True)
    forward = split_into_stages(order, sizes)
    return forward, [list(stage) for stage in reversed(forward)]
