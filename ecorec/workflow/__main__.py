"""``python -m ecorec.workflow check-config CONFIG [OVERLAY...]``: read the workflow's config files strictly
(a key written twice or a syntax error names the file, line and column) and check their merge against
``schemas/config.schema.yaml``, as the pipeline would, without starting Snakemake.

Useful for a ``--configfile`` overlay with a syntax error: Snakemake's command line reads overlays before the
workflow runs and says only "Config file is not valid JSON or YAML".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecorec.config_schema import ConfigSchemaError, check_config
from ecorec.utils.yamlfile import YamlFileError
from ecorec.workflow.configfiles import merge_config, read_config_file

#: The schema beside the package in a checkout of the repository.
_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecorec.workflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check-config", help="read config files strictly and check them against the schema"
    )
    check.add_argument("files", nargs="+", help="config.yaml, then overlays in the order given to Snakemake")
    check.add_argument("--schema", default=str(_SCHEMA), help="the JSON schema (YAML); default: the repo's")
    args = parser.parse_args(argv)
    try:
        merged: dict = {}
        for file in args.files:
            merged = merge_config(merged, read_config_file(file))
        if Path(args.schema).is_file():
            check_config(merged, args.schema, args.files)
    except (YamlFileError, ConfigSchemaError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"ok: {', '.join(args.files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
