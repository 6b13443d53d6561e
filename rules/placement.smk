# DreamShard / NeuroShard table placement on measured costs (issues 17, 26): results/placement/<dataset>/...
#   snakemake --cores 2 placement
# tables (DreamShard's 21 features from real batches) -> tasks (disjoint train/test pools; small exhaustive
# tasks from the test pool) -> DreamShard's outer loop on measured placements (cost network + REINFORCE policy)
# -> every placer on the unseen test and exhaustive tasks, every placement of the exhaustive tasks and a noise
# panel, measured -> figure + CSV. Each rule gets only the settings it uses, so a changed setting reruns what
# it affects (e.g. a new placer list re-evaluates without retraining).


rule placement_tables:
    """DreamShard's table features and the FLOP model's statistics of every table, at the study's batch."""
    input:
        dataset="results/datasets/{dataset}",
    output:
        "results/placement/{dataset}/tables-b{batch}.parquet",
    log:
        "logs/placement/{dataset}/tables-b{batch}.log",
    params:
        batch_size=lambda wildcards: int(wildcards.batch),
        num_batches=config["placement"]["stats_batches"],
        split=config["placement"]["split"],
        tt_ranks=config["placement"]["tt_ranks"],
        src=WF.src_hash("placement_tables.py"),
    script:
        "../workflow_scripts/placement_tables.py"


rule placement_tasks:
    """Seeded disjoint train/test table pools and the tasks drawn from them (a documented JSON file)."""
    input:
        tables=lambda wildcards: f"results/placement/{wildcards.dataset}/tables-b{config['placement']['batch_size']}.parquet",
    output:
        "results/placement/{dataset}/tasks.json",
    log:
        "logs/placement/{dataset}/tasks.log",
    localrule: True
    params:
        tasks=config["placement"]["tasks"],
        src=WF.src_hash("placement_tasks.py"),
    script:
        "../workflow_scripts/placement_tasks.py"


rule placement_train:
    """DreamShard's outer loop on measured placements of the training tasks: cost network + policy."""
    input:
        unpack(WF.study_cluster_inputs("placement")),
        dataset="results/datasets/{dataset}",
        tables=lambda wildcards: f"results/placement/{wildcards.dataset}/tables-b{config['placement']['batch_size']}.parquet",
        tasks="results/placement/{dataset}/tasks.json",
    output:
        model="results/placement/{dataset}/{kind}/model.pt",
        record="results/placement/{dataset}/{kind}/training.json",
    log:
        "logs/placement/{dataset}/{kind}/train.log",
    wildcard_constraints:
        kind="uncompressed|tt|mixed",
    threads: lambda wildcards: int(config["placement"]["devices"])
    params:
        settings=lambda wildcards: WF.placement_settings(*WF.PLACEMENT_MODEL_KEYS)
        | {"kind": wildcards.kind},
        cluster=WF.placement_cluster(),
        checkpoint_dir=lambda wildcards: f"results/placement/{wildcards.dataset}/{wildcards.kind}/checkpoints",
        cache_dir=lambda wildcards: f"results/placement/{wildcards.dataset}/{wildcards.kind}/measured",
        src=WF.src_hash("placement_train.py"),
        cluster_src=WF.cluster_src,
    script:
        "../workflow_scripts/placement_train.py"


rule placement_eval:
    """Every placer on every unseen test and exhaustive task, every placement of the exhaustive tasks and the
    noise panel's replicates, measured (failures reported), with the cost network's predictions.
    """
    input:
        unpack(WF.study_cluster_inputs("placement")),
        dataset="results/datasets/{dataset}",
        tables=lambda wildcards: f"results/placement/{wildcards.dataset}/tables-b{config['placement']['batch_size']}.parquet",
        tasks="results/placement/{dataset}/tasks.json",
        model="results/placement/{dataset}/{kind}/model.pt",
    output:
        evaluation="results/placement/{dataset}/{kind}/evaluation.parquet",
        exhaustive="results/placement/{dataset}/{kind}/exhaustive.parquet",
        replicates="results/placement/{dataset}/{kind}/replicates.parquet",
        summary="results/placement/{dataset}/{kind}/summary.json",
    log:
        "logs/placement/{dataset}/{kind}/eval.log",
    wildcard_constraints:
        kind="uncompressed|tt|mixed",
    threads: lambda wildcards: int(config["placement"]["devices"])
    params:
        settings=lambda wildcards: WF.placement_settings(
            *WF.PLACEMENT_MODEL_KEYS, "neuroshard", "seed"
        )
        | {"kind": wildcards.kind},
        placers=config["placement"]["placers"],
        cluster=WF.placement_cluster(),
        cache_dir=lambda wildcards: f"results/placement/{wildcards.dataset}/{wildcards.kind}/measured",
        src=WF.src_hash("placement_eval.py"),
        cluster_src=WF.cluster_src,
    script:
        "../workflow_scripts/placement_eval.py"


rule placement_figure:
    """Per placer: measured cost over the optimum (small tasks) and over the best greedy (large tasks), beside
    the measurement's own spread; the cost network's predictions on the exhaustive placements.
    """
    input:
        evaluation="results/placement/{dataset}/{kind}/evaluation.parquet",
        exhaustive="results/placement/{dataset}/{kind}/exhaustive.parquet",
        summary="results/placement/{dataset}/{kind}/summary.json",
    output:
        png=report(
            "results/figures/placement_{dataset}_{kind}.png",
            caption="../report/placement.rst",
            category="Placement",
            labels={"dataset": "{dataset}", "tables": "{kind}"},
        ),
        pdf="results/figures/placement_{dataset}_{kind}.pdf",
        csv="results/figures/placement_{dataset}_{kind}.csv",
    log:
        "logs/placement/{dataset}/{kind}/figure.log",
    localrule: True
    params:
        src=WF.src_hash("placement_figure.py"),
    script:
        "../workflow_scripts/placement_figure.py"


rule placement:
    """The placement study of issue 17: the figure of each table kind in placement.kinds."""
    input:
        expand(
            "results/figures/placement_{dataset}_{kind}.png",
            dataset=WF.placement_dataset(),
            kind=config["placement"]["kinds"],
        ),
