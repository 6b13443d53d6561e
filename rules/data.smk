# Datasets: fetch raw inputs into resources/<dataset>/, convert them to a Parquet dataset in
# results/datasets/<dataset>/ (metadata.json inside). One rule per source; `dataset` wildcards are constrained to
# the config entries of that source, so each dataset has exactly one producing rule.


rule synthetic:
    input:
        WF.synthetic_inputs,
    output:
        directory("results/datasets/{dataset}"),
    log:
        "logs/datasets/{dataset}.log",
    benchmark:
        "benchmarks/datasets/{dataset}.tsv"
    wildcard_constraints:
        dataset=WF.datasets_of("synthetic"),
    params:
        settings=lambda wildcards: WF.dataset_settings(wildcards.dataset),
        src=WF.src_hash("synthetic_dataset.py"),
    script:
        "../workflow_scripts/synthetic_dataset.py"


rule download_meta_dlrm:
    output:
        ensure(
            "resources/{dataset}/{lfs_path}",
            sha256=lambda wildcards: lfs_object(wildcards.lfs_path).sha256,
        ),
    log:
        "logs/download/{dataset}/{lfs_path}.log",
    benchmark:
        "benchmarks/download/{dataset}/{lfs_path}.tsv"
    wildcard_constraints:
        dataset=WF.datasets_of("meta_dlrm_2021", "meta_dlrm_2022"),
        lfs_path=r"embedding_bag/20\d\d/[^/]+\.pt\.gz",
    localrule: True
    params:
        url=lambda wildcards: join_url(
            WF.dataset_settings(wildcards.dataset)["base_url"], wildcards.lfs_path
        ),
        sha256=lambda wildcards: lfs_object(wildcards.lfs_path).sha256,
        size=lambda wildcards: lfs_object(wildcards.lfs_path).size,
    script:
        "../workflow_scripts/download.py"


rule to_parquet_meta_dlrm:
    input:
        WF.meta_dlrm_inputs,
    output:
        directory("results/datasets/{dataset}"),
    log:
        "logs/datasets/{dataset}.log",
    benchmark:
        "benchmarks/datasets/{dataset}.tsv"
    wildcard_constraints:
        dataset=WF.datasets_of("meta_dlrm_2021", "meta_dlrm_2022"),
    resources:
        mem_mb=4000,
    params:
        settings=lambda wildcards: WF.dataset_settings(wildcards.dataset),
        src=WF.src_hash("meta_dlrm_to_parquet.py"),
    script:
        "../workflow_scripts/meta_dlrm_to_parquet.py"


rule download_criteo_kaggle:
    output:
        ensure("resources/{dataset}/dac.tar.gz", non_empty=True),
    log:
        "logs/download/{dataset}/dac.tar.gz.log",
    benchmark:
        "benchmarks/download/{dataset}/dac.tar.gz.tsv"
    wildcard_constraints:
        dataset=WF.datasets_of("criteo_kaggle"),
    localrule: True
    params:
        url=lambda wildcards: WF.dataset_settings(wildcards.dataset)["url"],
        sha256=lambda wildcards: WF.dataset_settings(wildcards.dataset).get("sha256"),
        size=None,
    script:
        "../workflow_scripts/download.py"


rule download_criteo_1tb:
    output:
        ensure("resources/{dataset}/day_{day}.gz", non_empty=True),
    log:
        "logs/download/{dataset}/day_{day}.gz.log",
    benchmark:
        "benchmarks/download/{dataset}/day_{day}.gz.tsv"
    wildcard_constraints:
        dataset=WF.datasets_of("criteo_1tb"),
        day=r"\d+",
    localrule: True
    params:
        url=lambda wildcards: join_url(
            WF.dataset_settings(wildcards.dataset)["base_url"],
            f"day_{wildcards.day}.gz",
        ),
        sha256=WF.criteo_1tb_sha256,
        size=None,
    script:
        "../workflow_scripts/download.py"


rule to_parquet_criteo:
    input:
        WF.criteo_inputs,
    output:
        directory("results/datasets/{dataset}"),
    log:
        "logs/datasets/{dataset}.log",
    benchmark:
        "benchmarks/datasets/{dataset}.tsv"
    wildcard_constraints:
        dataset=WF.datasets_of("criteo_kaggle", "criteo_1tb"),
    resources:
        mem_mb=4000,
    params:
        settings=lambda wildcards: WF.dataset_settings(wildcards.dataset),
        src=WF.src_hash("criteo_to_parquet.py"),
    script:
        "../workflow_scripts/criteo_to_parquet.py"


# [data #14] A dataset prepared outside the workflow (config `source: parquet` + `path`, e.g. written by
# ecorec.data.write_dataset): verified (every file's sha256) and hard-linked into results/datasets/<name>/.
rule register_parquet:
    input:
        WF.parquet_dataset_input,
    output:
        directory("results/datasets/{dataset}"),
    log:
        "logs/datasets/{dataset}.log",
    wildcard_constraints:
        dataset=WF.datasets_of("parquet"),
    localrule: True
    params:
        settings=lambda wildcards: WF.dataset_settings(wildcards.dataset),
        src=WF.src_hash("register_parquet.py"),
    script:
        "../workflow_scripts/register_parquet.py"
