"""Feature statistics of datasets: pooling factors, distinct rows and TT prefix groups per batch, reuse."""

from ecorec.stats.features import (
    STATS_COLUMNS,
    FeatureStats,
    compute_feature_stats,
    dataset_feature_stats,
    dataset_lookups,
    mean_col_size,
)

__all__ = [
    "STATS_COLUMNS",
    "FeatureStats",
    "compute_feature_stats",
    "dataset_feature_stats",
    "dataset_lookups",
    "mean_col_size",
]
