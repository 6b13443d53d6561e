# Binary Criteo layouts users bring (issue #18): TorchRec's npy days and MLPerf's .bin files -> Parquet dataset
# in results/datasets/<dataset>/, like the other sources (one producing rule per source).


rule to_parquet_criteo_npy:
    input:
        # the day_N_{dense,sparse,labels}.npy files, in day order
        lambda wildcards: [
            f"{WF.dataset_settings(wildcards.dataset)['folder']}/day_{day}_{part}.npy"
            for day in WF.dataset_settings(wildcards.dataset)["days"]
            for part in ("dense", "sparse", "labels")
        ],
    output:
        directory("results/datasets/{dataset}"),
    log:
        "logs/datasets/{dataset}.log",
    benchmark:
        "benchmarks/datasets/{dataset}.tsv"
    wildcard_constraints:
        dataset=WF.datasets_of("criteo_npy"),
    resources:
        mem_mb=4000,
    params:
        settings=lambda wildcards: WF.dataset_settings(wildcards.dataset),
        src=WF.src_hash("binary_to_parquet.py"),
    script:
        "../workflow_scripts/binary_to_parquet.py"


rule to_parquet_mlperf_bin:
    input:
        # the .bin file of each split
        unpack(lambda wildcards: dict(WF.dataset_settings(wildcards.dataset)["files"])),
    output:
        directory("results/datasets/{dataset}"),
    log:
        "logs/datasets/{dataset}.log",
    benchmark:
        "benchmarks/datasets/{dataset}.tsv"
    wildcard_constraints:
        dataset=WF.datasets_of("mlperf_bin"),
    resources:
        mem_mb=4000,
    params:
        settings=lambda wildcards: WF.dataset_settings(wildcards.dataset),
        src=WF.src_hash("binary_to_parquet.py"),
    script:
        "../workflow_scripts/binary_to_parquet.py"
