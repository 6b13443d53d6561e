"""The environment record embedded in every result: software versions, device, host, code identity."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecorec.utils.hashing import source_hash

if TYPE_CHECKING:
    import torch

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_record(
    device: torch.device | str | None = None, world_size: int | None = None
) -> dict[str, Any]:
    """Describe where a result was produced.

    Keys: python, platform, hostname, cpu_count, torch, cuda (runtime version or None), device, device_name,
    world_size, torch_num_threads, git_commit, ecorec_source_hash, and the versions of torchrec, fbgemm_gpu,
    snakemake, polars and pyarrow when installed (read from package metadata, without importing them).
    """
    from importlib import metadata

    import torch  # imported here: the workflow imports ecorec.utils on every parse and needs no torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        device_name = torch.cuda.get_device_name(dev)
    else:
        device_name = platform.processor() or platform.machine()
    versions: dict[str, str | None] = {}
    for dist in ("torchrec", "fbgemm-gpu-cpu", "fbgemm-gpu", "snakemake", "polars", "pyarrow"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(dev),
        "device_name": device_name,
        "world_size": world_size,
        "torch_num_threads": torch.get_num_threads(),
        "packages": versions,
        "git_commit": _git_commit(_PACKAGE_DIR.parent),
        "ecorec_source_hash": source_hash(_PACKAGE_DIR),
    }
