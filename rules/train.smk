# Distributed training runs: results/runs/<dataset>/<system>/<algorithm>/T<tables>-R<world>-b<batch>/record.json
# (`batch` is the local batch per rank). `train_config` writes the run's YAML (runnable by hand), `train` launches
# it with workflow_scripts/launch_torchrun.sh: torchrun --standalone on one node, srun + torchrun (c10d
# rendezvous) over several SLURM nodes.


wildcard_constraints:
    system=r"[A-Za-z0-9_]+",
    algorithm="|".join(ALGORITHMS),
    tables=r"\d+",
    world=r"\d+",
    batch=r"\d+",


rule train_config:
    input:
        dataset="results/datasets/{dataset}",
        plan=run_plan,
    output:
        "results/runs/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}/run.yaml",
    log:
        "logs/train/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}.config.log",
    localrule: True
    params:
        settings=train_run_settings,
        src=src_hash("train"),
    script:
        "../workflow_scripts/train_config.py"


rule train:
    input:
        run_config="results/runs/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}/run.yaml",
        dataset="results/datasets/{dataset}",
    output:
        "results/runs/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}/record.json",
    log:
        "logs/train/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}.log",
    benchmark:
        "benchmarks/train/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}.tsv"
    threads: train_threads
    resources:
        timed_jobs=1,
        nodes=train_nodes,
        agents=train_agents,
        nproc_per_agent=train_procs_per_agent,
        mpi=train_mpi,
        tasks=train_tasks,
        tasks_per_gpu=0,
        gres=train_gres,
        cpus_per_task=train_threads,
    params:
        launcher=script_path("launch_torchrun.sh"),
        launcher_src=source_hash(script_path("launch_torchrun.sh"), suffixes=(".sh",)),
        python=PYTHON,
        src=src_hash(*TRAIN_SUBPACKAGES),
    shell:
        "bash {params.launcher} --python {params.python} --config {input.run_config} "
        "--nodes {resources.nodes} "
        "--agents {resources.agents} --nproc-per-agent {resources.nproc_per_agent} "
        "--cpus-per-task {resources.cpus_per_task} > {log} 2>&1"


rule train_runs:
    input:
        train_records(),
