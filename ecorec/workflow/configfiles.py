"""The workflow's config files read strictly, before Snakemake's own reading can hide a mistake.

Snakemake reads ``config.yaml`` (the Snakefile's ``configfile:``) and every ``--configfile`` overlay with a
plain YAML parser: a key written twice keeps only its last value without a word (a second ``planner:``
section drops the first one's keys; a ``dataset:`` line appended to ``config.yaml`` switches the pipeline to
another dataset), and a syntax error says only "Config file is not valid JSON or YAML", naming no file.

- The Snakefile calls :func:`check_config_files` on ``config.yaml`` before its ``configfile:`` directive: a
  syntax error there names the file, line and column.
- ``rules/common.smk`` calls it on ``workflow.configfiles`` (``config.yaml`` and the ``--configfile``
  overlays) before the schema check and before any rule exists: a duplicate key names the file, line and key.
- A syntax error in a ``--configfile`` overlay stops Snakemake's command line before the Snakefile runs;
  ``python -m ecorec.workflow check-config FILE...`` names the file, line and column (Snakemake's
  ``--verbose`` shows it too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ecorec.utils.yamlfile import YamlFileError, load_yaml

__all__ = ["check_config_files", "merge_config", "read_config_file"]


def _refuse_duplicates(where: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise YamlFileError(
                    f"{where}: key {key!r} appears twice in one object; JSON readers keep only the last one, "
                    "so the first would be silently ignored: remove one of them, or merge the two into one"
                )
            out[key] = value
        return out

    return hook


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A config file's mapping, read strictly: YAML (or JSON, as Snakemake accepts) with no key written twice;
    :class:`~ecorec.utils.yamlfile.YamlFileError` names the file, line and column (or key) otherwise."""
    path = Path(path)
    data: Any
    if path.suffix == ".json":
        try:
            data = json.loads(
                path.read_text(encoding="utf-8"), object_pairs_hook=_refuse_duplicates(str(path))
            )
        except json.JSONDecodeError as err:
            raise YamlFileError(f"{path}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from None
        except OSError as err:
            raise YamlFileError(f"{path}: cannot read it ({err.strerror})") from None
    else:
        data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise YamlFileError(
            f"{path}: a config file must be a mapping of keys at the top level, got a {type(data).__name__}"
        )
    return data


def check_config_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Read every existing file of ``paths`` strictly (:func:`read_config_file`); a missing file is left to
    Snakemake (which knows whether it is optional)."""
    for path in paths:
        if Path(path).is_file():
            read_config_file(path)


def merge_config(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Snakemake's merge of a later config file into an earlier one (mappings merged key by key, any other
    value replaced)."""
    out = dict(base)
    for key, value in overlay.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge_config(out[key], value) if both else value
    return out
