# HET-GMP (issue 16): graph-partitioned embedding rows and samples, hot-row mirrors, bounded staleness.
# Target `hetgmp` (in `all`). Grid = config `hetgmp`: partitioners x store_rates x
# bounds, on dataset `hetgmp.dataset` with `world` ranks and local batch `batch`:
#   results/hetgmp/<dataset>/R<world>-b<batch>/<partitioner>/partition.{npz,json}
#   results/hetgmp/<dataset>/R<world>-b<batch>/<partitioner>/s<store_rate>-B<bound>/{run.yaml,record.json}
#   results/figures/hetgmp.{png,pdf,csv}
# Runs launch like rules/train.smk (workflow_scripts/launch_torchrun.sh): loopback, or with config
# `cluster.emulate` on emulated nodes of this machine (issue 15).


wildcard_constraints:
    partitioner=r"random|hetgmp|metis|hypergraph",
    store_rate=r"[0-9]+(\.[0-9]+)?",
    bound=r"\d+",


rule hetgmp_partition:
    input:
        dataset="results/datasets/{dataset}",
    output:
        npz="results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/partition.npz",
        header="results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/partition.json",
    log:
        "logs/results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/partition.log",
    benchmark:
        "benchmarks/results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/partition.tsv"
    params:
        settings=WF.hetgmp,
        src=WF.src_hash("hetgmp_partition.py"),
    script:
        "../workflow_scripts/hetgmp_partition.py"


rule hetgmp_config:
    input:
        dataset="results/datasets/{dataset}",
        partition="results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/partition.npz",
    output:
        "results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/s{store_rate}-B{bound}/run.yaml",
    log:
        "logs/results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/s{store_rate}-B{bound}.config.log",
    localrule: True
    params:
        settings=WF.hetgmp,
        device=config["device"],
        src=WF.src_hash("hetgmp_run_config.py"),
    script:
        "../workflow_scripts/hetgmp_run_config.py"


# One launch per partitioner: its grid points (store rate x bound) train one after another in one torchrun job.
rule hetgmp_train:
    input:
        unpack(WF.study_cluster_inputs("hetgmp")),
        run_configs=WF.hetgmp_point_runs("run.yaml"),
        dataset="results/datasets/{dataset}",
        partition="results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/partition.npz",
    output:
        WF.hetgmp_point_runs("record.json"),
    log:
        "logs/results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/train.log",
    benchmark:
        "benchmarks/results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}/train.tsv"
    threads: lambda wildcards: int(wildcards.world)
    resources:
        timed_jobs=1,
    params:
        launcher=WF.script("launch_torchrun.sh"),
        python=PYTHON,
        configs=lambda wildcards, input: " ".join(
            f"--config {c}" for c in input.run_configs
        ),
        src=WF.src_hash("launch_torchrun.sh", "ecorec.train.__main__"),
        emulate=WF.train_emulate_arg,
        cluster_src=WF.cluster_src,
    shell:
        "bash {params.launcher} --python {params.python} {params.configs}{params.emulate} "
        "--nproc-per-agent {wildcards.world} > {log} 2>&1"


rule hetgmp_figure:
    input:
        records=WF.hetgmp_records(),
        headers=WF.hetgmp_partition_headers(),
    output:
        png=report(
            "results/figures/hetgmp.png",
            category="HET-GMP",
            caption="../report/hetgmp.rst",
        ),
        pdf="results/figures/hetgmp.pdf",
        csv="results/figures/hetgmp.csv",
    log:
        "logs/figures/hetgmp.log",
    localrule: True
    params:
        title=WF.hetgmp_title(),
        src=WF.src_hash("hetgmp_figure.py"),
    script:
        "../workflow_scripts/hetgmp_figure.py"


rule hetgmp:
    input:
        rules.hetgmp_figure.output,
