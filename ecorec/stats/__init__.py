"""Feature statistics of datasets: pooling factors, distinct rows and TT prefix groups per batch, reuse."""

from ecorec.stats.features import (
    DEFAULT_TABLES_PER_READ,
    STATS_COLUMNS,
    FeatureStats,
    FeatureStatsAccumulator,
    compute_feature_stats,
    dataset_feature_stats,
    dataset_lookups,
    locality_source_name,
    mean_col_size,
    read_table_stats,
)

__all__ = [
    "DEFAULT_TABLES_PER_READ",
    "STATS_COLUMNS",
    "FeatureStats",
    "FeatureStatsAccumulator",
    "compute_feature_stats",
    "dataset_feature_stats",
    "dataset_lookups",
    "locality_source_name",
    "mean_col_size",
    "read_table_stats",
]
