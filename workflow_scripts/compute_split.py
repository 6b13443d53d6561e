"""Rule compute_split: time one rank's embedding and dense compute of the configured training model on this
machine (python -m ecorec.bench split), in as many concurrent processes as the run has ranks, beside this
machine's kernel rates at that concurrency (the regime model scales the split to other concurrencies)."""

import json
import tempfile
from pathlib import Path

import yaml

from ecorec.bench.compute_split import measure_compute_split_concurrently
from ecorec.train import run_config_from_dict
from ecorec.utils import write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
data = dict(ctx.params.settings)
data["run"] = {**data["run"], "output_dir": f"{ctx.output[0]}.run"}
data["dataset"] = {**data["dataset"], "path": ctx.input.dataset}
cfg = run_config_from_dict(data, source=ctx.output[0])  # fails here, naming the field, on a bad setting
with tempfile.TemporaryDirectory(prefix="ecorec-split-") as tmp:
    config = Path(tmp) / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    split = measure_compute_split_concurrently(
        config, cfg.parallel.world_size, parameter_tables=list(ctx.params.parameter_tables)
    )
rates = json.loads(Path(ctx.input.rates).read_text())
split["rates"] = {k: rates[k] for k in ("concurrency", "us_per_lookup", "gemm_gflops")}
write_json_atomic(ctx.output[0], split)
ctx.logger.info(
    "embedding %.3f s, dense %.3f s per rank and step (%d concurrent): tt weight %.3f -> %s",
    split["embedding_s"],
    split["dense_s"],
    split["concurrency"],
    split["tt_weight"],
    ctx.output[0],
)
