"""docs/architecture.md names only things that exist: every `ecorec.*` name resolves (module or attribute),
every `python -m` entry point runs a __main__ (and its sub-command exists), every repository path is there."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()
#: Modules that exist only once built (the ahead-of-time CUDA extension, ECOREC_BUILD_CUDA=1 pip install).
BUILT = {"ecorec._tt_cuda"}


def _resolve(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_every_ecorec_name_exists():
    names = sorted(set(re.findall(r"\becorec(?:\.[A-Za-z_]\w*)+", DOC)))
    assert len(names) > 30  # the page names a lot: the pattern still finds them
    missing = [name for name in names if name not in BUILT and not _resolve(name)]
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"


def test_every_entry_point_runs():
    from ecorec.bench.__main__ import BENCHMARKS

    commands = set(re.findall(r"python -m (ecorec(?:\.\w+)*)(?: (\w+))?", DOC))
    assert ("ecorec.train", "") in {(m, "") for m, _ in commands} and any(
        m == "ecorec.bench" for m, _ in commands
    )
    for module, sub in commands:
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"python -m {module}: no __main__"
        if module == "ecorec.bench" and sub and sub not in ("options",):
            assert sub in BENCHMARKS, f"python -m ecorec.bench {sub}: no such benchmark"
    for sub in re.findall(r"python -m ecorec\.bench (\w+)\|(\w+)", DOC):
        assert set(sub) <= set(BENCHMARKS)


def test_every_repository_path_exists():
    paths = set(re.findall(r"\b((?:workflow_scripts|rules|schemas|profiles|report|kernels)/[\w./-]*\w)", DOC))
    assert paths
    missing = [p for p in sorted(paths) if "<" not in p and not list(ROOT.glob(p))]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
