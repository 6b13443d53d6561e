"""EcoRec's table-wise pipeline ("twp"): each rank's tables run in K stages; stage i's all-to-all overlaps
stage i+1's TT compute (forward), and the backward runs the same stages in reverse.

The stages come from the planner: ``execution_order(plan, costs, reorder=True)`` puts each rank's cheapest
tables first (the first, non-overlapped stage is short), and ``stage_sizes(n, K, skew_degree,
decreasing=True)`` slopes the stage sizes so the last forward stage - whose all-to-all nothing hides - is
small. Backward uses exactly the same groups, reversed (the artifact recomputed a backward partition that was
not always the mirror image). ``num_micro_uidx`` is applied when the TT tables are built
(``TableSettings.micro_batches``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from ecorec.parallel.mp import ModelParallelEmbeddings
from ecorec.parallel.types import ParallelMode, TablePlacement

__all__ = ["StageSizes", "TableWisePipeline", "table_wise_stages"]

_LOG = logging.getLogger(__name__)

StageSizes = Callable[[int, int], Sequence[int]]
"""``sizes(n_tables, num_stages) -> [size of stage 0, ...]``, e.g. a partial of
``ecorec.planner.stage_sizes``."""


def table_wise_stages(
    ordered: TablePlacement,
    num_stages: int,
    sizes: StageSizes,
    *,
    allow_fewer_stages: bool = True,
) -> dict[int, list[list[str]]]:
    """Cut each rank's execution order into the same number of contiguous stages.

    Args:
        ordered: ``{rank: [tables in execution order]}``.
        num_stages: K, the requested number of stages.
        sizes: stage sizes for ``(n_tables, K)``; they must sum to ``n_tables``.
        allow_fewer_stages: when some rank has fewer than K tables, use that many stages on every rank (with a
            warning); otherwise raise ``ValueError``.

    Returns:
        ``{rank: [[stage 0 tables], ...]}``; a rank without tables gets empty stages.
    """
    if num_stages < 1:
        raise ValueError(f"num_micro_keys must be >= 1, got {num_stages}")
    counts = {rank: len(names) for rank, names in ordered.items()}
    fewest = min((n for n in counts.values() if n > 0), default=1)
    stages = num_stages
    if fewest < num_stages:
        if not allow_fewer_stages:
            raise ValueError(
                f"num_micro_keys={num_stages} stages but some rank holds only {fewest} tables "
                f"(tables per rank: {counts}); lower num_micro_keys or allow fewer stages"
            )
        _LOG.warning(
            "num_micro_keys=%d but some rank holds only %d tables: using %d stages",
            num_stages,
            fewest,
            fewest,
        )
        stages = fewest
    out: dict[int, list[list[str]]] = {}
    for rank, names in ordered.items():
        names = list(names)
        if not names:
            out[rank] = [[] for _ in range(stages)]
            continue
        cut = [int(s) for s in sizes(len(names), stages)]
        if len(cut) != stages or sum(cut) != len(names) or min(cut) < 1:
            raise ValueError(
                f"stage sizes {cut} do not split {len(names)} tables into {stages} non-empty stages"
            )
        groups, start = [], 0
        for size in cut:
            groups.append(names[start : start + size])
            start += size
        out[rank] = groups
    return out


class TableWisePipeline(ModelParallelEmbeddings):
    """``mp`` in K stages with overlapped all-to-alls (see the module docstring).

    Args:
        tables, env, features, embedding_dim, fused_tables: as ``ModelParallelEmbeddings``.
        stages: ``{rank: [[stage 0 tables], ...]}`` from :func:`table_wise_stages`.
    """

    mode = ParallelMode.TABLE_WISE_PIPELINE

    def _setup(self, *, stages: Mapping[int, Sequence[Sequence[str]]]) -> None:  # stages required here
        super()._setup(stages=stages)
