"""The TT lookup as three tensor-in/tensor-out ops, with the one backend dispatch point.

- :func:`tt_preprocess` ``(indices (nnz,), offsets (B+1,)) -> TTLookup``: the algorithm's plan (for ``ecorec``
  the :class:`~ecorec.tt.indexing.TTLookupPlan`: sorted uniques, occurrence offsets, prefix levels,
  micro-batch bounds) plus its host-side bounds, read with a single ``.tolist()``;
- :func:`tt_forward` ``(cores, lookup, per_sample_weights (nnz,) | None, mode) -> Tensor[B, D]``;
- :func:`tt_backward` ``(cores, lookup, grad_output (B, D), ...) -> list[Tensor]``: dense core gradients,
  summed over all micro-batches/chunks (the optimizer, if fused, runs once afterwards: see
  :mod:`ecorec.tt.optim`).

Backends: ``"torch"`` (this package's pure-torch implementations, any device) and ``"cuda"`` (the
``torch.ops.ecorec`` kernels built from ``kernels/``; not part of this package yet). ``"auto"`` picks
``"cuda"`` for CUDA tensors when those ops are loaded, else ``"torch"``. Asking for ``"cuda"`` without them
raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from ecorec.tt.algorithms.ecorec import ecorec_backward, ecorec_forward
from ecorec.tt.algorithms.elrec import build_elrec_plan, elrec_backward, elrec_forward
from ecorec.tt.algorithms.fbtt import build_fbtt_plan, fbtt_backward, fbtt_forward
from ecorec.tt.indexing import build_lookup_plan
from ecorec.tt.primitives import PRODUCT_STRATEGIES
from ecorec.tt.shapes import TTShapes

ALGORITHMS = ("ecorec", "fbtt", "elrec")
BACKENDS = ("auto", "torch", "cuda")
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
    """Whether the ``torch.ops.ecorec`` TT kernels are loaded in this process."""
    try:
        torch.ops.ecorec.tt_forward  # noqa: B018 - attribute lookup is the probe
    except (AttributeError, RuntimeError):
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """Turn ``"auto"`` into a concrete backend for tensors on ``device``; check the others."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
    if backend == "auto":
        return "cuda" if device.type == "cuda" and cuda_ops_available() else "torch"
    if backend == "cuda":
        if not cuda_ops_available():
            raise RuntimeError(
                "backend='cuda' needs the ecorec CUDA ops (torch.ops.ecorec.*), which are not built or not "
                "loaded in this process; use backend='torch' or 'auto'"
            )
        if device.type != "cuda":
            raise ValueError(f"backend='cuda' needs CUDA tensors, got the TT cores on {device}")
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
    if backend == "cuda":  # issue 4 plugs the torch.ops.ecorec kernels in here
        raise NotImplementedError(f"the CUDA TT ops are not implemented yet (algorithm={algorithm!r})")
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
