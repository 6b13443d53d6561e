"""Build check (no GPU needed): the CUDA extension compiles for sm_80 and sm_90, links, loads, and gives every
``torch.ops.ecorec`` TT op its CUDA kernel under the schema ``ecorec.tt.custom_ops`` defines.

One build per test session (module fixture; the build folder is keyed by the sources' content hash, so a
second session reuses it), ``MAX_JOBS=2``. Skipped, with the reason, only where nvcc or a CUDA build of torch
is absent.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import ecorec.tt.custom_ops as custom_ops
from ecorec.kernels import (
    TT_EXTENSION_NAME,
    TT_OPS,
    kernel_headers,
    kernel_sources,
    load_extension,
    load_tt_extension,
    nvcc_available,
    tt_kernels_registered,
)
from ecorec.kernels.build import cuda_build_settings, default_cache_dir

pytestmark = pytest.mark.cuda_build

ARCHS = ("8.0", "9.0")
EM_CUDA = 190  # ELF e_machine of CUDA cubins


def cubin_archs(library: Path) -> dict[int, int]:
    """``{sm: count}`` of the uncompressed CUDA ELF cubins embedded in ``library`` (EF_CUDA_SM in e_flags)."""
    data = library.read_bytes()
    archs: dict[int, int] = {}
    at = data.find(b"\x7fELF", 1)
    while at >= 0:
        if data[at + 4] == 2 and struct.unpack_from("<H", data, at + 18)[0] == EM_CUDA:
            sm = (struct.unpack_from("<I", data, at + 48)[0] >> 8) & 0xFF
            archs[sm] = archs.get(sm, 0) + 1
        at = data.find(b"\x7fELF", at + 4)
    return archs


@pytest.fixture(scope="module")
def built_library() -> Iterator[Path]:
    """Compile (if the cache lacks this source version), link and load the extension; the library path."""
    if not nvcc_available():
        pytest.skip(
            "the CUDA build check needs nvcc (set CUDA_HOME) and a CUDA build of torch; "
            f"torch {torch.__version__} (cuda={torch.version.cuda})"
        )
    previous = os.environ.get("MAX_JOBS")
    os.environ["MAX_JOBS"] = "2"
    try:
        start = time.perf_counter()
        load_extension(TT_EXTENSION_NAME, kernel_sources(), depends=kernel_headers(), archs=ARCHS)
        seconds = time.perf_counter() - start
    finally:
        if previous is None:
            os.environ.pop("MAX_JOBS", None)
        else:
            os.environ["MAX_JOBS"] = previous
    sys.__stdout__.write(f"\n[test_build] build + load of {TT_EXTENSION_NAME}: {seconds:.1f} s\n")
    libraries = sorted(
        default_cache_dir().glob(f"{TT_EXTENSION_NAME}-*/{TT_EXTENSION_NAME}.so"),
        key=lambda p: p.stat().st_mtime,
    )
    assert libraries, f"no {TT_EXTENSION_NAME}.so under {default_cache_dir()}"
    yield libraries[-1]


def test_every_op_has_its_cuda_kernel_and_schema(built_library: Path) -> None:
    assert tt_kernels_registered()
    assert set(TT_OPS) == set(custom_ops.OP_NAMES)
    for name in TT_OPS:
        overload = getattr(torch.ops.ecorec, name).default
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"ecorec::{name}", "CUDA"), name
        expected = torch._C.parse_schema(f"{custom_ops.NAMESPACE}::{custom_ops.SCHEMAS[name]}")
        assert str(overload._schema) == str(expected)
        # The CUDA kernel is the C++ one from kernels/tt_registration.cpp (the others are Python).
        dump = torch._C._dispatch_dump(f"ecorec::{name}")
        cuda_lines = [line for line in dump.splitlines() if line.startswith("CUDA")]
        assert cuda_lines and "tt_registration.cpp" in cuda_lines[0], dump
    load_tt_extension()  # the loader ecorec.tt uses finds them registered


def test_library_holds_sm80_and_sm90_code(built_library: Path) -> None:
    archs = cubin_archs(built_library)
    num_cu = len([p for p in kernel_sources() if p.suffix == ".cu"])
    assert archs == {80: num_cu, 90: num_cu}, archs
    settings = cuda_build_settings(ARCHS)
    assert settings.gencode_flags() == [
        "-gencode=arch=compute_80,code=sm_80",
        "-gencode=arch=compute_90,code=sm_90",
    ]


def test_cuda_kernels_run_their_host_checks_here(built_library: Path) -> None:
    # Redispatching CPU tensors to the CUDA key runs the C++ kernel's argument checks, which need no GPU.
    cuda = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with pytest.raises(RuntimeError, match="indices must be a CUDA tensor"):
        torch.ops.ecorec.tt_plan.default.redispatch(
            cuda, torch.tensor([1, 2]), torch.tensor([0, 2]), [2, 2, 2], 1
        )
    with pytest.raises(RuntimeError, match="core must be a CUDA tensor"):
        torch.ops.ecorec.tt_sgd_update_.default.redispatch(cuda, torch.zeros(2, 2), torch.zeros(2, 2), 0.1)
