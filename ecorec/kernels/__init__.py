"""Build and load the CUDA extension of the TT operators (sources in the repository's ``kernels/`` folder).

Torch-only (no torchrec, fbgemm or polars), so it works on a GPU machine that has nothing but torch. Below
``ecorec.tt`` in the layers: ``ecorec.tt`` calls :func:`load_tt_extension` lazily, the first time a CUDA
tensor meets a TT operator with ``backend="auto"`` or ``"cuda"``.
"""

from ecorec.kernels.build import (
    CudaBuildError,
    cuda_build_settings,
    kernel_headers,
    kernel_sources,
    kernels_folder,
    load_extension,
    nvcc_available,
)
from ecorec.kernels.tt_extension import (
    AOT_MODULE,
    TT_EXTENSION_NAME,
    TT_OPS,
    load_tt_extension,
    tt_kernels_registered,
)

__all__ = [
    "AOT_MODULE",
    "TT_EXTENSION_NAME",
    "TT_OPS",
    "CudaBuildError",
    "cuda_build_settings",
    "kernel_headers",
    "kernel_sources",
    "kernels_folder",
    "load_extension",
    "load_tt_extension",
    "nvcc_available",
    "tt_kernels_registered",
]
