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
        gres=bench_gres,
    params:
        python=PYTHON,
        device=config["device"],
        settings=bench_flags(config["fig11"]),
        src=src_hash("tt", "kernels", *BENCH_TT_SOURCES),
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
        gres=bench_gres,
    params:
        python=PYTHON,
        device=config["device"],
        settings=bench_flags(config["table1"]),
        src=src_hash("tt", "kernels", "data", *BENCH_TT_SOURCES),
    shell:
        "{params.python} -m ecorec.bench tt --device {params.device} --indices synthetic "
        "--num-embeddings {wildcards.rows} --batch-sizes {wildcards.batch} "
        "{params.settings} --threads {threads} --no-progress --out {output} > {log} 2>&1"


rule fig10:
    """End to end: time per iteration and peak memory of each system, per table count."""
    input:
        figure_runs("fig10"),
    output:
        png=report(
            "results/figures/fig10.png",
            caption="../report/fig10.rst",
            category="Figures",
            labels={"figure": "10", "what": "end to end"},
        ),
        csv=report(
            "results/figures/fig10.csv",
            caption="../report/fig10.rst",
            category="Figure data",
            labels={"figure": "10", "what": "plotted numbers (CSV)"},
        ),
        pdf="results/figures/fig10.pdf",
    log:
        "logs/figures/fig10.log",
    localrule: True
    params:
        settings=config["fig10"],
        src=src_hash("plots"),
    script:
        "../workflow_scripts/plot_figure.py"


rule fig12:
    """Weak scaling: throughput and time per iteration of each system over world sizes."""
    input:
        figure_runs("fig12"),
    output:
        png=report(
            "results/figures/fig12.png",
            caption="../report/fig12.rst",
            category="Figures",
            labels={"figure": "12", "what": "scaling"},
        ),
        csv=report(
            "results/figures/fig12.csv",
            caption="../report/fig12.rst",
            category="Figure data",
            labels={"figure": "12", "what": "plotted numbers (CSV)"},
        ),
        pdf="results/figures/fig12.pdf",
    log:
        "logs/figures/fig12.log",
    localrule: True
    params:
        settings=config["fig12"],
        src=src_hash("plots"),
    script:
        "../workflow_scripts/plot_figure.py"


rule fig16:
    """Ablation: batch-wise pipeline, table-wise pipeline, + reordering, + slope."""
    input:
        figure_runs("fig16"),
    output:
        png=report(
            "results/figures/fig16.png",
            caption="../report/fig16.rst",
            category="Figures",
            labels={"figure": "16", "what": "ablation"},
        ),
        csv=report(
            "results/figures/fig16.csv",
            caption="../report/fig16.rst",
            category="Figure data",
            labels={"figure": "16", "what": "plotted numbers (CSV)"},
        ),
        pdf="results/figures/fig16.pdf",
    log:
        "logs/figures/fig16.log",
    localrule: True
    params:
        settings=config["fig16"],
        src=src_hash("plots"),
    script:
        "../workflow_scripts/plot_figure.py"


rule fig11:
    """TT kernels: forward and forward+backward time over the largest tables vs batch size."""
    input:
        expand(
            "results/bench/{dataset}/kernels/K{k}-b{batch}.jsonl",
            dataset=config["dataset"],
            k=config["fig11"]["largest_tables"],
            batch=config["fig11"]["batch_sizes"],
        ),
    output:
        png=report(
            "results/figures/fig11.png",
            caption="../report/fig11.rst",
            category="Figures",
            labels={"figure": "11", "what": "TT kernels"},
        ),
        csv=report(
            "results/figures/fig11.csv",
            caption="../report/fig11.rst",
            category="Figure data",
            labels={"figure": "11", "what": "plotted numbers (CSV)"},
        ),
        pdf="results/figures/fig11.pdf",
    log:
        "logs/figures/fig11.log",
    localrule: True
    params:
        settings=config["fig11"],
        src=src_hash("plots"),
    script:
        "../workflow_scripts/plot_figure.py"


rule table1:
    """Memory: parameters and peaks of each TT algorithm and of an uncompressed table."""
    input:
        expand(
            "results/bench/table1/N{rows}-b{batch}.jsonl",
            rows=config["table1"]["num_embeddings"],
            batch=config["table1"]["batch_sizes"],
        ),
    output:
        png=report(
            "results/figures/table1.png",
            caption="../report/table1.rst",
            category="Figures",
            labels={"figure": "table 1", "what": "memory"},
        ),
        csv=report(
            "results/figures/table1.csv",
            caption="../report/table1.rst",
            category="Figure data",
            labels={"figure": "table 1", "what": "plotted numbers (CSV)"},
        ),
        pdf="results/figures/table1.pdf",
    log:
        "logs/figures/table1.log",
    localrule: True
    params:
        settings=config["table1"],
        src=src_hash("plots"),
    script:
        "../workflow_scripts/plot_figure.py"


rule figures:
    """Every figure and table of the paper."""
    input:
        expand("results/figures/{name}.png", name=FIGURES),
