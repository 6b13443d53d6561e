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
        src=WF.src_hash("environment.py"),
    script:
        "../workflow_scripts/environment.py"
