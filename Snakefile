# EcoRec reproduction pipeline.
#   snakemake --cores 2                       the embedded default (config.yaml): synthetic data, CPU, minutes
#   snakemake --cores 2 fig11                 one figure
#   snakemake --cores 2 hetgmp                HET-GMP partitioners x store_rate x bound (rules/hetgmp.smk)
#   snakemake --cores 2 placement             DreamShard / NeuroShard placement study (rules/placement.smk)
#   snakemake --cores 2 regime                communication share per experiment, measured and modelled
#   snakemake --workflow-profile profiles/slurm --configfile config.paper.yaml   paper scale on a SLURM cluster
import sys

from snakemake.utils import min_version

min_version("9.19")

# The workflow drives the ecorec package of this repository, whatever is installed.
if workflow.basedir not in sys.path:
    sys.path.insert(0, workflow.basedir)

from ecorec.workflow.configfiles import check_config_files  # noqa: E402

# Snakemake's own reading would say only "Config file is not valid JSON or YAML": name the line and column.
check_config_files(["config.yaml"])


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/env.smk"
include: "rules/data.smk"
include: "rules/binary_data.smk"
include: "rules/stats.smk"
include: "rules/train.smk"
include: "rules/figures.smk"
include: "rules/hetgmp.smk"
include: "rules/placement.smk"
include: "rules/regime.smk"


rule all:
    default_target: True
    input:
        rules.environment.output,
        expand("results/datasets/{dataset}", dataset=config["dataset"]),
        WF.stats_outputs(config["dataset"]),
        WF.sharding_methods_report(config["dataset"]),
        rules.figures.input,
        rules.hetgmp.input,
        rules.placement.input,
        rules.regime.input,
