"""Draw one of the paper's figures from its result records (the plot rules of rules/figures.smk); a training
figure on the emulated cluster also gets its modelled regime (ecorec.cluster.regime) under the title."""

import json

from ecorec.plots.paper import make_figure
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
records = list(ctx.input.records)
settings = dict(ctx.params.settings)
note = ""
if "split" in ctx.input.keys():
    from ecorec.cluster.regime import regime_note, regime_rows
    from ecorec.models import ModelSettings, head_parameters
    from ecorec.records import read_records

    split = json.loads(open(ctx.input.split).read())
    model = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(ctx.params.train_model).items()}
    model.pop("preset", None)
    settings_model = ModelSettings(**model)
    rows = regime_rows(
        [r.to_dict() if hasattr(r, "to_dict") else r for r in read_records(records)],
        split=split,
        paper=settings.get("paper"),
        profiles=dict(ctx.params.profiles),
        dense_parameters=lambda t: head_parameters(settings_model, int(split["num_dense"]), t),
        figure=ctx.rule,
    )
    note = regime_note(rows)
rows = make_figure(ctx.rule, records, ctx.output.png, ctx.output.csv, settings, note)
ctx.logger.info(
    "%s: %d rows from %d result files -> %s, %s", ctx.rule, len(rows), len(records), *ctx.output[:2]
)
