"""Bad pipeline configs fail at parse time with one short line naming the file, the key and the rule."""

from __future__ import annotations

import pytest
import yaml

from ecorec.config_schema import ConfigSchemaError, check_config
from tests.workflow.snakemake_cli import REPO_ROOT, run_snakemake

SCHEMA = REPO_ROOT / "schemas" / "config.schema.yaml"


def _default() -> dict:
    return yaml.safe_load((REPO_ROOT / "config.yaml").read_text())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(device=3), "device: 3 is not of type 'string'"),
        (
            lambda c: c["datasets"]["synthetic"].update(num_tables="many"),
            "datasets.synthetic.num_tables: 'many' is not of type 'integer'",
        ),
        (lambda c: c["train"].update(steps=-1), "train.steps: -1 is less than the minimum of 1"),
    ],
    ids=["device", "nested-dataset-key", "train-steps"],
)
def test_check_config_names_file_key_and_rule(change, expected):
    config = _default()
    change(config)
    with pytest.raises(ConfigSchemaError) as err:
        check_config(config, SCHEMA, ["my.yaml"])
    message = str(err.value)
    assert message.startswith(f"my.yaml: {expected}") and "[schema config.schema.yaml: " in message
    assert "\n" not in message and len(message) < 600


def test_the_default_configs_pass():
    check_config(_default(), SCHEMA)
    overlay = yaml.safe_load((REPO_ROOT / "config.paper.yaml").read_text())
    check_config(_merge(_default(), overlay), SCHEMA)


def _merge(base: dict, overlay: dict) -> dict:
    """Snakemake's deep merge of a second config file."""
    out = dict(base)
    for key, value in overlay.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(device=3), "bad.yaml: device: 3 is not of type 'string'"),
        (
            lambda c: c["train"]["runs"][0].update(system="ecorecc"),
            "config train.runs[0].system: unknown system 'ecorecc'; the known systems (config `systems`) are",
        ),
    ],
    ids=["schema", "unknown-system"],
)
def test_snakemake_prints_one_useful_line(tmp_path, change, expected):
    config = _default()
    change(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    proc = run_snakemake("-n", "--cores", "1", "--configfile", str(bad), workdir=tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in output and "KeyError" not in output
    assert len(output.splitlines()) < 15, output  # not Snakemake's ~970-line schema dump
