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
from ecorec.stats.table_features import (
    NUM_REUSE_BINS,
    REUSE_BIN_COLUMNS,
    TABLE_FEATURE_COLUMNS,
    dataset_table_features,
    reuse_bins,
    table_reuse_features,
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
    "NUM_REUSE_BINS",
    "REUSE_BIN_COLUMNS",
    "TABLE_FEATURE_COLUMNS",
    "dataset_table_features",
    "reuse_bins",
    "table_reuse_features",
]
