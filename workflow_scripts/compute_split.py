"""Rule compute_split: time one rank's embedding and dense compute of the configured training model on this
machine (python -m ecorec.bench split), the weight of the mix dilation."""

from ecorec.bench.compute_split import measure_compute_split
from ecorec.train import run_config_from_dict
from ecorec.utils import write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
data = dict(ctx.params.settings)
data["run"] = {**data["run"], "output_dir": f"{ctx.output[0]}.run"}
data["dataset"] = {**data["dataset"], "path": ctx.input.dataset}
cfg = run_config_from_dict(data, source=ctx.output[0])
split = measure_compute_split(cfg, parameter_tables=list(ctx.params.parameter_tables))
write_json_atomic(ctx.output[0], split)
ctx.logger.info(
    "embedding %.3f s, dense %.3f s per rank and step: tt weight %.3f -> %s",
    split["embedding_s"],
    split["dense_s"],
    split["tt_weight"],
    ctx.output[0],
)
