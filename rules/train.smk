# Distributed training runs: results/runs/<dataset>/<system>/<algorithm>/T<tables>-R<world>-b<batch>/record.json
# (`batch` is the local batch per rank). `train_config` writes the run's YAML (runnable by hand), `train` launches
# it with workflow_scripts/launch_torchrun.sh: torchrun --standalone on one node, srun + torchrun (c10d
# rendezvous) over several SLURM nodes, or, with config `cluster.emulate`, on emulated nodes of this machine
# (python -m ecorec.cluster run; link rates from `cluster_dilation`, measured once per profile).


wildcard_constraints:
    system=r"[A-Za-z0-9_]+",
    algorithm="|".join(ALGORITHMS),
    tables=r"\d+",
    world=r"\d+",
    batch=r"\d+",


rule train_config:
    input:
        dataset="results/datasets/{dataset}",
        plan=WF.run_plan,
    output:
        "results/runs/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}/run.yaml",
    log:
        "logs/train/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}.config.log",
    localrule: True
    params:
        settings=WF.train_run_settings,
        src=WF.src_hash("train_config.py"),
    script:
        "../workflow_scripts/train_config.py"


rule cluster_dilation:
    output:
        "results/cluster/dilation-{profile}-p{ranks}.json",
    log:
        "logs/cluster/dilation-{profile}-p{ranks}.log",
    resources:
        timed_jobs=1,
    params:
        cluster=WF.cluster_dilation_settings,
        src=WF.src_hash("cluster_dilation.py"),
    script:
        "../workflow_scripts/cluster_dilation.py"


rule train:
    input:
        unpack(WF.train_cluster_inputs),
        run_config="results/runs/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}/run.yaml",
        dataset="results/datasets/{dataset}",
    output:
        "results/runs/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}/record.json",
    log:
        "logs/train/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}.log",
    benchmark:
        "benchmarks/train/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}.tsv"
    threads: WF.run_resource("threads")
    resources:
        timed_jobs=1,
        nodes=WF.run_resource("nodes"),
        agents=WF.run_resource("agents"),
        nproc_per_agent=WF.run_resource("procs_per_agent"),
        mpi=WF.run_resource("mpi"),
        tasks=WF.run_resource("tasks"),
        tasks_per_gpu=0,
        gres=WF.run_resource("gres"),
        cpus_per_task=WF.run_resource("threads"),
    params:
        launcher=WF.script("launch_torchrun.sh"),
        python=PYTHON,
        src=WF.src_hash("launch_torchrun.sh", "ecorec.train.__main__"),
        emulate=WF.train_emulate_arg,
        cluster_src=WF.cluster_src,
    shell:
        "bash {params.launcher} --python {params.python} --config {input.run_config} "
        "--nodes {resources.nodes}{params.emulate} "
        "--agents {resources.agents} --nproc-per-agent {resources.nproc_per_agent} "
        "--cpus-per-task {resources.cpus_per_task} > {log} 2>&1"


rule train_runs:
    input:
        WF.train_records(),
