"""The ``torch.ops.ecorec`` TT operators (``algorithm="ecorec"``, 3 cores): schemas, fake implementations, CPU
kernels and the autograd formula of the forward.

Where things are registered (one decision, for every op):

- the **schemas** are defined here, in Python, at import (``torch.library.Library("ecorec", "DEF")``), so
  they exist on every machine: the fake (meta) implementations, ``torch.library.opcheck`` and
  ``torch.compile`` work without a GPU and without the compiled extension;
- the **CUDA kernels** come from ``kernels/`` (C++ ``TORCH_LIBRARY_IMPL(ecorec, CUDA, m)`` only), loaded on
  first use by :func:`ecorec.kernels.load_tt_extension`; the dispatcher checks every C++ signature against
  these schemas when the library loads;
- the **CPU kernels** are this package's pure-torch ``ecorec`` path (:mod:`ecorec.tt.indexing`,
  :mod:`ecorec.tt.algorithms.ecorec`, :mod:`ecorec.tt.optim`) on the same plan layout: the oracle of the CUDA
  kernels, and what makes ``opcheck`` meaningful here (schema mutations, fake-vs-real metadata, autograd).

Ops (shape letters: B, nnz, U, G = distinct ``(I0, I1)`` prefixes, n0 = distinct ``I0``, M; the 14 plan
tensors :data:`PLAN_ARGS` are ``offsets (B+1,)`` followed by :data:`PLAN_FIELDS`, the fields of
:class:`~ecorec.tt.indexing.TTLookupPlan` for ``d = 3``, ``micro_bounds (M, 8)`` int64 on the host):

- ``tt_plan(indices (nnz,), offsets (B+1,), p_shapes, micro_batches, max_micro_uniques)`` -> the 13
  :data:`PLAN_FIELDS`;
- ``tt_forward(core0, core1, core2, *plan, per_sample_weights, q_shapes, ranks, embedding_dim, mode)`` ->
  ``(B, D)``; differentiable in the cores (its backward is ``tt_backward``, deterministic when
  ``torch.are_deterministic_algorithms_enabled()``);
- ``tt_backward(grad_output (B, D), core0, core1, core2, *plan, ..., deterministic)`` -> the dense core
  gradients;
- ``tt_sgd_update_(core, grad, lr)``, ``tt_adagrad_update_(core, state, grad, lr, eps)``,
  ``tt_rowwise_adagrad_update_(core, state, grad, lr, eps)``: in place (:mod:`ecorec.tt.optim`'s math).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ecorec.tt.algorithms.ecorec import ecorec_backward, ecorec_forward
from ecorec.tt.indexing import TTLookupPlan, build_lookup_plan
from ecorec.tt.optim import adagrad_update_, rowwise_adagrad_update_, sgd_update_
from ecorec.tt.shapes import TTShapes

NAMESPACE = "ecorec"
PLAN_FIELDS = (
    "bag_ids",
    "uniques",
    "inverse",
    "sorted_positions",
    "unique_offsets",
    "digits0",
    "digits1",
    "digits2",
    "parents1",
    "parents2",
    "child_offsets0",
    "child_offsets1",
    "micro_bounds",
)
PLAN_ARGS = ("offsets", *PLAN_FIELDS)
_PLAN_SCHEMA = ", ".join(f"Tensor {name}" for name in PLAN_ARGS)
_SHAPE_SCHEMA = 'Tensor? per_sample_weights, int[] q_shapes, int[] ranks, int embedding_dim, str mode="sum"'

SCHEMAS: dict[str, str] = {
    "tt_plan": (
        "tt_plan(Tensor indices, Tensor offsets, int[] p_shapes, int micro_batches=1, "
        "int? max_micro_uniques=None) -> (" + ", ".join(f"Tensor {name}" for name in PLAN_FIELDS) + ")"
    ),
    "tt_forward": (
        f"tt_forward(Tensor core0, Tensor core1, Tensor core2, {_PLAN_SCHEMA}, {_SHAPE_SCHEMA}) -> Tensor"
    ),
    "tt_backward": (
        f"tt_backward(Tensor grad_output, Tensor core0, Tensor core1, Tensor core2, {_PLAN_SCHEMA}, "
        f"{_SHAPE_SCHEMA}, bool deterministic=False) -> (Tensor, Tensor, Tensor)"
    ),
    "tt_sgd_update_": "tt_sgd_update_(Tensor(a!) core, Tensor grad, float lr) -> ()",
    "tt_adagrad_update_": (
        "tt_adagrad_update_(Tensor(a!) core, Tensor(b!) state, Tensor grad, float lr, float eps) -> ()"
    ),
    "tt_rowwise_adagrad_update_": (
        "tt_rowwise_adagrad_update_(Tensor(a!) core, Tensor(b!) state, Tensor grad, float lr, "
        "float eps) -> ()"
    ),
}
OP_NAMES = tuple(SCHEMAS)

# Import-time registration is how torch custom ops work; the Library object must stay alive.
_LIBRARY = torch.library.Library(NAMESPACE, "DEF")
for _schema in SCHEMAS.values():
    _LIBRARY.define(_schema)


def op(name: str) -> torch._ops.OpOverload:
    """The default overload of ``torch.ops.ecorec.<name>``."""
    return getattr(torch.ops.ecorec, name).default


# ------------------------------------------------------------------------------------------ plan <-> op args


def plan_op_args(plan: TTLookupPlan) -> tuple[torch.Tensor, ...]:
    """The 14 plan tensors of :data:`PLAN_ARGS` from a ``d = 3`` :class:`TTLookupPlan`."""
    if len(plan.level_digits) != 3:
        raise ValueError(f"the ecorec ops take 3-core plans, got a plan with {len(plan.level_digits)} levels")
    return (
        plan.offsets,
        plan.bag_ids,
        plan.uniques,
        plan.inverse,
        plan.sorted_positions,
        plan.unique_offsets,
        *plan.level_digits,
        plan.level_parents[1],
        plan.level_parents[2],
        *plan.level_child_offsets,
        plan.micro_bounds,
    )


def plan_from_op_args(args: Sequence[torch.Tensor]) -> TTLookupPlan:
    """The :class:`TTLookupPlan` of the 14 plan tensors (``offsets`` then the ``tt_plan`` outputs)."""
    if len(args) != len(PLAN_ARGS):
        raise ValueError(f"expected the {len(PLAN_ARGS)} plan tensors {PLAN_ARGS}, got {len(args)}")
    t = dict(zip(PLAN_ARGS, args, strict=True))
    offsets = t["offsets"]
    return TTLookupPlan(
        num_bags=offsets.shape[0] - 1,
        offsets=offsets,
        bag_ids=t["bag_ids"],
        uniques=t["uniques"],
        inverse=t["inverse"],
        sorted_positions=t["sorted_positions"],
        unique_offsets=t["unique_offsets"],
        level_digits=[t["digits0"], t["digits1"], t["digits2"]],
        level_parents=[t["digits0"].new_empty(0), t["parents1"], t["parents2"]],
        level_child_offsets=[t["child_offsets0"], t["child_offsets1"]],
        micro_bounds=t["micro_bounds"],
    )


def _shapes_from_op_args(
    cores: Sequence[torch.Tensor], q_shapes: Sequence[int], ranks: Sequence[int], embedding_dim: int
) -> TTShapes:
    p = tuple(int(core.shape[0]) for core in cores)
    return TTShapes(math.prod(p), embedding_dim, p, tuple(q_shapes), tuple(ranks))


# ------------------------------------------------------------------------------------------------ fake impls


def _check_index(t: torch.Tensor, name: str) -> None:
    torch._check(t.dtype == torch.int64, lambda: f"{name} must be int64, got {t.dtype}")
    torch._check(t.dim() == 1, lambda: f"{name} must be 1-D, got shape {tuple(t.shape)}")


def _check_core(t: int, core: torch.Tensor, width: int, dtype: torch.dtype) -> None:
    torch._check(core.dtype in (torch.float32, torch.float64), lambda: f"core{t} has dtype {core.dtype}")
    torch._check(core.dtype == dtype, lambda: f"core{t} has dtype {core.dtype}, core0 {dtype}")
    torch._check(
        core.dim() == 2 and core.shape[1] == width,
        lambda: f"core{t} must be (p{t}, {width}) for these q_shapes and ranks, got {tuple(core.shape)}",
    )


def _check_cores(
    cores: Sequence[torch.Tensor], q_shapes: Sequence[int], ranks: Sequence[int], embedding_dim: int
) -> None:
    torch._check(len(q_shapes) == 3, lambda: f"the ecorec ops take 3 cores: q_shapes={list(q_shapes)}")
    torch._check(
        len(ranks) == 4 and ranks[0] == 1 and ranks[3] == 1,
        lambda: f"ranks must be [1, r1, r2, 1], got {list(ranks)}",
    )
    widths = [q_shapes[0] * ranks[1], ranks[1] * q_shapes[1] * ranks[2], ranks[2] * q_shapes[2]]
    for t, (core, width) in enumerate(zip(cores, widths, strict=True)):
        _check_core(t, core, width, cores[0].dtype)
    torch._check(
        1 <= embedding_dim <= math.prod(q_shapes),
        lambda: f"embedding_dim must be in [1, prod(q_shapes)], got {embedding_dim}",
    )


def _check_plan(plan: Sequence[torch.Tensor], per_sample_weights: torch.Tensor | None, mode: str) -> None:
    t = dict(zip(PLAN_ARGS, plan, strict=True))
    for name in PLAN_ARGS[:-1]:
        _check_index(t[name], name)
    bounds = t["micro_bounds"]
    torch._check(
        bounds.dtype == torch.int64 and bounds.dim() == 2 and bounds.shape[1] == 8,
        lambda: f"micro_bounds must be int64 (M, 8), got {bounds.dtype} {tuple(bounds.shape)}",
    )
    torch._check(t["offsets"].shape[0] >= 1, lambda: "offsets must have B + 1 >= 1 entries")
    torch._check(mode in ("sum", "mean"), lambda: f"mode must be 'sum' or 'mean', got {mode!r}")
    if per_sample_weights is not None:
        torch._check(mode == "sum", lambda: "per_sample_weights need mode='sum'")
        torch._check(
            per_sample_weights.shape == t["inverse"].shape,
            lambda: f"per_sample_weights must be (nnz,), got {tuple(per_sample_weights.shape)}",
        )


@torch.library.register_fake(f"{NAMESPACE}::tt_plan")
def _tt_plan_fake(
    indices: torch.Tensor,
    offsets: torch.Tensor,
    p_shapes: Sequence[int],
    micro_batches: int = 1,
    max_micro_uniques: int | None = None,
) -> tuple[torch.Tensor, ...]:
    _check_index(indices, "indices")
    _check_index(offsets, "offsets")
    torch._check(len(p_shapes) == 3, lambda: f"the ecorec ops take 3 cores: p_shapes={list(p_shapes)}")
    torch._check(micro_batches >= 1, lambda: f"micro_batches must be >= 1, got {micro_batches}")
    ctx = torch.library.get_ctx()
    nnz = indices.shape[0]
    num_uniques, num_groups, n0, num_micro = (ctx.new_dynamic_size() for _ in range(4))
    new = indices.new_empty
    return (
        new(nnz),  # bag_ids
        new(num_uniques),  # uniques
        new(nnz),  # inverse
        new(nnz),  # sorted_positions
        new(num_uniques + 1),  # unique_offsets
        new(n0),  # digits0
        new(num_groups),  # digits1
        new(num_uniques),  # digits2
        new(num_groups),  # parents1
        new(num_uniques),  # parents2
        new(n0 + 1),  # child_offsets0
        new(num_groups + 1),  # child_offsets1
        torch.empty(num_micro, 8, dtype=torch.int64, device="cpu"),  # micro_bounds, host
    )


# The forward/backward impls take the plan's 14 tensors as parameters named as in PLAN_ARGS.
# fmt: off
@torch.library.register_fake(f"{NAMESPACE}::tt_forward")
def _tt_forward_fake(
    core0, core1, core2, offsets, bag_ids, uniques, inverse, sorted_positions, unique_offsets, digits0,
    digits1, digits2, parents1, parents2, child_offsets0, child_offsets1, micro_bounds, per_sample_weights,
    q_shapes, ranks, embedding_dim, mode="sum",
) -> torch.Tensor:
    plan = (
        offsets, bag_ids, uniques, inverse, sorted_positions, unique_offsets, digits0, digits1, digits2,
        parents1, parents2, child_offsets0, child_offsets1, micro_bounds,
    )
    _check_cores((core0, core1, core2), q_shapes, ranks, embedding_dim)
    _check_plan(plan, per_sample_weights, mode)
    return core0.new_empty(plan[0].shape[0] - 1, embedding_dim)


@torch.library.register_fake(f"{NAMESPACE}::tt_backward")
def _tt_backward_fake(
    grad_output, core0, core1, core2, offsets, bag_ids, uniques, inverse, sorted_positions, unique_offsets,
    digits0, digits1, digits2, parents1, parents2, child_offsets0, child_offsets1, micro_bounds,
    per_sample_weights, q_shapes, ranks, embedding_dim, mode="sum", deterministic=False,
) -> tuple[torch.Tensor, ...]:
    plan = (
        offsets, bag_ids, uniques, inverse, sorted_positions, unique_offsets, digits0, digits1, digits2,
        parents1, parents2, child_offsets0, child_offsets1, micro_bounds,
    )
    _check_cores((core0, core1, core2), q_shapes, ranks, embedding_dim)
    _check_plan(plan, per_sample_weights, mode)
    torch._check(
        grad_output.dim() == 2
        and grad_output.shape[0] == plan[0].shape[0] - 1
        and grad_output.shape[1] == embedding_dim,
        lambda: f"grad_output must be (B, embedding_dim), got {tuple(grad_output.shape)}",
    )
    return tuple(core.new_empty(core.shape) for core in (core0, core1, core2))
# fmt: on


def _check_update(core: torch.Tensor, grad: torch.Tensor, state: torch.Tensor | None, rowwise: bool) -> None:
    torch._check(core.dim() == 2, lambda: f"core must be 2-D (p, C), got {tuple(core.shape)}")
    torch._check(grad.shape == core.shape, lambda: f"grad {tuple(grad.shape)} != core {tuple(core.shape)}")
    torch._check(grad.dtype == core.dtype, lambda: f"grad is {grad.dtype}, core {core.dtype}")
    if state is not None:
        expected = (core.shape[0],) if rowwise else tuple(core.shape)
        torch._check(tuple(state.shape) == expected, lambda: f"state must be {expected}, got {state.shape}")
        torch._check(state.dtype == core.dtype, lambda: f"state is {state.dtype}, core {core.dtype}")


@torch.library.register_fake(f"{NAMESPACE}::tt_sgd_update_")
def _tt_sgd_update_fake(core: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
    _check_update(core, grad, None, False)


@torch.library.register_fake(f"{NAMESPACE}::tt_adagrad_update_")
def _tt_adagrad_update_fake(core, state, grad, lr: float, eps: float) -> None:
    _check_update(core, grad, state, False)


@torch.library.register_fake(f"{NAMESPACE}::tt_rowwise_adagrad_update_")
def _tt_rowwise_adagrad_update_fake(core, state, grad, lr: float, eps: float) -> None:
    _check_update(core, grad, state, True)


# ------------------------------------------------------------------------------- CPU kernels (the torch path)


@torch.library.register_kernel(f"{NAMESPACE}::tt_plan", "cpu")
def _tt_plan_cpu(
    indices: torch.Tensor,
    offsets: torch.Tensor,
    p_shapes: Sequence[int],
    micro_batches: int = 1,
    max_micro_uniques: int | None = None,
) -> tuple[torch.Tensor, ...]:
    if len(p_shapes) != 3:
        raise ValueError(f"the ecorec ops take 3 cores, got p_shapes={list(p_shapes)}")
    plan = build_lookup_plan(
        indices, offsets, p_shapes, micro_batches=micro_batches, max_micro_uniques=max_micro_uniques
    )
    return plan_op_args(plan)[1:]


# fmt: off
@torch.library.register_kernel(f"{NAMESPACE}::tt_forward", "cpu")
def _tt_forward_cpu(
    core0, core1, core2, offsets, bag_ids, uniques, inverse, sorted_positions, unique_offsets, digits0,
    digits1, digits2, parents1, parents2, child_offsets0, child_offsets1, micro_bounds, per_sample_weights,
    q_shapes, ranks, embedding_dim, mode="sum",
) -> torch.Tensor:
    plan = plan_from_op_args((
        offsets, bag_ids, uniques, inverse, sorted_positions, unique_offsets, digits0, digits1, digits2,
        parents1, parents2, child_offsets0, child_offsets1, micro_bounds,
    ))
    cores = [core0, core1, core2]
    shapes = _shapes_from_op_args(cores, q_shapes, ranks, embedding_dim)
    out = ecorec_forward(cores, shapes, plan, plan.micro_bounds.tolist(), per_sample_weights, mode)
    return out.contiguous()


@torch.library.register_kernel(f"{NAMESPACE}::tt_backward", "cpu")
def _tt_backward_cpu(
    grad_output, core0, core1, core2, offsets, bag_ids, uniques, inverse, sorted_positions, unique_offsets,
    digits0, digits1, digits2, parents1, parents2, child_offsets0, child_offsets1, micro_bounds,
    per_sample_weights, q_shapes, ranks, embedding_dim, mode="sum", deterministic=False,
) -> tuple[torch.Tensor, ...]:
    plan = plan_from_op_args((
        offsets, bag_ids, uniques, inverse, sorted_positions, unique_offsets, digits0, digits1, digits2,
        parents1, parents2, child_offsets0, child_offsets1, micro_bounds,
    ))
    cores = [core.contiguous() for core in (core0, core1, core2)]
    shapes = _shapes_from_op_args(cores, q_shapes, ranks, embedding_dim)
    grads = ecorec_backward(
        cores, shapes, plan, plan.micro_bounds.tolist(), grad_output, per_sample_weights, mode, deterministic
    )
    return tuple(grads)
# fmt: on


@torch.library.register_kernel(f"{NAMESPACE}::tt_sgd_update_", "cpu")
def _tt_sgd_update_cpu(core: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
    sgd_update_(core, grad, lr)


@torch.library.register_kernel(f"{NAMESPACE}::tt_adagrad_update_", "cpu")
def _tt_adagrad_update_cpu(core, state, grad, lr: float, eps: float) -> None:
    adagrad_update_(core, state, grad, lr, eps)


@torch.library.register_kernel(f"{NAMESPACE}::tt_rowwise_adagrad_update_", "cpu")
def _tt_rowwise_adagrad_update_cpu(core, state, grad, lr: float, eps: float) -> None:
    rowwise_adagrad_update_(core, state, grad, lr, eps)


# ------------------------------------------------------------------------------------------------- autograd

_MUTATED_ARGS = {"tt_sgd_update_": (0,), "tt_adagrad_update_": (0, 1), "tt_rowwise_adagrad_update_": (0, 1)}


def _bump_versions_impl(name: str, mutated: tuple[int, ...]) -> Any:
    """An ``ADInplaceOrView`` kernel: bump the version counters of the mutated arguments (as torch's in-place
    ops do, so autograd notices a core updated after it was saved), then run the kernel below."""
    overload = op(name)

    def impl(keyset: torch._C.DispatchKeySet, *args: Any, **kwargs: Any) -> Any:
        torch.autograd.graph.increment_version([args[i] for i in mutated])
        with torch._C._AutoDispatchBelowADInplaceOrView():
            return overload.redispatch(keyset & torch._C._after_ADInplaceOrView_keyset, *args, **kwargs)

    return impl


for _name, _mutated in _MUTATED_ARGS.items():
    _LIBRARY.impl(_name, _bump_versions_impl(_name, _mutated), "ADInplaceOrView", with_keyset=True)


_FORWARD_TENSORS = 3 + len(PLAN_ARGS)  # cores and plan; then per_sample_weights and the non-tensor args
_FORWARD_ARGS = _FORWARD_TENSORS + 5


def _tt_forward_setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    tensors = inputs[:_FORWARD_TENSORS]
    per_sample_weights, q_shapes, ranks, embedding_dim, mode = inputs[_FORWARD_TENSORS:]
    ctx.has_weights = per_sample_weights is not None
    ctx.save_for_backward(*tensors, *((per_sample_weights,) if ctx.has_weights else ()))
    ctx.shape_args = (list(q_shapes), list(ranks), embedding_dim, mode)


def _tt_forward_backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """Autograd of ``ecorec::tt_forward``: ``ecorec::tt_backward`` on ``grad_output (B, D)``, giving the dense
    core gradients ``(p_t, r_t q_t r_{t+1})``.

    ``tt_forward``'s schema has no ``deterministic`` argument (the CUDA kernels' C++ signatures are checked
    against it), so this formula takes it from torch's own switch, read when the backward runs:
    ``deterministic = torch.are_deterministic_algorithms_enabled()`` (``torch.use_deterministic_algorithms``;
    ``warn_only`` counts as enabled). ``TTEmbeddingBag(deterministic=True)`` is the per-module way.
    """
    if ctx.needs_input_grad[_FORWARD_TENSORS]:
        raise NotImplementedError("ecorec::tt_forward has no gradient for per_sample_weights; detach them")
    saved = ctx.saved_tensors
    tensors = saved[:_FORWARD_TENSORS]
    per_sample_weights = saved[_FORWARD_TENSORS] if ctx.has_weights else None
    deterministic = torch.are_deterministic_algorithms_enabled()
    grads = op("tt_backward")(grad_output, *tensors, per_sample_weights, *ctx.shape_args, deterministic)
    return (*grads, *(None for _ in range(_FORWARD_ARGS - 3)))


def _tt_backward_backward(ctx: Any, *grads: torch.Tensor) -> tuple[None, ...]:
    raise NotImplementedError(
        "ecorec::tt_backward is not differentiable (no double backward through TT lookups)"
    )


torch.library.register_autograd(
    f"{NAMESPACE}::tt_forward", _tt_forward_backward, setup_context=_tt_forward_setup_context
)
# Registered so that every device behaves alike (the CPU kernel is made of differentiable torch ops).
torch.library.register_autograd(f"{NAMESPACE}::tt_backward", _tt_backward_backward)
