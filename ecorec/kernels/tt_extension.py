"""The CUDA kernels of the ``torch.ops.ecorec`` TT operators: find or build them, and load them once.

Where the kernels come from, first match wins:

1. already registered in this process;
2. the ahead-of-time build ``ecorec._tt_cuda`` (``ECOREC_BUILD_CUDA=1 pip install --no-build-isolation -e .``,
   see ``setup.py``);
3. a JIT build of the repository's ``kernels/`` with :func:`ecorec.kernels.load_extension` (cached by content
   hash under ``$ECOREC_CACHE`` or ``~/.cache/ecorec``; a few minutes the first time, ``$MAX_JOBS`` compiles
   in parallel).

The op schemas are defined in Python by :mod:`ecorec.tt.custom_ops`; the library only adds CUDA kernels, so it
may load before or after that import (the dispatcher checks the C++ signatures against the schemas once both
exist).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging

import torch

from ecorec.kernels.build import CudaBuildError, kernel_headers, kernel_sources, load_extension

logger = logging.getLogger("ecorec.kernels")

TT_EXTENSION_NAME = "ecorec_tt_cuda"
AOT_MODULE = "ecorec._tt_cuda"
TT_OPS = (
    "tt_plan",
    "tt_forward",
    "tt_backward",
    "tt_sgd_update_",
    "tt_adagrad_update_",
    "tt_rowwise_adagrad_update_",
)


def tt_kernels_registered() -> bool:
    """Whether every ``torch.ops.ecorec`` TT op has a CUDA kernel in this process (schemas must exist)."""
    try:
        return all(torch._C._dispatch_has_kernel_for_dispatch_key(f"ecorec::{op}", "CUDA") for op in TT_OPS)
    except RuntimeError:  # an op has no schema yet (ecorec.tt.custom_ops not imported)
        return False


@functools.cache
def _load_once(verbose: bool) -> str | None:
    """Load the kernels; ``None`` on success, else why not (cached: one attempt per process)."""
    if tt_kernels_registered():
        return None
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build; the ecorec CUDA kernels need a CUDA build of torch"
    if importlib.util.find_spec(AOT_MODULE) is not None:
        try:
            importlib.import_module(AOT_MODULE)
        except Exception as exc:  # a stale or broken ahead-of-time build
            return (
                f"importing the ahead-of-time build {AOT_MODULE} failed ({type(exc).__name__}: {exc}); "
                "rebuild it (ECOREC_BUILD_CUDA=1 pip install --no-build-isolation -e .) or remove it to use "
                "the JIT build"
            )
        return None
    try:
        logger.warning("building the ecorec CUDA kernels from kernels/ (once per source version; minutes)")
        load_extension(TT_EXTENSION_NAME, kernel_sources(), depends=kernel_headers(), verbose=verbose)
    except CudaBuildError as exc:
        return str(exc)
    return None


def load_tt_extension(verbose: bool = False) -> None:
    """Make the CUDA kernels of ``torch.ops.ecorec`` available in this process (one attempt per process).

    Raises:
        CudaBuildError: they cannot be found, built or loaded here; the message says why (and names the
            build log when the compiler failed).
    """
    error = _load_once(verbose)
    if error is not None:
        raise CudaBuildError(error)
