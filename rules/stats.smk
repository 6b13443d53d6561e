# Feature statistics of a dataset at a batch size, its reuse histogram against the target statistics, and
# sharding plans from the cost model: results/stats/<dataset>/b<batch>/..., results/plans/<dataset>/....


wildcard_constraints:
    batch=r"\d+",
    gbatch=r"\d+",
    method="|".join(PLANNER_METHODS),


rule feature_stats:
    input:
        dataset="results/datasets/{dataset}",
    output:
        table="results/stats/{dataset}/b{batch}/features.parquet",
        locality="results/stats/{dataset}/b{batch}/locality_stats.txt",
        summary="results/stats/{dataset}/b{batch}/summary.json",
    log:
        "logs/stats/{dataset}/b{batch}.log",
    benchmark:
        "benchmarks/stats/{dataset}/b{batch}.tsv"
    params:
        batch_size=lambda wildcards: int(wildcards.batch),
        num_batches=config["stats"]["num_batches"],
        split=config["stats"]["split"],
        tables_per_read=config["stats"]["tables_per_read"],
        embedding_dim=config["train"]["model"]["embedding_dim"],
        tt_ranks=config["train"]["embeddings"]["tt_ranks"],
        target_stats=WF.target_stats_file,
        src=WF.src_hash("feature_stats.py"),
    script:
        "../workflow_scripts/feature_stats.py"


rule reuse_histogram:
    input:
        locality="results/stats/{dataset}/b{batch}/locality_stats.txt",
    output:
        png=report(
            "results/stats/{dataset}/b{batch}/reuse_histogram.png",
            caption="../report/reuse_histogram.rst",
            category="Data",
            labels={"dataset": "{dataset}", "batch": "{batch}"},
        ),
        pdf="results/stats/{dataset}/b{batch}/reuse_histogram.pdf",
    log:
        "logs/stats/{dataset}/b{batch}.plot.log",
    localrule: True
    params:
        target_stats=WF.target_stats_file,
        src=WF.src_hash("reuse_histogram.py"),
    script:
        "../workflow_scripts/reuse_histogram.py"


rule cost_calibration:
    """Seconds per FLOP of each algorithm on this device, fitted to figure 11's kernel benchmarks."""
    input:
        WF.calibration_records,
    output:
        "results/plans/{dataset}/calibration-{device}.json",
    log:
        "logs/plans/{dataset}/calibration-{device}.log",
    wildcard_constraints:
        device="cpu|cuda",
    localrule: True
    params:
        src=WF.src_hash("cost_calibration.py"),
    script:
        "../workflow_scripts/cost_calibration.py"


rule sharding_plan:
    input:
        stats="results/stats/{dataset}/b{gbatch}/features.parquet",
        calibration=WF.calibration_input,
    output:
        "results/plans/{dataset}/{method}/{algorithm}-T{tables}-R{world}-G{gbatch}.json",
    log:
        "logs/plans/{dataset}/{method}/{algorithm}-T{tables}-R{world}-G{gbatch}.log",
    localrule: True
    params:
        tt_min_rows=config["train"]["embeddings"]["tt_min_rows"],
        tt_min_compression=config["train"]["embeddings"].get("tt_min_compression", 1.0),
        optimizer=config["train"]["embeddings"]["optimizer"],
        memory_cap_bytes=config["planner"]["memory_cap_bytes"],
        seed=config["planner"]["seed"],
        src=WF.src_hash("sharding.py"),
    script:
        "../workflow_scripts/sharding.py"


rule sharding_methods:
    input:
        stats="results/stats/{dataset}/b{gbatch}/features.parquet",
        calibration=WF.calibration_input,
    output:
        report(
            "results/plans/{dataset}/methods-{algorithm}-T{tables}-R{world}-G{gbatch}.csv",
            caption="../report/sharding_methods.rst",
            category="Sharding",
            labels={"dataset": "{dataset}", "world size": "{world}"},
        ),
    log:
        "logs/plans/{dataset}/methods-{algorithm}-T{tables}-R{world}-G{gbatch}.log",
    localrule: True
    params:
        methods=PLANNER_METHODS,
        tt_min_rows=config["train"]["embeddings"]["tt_min_rows"],
        tt_min_compression=config["train"]["embeddings"].get("tt_min_compression", 1.0),
        optimizer=config["train"]["embeddings"]["optimizer"],
        memory_cap_bytes=config["planner"]["memory_cap_bytes"],
        seed=config["planner"]["seed"],
        src=WF.src_hash("sharding.py"),
    script:
        "../workflow_scripts/sharding.py"
