"""Optional ahead-of-time build of the CUDA kernels in ``kernels/`` as the extension ``ecorec._tt_cuda``.

Everything else about the package is in ``pyproject.toml``; a plain ``pip install -e .`` builds nothing here.
With ``ECOREC_BUILD_CUDA=1 pip install --no-build-isolation -e .`` (torch must be importable, hence no build
isolation) the kernels are compiled by torch's ``CUDAExtension`` with the flags of the JIT build
(:mod:`ecorec.kernels.build`: C++20, ``-gencode`` for ``$ECOREC_CUDA_ARCHS``, default sm_80 and sm_90), and
``ecorec.kernels.load_tt_extension`` imports them instead of compiling on first use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def cuda_extensions() -> tuple[list[Any], dict[str, Any]]:
    """``(ext_modules, cmdclass)``: the CUDA extension when ``ECOREC_BUILD_CUDA=1``, else nothing."""
    if os.environ.get("ECOREC_BUILD_CUDA", "0") != "1":
        return [], {}
    sys.path.insert(0, str(ROOT))
    from ecorec.kernels.build import cuda_build_settings, kernel_headers, kernel_sources

    settings = cuda_build_settings()
    os.environ["CUDA_HOME"] = str(settings.cuda_home)  # read by cpp_extension at import
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension

    extension = CUDAExtension(
        name="ecorec._tt_cuda",
        sources=[str(path.relative_to(ROOT)) for path in kernel_sources()],
        depends=[str(path.relative_to(ROOT)) for path in kernel_headers()],
        include_dirs=settings.include_paths,
        library_dirs=settings.library_paths,
        libraries=settings.libraries,
        extra_compile_args={"cxx": settings.cxx_flags(), "nvcc": settings.cuda_flags()},
    )
    return [extension], {"build_ext": BuildExtension}


if __name__ == "__main__":
    ext_modules, cmdclass = cuda_extensions()
    setup(ext_modules=ext_modules, cmdclass=cmdclass)
