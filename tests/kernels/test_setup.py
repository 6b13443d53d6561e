"""setup.py: a plain install builds nothing; ``ECOREC_BUILD_CUDA=1`` declares the CUDA extension with the
flags of the JIT build (compiling it is the build check's job, tests/kernels/test_build.py)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from ecorec.kernels import kernel_sources, nvcc_available

REPO = Path(__file__).resolve().parents[2]


def _setup_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ecorec_setup_py", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: setup() is not called
    return module


def test_plain_install_builds_no_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECOREC_BUILD_CUDA", raising=False)
    assert _setup_module().cuda_extensions() == ([], {})
    monkeypatch.setenv("ECOREC_BUILD_CUDA", "0")
    assert _setup_module().cuda_extensions() == ([], {})


def test_cuda_build_declares_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    if not nvcc_available():
        pytest.skip("needs nvcc and a CUDA build of torch")
    monkeypatch.setenv("ECOREC_BUILD_CUDA", "1")
    monkeypatch.setenv("ECOREC_CUDA_ARCHS", "8.0;9.0+PTX")
    monkeypatch.setattr(os, "environ", dict(os.environ))  # setup.py sets CUDA_HOME: keep it to this test
    ext_modules, cmdclass = _setup_module().cuda_extensions()
    (extension,) = ext_modules
    assert extension.name == "ecorec._tt_cuda"
    assert sorted(extension.sources) == sorted(str(p.relative_to(REPO)) for p in kernel_sources())
    nvcc = extension.extra_compile_args["nvcc"]
    assert "-std=c++20" in nvcc and "-gencode=arch=compute_80,code=sm_80" in nvcc
    assert (
        "-gencode=arch=compute_90,code=sm_90" in nvcc and "-gencode=arch=compute_90,code=compute_90" in nvcc
    )
    assert "cublas" in extension.libraries and set(cmdclass) == {"build_ext"}
