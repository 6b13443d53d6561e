rule environment:
    output:
        report(
            "results/environment.json",
            caption="../report/environment.rst",
            category="Provenance",
        ),
    log:
        "logs/environment.log",
    localrule: True
    params:
        src=src_hash(),
    script:
        "../workflow_scripts/environment.py"
