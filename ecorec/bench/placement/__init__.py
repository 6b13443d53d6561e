"""Measured cost of table placements (DreamShard's protocol): ``python -m ecorec.bench placement``.

For a placement (:class:`ecorec.planner.dreamshard.placement.Placement`) of ``R`` devices, each device looks
up **its tables for the whole batch** (``batch_size`` samples of one real batch of the dataset, as in
DreamShard) through **one fused module over its shards**. Four numbers per device (ms), DreamShard's columns:

1. ``forward_compute``: the fused lookup's forward, output ``[B, D_r]`` (``D_r``: its shards' dims summed);
2. ``forward_comm``: the forward all-to-all of the pooled outputs (rank ``r`` sends ``[B/R, D_r]`` to each);
3. ``backward_comm``: the reverse exchange of their gradients (DreamShard measures it as cat + backward
   through the all-to-all + kernel backward minus the kernel backward alone: the same exchange);
4. ``backward_compute``: the fused backward with the optimizer update (EXACT_SGD).

The plan cost is the **max over devices of the four columns' sum**.

A device's compute depends only on its own tables, and its communication only on every device's total dim,
so a placement is measured as **pieces** cached by content: a shard's compute (timed in this process, one
shard at a time, pinned to a core) and an exchange (over the
link's rate, or timed between ranks). Placements that share a shard share its measurement: the exhaustive
placements of a small task cost one measurement per distinct group of tables, not per placement.

The robust statistic (:mod:`ecorec.bench.placement.config`): every piece is timed in ``rounds`` interleaved
rounds of ``repeats`` iterations and a column's value is the **minimum over all its iterations** (min-of-k);
a measurement states its rounds' spread, and ``replicate`` re-measures pieces independently, which is how the
placement study measures the statistic's repeat-to-repeat spread.

The package, by job: ``config`` (settings, statistic, cache of pieces), ``compute`` (building and timing a
device's fused module), ``comm`` (the exchanges: link model and timed all-to-alls, their worker ranks),
``measure`` (:func:`measure_placements`: pieces -> placement costs), ``cli`` (the command line).
"""

from ecorec.bench.placement.cli import main
from ecorec.bench.placement.comm import canonical_dims
from ecorec.bench.placement.config import (
    COLUMNS,
    COMM_MODES,
    PlacementBenchConfig,
    PlacementCost,
    data_identity,
    exchange_key,
    plan_statistic,
    relative_iqr,
    round_values,
    shard_key,
)
from ecorec.bench.placement.measure import device_dims, measure_placements, shard_spec
from ecorec.planner.dreamshard.placement import link_exchange_ms

__all__ = [
    "COLUMNS",
    "COMM_MODES",
    "PlacementBenchConfig",
    "PlacementCost",
    "canonical_dims",
    "data_identity",
    "device_dims",
    "exchange_key",
    "link_exchange_ms",
    "main",
    "measure_placements",
    "plan_statistic",
    "relative_iqr",
    "round_values",
    "shard_key",
    "shard_spec",
]
