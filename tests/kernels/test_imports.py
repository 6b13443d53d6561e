"""What a GPU box with torch alone must import: ecorec.kernels, ecorec.tt (with its ops), the TT benchmark and
the GPU tests pull in nothing of torchrec, fbgemm, polars, pyarrow, pandas or snakemake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {"torchrec", "fbgemm_gpu", "polars", "pyarrow", "pandas", "snakemake"}


def test_gpu_box_modules_import_torch_only() -> None:
    code = (
        "import json, sys\n"
        "import ecorec.kernels, ecorec.tt, ecorec.tt.custom_ops, ecorec.tt.ops, ecorec.bench.tt\n"
        "import ecorec.bench.__main__, tests.kernels.test_cuda_ops\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=REPO
    )
    top_level = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert {"ecorec", "torch", "tests"} <= top_level
    assert not top_level & FORBIDDEN, top_level & FORBIDDEN
