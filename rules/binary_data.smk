# Binary Criteo layouts users bring (issue #18): TorchRec's npy days and MLPerf's .bin files -> Parquet dataset
# in results/datasets/<dataset>/, like the other sources (one producing rule per source).


def criteo_npy_inputs(wildcards):
    """The day_N_{dense,sparse,labels}.npy files of a criteo_npy dataset, in day order."""
    settings = dataset_settings(wildcards.dataset)
    folder = settings["folder"]
    return [
        f"{folder}/day_{day}_{part}.npy"
        for day in settings["days"]
        for part in ("dense", "sparse", "labels")
    ]


def mlperf_bin_inputs(wildcards):
    """The .bin file of each split of an mlperf_bin dataset."""
    return dict(dataset_settings(wildcards.dataset)["files"])


rule to_parquet_criteo_npy:
    input:
        criteo_npy_inputs,
    output:
        directory("results/datasets/{dataset}"),
    log:
        "logs/datasets/{dataset}.log",
    benchmark:
        "benchmarks/datasets/{dataset}.tsv"
    wildcard_constraints:
        dataset=datasets_of("criteo_npy"),
    resources:
        mem_mb=4000,
    params:
        settings=lambda wildcards: dataset_settings(wildcards.dataset),
        src=src_hash("data"),
    script:
        "../workflow_scripts/binary_to_parquet.py"


rule to_parquet_mlperf_bin:
    input:
        unpack(mlperf_bin_inputs),
    output:
        directory("results/datasets/{dataset}"),
    log:
        "logs/datasets/{dataset}.log",
    benchmark:
        "benchmarks/datasets/{dataset}.tsv"
    wildcard_constraints:
        dataset=datasets_of("mlperf_bin"),
    resources:
        mem_mb=4000,
    params:
        settings=lambda wildcards: dataset_settings(wildcards.dataset),
        src=src_hash("data"),
    script:
        "../workflow_scripts/binary_to_parquet.py"
