# The regime of every experiment (issue 24): per figure, the paper's claim and whether it holds here, and the
# share of a step that communication takes, measured on the emulated cluster (exposed, total) beside the share
# modelled for this run and for the paper's configuration on its target (ecorec.cluster.regime).
#   results/regime/<figure>.json        per training run of a figure: measured and modelled shares, title note
#   results/figures/regime.csv          one row per figure: claim, verdict, numbers, shares
#   results/figures/regime_points.csv   one row per training run of figures 10, 12 and 16


rule figure_regime:
    """A training figure's communication share per run: measured, modelled here and for the paper."""
    input:
        unpack(WF.figure_regime_inputs),
    output:
        "results/regime/{figure}.json",
    log:
        "logs/regime/{figure}.log",
    wildcard_constraints:
        figure="|".join(TRAINING_FIGURES),
    localrule: True
    params:
        paper=lambda wildcards: config[wildcards.figure].get("paper"),
        profiles=WF.cluster.get("profiles", {}),
        src=WF.src_hash("figure_regime.py"),
    script:
        "../workflow_scripts/figure_regime.py"


rule regime_table:
    input:
        unpack(WF.regime_inputs),
    output:
        csv=report(
            "results/figures/regime.csv",
            caption="../report/regime.rst",
            category="Regime",
            labels={"what": "claims and communication share per figure"},
        ),
        points=report(
            "results/figures/regime_points.csv",
            caption="../report/regime.rst",
            category="Regime",
            labels={"what": "communication share per run"},
        ),
    log:
        "logs/figures/regime.log",
    localrule: True
    params:
        settings=WF.regime_settings(),
        src=WF.src_hash("regime_table.py"),
    script:
        "../workflow_scripts/regime_table.py"


rule regime:
    """The regime table (claims and communication shares of every figure)."""
    input:
        rules.regime_table.output,
