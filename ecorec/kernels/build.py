"""Compile and load CUDA sources with ``torch.utils.cpp_extension.load``, also on a machine without a GPU.

What a GPU-less build machine with the pip CUDA build of torch needs (checked: torch 2.14.1+cu130, nvcc 13.0):

1. ``CUDA_HOME`` pointing at the toolkit with ``nvcc`` (default ``/usr/local/cuda``);
2. the cuBLAS/cuSPARSE/cuSOLVER headers, which the pip wheels ship under ``site-packages/nvidia/<cu>/include``
   and a bare toolkit may lack, as extra include paths;
3. linker access to cuBLAS: the wheels hold only versioned files (``libcublas.so.13``), so a folder of
   unversioned symlinks is made in the build cache and passed with ``-L``, plus ``-lcublas``;
4. ``-std=c++20`` (torch >= 2.14 headers) and one ``-gencode`` per target architecture (default sm_80, sm_90).

Where the toolkit has everything itself (a typical GPU node), steps 2-3 find nothing to add.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

DEFAULT_ARCHS = ("8.0", "9.0")
_LIBRARIES = ("cublas", "cublasLt", "cudart")


class CudaBuildError(RuntimeError):
    """The CUDA extension cannot be built or loaded here; the message says what is missing."""


@dataclass
class CudaBuildSettings:
    cuda_home: Path
    include_paths: list[str] = field(default_factory=list)
    library_paths: list[str] = field(default_factory=list)
    libraries: list[str] = field(default_factory=lambda: ["cublas"])
    archs: tuple[str, ...] = DEFAULT_ARCHS

    def cxx_flags(self) -> list[str]:
        """Host compiler flags (torch >= 2.14 headers need C++20)."""
        return ["-O3", "-std=c++20"]

    def cuda_flags(self) -> list[str]:
        """nvcc flags: C++20, line info for profilers, one ``-gencode`` per arch."""
        return ["-O3", "-std=c++20", "--expt-relaxed-constexpr", "-lineinfo", *self.gencode_flags()]

    def gencode_flags(self) -> list[str]:
        """One ``-gencode`` per arch (``"9.0"`` -> sm_90 machine code); ``"9.0+PTX"`` also embeds compute_90
        PTX, which newer GPUs can JIT-compile."""
        flags = []
        for arch in self.archs:
            digits = arch.removesuffix("+PTX").replace(".", "")
            flags.append(f"-gencode=arch=compute_{digits},code=sm_{digits}")
            if arch.endswith("+PTX"):
                flags.append(f"-gencode=arch=compute_{digits},code=compute_{digits}")
        return flags


def _cuda_home() -> Path:
    for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if candidate and (Path(candidate) / "bin" / "nvcc").exists():
            return Path(candidate)
    nvcc = shutil.which("nvcc")
    if nvcc:
        return Path(nvcc).resolve().parent.parent
    raise CudaBuildError("nvcc not found: set CUDA_HOME to a CUDA toolkit (or put nvcc on PATH)")


def nvcc_available() -> bool:
    """True when a CUDA toolkit with nvcc is present and torch was built with CUDA."""
    try:
        _cuda_home()
    except CudaBuildError:
        return False
    return torch.version.cuda is not None


def _wheel_cuda_roots() -> list[Path]:
    """``site-packages/nvidia/<cuXX>`` folders shipped by the pip CUDA wheels, if any."""
    roots = []
    for entry in map(Path, sys.path):
        nvidia = entry / "nvidia"
        if nvidia.is_dir():
            roots += [p for p in sorted(nvidia.iterdir()) if (p / "include" / "cublas_v2.h").exists()]
            roots += [p for p in sorted(nvidia.glob("cublas")) if (p / "include" / "cublas_v2.h").exists()]
    return roots


def _symlink_folder(lib_dirs: Sequence[Path], cache_dir: Path) -> Path | None:
    """A folder of unversioned ``lib<name>.so`` symlinks to the versioned libraries in ``lib_dirs``."""
    links = cache_dir / "lib-links"
    made = False
    for lib_dir in lib_dirs:
        for name in _LIBRARIES:
            unversioned = lib_dir / f"lib{name}.so"
            versioned = sorted(lib_dir.glob(f"lib{name}.so.*"))
            target = unversioned if unversioned.exists() else (versioned[0] if versioned else None)
            if target is None:
                continue
            links.mkdir(parents=True, exist_ok=True)
            link = links / f"lib{name}.so"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
            made = True
    return links if made else None


def default_cache_dir() -> Path:
    root = os.environ.get("ECOREC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "ecorec"
    )
    tag = f"torch{torch.__version__}-py{sys.version_info.major}{sys.version_info.minor}".replace("+", "_")
    return Path(root) / "torch_extensions" / tag


def cuda_build_settings(
    archs: Sequence[str] | None = None, cache_dir: Path | None = None
) -> CudaBuildSettings:
    """Find the toolkit, the cuBLAS headers and libraries, and the target architectures.

    ``archs`` defaults to ``$ECOREC_CUDA_ARCHS`` (``"8.0;9.0"`` style), else sm_80 and sm_90.
    """
    cuda_home = _cuda_home()
    env_archs = os.environ.get("ECOREC_CUDA_ARCHS")
    chosen = tuple(archs or (env_archs.replace(",", ";").split(";") if env_archs else DEFAULT_ARCHS))
    settings = CudaBuildSettings(cuda_home=cuda_home, archs=tuple(a.strip() for a in chosen if a.strip()))
    if not (cuda_home / "include" / "cublas_v2.h").exists():
        roots = _wheel_cuda_roots()
        if not roots:
            raise CudaBuildError(
                f"cublas_v2.h is neither in {cuda_home}/include nor in a pip nvidia wheel on sys.path"
            )
        settings.include_paths = [str(r / "include") for r in roots]
        links = _symlink_folder([r / "lib" for r in roots], cache_dir or default_cache_dir())
        if links is not None:
            settings.library_paths.append(str(links))
    return settings


def kernels_folder() -> Path:
    """The repository's ``kernels/`` folder (beside the ``ecorec`` package)."""
    return Path(__file__).resolve().parents[2] / "kernels"


def kernel_sources(root: Path | None = None) -> list[Path]:
    """The ``.cu``/``.cpp`` sources of ``kernels/`` (default: the folder beside the ``ecorec`` package)."""
    folder = root or kernels_folder()
    sources = sorted([*folder.glob("*.cu"), *folder.glob("*.cpp")])
    if not sources:
        raise CudaBuildError(
            f"no CUDA sources in {folder}: the JIT build needs the repository checkout (an editable "
            "install or PYTHONPATH), or build ahead of time: ECOREC_BUILD_CUDA=1 pip install "
            "--no-build-isolation ."
        )
    return sources


def kernel_headers(root: Path | None = None) -> list[Path]:
    """The ``.h``/``.cuh`` headers of ``kernels/`` (part of the build's content hash)."""
    folder = root or kernels_folder()
    return sorted([*folder.glob("*.h"), *folder.glob("*.cuh")])


def load_extension(
    name: str,
    sources: Sequence[str | os.PathLike[str]],
    *,
    archs: Sequence[str] | None = None,
    build_dir: str | os.PathLike[str] | None = None,
    depends: Sequence[str | os.PathLike[str]] = (),
    extra_cuda_cflags: Sequence[str] = (),
    verbose: bool = False,
) -> ModuleType | None:
    """Compile (if stale) and load ``sources`` as a torch extension (``is_python_module=False``: loaded for
    its op registrations, returns ``None``).

    The build folder is keyed by a hash of the contents of ``sources`` and ``depends`` (headers) and the
    flags, under the cache folder (``$ECOREC_CACHE`` or ``~/.cache/ecorec``), so different checkouts never
    share a stale build. Ops the sources register with ``TORCH_LIBRARY``/``TORCH_LIBRARY_IMPL`` appear under
    ``torch.ops.<namespace>``. ``$MAX_JOBS`` caps ninja's parallel compiles.

    Raises:
        CudaBuildError: no toolkit, or the compile/link/load failed; the compiler output is in
            ``<build folder>/build.log``, named in the message.
    """
    if torch.version.cuda is None:
        raise CudaBuildError(f"torch {torch.__version__} was built without CUDA; cannot build {name}")
    cache = default_cache_dir()
    settings = cuda_build_settings(archs, cache)
    # cpp_extension reads CUDA_HOME when first imported: set it before, and correct it if imported already.
    os.environ["CUDA_HOME"] = str(settings.cuda_home)
    os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(settings.archs).replace("+PTX", "")
    from torch.utils import cpp_extension

    cpp_extension.CUDA_HOME = str(settings.cuda_home)
    cuda_flags = [*settings.cuda_flags(), *extra_cuda_cflags]
    cxx_flags = settings.cxx_flags()
    ldflags = [f"-L{p}" for p in settings.library_paths] + [f"-l{lib}" for lib in settings.libraries]
    digest = hashlib.sha256()
    for source in [*sources, *depends]:
        digest.update(Path(source).read_bytes())
    digest.update(" ".join(cuda_flags + cxx_flags + ldflags + settings.include_paths).encode())
    folder = Path(build_dir) if build_dir else cache / f"{name}-{digest.hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "build.log"
    try:
        return cpp_extension.load(
            name=name,
            sources=[str(s) for s in sources],
            extra_cflags=cxx_flags,
            extra_cuda_cflags=cuda_flags,
            extra_ldflags=ldflags,
            extra_include_paths=settings.include_paths,
            build_directory=str(folder),
            is_python_module=False,
            verbose=verbose,
        )
    except Exception as exc:  # compiler errors come as RuntimeError, loader errors as OSError
        log.write_text(f"{type(exc).__name__}: {exc}\n")
        raise CudaBuildError(
            f"building or loading the CUDA extension {name!r} failed ({type(exc).__name__}); "
            f"the compiler output is in {log}"
        ) from exc
