"""Sample-row graph partitioning for HET-GMP (``ecorec.planner.partition``).

- ``graph``: ``SampleRowGraph`` (CSR in numpy), ``build_sample_row_graph`` (streams a Parquet split).
- ``objective``: soft count, weight matrix, predicted fetches, priorities.
- ``refine``: HET-GMP's alternating refinement, deterministic.
- ``partition``: ``partition_graph`` (random / hetgmp / metis / hypergraph), ``Partition`` (.npz).
- ``fetches``: exact per-step fetch counts for a given batch schedule.
- ``run``: ``partition_dataset`` (dataset -> partition file), CLI ``python -m ecorec.planner.partition``.
"""

from ecorec.planner.partition.fetches import count_remote_fetches, rank_step_samples
from ecorec.planner.partition.graph import (
    SampleRowGraph,
    build_sample_row_graph,
    dataset_fingerprint,
    graph_from_lists,
)
from ecorec.planner.partition.objective import comm_weights, fetch_matrix, priority_lists, soft_count_table
from ecorec.planner.partition.partition import (
    FORMAT_VERSION,
    Partition,
    PartitionError,
    PartitionMethod,
    partition_graph,
)
from ecorec.planner.partition.run import partition_dataset

__all__ = [
    "FORMAT_VERSION",
    "Partition",
    "PartitionError",
    "PartitionMethod",
    "SampleRowGraph",
    "build_sample_row_graph",
    "comm_weights",
    "count_remote_fetches",
    "dataset_fingerprint",
    "fetch_matrix",
    "graph_from_lists",
    "partition_dataset",
    "partition_graph",
    "priority_lists",
    "rank_step_samples",
    "soft_count_table",
]
