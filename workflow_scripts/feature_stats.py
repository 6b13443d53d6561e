"""Feature statistics of a dataset at one batch size (rule `feature_stats`)."""

import json

from ecorec.data.locality_stats import total_variation
from ecorec.data.synthetic import load_target_stats
from ecorec.stats import dataset_feature_stats, mean_col_size
from ecorec.utils import environment_record, write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
params, outputs, dataset = ctx.params, ctx.output, ctx.input.dataset
tt_ranks = list(params.tt_ranks)
stats = dataset_feature_stats(
    dataset,
    batch_size=int(params.batch_size),
    num_batches=params.num_batches,
    split=params.split,
    embedding_dim=params.embedding_dim,
    tt_ranks=tt_ranks,
    tt_num_cores=len(tt_ranks) + 1,  # the TT shape training uses (ecorec.train.planning)
    tables_per_read=int(params.tables_per_read),  # bounded memory: tables read in groups
)
stats.write(outputs.table, outputs.locality)
target = load_target_stats(params.target_stats)
summary = {
    "dataset": dataset,
    "batch_size": int(params.batch_size),
    "num_batches": params.num_batches,
    "num_tables": stats.table.height,
    "tables_per_read": int(params.tables_per_read),
    "avg_col_size": mean_col_size(stats.table),
    "target_stats_file": params.target_stats,
    "target_batch_size": target.batch_size,
    "col_size_total_variation": total_variation(stats.locality.col_size_hist, target.col_size_hist),
    "index_ratio_total_variation": total_variation(stats.locality.index_ratio, target.index_ratio),
    "environment": environment_record(),
}
write_json_atomic(outputs.summary, summary)
ctx.logger.info("%s", json.dumps({k: v for k, v in summary.items() if k != "environment"}))
