"""The TT lookup as three tensor-in/tensor-out ops, with the one backend dispatch point.

- :func:`tt_preprocess` ``(indices (nnz,), offsets (B+1,)) -> TTLookup``: the algorithm's plan (for ``ecorec``
  the :class:`~ecorec.tt.indexing.TTLookupPlan`: sorted uniques, occurrence offsets, prefix levels,
  micro-batch bounds) plus its host-side bounds, read with a single ``.tolist()``;
- :func:`tt_forward` ``(cores, lookup, per_sample_weights (nnz,) | None, mode) -> Tensor[B, D]``;
- :func:`tt_backward` ``(cores, lookup, grad_output (B, D), ...) -> list[Tensor]``: dense core gradients,
  summed over all micro-batches/chunks (the optimizer, if fused, runs once afterwards: see
  :mod:`ecorec.tt.optim`).

- :func:`tt_fused_update_`: the fused optimizer step on the dense core gradients (:mod:`ecorec.tt.optim`).

Backends: ``"torch"`` (this package's pure-torch implementations, any device, every algorithm and core
count) and ``"cuda"`` (the ``torch.ops.ecorec`` operators of :mod:`ecorec.tt.custom_ops` with the CUDA
kernels of ``kernels/``: ``algorithm="ecorec"``, 3 cores, float32/float64 cores on a CUDA device).
:func:`resolve_backend` turns ``"auto"`` into ``"cuda"`` when all of that holds and the kernels load (built
on first use by :func:`ecorec.kernels.load_tt_extension`), else into ``"torch"`` (one warning if the kernels
fail to build); ``"cuda"`` raises a clear error instead of falling back.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from ecorec.kernels import CudaBuildError, load_tt_extension, tt_kernels_registered
from ecorec.tt.algorithms.ecorec import ecorec_backward, ecorec_forward
from ecorec.tt.algorithms.elrec import build_elrec_plan, elrec_backward, elrec_forward
from ecorec.tt.algorithms.fbtt import build_fbtt_plan, fbtt_backward, fbtt_forward
from ecorec.tt.custom_ops import op, plan_from_op_args, plan_op_args
from ecorec.tt.indexing import build_lookup_plan
from ecorec.tt.optim import TTOptimizerConfig, TTOptimizerKind, fused_update_
from ecorec.tt.primitives import PRODUCT_STRATEGIES
from ecorec.tt.shapes import TTShapes
from ecorec.types import Algorithm

ALGORITHMS = tuple(a.value for a in Algorithm.tt())
BACKENDS = ("auto", "torch", "cuda")
CUDA_ALGORITHMS = (Algorithm.ECOREC.value,)
CUDA_NUM_CORES = 3
CUDA_DTYPES = (torch.float32, torch.float64)
DEFAULT_FBTT_CHUNK_SIZE = 20000


class TTLookup(NamedTuple):
    """What a forward hands to its backward.

    Attributes:
        algorithm: ``"ecorec"``, ``"fbtt"`` or ``"elrec"``.
        backend: the resolved backend (``"torch"`` or ``"cuda"``).
        plan: the algorithm's plan (tensors and ints).
        bounds: host copy of the plan's micro-batch (``ecorec``) or chunk (``fbtt``) bounds; empty for
            ``elrec``.
        product_strategy: execution of the core products, see
            :func:`ecorec.tt.primitives.resolve_product_strategy` (torch backend).
    """

    algorithm: str
    backend: str
    plan: Any
    bounds: list[list[int]]
    product_strategy: str = "auto"


def cuda_ops_available() -> bool:
    """Whether the CUDA kernels of the ``torch.ops.ecorec`` TT ops are loaded in this process (no build)."""
    return tt_kernels_registered()


def _cuda_unsupported(
    device: torch.device, algorithm: str, num_cores: int, dtype: torch.dtype | None
) -> str | None:
    """Why the CUDA kernels cannot run this lookup, or ``None`` if they can."""
    if device.type != "cuda":
        return f"the TT cores are on {device}, not on a CUDA device"
    if algorithm not in CUDA_ALGORITHMS:
        return f"algorithm={algorithm!r} has no CUDA kernels (only {CUDA_ALGORITHMS})"
    if num_cores != CUDA_NUM_CORES:
        return f"the CUDA kernels support {CUDA_NUM_CORES} TT cores, got num_cores={num_cores}"
    if dtype is not None and dtype not in CUDA_DTYPES:
        return f"the CUDA kernels support float32 and float64 cores, got dtype={dtype}"
    return None


@functools.cache
def _warn_fallback(reason: str) -> None:
    """Warn once per distinct reason that ``backend="auto"`` falls back to torch."""
    warnings.warn(
        "backend='auto': the ecorec CUDA kernels are unavailable, the TT lookups use the torch backend "
        f"({reason})",
        RuntimeWarning,
        stacklevel=4,
    )


def _cuda_kernels_ready(required: bool) -> bool:
    """Load the CUDA kernels if needed; ``False`` (with one warning) or an error if they cannot load."""
    if tt_kernels_registered():
        return True
    try:
        load_tt_extension()
    except CudaBuildError as exc:
        if required:
            raise RuntimeError(
                "backend='cuda' needs the ecorec CUDA kernels (torch.ops.ecorec.*), which cannot be loaded: "
                f"{exc}"
            ) from exc
        _warn_fallback(str(exc))
        return False
    return tt_kernels_registered()


def resolve_backend(
    backend: str,
    device: torch.device,
    *,
    algorithm: str = "ecorec",
    num_cores: int = CUDA_NUM_CORES,
    dtype: torch.dtype | None = None,
) -> str:
    """Turn ``"auto"`` into a concrete backend for a lookup of ``algorithm`` on ``num_cores`` cores of
    ``dtype`` on ``device``; check ``"cuda"``.

    ``"auto"``: ``"cuda"`` when the CUDA kernels can run it (CUDA device, ``ecorec``, 3 cores, float32/64) and
    load (built on first use; a failed build warns once, naming the build log), else ``"torch"``.
    ``"cuda"``: ``ValueError`` if the kernels cannot run this lookup, ``RuntimeError`` if they cannot load.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
    if backend == "torch":
        return backend
    reason = _cuda_unsupported(device, algorithm, num_cores, dtype)
    if backend == "auto":
        return "cuda" if reason is None and _cuda_kernels_ready(required=False) else "torch"
    if reason is not None:
        raise ValueError(f"backend='cuda' cannot run this lookup: {reason}; use backend='torch' or 'auto'")
    _cuda_kernels_ready(required=True)
    return backend


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got algorithm={algorithm!r}")


class _Implementation(NamedTuple):
    """The three functions that run one algorithm on one backend."""

    preprocess: Callable[..., tuple[Any, list[list[int]]]]
    forward: Callable[..., torch.Tensor]
    backward: Callable[..., list[torch.Tensor]]


class _PreprocessOptions(NamedTuple):
    micro_batches: int
    max_micro_uniques: int | None
    fbtt_chunk_size: int


def _ecorec_preprocess(
    indices: torch.Tensor, offsets: torch.Tensor, shapes: TTShapes, options: _PreprocessOptions
) -> tuple[Any, list[list[int]]]:
    plan = build_lookup_plan(
        indices,
        offsets,
        shapes.p_shapes,
        micro_batches=options.micro_batches,
        max_micro_uniques=options.max_micro_uniques,
    )
    return plan, plan.micro_bounds.tolist()


def _fbtt_preprocess(
    indices: torch.Tensor, offsets: torch.Tensor, shapes: TTShapes, options: _PreprocessOptions
) -> tuple[Any, list[list[int]]]:
    plan = build_fbtt_plan(indices, offsets, shapes.p_shapes, options.fbtt_chunk_size)
    return plan, plan.chunk_bounds.tolist()


def _elrec_preprocess(
    indices: torch.Tensor, offsets: torch.Tensor, shapes: TTShapes, options: _PreprocessOptions
) -> tuple[Any, list[list[int]]]:
    return build_elrec_plan(indices, offsets, shapes.p_shapes), []


def _ecorec_cuda_preprocess(
    indices: torch.Tensor, offsets: torch.Tensor, shapes: TTShapes, options: _PreprocessOptions
) -> tuple[Any, list[list[int]]]:
    outputs = op("tt_plan")(
        indices, offsets, list(shapes.p_shapes), options.micro_batches, options.max_micro_uniques
    )
    plan = plan_from_op_args((offsets, *outputs))
    return plan, plan.micro_bounds.tolist()  # already on the host: tt_plan's one device->host copy


def _ecorec_cuda_forward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    plan: Any,
    bounds: Sequence[Sequence[int]],
    per_sample_weights: torch.Tensor | None,
    mode: str,
    strategy: str,
) -> torch.Tensor:
    return op("tt_forward")(
        *cores,
        *plan_op_args(plan),
        per_sample_weights,
        list(shapes.q_shapes),
        list(shapes.ranks),
        shapes.embedding_dim,
        mode,
    )


def _ecorec_cuda_backward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    plan: Any,
    bounds: Sequence[Sequence[int]],
    grad_output: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mode: str,
    deterministic: bool,
    strategy: str,
) -> list[torch.Tensor]:
    grads = op("tt_backward")(
        grad_output,
        *cores,
        *plan_op_args(plan),
        per_sample_weights,
        list(shapes.q_shapes),
        list(shapes.ranks),
        shapes.embedding_dim,
        mode,
        deterministic,
    )
    return list(grads)


_CUDA_IMPLEMENTATIONS = {
    "ecorec": _Implementation(_ecorec_cuda_preprocess, _ecorec_cuda_forward, _ecorec_cuda_backward),
}

_TORCH_IMPLEMENTATIONS = {
    "ecorec": _Implementation(_ecorec_preprocess, ecorec_forward, ecorec_backward),
    "fbtt": _Implementation(_fbtt_preprocess, fbtt_forward, fbtt_backward),
    "elrec": _Implementation(
        _elrec_preprocess,
        lambda cores, shapes, plan, bounds, *rest: elrec_forward(cores, shapes, plan, *rest),
        lambda cores, shapes, plan, bounds, *rest: elrec_backward(cores, shapes, plan, *rest),
    ),
}


def _implementation(backend: str, algorithm: str) -> _Implementation:
    """The one dispatch point between backends: the functions that run ``algorithm`` on ``backend``."""
    _check_algorithm(algorithm)
    if backend == "cuda":
        if algorithm not in _CUDA_IMPLEMENTATIONS:
            raise ValueError(f"backend='cuda' supports algorithm in {CUDA_ALGORITHMS}, got {algorithm!r}")
        return _CUDA_IMPLEMENTATIONS[algorithm]
    if backend != "torch":
        raise ValueError(f"resolve the backend first (resolve_backend), got backend={backend!r}")
    return _TORCH_IMPLEMENTATIONS[algorithm]


def tt_preprocess(
    indices: torch.Tensor,
    offsets: torch.Tensor,
    shapes: TTShapes,
    *,
    algorithm: str = "ecorec",
    micro_batches: int = 1,
    max_micro_uniques: int | None = None,
    fbtt_chunk_size: int = DEFAULT_FBTT_CHUNK_SIZE,
    backend: str = "torch",
    product_strategy: str = "auto",
) -> TTLookup:
    """Build the lookup plan of one batch (``indices (nnz,)`` int64, ``offsets (B+1,)`` int64, validated)."""
    if product_strategy not in PRODUCT_STRATEGIES:
        raise ValueError(f"product_strategy must be one of {PRODUCT_STRATEGIES}, got {product_strategy!r}")
    implementation = _implementation(backend, algorithm)
    options = _PreprocessOptions(micro_batches, max_micro_uniques, fbtt_chunk_size)
    plan, bounds = implementation.preprocess(indices, offsets, shapes, options)
    return TTLookup(algorithm, backend, plan, bounds, product_strategy)


def tt_forward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    lookup: TTLookup,
    per_sample_weights: torch.Tensor | None,
    mode: str,
) -> torch.Tensor:
    """Pooled embeddings ``Tensor[B, D]`` (no autograd; ``TTEmbeddingBag`` is the differentiable form)."""
    forward = _implementation(lookup.backend, lookup.algorithm).forward
    return forward(
        cores, shapes, lookup.plan, lookup.bounds, per_sample_weights, mode, lookup.product_strategy
    )


def tt_backward(
    cores: Sequence[torch.Tensor],
    shapes: TTShapes,
    lookup: TTLookup,
    grad_output: torch.Tensor,
    per_sample_weights: torch.Tensor | None,
    mode: str,
    *,
    deterministic: bool = False,
) -> list[torch.Tensor]:
    """Dense core gradients, one tensor per core shaped like it, for ``grad_output (B, D)``."""
    backward = _implementation(lookup.backend, lookup.algorithm).backward
    return backward(
        cores,
        shapes,
        lookup.plan,
        lookup.bounds,
        grad_output,
        per_sample_weights,
        mode,
        deterministic,
        lookup.product_strategy,
    )


def tt_fused_update_(
    config: TTOptimizerConfig,
    cores: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[torch.Tensor | None],
    backend: str,
) -> None:
    """The fused optimizer step in place (:func:`ecorec.tt.optim.fused_update_`), on ``backend``.

    Args:
        config: the optimizer (its ``eps`` is checked against each core's dtype:
            :meth:`~ecorec.tt.optim.TTOptimizerConfig.check_dtype`).
        cores: ``d`` tensors ``(p_t, C_t)``; grads: dense gradients shaped like them; states: per core the
            state of :meth:`~ecorec.tt.optim.TTOptimizerConfig.state_shapes` (``None`` for SGD).
        backend: ``"torch"`` or ``"cuda"``.
    """
    for core in cores:
        config.check_dtype(core.dtype)
    if backend != "cuda":
        fused_update_(config, cores, grads, states)
        return
    with torch.no_grad():
        for core, grad, state in zip(cores, grads, states, strict=True):
            if config.kind is TTOptimizerKind.SGD:
                op("tt_sgd_update_")(core, grad, config.lr)
            elif config.kind is TTOptimizerKind.ADAGRAD:
                op("tt_adagrad_update_")(core, state, grad, config.lr, config.eps)
            else:
                op("tt_rowwise_adagrad_update_")(core, state, grad, config.lr, config.eps)
