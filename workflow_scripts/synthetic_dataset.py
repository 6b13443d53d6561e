"""Generate the synthetic dataset (rule `synthetic`): config entry -> results/datasets/<name>/."""

from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset
from ecorec.workflow import script_context

_WRITER_KEYS = ("row_group_size", "splits", "samples_per_file")

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
settings = dict(ctx.params.settings)
settings.pop("source")
writer = {key: settings.pop(key) for key in _WRITER_KEYS if key in settings}
ctx.logger.info("synthetic dataset %s: settings %s, writer %s", ctx.output[0], settings, writer)
generate_synthetic_dataset(ctx.output[0], SyntheticConfig.from_mapping(settings), progress=True, **writer)
