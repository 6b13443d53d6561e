"""Options of the kernel benchmark (:class:`TTBenchConfig`), its defaults per device, and its error type."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from ecorec.types import BenchVariant, IndexSource


class BenchError(RuntimeError):
    """The benchmark cannot run as asked (a source whose dependencies do not import, nothing to run); the CLI
    prints it and exits with status 2, the library only raises it."""


DESCRIPTION = "Benchmark of the TT-EmbeddingBag algorithms against uncompressed baselines."

TT_ALGORITHMS = tuple(v.value for v in BenchVariant.tt())
CUDA_VARIANTS = (BenchVariant.ECOREC_CUDA.value,)
BASELINES = tuple(v.value for v in BenchVariant.baselines())
CPU_BATCH_SIZES = (4096,)
CUDA_BATCH_SIZES = (2048, 4096, 8192, 16384, 32768, 65536, 131072)


def default_algorithms(device: str) -> tuple[str, ...]:
    """The variants run when ``--algorithms`` is not given."""
    if torch.device(device).type == "cuda":
        return (*CUDA_VARIANTS, *TT_ALGORITHMS, "nn_embedding_bag")
    return TT_ALGORITHMS + BASELINES


def default_batch_sizes(device: str) -> tuple[int, ...]:
    """The batch sizes run when ``--batch-sizes`` is not given."""
    return CUDA_BATCH_SIZES if torch.device(device).type == "cuda" else CPU_BATCH_SIZES


def default_indices() -> str:
    """The index source run when ``--indices`` is not given: ``synthetic`` (the calibrated generator) where
    ``ecorec.data`` can run it (numpy and pyarrow installed), else ``zipf`` (torch alone, e.g. a GPU box)."""
    has_data_deps = all(importlib.util.find_spec(name) is not None for name in ("numpy", "pyarrow"))
    return IndexSource.SYNTHETIC.value if has_data_deps else IndexSource.ZIPF.value


@dataclass(frozen=True)
class TTBenchConfig:
    """Options of the benchmark (the CLI flags, see :func:`build_parser`)."""

    device: str = "cpu"
    batch_sizes: tuple[int, ...] = (4096,)
    num_embeddings: int = 1_000_000
    embedding_dim: int = 32
    tt_ranks: int = 32
    algorithms: tuple[str, ...] = TT_ALGORITHMS + BASELINES  # see default_algorithms(device)
    micro_batches: tuple[int, ...] = (1, 4)
    fbtt_chunk_size: int = 20000
    product_strategies: tuple[str, ...] = ("auto",)
    repeats: int = 10
    warmup: int = 3
    num_batches: int = 4
    indices: str = "zipf"
    stats_file: str | None = None
    dataset: str | None = None
    tables: tuple[str, ...] = ()
    largest_tables: int = 0
    split: str = "train"
    zipf_alpha: float = 1.05
    pooling: float = 16.0
    mode: str = "sum"
    learning_rate: float = 0.01
    seed: int = 0
    threads: int | None = None
    max_dense_bytes: int = 4 << 30
    measure_memory: bool = True
    copy_bytes: int = 1 << 30
