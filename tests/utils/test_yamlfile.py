"""Strict YAML: a key written twice and a syntax error name the file, the line and the column (or key)."""

from __future__ import annotations

import pytest

from ecorec.utils.yamlfile import YamlFileError, load_yaml
from ecorec.workflow.configfiles import read_config_file


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: 1\nplanner:\n  memory_cap_bytes: 100\nplanner:\n  seed: 3\n",
            r":4:1: key 'planner' appears twice in this mapping \(first at line 2\); YAML keeps only",
        ),
        ("a:\n  b: 1\n  c: 2\n  b: 3\n", r":4:3: key 'b' appears twice in this mapping \(first at line 2\)"),
        (
            "train:\n\tsteps: 3\n",
            r":2:1: not valid YAML: .*'\\t'.* \(YAML indents with spaces only: replace the tab\(s\)",
        ),
        ("a: [1, 2\nb: 3\n", r":2:2: not valid YAML: while parsing a flow sequence"),
    ],
    ids=["duplicate-section", "duplicate-nested-key", "tab-indent", "unclosed-bracket"],
)
def test_errors_name_file_line_and_column(tmp_path, text, expected):
    path = _write(tmp_path, "bad.yaml", text)
    with pytest.raises(YamlFileError, match=rf"^{path}{expected}"):
        load_yaml(path)


def test_merge_keys_may_be_overridden_and_empty_files_are_none(tmp_path):
    text = "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  x: 5\n"
    expected = {"base": {"x": 1, "y": 2}, "derived": {"x": 5, "y": 2}}
    assert load_yaml(_write(tmp_path, "ok.yaml", text)) == expected
    assert load_yaml(_write(tmp_path, "empty.yaml", "")) is None


def test_json_config_files_refuse_duplicates_too(tmp_path):
    path = _write(tmp_path, "c.json", '{"dataset": "a", "dataset": "b"}')
    with pytest.raises(YamlFileError, match=rf"^{path}: key 'dataset' appears twice"):
        read_config_file(path)
    path = _write(tmp_path, "list.yaml", "- a\n- b\n")
    with pytest.raises(YamlFileError, match=rf"^{path}: a config file must be a mapping"):
        read_config_file(path)
