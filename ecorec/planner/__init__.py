"""Cost model, sharding plans and pipeline stage grouping.

- ``plan_sharding``: table-wise placement (greedy LPT, random, round-robin, DreamShard's greedy baselines).
- ``table_costs``, ``table_profiles``, ``CostCalibration``: the cost model (FLOPs, bytes, optional seconds).
- ``execution_order``, ``stage_sizes``, ``pipeline_stages``: the table-wise pipeline's reordering and slope.
"""

from ecorec.planner.cost_model import (
    CostCalibration,
    TableCost,
    estimate_table_cost,
    planner_inputs,
    stats_file_profiles,
    table_costs,
    table_profiles,
    tt_table_memory,
)
from ecorec.planner.pipeline import execution_order, pipeline_stages, split_into_stages, stage_sizes
from ecorec.planner.sharding import (
    PlanError,
    ShardingMethod,
    ShardingPlan,
    TableProfile,
    compare_sharding_methods,
    lpt_lower_bound,
    plan_sharding,
)

__all__ = [
    "CostCalibration",
    "TableCost",
    "estimate_table_cost",
    "table_costs",
    "table_profiles",
    "tt_table_memory",
    "PlanError",
    "ShardingMethod",
    "ShardingPlan",
    "TableProfile",
    "compare_sharding_methods",
    "execution_order",
    "lpt_lower_bound",
    "planner_inputs",
    "stats_file_profiles",
    "pipeline_stages",
    "plan_sharding",
    "split_into_stages",
    "stage_sizes",
]
