# HET-GMP (issue 16): graph-partitioned embedding rows and samples, hot-row mirrors, bounded staleness.
# Target `hetgmp` (not part of `all`: 36 training runs). Grid = config `hetgmp`: partitioners x store_rates x
# bounds, on dataset `hetgmp.dataset` with `world` ranks and local batch `batch`:
#   results/hetgmp/<dataset>/R<world>-b<batch>/<partitioner>/partition.{npz,json}
#   results/hetgmp/<dataset>/R<world>-b<batch>/<partitioner>/s<store_rate>-B<bound>/{run.yaml,record.json}
#   results/figures/hetgmp.{png,pdf,csv}
# Runs launch like rules/train.smk (workflow_scripts/launch_torchrun.sh, plain loopback). Emulated-cluster hook
# (issue 15): `hetgmp_train`'s shell is the one place that launches; swap the launcher there.


HETGMP = config.get("hetgmp", {})
HETGMP_RUN = "results/hetgmp/{dataset}/R{world}-b{batch}/{partitioner}"


wildcard_constraints:
    partitioner=r"random|hetgmp|metis|hypergraph",
    store_rate=r"[0-9]+(\.[0-9]+)?",
    bound=r"\d+",


def hetgmp_grid_records():
    """Every run record of the configured grid."""
    return expand(
        HETGMP_RUN + "/s{store_rate}-B{bound}/record.json",
        dataset=HETGMP["dataset"],
        world=HETGMP["world"],
        batch=HETGMP["batch"],
        partitioner=HETGMP["partitioners"],
        store_rate=[f"{float(s):g}" for s in HETGMP["store_rates"]],
        bound=HETGMP["bounds"],
    )


def hetgmp_grid_headers():
    return expand(
        HETGMP_RUN + "/partition.json",
        dataset=HETGMP["dataset"],
        world=HETGMP["world"],
        batch=HETGMP["batch"],
        partitioner=HETGMP["partitioners"],
    )


rule hetgmp_partition:
    input:
        dataset="results/datasets/{dataset}",
    output:
        npz=HETGMP_RUN + "/partition.npz",
        header=HETGMP_RUN + "/partition.json",
    log:
        "logs/" + HETGMP_RUN + "/partition.log",
    benchmark:
        "benchmarks/" + HETGMP_RUN + "/partition.tsv"
    params:
        settings=HETGMP,
        src=WF.src_hash("hetgmp_partition.py"),
    script:
        "../workflow_scripts/hetgmp_partition.py"


rule hetgmp_config:
    input:
        dataset="results/datasets/{dataset}",
        partition=HETGMP_RUN + "/partition.npz",
    output:
        HETGMP_RUN + "/s{store_rate}-B{bound}/run.yaml",
    log:
        "logs/" + HETGMP_RUN + "/s{store_rate}-B{bound}.config.log",
    localrule: True
    params:
        settings=HETGMP,
        device=config["device"],
        src=WF.src_hash("hetgmp_run_config.py"),
    script:
        "../workflow_scripts/hetgmp_run_config.py"


rule hetgmp_train:
    input:
        run_config=HETGMP_RUN + "/s{store_rate}-B{bound}/run.yaml",
        dataset="results/datasets/{dataset}",
        partition=HETGMP_RUN + "/partition.npz",
    output:
        HETGMP_RUN + "/s{store_rate}-B{bound}/record.json",
    log:
        "logs/" + HETGMP_RUN + "/s{store_rate}-B{bound}.log",
    benchmark:
        "benchmarks/" + HETGMP_RUN + "/s{store_rate}-B{bound}.tsv"
    threads: lambda wildcards: int(wildcards.world)
    resources:
        timed_jobs=1,
    params:
        launcher=WF.script("launch_torchrun.sh"),
        python=PYTHON,
        src=WF.src_hash("launch_torchrun.sh", "ecorec.train.__main__"),
    shell:
        "bash {params.launcher} --python {params.python} --config {input.run_config} "
        "--nproc-per-agent {wildcards.world} > {log} 2>&1"


rule hetgmp_figure:
    input:
        records=hetgmp_grid_records(),
        headers=hetgmp_grid_headers(),
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
        title=f"HET-GMP on {HETGMP.get('dataset')}, {HETGMP.get('world')} ranks, local batch {HETGMP.get('batch')}",
        src=WF.src_hash("hetgmp_figure.py"),
    script:
        "../workflow_scripts/hetgmp_figure.py"


rule hetgmp:
    input:
        rules.hetgmp_figure.output,
