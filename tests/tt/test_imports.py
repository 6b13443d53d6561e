"""ecorec.tt imports nothing beyond torch, numpy and the standard library (the GPU machine has no torchrec,
fbgemm or polars): an allowlist, so any new third-party import fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Top-level modules ecorec.tt may add to what ``import torch`` loads (docs/architecture.md: torch and numpy).
ALLOWED = {"ecorec", "numpy"}


def _new_top_level_modules(*modules: str) -> tuple[set[str], set[str]]:
    """In a fresh interpreter: ``(top-level modules after import torch, those that importing ``modules``
    adds, standard library excluded)``."""
    code = (
        "import json, sys\n"
        "import torch\n"
        "def top():\n"
        "    return {m.split('.')[0] for m in list(sys.modules)}\n"
        "before = top()\n"
        f"import {', '.join(modules)}\n"
        "added = top() - before - set(sys.stdlib_module_names)\n"
        "print(json.dumps([sorted(before), sorted(added)]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, added = json.loads(result.stdout.strip().splitlines()[-1])
    return set(before), set(added)


def test_ecorec_tt_adds_only_allowed_modules() -> None:
    before, added = _new_top_level_modules(
        "ecorec.tt", "ecorec.tt.testing", "ecorec.tt.ops", "ecorec.tt.custom_ops", "ecorec.tt.costs"
    )
    assert "torch" in before and "ecorec" not in before  # the baseline really is torch alone
    assert "ecorec" in added  # the import happened in the measured window
    assert added <= ALLOWED, f"ecorec.tt imports modules outside the allowlist: {sorted(added - ALLOWED)}"


def test_the_check_sees_third_party_imports() -> None:
    # The same measurement flags a module outside the allowlist (pytest: third party, not stdlib or torch's).
    _, added = _new_top_level_modules("ecorec.tt", "pytest")
    assert "pytest" in added and not added <= ALLOWED
