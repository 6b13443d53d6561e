"""Rule figure_regime: the communication share of each run of a training figure, measured on the emulated
cluster and modelled for the run and for the paper's configuration (ecorec.cluster.regime), with the line its
figure's title shows."""

import json
from pathlib import Path

from ecorec.cluster.regime import regime_note, regime_rows
from ecorec.records import read_records
from ecorec.utils import write_json_atomic
from ecorec.workflow import script_context

ctx = script_context(snakemake)  # noqa: F821 (injected by Snakemake)
split = json.loads(Path(ctx.input.split).read_text())
rows = regime_rows(
    [r.to_dict() for r in read_records(ctx.input.records)],
    split=split,
    paper=ctx.params.paper,
    profiles=dict(ctx.params.profiles),
    figure=ctx.wildcards.figure,
)
note = regime_note(rows)
write_json_atomic(ctx.output[0], {"figure": ctx.wildcards.figure, "note": note, "rows": rows, "split": split})
ctx.logger.info("%s: %s", ctx.wildcards.figure, note)
