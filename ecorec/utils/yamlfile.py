"""Strict YAML reading: a key written twice is an error, and every error names the file, line and column.

PyYAML keeps the last of two equal keys of a mapping without a word, so a second ``planner:`` section in a
config overlay silently drops the first one's keys, and a ``dataset:`` line appended to ``config.yaml``
switches the whole pipeline to another dataset. :func:`load_yaml` refuses both::

    config.yaml:41:1: key 'dataset' appears twice in this mapping (first at line 3); YAML keeps only the last
    one, so the first would be silently ignored: remove one of them, or merge the two into one

Syntax errors (a tab used for indentation, an unclosed bracket) name the file, line and column of the
problem. PyYAML is imported lazily: this module is safe to import where PyYAML's import cost matters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["YamlFileError", "load_yaml", "load_yaml_text"]


class YamlFileError(ValueError):
    """A YAML file that cannot be read as intended; the message names the file, line and column."""


def _strict_loader() -> type:
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses a mapping holding the same key twice."""

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:  # the keys written here (a merge key's keys may be overridden)
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = loader.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeLoader reports unhashable keys itself
                if key in seen:
                    first = seen[key]
                    raise _DuplicateKey(key, key_node.start_mark, first.start_mark)
                seen[key] = key_node
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


class _DuplicateKey(Exception):
    def __init__(self, key: Any, mark: Any, first: Any) -> None:
        super().__init__(key)
        self.key, self.mark, self.first = key, mark, first


def load_yaml_text(text: str, where: str) -> Any:
    """Parse ``text`` (the contents of the file ``where``) strictly; :class:`YamlFileError` names
    ``where:line:column`` of a duplicate key or a syntax error."""
    import yaml

    try:
        return yaml.load(text, Loader=_strict_loader())  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as dup:
        raise YamlFileError(
            f"{where}:{dup.mark.line + 1}:{dup.mark.column + 1}: key {dup.key!r} appears twice in this "
            f"mapping (first at line {dup.first.line + 1}); YAML keeps only the last one, so the first "
            "would be silently ignored: remove one of them, or merge the two into one"
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        position = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        problem = " ".join(p for p in (err.context, err.problem) if p)
        hint = ""
        if mark is not None and "\t" in _line(text, mark.line):
            hint = " (YAML indents with spaces only: replace the tab(s) on this line with spaces)"
        raise YamlFileError(f"{position}: not valid YAML: {problem}{hint}") from None
    except yaml.YAMLError as err:  # errors without a position (rare: e.g. a bad stream encoding)
        raise YamlFileError(f"{where}: not valid YAML: {err}") from None


def _line(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """The YAML value in ``path``, read strictly (:func:`load_yaml_text`). A file that cannot be read raises
    :class:`YamlFileError` naming it and the reason; an empty file is ``None``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise YamlFileError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise YamlFileError(f"{path}: cannot read it ({err.strerror})") from None
    return load_yaml_text(text, str(path))
