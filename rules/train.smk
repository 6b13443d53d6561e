# Distributed training runs:
#   results/runs/<dataset>/<system>/<algorithm>/T<tables>-R<world>-b<batch>-W<target>/record.json
# (`batch` is the local batch per rank, `target` the target world whose communication an emulated run stands
# for: WorkflowConfig.target_world). `train_config` writes the run's YAML (runnable by hand), `train` launches it
# with workflow_scripts/launch_torchrun.sh: torchrun --standalone on one node, srun + torchrun (c10d rendezvous)
# over several SLURM nodes, or, with config `cluster.emulate`, on emulated nodes of this machine (python -m
# ecorec.cluster run; link rates from `cluster_dilation`, measured once per profile, kernel, world and target).


wildcard_constraints:
    system=r"[A-Za-z0-9_]+",
    algorithm="|".join(ALGORITHMS),
    tables=r"\d+",
    world=r"\d+",
    batch=r"\d+",
    target=r"\d+",
    kernel=r"tt|gemm|mix|auto",


rule train_config:
    input:
        dataset="results/datasets/{dataset}",
        plan=WF.run_plan,
    output:
        "results/runs/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}-W{target}/run.yaml",
    log:
        "logs/train/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}-W{target}.config.log",
    localrule: True
    params:
        settings=WF.train_run_settings,
        src=WF.src_hash("train_config.py"),
    script:
        "../workflow_scripts/train_config.py"


rule compute_split:
    """This machine's split of one rank's compute into embedding kernels and dense MLPs (the mix dilation)."""
    input:
        dataset="results/datasets/{dataset}",
        rates="results/cluster/rates-c2.json",
    output:
        "results/cluster/split-{dataset}-T{tables}-b{batch}.json",
    log:
        "logs/cluster/split-{dataset}-T{tables}-b{batch}.log",
    threads: 2
    resources:
        timed_jobs=1,
    params:
        settings=WF.compute_split_settings,
        parameter_tables=WF.split_parameter_tables(),
        src=WF.src_hash("compute_split.py", "ecorec.bench.compute_split"),
    script:
        "../workflow_scripts/compute_split.py"


rule cluster_rates:
    """This machine's TT kernel and GEMM rates with {concurrency} processes running at once (a run's ranks)."""
    output:
        "results/cluster/rates-c{concurrency}.json",
    log:
        "logs/cluster/rates-c{concurrency}.log",
    wildcard_constraints:
        concurrency=r"\d+",
    threads: lambda wildcards: min(int(wildcards.concurrency), workflow.cores)
    resources:
        timed_jobs=1,
    params:
        threads=WF.cluster.get("dilation_threads", 1),
        src=WF.src_hash("cluster_rates.py"),
    script:
        "../workflow_scripts/cluster_rates.py"


rule cluster_dilation:
    """The dilation and link rates of one (profile, kernel, ranks per node, world, target world)."""
    input:
        unpack(WF.dilation_inputs),
    output:
        "results/cluster/dilation-{profile}-{kernel}-p{ranks}-R{world}-W{target}.json",
    log:
        "logs/cluster/dilation-{profile}-{kernel}-p{ranks}-R{world}-W{target}.log",
    localrule: True
    params:
        cluster=WF.cluster_dilation_settings,
        src=WF.src_hash("cluster_dilation.py"),
    script:
        "../workflow_scripts/cluster_dilation.py"


rule train:
    input:
        unpack(WF.train_cluster_inputs),
        run_config="results/runs/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}-W{target}/run.yaml",
        dataset="results/datasets/{dataset}",
    output:
        "results/runs/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}-W{target}/record.json",
    log:
        "logs/train/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}-W{target}.log",
    benchmark:
        "benchmarks/train/{dataset}/{system}/{algorithm}/T{tables}-R{world}-b{batch}-W{target}.tsv"
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


# One launch per figure point: every system of the training figures at one point (tables, world, local batch,
# target world) trains in the same torchrun job (python -m ecorec.train --config a.yaml --config b.yaml ...),
# each writing its own record: the launch (processes, imports, rendezvous; ~20 s on 2 CPU cores) is paid once
# per point. Points needing the same systems share a rule (WorkflowConfig.launch_groups); adding a system to a
# figure reruns its points.
for group in WF.launch_groups():

    rule:
        name:
            group.name
        input:
            unpack(WF.train_cluster_inputs),
            run_configs=WF.launch_runs(group, "run.yaml"),
            dataset="results/datasets/{dataset}",
        output:
            WF.launch_runs(group, "record.json"),
        log:
            "logs/train/{dataset}/launch/{point}.log",
        benchmark:
            "benchmarks/train/{dataset}/launch/{point}.tsv"
        wildcard_constraints:
            **WF.launch_constraints(group),
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
            configs=lambda wildcards, input: " ".join(
                f"--config {c}" for c in input.run_configs
            ),
            src=WF.src_hash("launch_torchrun.sh", "ecorec.train.__main__"),
            emulate=WF.train_emulate_arg,
            cluster_src=WF.cluster_src,
        shell:
            "bash {params.launcher} --python {params.python} {params.configs} "
            "--nodes {resources.nodes}{params.emulate} "
            "--agents {resources.agents} --nproc-per-agent {resources.nproc_per_agent} "
            "--cpus-per-task {resources.cpus_per_task} > {log} 2>&1"

    workflow.ruleorder(group.name, "train")


rule train_runs:
    input:
        WF.train_records(),
