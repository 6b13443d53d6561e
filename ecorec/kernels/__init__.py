"""Build and load the CUDA extension of the TT operators (sources in the repository's ``kernels/`` folder).

Torch-only (no torchrec, fbgemm or polars), so it works on a GPU machine that has nothing but torch.
``ecorec.tt`` calls ``load_tt_extension()`` lazily, the first time a CUDA tensor meets a TT operator.
"""

from ecorec.kernels.build import (
    CudaBuildError,
    cuda_build_settings,
    kernel_sources,
    load_extension,
    nvcc_available,
)

__all__ = ["CudaBuildError", "cuda_build_settings", "kernel_sources", "load_extension", "nvcc_available"]
