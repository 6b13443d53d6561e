"""ecorec.tt imports nothing but torch (the GPU machine has no torchrec, fbgemm or polars)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ecorec_tt_imports_only_torch() -> None:
    code = (
        "import json, sys\n"
        "import ecorec.tt, ecorec.tt.testing, ecorec.tt.ops\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    top_level = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "ecorec" in top_level and "torch" in top_level
    assert not top_level & {"torchrec", "fbgemm_gpu", "polars", "pyarrow", "pandas", "snakemake"}
