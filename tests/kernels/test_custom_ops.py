"""The ``torch.ops.ecorec`` operators without a GPU: schemas, fake impls and autograd through
``torch.library.opcheck`` on the CPU kernels; the CPU kernels against the dense oracle; the CUDA backend's
wiring (``ecorec.tt.ops``) run end to end through the ops on CPU tensors; the backend resolution rules."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import ShapeEnv
from torch.library import opcheck

import ecorec.tt.ops as tt_ops
from ecorec.kernels import CudaBuildError
from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig
from ecorec.tt.custom_ops import OP_NAMES, PLAN_FIELDS, SCHEMAS, op, plan_from_op_args, plan_op_args
from ecorec.tt.indexing import build_lookup_plan
from ecorec.tt.optim import fused_update_
from ecorec.tt.testing import random_lookup
from tests.tt.utils import assert_rel_close, core_grads, oracle_forward

P_SHAPES = [6, 5, 4]


def _module(dim: int = 10, mode: str = "sum", dtype: torch.dtype = torch.float64, **kwargs) -> TTEmbeddingBag:
    return TTEmbeddingBag(
        120, dim, [3, 4], tt_p_shapes=P_SHAPES, mode=mode, include_last_offset=True,
        weight_init="sampled_gaussian", init_std=1.0, dtype=dtype, **kwargs,
    )  # fmt: skip


def _lookup(seed: int = 0, weighted: bool = True, distribution: str = "zipf", num_bags: int = 16):
    return random_lookup(
        120, num_bags, mean_length=4, distribution=distribution, empty_fraction=0.2, weighted=weighted,
        dtype=torch.float64, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


def _plan_args(
    lookup, micro_batches: int = 1, max_micro_uniques: int | None = None
) -> tuple[torch.Tensor, ...]:
    outputs = op("tt_plan")(lookup.indices, lookup.offsets, P_SHAPES, micro_batches, max_micro_uniques)
    return (lookup.offsets, *outputs)


def _shape_args(module: TTEmbeddingBag) -> tuple:
    return list(module.shapes.q_shapes), list(module.shapes.ranks), module.embedding_dim


def test_every_schema_is_registered() -> None:
    assert OP_NAMES == (
        "tt_plan", "tt_forward", "tt_backward", "tt_sgd_update_", "tt_adagrad_update_",
        "tt_rowwise_adagrad_update_",
    )  # fmt: skip
    for name in OP_NAMES:
        schema = op(name)._schema
        assert str(schema) == str(torch._C.parse_schema(f"ecorec::{SCHEMAS[name]}"))
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"ecorec::{name}", "CPU")
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"ecorec::{name}", "Meta")  # the fake impl
    returns = [r.name for r in op("tt_plan")._schema.returns]
    assert returns == list(PLAN_FIELDS)
    mutated = {
        name: [
            a.name for a in op(name)._schema.arguments if a.alias_info is not None and a.alias_info.is_write
        ]
        for name in OP_NAMES
    }
    assert mutated == {
        "tt_plan": [], "tt_forward": [], "tt_backward": [], "tt_sgd_update_": ["core"],
        "tt_adagrad_update_": ["core", "state"], "tt_rowwise_adagrad_update_": ["core", "state"],
    }  # fmt: skip


@pytest.mark.parametrize(("micro_batches", "max_micro_uniques"), [(1, None), (3, None), (1, 4)])
def test_plan_op_is_the_torch_plan(micro_batches: int, max_micro_uniques: int | None) -> None:
    lookup = _lookup(1)
    args = _plan_args(lookup, micro_batches, max_micro_uniques)
    ours = plan_from_op_args(args)
    theirs = build_lookup_plan(
        lookup.indices,
        lookup.offsets,
        P_SHAPES,
        micro_batches=micro_batches,
        max_micro_uniques=max_micro_uniques,
    )
    assert ours.micro_bounds.device.type == "cpu"
    for got, want in zip(plan_op_args(ours), plan_op_args(theirs)):
        assert torch.equal(got, want)
    opcheck(op("tt_plan"), (lookup.indices, lookup.offsets, P_SHAPES, micro_batches, max_micro_uniques))


def test_plan_op_without_indices() -> None:
    empty = torch.zeros(0, dtype=torch.int64)
    outputs = op("tt_plan")(empty, torch.zeros(4, dtype=torch.int64), P_SHAPES, 2, None)
    shapes = {name: tuple(t.shape) for name, t in zip(PLAN_FIELDS, outputs)}
    assert shapes["micro_bounds"] == (0, 8) and shapes["unique_offsets"] == (1,) and shapes["uniques"] == (0,)
    assert shapes["child_offsets0"] == (1,) and shapes["child_offsets1"] == (1,)
    opcheck(op("tt_plan"), (empty, torch.zeros(4, dtype=torch.int64), P_SHAPES, 2, None))


@pytest.mark.parametrize(
    ("mode", "weighted", "micro_batches"), [("sum", True, 1), ("sum", False, 3), ("mean", False, 2)]
)
def test_forward_op_matches_the_dense_oracle_and_passes_opcheck(
    mode: str, weighted: bool, micro_batches: int
) -> None:
    module = _module(mode=mode)
    lookup = _lookup(2, weighted=weighted)
    args = _plan_args(lookup, micro_batches)
    cores = [core.detach().clone().requires_grad_() for core in module.cores]
    inputs = (*cores, *args, lookup.per_sample_weights, *_shape_args(module), mode)
    out = op("tt_forward")(*inputs)
    expected = oracle_forward(module, lookup)
    assert_rel_close(out, expected, 1e-12)
    # The registered autograd formula (tt_backward) against autograd through the dense table.
    grad_output = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for got, want in zip(
        torch.autograd.grad(out, cores, grad_output), core_grads(module, expected, grad_output)
    ):
        assert_rel_close(got, want, 1e-12)
    opcheck(op("tt_forward"), inputs)


@pytest.mark.parametrize("deterministic", [False, True])
def test_backward_op_passes_opcheck(deterministic: bool) -> None:
    module = _module()
    lookup = _lookup(4)
    args = _plan_args(lookup, 2)
    grad_output = torch.randn(lookup.offsets.numel() - 1, module.embedding_dim, dtype=torch.float64)
    inputs = (grad_output, *[c.detach() for c in module.cores], *args, lookup.per_sample_weights,
              *_shape_args(module), "sum", deterministic)  # fmt: skip
    grads = op("tt_backward")(*inputs)
    for got, want in zip(grads, core_grads(module, oracle_forward(module, lookup), grad_output)):
        assert_rel_close(got, want, 1e-12)
    opcheck(op("tt_backward"), inputs)


@pytest.mark.parametrize("kind", ["sgd", "adagrad", "rowwise_adagrad"])
def test_update_ops_are_the_fused_update(kind: str) -> None:
    generator = torch.Generator().manual_seed(5)
    core = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    grad = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    grad[2] = 0.0  # an untouched row keeps its weights and state exactly
    state = None if kind == "sgd" else torch.rand((6, 8) if kind == "adagrad" else (6,), generator=generator)
    state = state.double() if state is not None else None
    config = TTOptimizerConfig(kind, lr=0.3, eps=1e-8)
    want_core, want_state = core.clone(), state.clone() if state is not None else None
    fused_update_(config, [want_core], [grad], [want_state])
    got_core, got_state = core.clone(), state.clone() if state is not None else None
    version = got_core._version
    tt_ops.tt_fused_update_(config, [got_core], [grad], [got_state], backend="cuda")  # the ops, on CPU here
    assert got_core._version == version + 1  # bumped once, as torch's in-place ops do
    assert torch.equal(got_core, want_core)
    assert torch.equal(got_core[2], core[2])
    if state is not None:
        assert torch.equal(got_state, want_state)
    args = (core.clone(), grad, 0.3) if kind == "sgd" else (core.clone(), state.clone(), grad, 0.3, 1e-8)
    opcheck(op(f"tt_{kind}_update_"), args)


def test_fake_impls_give_shapes_and_check_arguments() -> None:
    module = _module(dim=10)
    lookup = _lookup(6)
    real = (*[c.detach() for c in module.cores], *_plan_args(lookup, 2))
    with FakeTensorMode(shape_env=ShapeEnv()) as mode:  # a shape env: tt_plan's sizes are data-dependent
        fake = [mode.from_tensor(t) for t in real]
        out = op("tt_forward")(*fake, None, *_shape_args(module), "sum")
        assert tuple(out.shape) == (16, 10) and out.dtype == torch.float64
        grads = op("tt_backward")(out, *fake, None, *_shape_args(module), "sum", False)
        assert [tuple(g.shape) for g in grads] == [tuple(c.shape) for c in module.cores]
        plan = op("tt_plan")(
            mode.from_tensor(lookup.indices), mode.from_tensor(lookup.offsets), P_SHAPES, 1, None
        )
        assert len(plan) == 13 and plan[-1].device.type == "cpu" and plan[0].shape == lookup.indices.shape
        assert list(module.shapes.q_shapes) == [1, 2, 5] and list(module.shapes.ranks) == [1, 3, 4, 1]
        with pytest.raises(RuntimeError, match=r"core1 must be \(p1, 36\) .* got \(5, 24\)"):
            op("tt_forward")(*fake, None, [1, 3, 5], [1, 3, 4, 1], 10, "sum")
        with pytest.raises(RuntimeError, match="mode must be 'sum' or 'mean'"):
            op("tt_forward")(*fake, None, *_shape_args(module), "max")
        with pytest.raises(RuntimeError, match="the ecorec ops take 3 cores"):
            op("tt_plan")(
                mode.from_tensor(lookup.indices), mode.from_tensor(lookup.offsets), [6, 20], 1, None
            )


# ------------------------------------------------------------------------------ the "cuda" backend's wiring


@pytest.fixture
def cuda_backend_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route TTEmbeddingBag through the ops (the "cuda" backend's code path) with CPU tensors."""
    monkeypatch.setattr("ecorec.tt.embedding_bag.resolve_backend", lambda backend, device, **kwargs: backend)


@pytest.mark.parametrize("kind", [None, "sgd", "adagrad", "rowwise_adagrad"])
def test_module_through_the_ops_equals_the_torch_backend(cuda_backend_on_cpu: None, kind: str | None) -> None:
    optimizer = TTOptimizerConfig(kind, lr=0.05) if kind is not None else None
    ops_module = _module(backend="cuda", optimizer=optimizer, micro_batches=2)
    torch_module = _module(backend="torch", optimizer=optimizer, micro_batches=2)
    torch_module.load_state_dict(ops_module.state_dict())
    for step in range(3):
        lookup = _lookup(10 + step)
        grad_output = torch.randn(16, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(step))
        outs = []
        for module in (ops_module, torch_module):
            out = module(lookup.indices, lookup.offsets, per_sample_weights=lookup.per_sample_weights)
            out.backward(grad_output)
            outs.append(out)
        assert_rel_close(outs[0], outs[1], 1e-12)
    for a, b in zip(ops_module.cores, torch_module.cores):
        assert_rel_close(a, b, 1e-12)
        if kind is None:
            assert_rel_close(a.grad, b.grad, 1e-12)
    for a, b in zip(ops_module.optimizer_states(), torch_module.optimizer_states()):
        if a is not None:
            assert_rel_close(a, b, 1e-12)


# -------------------------------------------------------------------------------------- backend resolution

CUDA = torch.device("cuda")


def test_auto_uses_torch_where_the_cuda_kernels_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise AssertionError("no build attempt expected")

    monkeypatch.setattr(tt_ops, "load_tt_extension", fail)
    monkeypatch.setattr(tt_ops, "tt_kernels_registered", lambda: False)
    for kwargs in (
        dict(algorithm="fbtt"), dict(algorithm="elrec"), dict(num_cores=4), dict(num_cores=2),
        dict(dtype=torch.float16),
    ):  # fmt: skip
        assert tt_ops.resolve_backend("auto", CUDA, **kwargs) == "torch"
    assert tt_ops.resolve_backend("auto", torch.device("cpu")) == "torch"
    assert tt_ops.resolve_backend("torch", CUDA) == "torch"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(algorithm="fbtt"), "algorithm='fbtt' has no CUDA kernels"),
        (dict(num_cores=4), "the CUDA kernels support 3 TT cores, got num_cores=4"),
        (
            dict(dtype=torch.bfloat16),
            "the CUDA kernels support float32 and float64 cores, got dtype=torch.bfloat16",
        ),
    ],
)
def test_cuda_refuses_what_the_kernels_cannot_run(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"backend='cuda' cannot run this lookup: {message}"):
        tt_ops.resolve_backend("cuda", CUDA, **kwargs)


def test_failed_build_falls_back_with_one_warning_naming_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    log = "/cache/ecorec_tt_cuda-0123/build.log"

    def failing_build() -> None:
        raise CudaBuildError(
            f"building the CUDA extension 'ecorec_tt_cuda' failed; the compiler output is in {log}"
        )

    monkeypatch.setattr(tt_ops, "load_tt_extension", failing_build)
    monkeypatch.setattr(tt_ops, "tt_kernels_registered", lambda: False)
    tt_ops._warn_fallback.cache_clear()
    with pytest.warns(RuntimeWarning, match=f"use the torch backend.*{log}"):
        assert tt_ops.resolve_backend("auto", CUDA) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second lookup does not warn again
        assert tt_ops.resolve_backend("auto", CUDA) == "torch"
    with pytest.raises(RuntimeError, match=f"backend='cuda' needs the ecorec CUDA kernels.*{log}"):
        tt_ops.resolve_backend("cuda", CUDA)


def test_loaded_kernels_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tt_ops, "tt_kernels_registered", lambda: True)
    assert tt_ops.resolve_backend("auto", CUDA) == "cuda"
    assert tt_ops.resolve_backend("cuda", CUDA, dtype=torch.float64) == "cuda"
    with pytest.raises(ValueError, match="supports algorithm in"):
        empty = torch.zeros(0, dtype=torch.int64)
        tt_ops.tt_preprocess(
            empty, torch.zeros(1, dtype=torch.int64), _module().shapes, algorithm="fbtt", backend="cuda"
        )
