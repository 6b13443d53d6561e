"""Validate the pipeline configuration against ``schemas/config.schema.yaml`` with a short, useful error.

Snakemake's own ``validate`` prints the whole schema after the one line that matters (~970 lines for this
project's schema); :func:`check_config` runs first and raises :class:`ConfigSchemaError` with that line only:
the config file(s), the dotted path of the bad key, what is wrong, and where in the schema the rule is.
Imports only the standard library, PyYAML and jsonschema (no torch): the workflow calls it at parse time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ConfigSchemaError", "check_config"]

_MAX_MESSAGE = 300


class ConfigSchemaError(ValueError):
    """The configuration does not match the schema; the message names the file(s), the key and the rule."""


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def check_config(
    config: Mapping[str, Any],
    schema_file: str | os.PathLike[str],
    config_files: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Raise :class:`ConfigSchemaError` (one line) if ``config`` does not validate against ``schema_file``.

    Args:
        config: the parsed (merged) configuration.
        schema_file: the JSON schema, as YAML.
        config_files: the files ``config`` came from, named in the message (default: "config").
    """
    import jsonschema

    from ecorec.utils.yamlfile import load_yaml

    schema = load_yaml(schema_file)
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = list(validator_cls(schema).iter_errors(dict(config)))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    # best_match may stop at an allOf / if-then wrapper: descend to its most specific sub-error
    while error.context:
        error = jsonschema.exceptions.best_match(error.context)
    where = ", ".join(str(f) for f in config_files) or "config"
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    rule = "/".join(str(p) for p in error.absolute_schema_path)
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    raise ConfigSchemaError(
        f"{where}: {key}: {_short(error.message)}{more} [schema {Path(schema_file).name}: {rule}]"
    )
