# The paper's experiments: figure 10 (end to end), 11 (TT kernels), 12 (scaling), 16 (ablation) and table 1
# (memory). Each figure's config section lists only its grid; its points are ordinary runs (rules/train.smk) or
# kernel benchmarks whose paths follow from their settings, so figures that share a point share its file, and a
# change to one figure's section reruns only that figure's new points and its plot.
# Outputs: results/figures/<name>.{png,pdf,csv}; kernel benchmarks under results/bench/.


wildcard_constraints:
    k=r"\d+",
    rows=r"\d+",


rule bench_kernels:
    """Figure 11's measurements at one batch size: the K largest tables of the dataset, every variant."""
    input:
        dataset="results/datasets/{dataset}",
    output:
        "results/bench/{dataset}/kernels/K{k}-b{batch}.jsonl",
    log:
        "logs/bench/{dataset}/kernels/K{k}-b{batch}.log",
    benchmark:
        "benchmarks/bench/{dataset}/kernels/K{k}-b{batch}.tsv"
    threads: 2
    resources:
        timed_jobs=1,
        gres=WF.bench_gres,
    params:
        python=PYTHON,
        device=config["device"],
        settings=WF.bench_flags("fig11"),
        src=WF.src_hash("ecorec.bench.__main__", "ecorec.bench.tt"),
    shell:
        "{params.python} -m ecorec.bench tt --device {params.device} --indices dataset "
        "--dataset {input.dataset} --largest-tables {wildcards.k} --batch-sizes {wildcards.batch} "
        "{params.settings} --threads {threads} --no-progress --out {output} > {log} 2>&1"


rule bench_memory:
    """Table 1's measurements at one batch size: one table of `rows` rows (calibrated synthetic lookups)."""
    output:
        "results/bench/table1/N{rows}-b{batch}.jsonl",
    log:
        "logs/bench/table1/N{rows}-b{batch}.log",
    benchmark:
        "benchmarks/bench/table1/N{rows}-b{batch}.tsv"
    threads: 2
    resources:
        timed_jobs=1,
        gres=WF.bench_gres,
    params:
        python=PYTHON,
        device=config["device"],
        settings=WF.bench_flags("table1"),
        src=WF.src_hash("ecorec.bench.__main__", "ecorec.bench.tt"),
    shell:
        "{params.python} -m ecorec.bench tt --device {params.device} --indices synthetic "
        "--num-embeddings {wildcards.rows} --batch-sizes {wildcards.batch} "
        "{params.settings} --threads {threads} --no-progress --out {output} > {log} 2>&1"


# One plot rule per row of the table of figures (ecorec.workflow.config.FIGURE_TABLE): inputs are the grid of
# the figure's config section (WF.figure_inputs), the caption report/<name>.rst.
for figure in FIGURE_TABLE:

    rule:
        name:
            figure.name
        input:
            **WF.figure_named_inputs(figure.name),
        output:
            png=report(
                f"results/figures/{figure.name}.png",
                caption=f"../report/{figure.name}.rst",
                category="Figures",
                labels=figure.labels,
            ),
            csv=report(
                f"results/figures/{figure.name}.csv",
                caption=f"../report/{figure.name}.rst",
                category="Figure data",
                labels={**figure.labels, "what": "plotted numbers (CSV)"},
            ),
            pdf=f"results/figures/{figure.name}.pdf",
        log:
            f"logs/figures/{figure.name}.log",
        localrule: True
        params:
            settings=config[figure.name],
            src=WF.src_hash("plot_figure.py"),
        script:
            "../workflow_scripts/plot_figure.py"


rule figures:
    """Every figure and table of the paper."""
    input:
        expand("results/figures/{name}.png", name=FIGURES),
