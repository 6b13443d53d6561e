"""The CUDA kernels of ``torch.ops.ecorec`` against the torch path (``pytest -m gpu``; skipped without CUDA).

Needs torch alone (plus pytest and hypothesis): ``PYTHONPATH=. python -m pytest -m gpu tests/kernels``. The
kernels are built on first use (``ecorec.kernels.load_tt_extension``).

- Oracles: the dense table in float64 on the CPU (``F.embedding_bag`` over ``full_weight()``, autograd through
  it for the core gradients), the per-row chain ``tt_rows`` where the table is too large to materialise, and
  the torch backend (plans compared exactly; float64 results within 1e-10).
- Tolerances: float32 results within 1e-5 of the float64 oracle, relative to the largest reference value
  (TF32 off, cuBLAS FP32 compute); float64 within 1e-10.
- Poisoning: before each call the CUDA caching allocator's free memory is filled with NaN
  (:func:`poison_cuda_cache`), so an output element a kernel forgets to write reads as NaN (floats) or as an
  out-of-range value (int64) and fails the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ecorec.kernels import load_tt_extension, tt_kernels_registered
from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig
from ecorec.tt.custom_ops import PLAN_FIELDS, op, plan_from_op_args, plan_op_args
from ecorec.tt.indexing import build_lookup_plan
from ecorec.tt.ops import resolve_backend
from ecorec.tt.optim import fused_update_
from ecorec.tt.reference import tt_rows
from ecorec.tt.testing import LookupInput, random_lookup
from tests.tt.utils import assert_rel_close, core_grads, max_rel_error, oracle_forward

pytestmark = pytest.mark.gpu

F32_TOL, F64_TOL = 1e-5, 1e-10


@pytest.fixture(scope="module")
def device() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (torch.cuda.is_available() is False)")
    load_tt_extension()  # JIT build of kernels/ on first use (or the ahead-of-time ecorec._tt_cuda)
    assert tt_kernels_registered()
    return torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_fp32_matmul() -> Iterator[None]:
    """cuBLAS FP32 without TF32 (the tolerances assume it; TF32 gives about 3e-4)."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = previous


def poison_cuda_cache(device: torch.device, large_bytes: int = 1 << 30) -> None:
    """Fill the caching allocator's free memory with NaN: one large block (later large allocations are split
    from it) and whole 2 MiB small-pool segments (allocations up to 1 MiB); all freed back to the cache."""
    if device.type != "cuda":
        return
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    hold = [torch.full((large_bytes // 4,), math.nan, device=device)]
    hold += [torch.full((1 << 18,), math.nan, device=device) for _ in range(256)]  # 1 MiB each, small pool
    torch.cuda.synchronize(device)
    del hold


# ----------------------------------------------------------------------------------------------- helpers


def _modules(
    device: torch.device,
    *,
    num_embeddings: int = 1000,
    dim: int = 32,
    ranks: tuple[int, int] = (8, 8),
    p: tuple[int, int, int] | None = None,
    q: tuple[int, int, int] | None = None,
    mode: str = "sum",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    **kwargs,
) -> tuple[TTEmbeddingBag, TTEmbeddingBag]:
    """``(cuda module, float64 CPU torch-backend module)`` with the same cores."""
    common = dict(
        tt_p_shapes=p, tt_q_shapes=q, mode=mode, include_last_offset=True, weight_init="sampled_gaussian",
        init_std=1.0,
    )  # fmt: skip
    reference = TTEmbeddingBag(
        num_embeddings, dim, list(ranks), dtype=torch.float64, backend="torch", **common
    )
    reference.reset_parameters(torch.Generator().manual_seed(seed))
    cuda = TTEmbeddingBag(
        num_embeddings, dim, list(ranks), dtype=dtype, device=device, backend="cuda", **common, **kwargs
    )
    with torch.no_grad():
        for ours, theirs in zip(cuda.cores, reference.cores):
            ours.copy_(theirs)
    return cuda, reference


def _lookup(
    num_embeddings: int,
    num_bags: int,
    seed: int,
    *,
    distribution: str = "zipf",
    mean_length: float = 6.0,
    empty_fraction: float = 0.2,
    weighted: bool = False,
) -> LookupInput:
    return random_lookup(
        num_embeddings, num_bags, mean_length=mean_length, distribution=distribution,
        empty_fraction=empty_fraction, weighted=weighted, dtype=torch.float64,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


def _to(lookup: LookupInput, device: torch.device, dtype: torch.dtype) -> LookupInput:
    weights = lookup.per_sample_weights
    return LookupInput(
        lookup.indices.to(device),
        lookup.offsets.to(device),
        lookup.lengths.to(device),
        weights.to(device, dtype) if weights is not None else None,
    )


def _forward(module: TTEmbeddingBag, lookup: LookupInput) -> torch.Tensor:
    return module(lookup.indices, lookup.offsets, per_sample_weights=lookup.per_sample_weights)


def _check_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    actual = actual.detach().to("cpu", torch.float64)
    assert not actual.isnan().any(), "NaN in the output: an element was not written"
    assert_rel_close(
        actual, expected.detach().to("cpu", torch.float64), F32_TOL if dtype == torch.float32 else F64_TOL
    )


# ------------------------------------------------------------------------------------------------- plan


@pytest.mark.parametrize("distribution", ["uniform", "zipf", "hot", "duplicates"])
@pytest.mark.parametrize(("micro_batches", "max_micro_uniques"), [(1, None), (3, None), (1, 7), (64, None)])
def test_plan_equals_the_torch_plan(
    device: torch.device, distribution: str, micro_batches: int, max_micro_uniques: int | None
) -> None:
    p = [12, 10, 9]
    lookup = _lookup(1080, 300, 7, distribution=distribution)
    poison_cuda_cache(device)
    outputs = op("tt_plan")(
        lookup.indices.to(device), lookup.offsets.to(device), p, micro_batches, max_micro_uniques
    )
    expected = build_lookup_plan(
        lookup.indices, lookup.offsets, p, micro_batches=micro_batches, max_micro_uniques=max_micro_uniques
    )
    assert outputs[-1].device.type == "cpu"  # micro_bounds: the one device->host copy
    for name, got, want in zip(PLAN_FIELDS, outputs, plan_op_args(expected)[1:]):
        assert got.dtype == torch.int64, name
        assert torch.equal(got.cpu(), want), name


@pytest.mark.parametrize(
    ("indices", "offsets"),
    [
        ([], [0]),  # no bag
        ([], [0, 0, 0]),  # bags, no index (U = 0: no micro-batch)
        ([5], [0, 1]),  # B = 1, one index
        ([7, 7, 7, 7], [0, 0, 4, 4]),  # one row, empty bags around it
    ],
)
def test_plan_edge_cases(device: torch.device, indices: list[int], offsets: list[int]) -> None:
    idx, off = torch.tensor(indices, dtype=torch.int64), torch.tensor(offsets, dtype=torch.int64)
    poison_cuda_cache(device)
    outputs = op("tt_plan")(idx.to(device), off.to(device), [3, 3, 3], 2, None)
    expected = build_lookup_plan(idx, off, [3, 3, 3], micro_batches=2)
    for name, got, want in zip(PLAN_FIELDS, outputs, plan_op_args(expected)[1:]):
        assert torch.equal(got.cpu(), want), name


# ----------------------------------------------------------------------------------------- forward/backward

FORWARD_SHAPES = [
    # (dim, q): float4 path (D and Q multiples of 4), padded columns, scalar paths
    (32, (2, 4, 4)),
    (12, (2, 2, 4)),  # Q = 16 > D = 12, both multiples of 4
    (10, (1, 2, 5)),  # D = Q = 10: scalar path
    (14, (2, 2, 4)),  # D = 14 < Q = 16: scalar path with dropped columns
]


@pytest.mark.parametrize(("dim", "q"), FORWARD_SHAPES)
@pytest.mark.parametrize(("mode", "weighted"), [("sum", False), ("sum", True), ("mean", False)])
@pytest.mark.parametrize("micro_batches", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_and_backward_against_the_dense_oracle(
    device: torch.device,
    dim: int,
    q: tuple[int, int, int],
    mode: str,
    weighted: bool,
    micro_batches: int,
    dtype: torch.dtype,
) -> None:
    cuda, reference = _modules(
        device, dim=dim, q=q, mode=mode, dtype=dtype, micro_batches=micro_batches, seed=dim
    )
    lookup = _lookup(1000, 257, dim, weighted=weighted)
    poison_cuda_cache(device)
    out = _forward(cuda, _to(lookup, device, dtype))
    expected = oracle_forward(reference, lookup)
    _check_close(out, expected, dtype)
    grad_output = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    poison_cuda_cache(device)
    grads = torch.autograd.grad(out, list(cuda.cores), grad_output.to(device, dtype))
    for got, want in zip(grads, core_grads(reference, expected, grad_output)):
        _check_close(got, want, dtype)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("distribution", ["hot", "duplicates", "uniform"])
def test_heavy_duplicates_and_long_segments(
    device: torch.device, deterministic: bool, distribution: str
) -> None:
    cuda, reference = _modules(device, deterministic=deterministic, seed=3)
    lookup = _lookup(1000, 2048, 11, distribution=distribution, mean_length=16)
    poison_cuda_cache(device)
    out = _forward(cuda, _to(lookup, device, torch.float32))
    expected = oracle_forward(reference, lookup)
    _check_close(out, expected, torch.float32)
    grad_output = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grads = torch.autograd.grad(out, list(cuda.cores), grad_output.to(device, torch.float32))
    for got, want in zip(grads, core_grads(reference, expected, grad_output)):
        _check_close(got, want, torch.float32)


def test_rank_32_dim_32_like_the_paper(device: torch.device) -> None:
    cuda, reference = _modules(
        device, num_embeddings=100_000, dim=32, ranks=(32, 32), micro_batches=4, seed=5
    )
    lookup = _lookup(100_000, 1024, 5, mean_length=16)
    poison_cuda_cache(device)
    out = _forward(cuda, _to(lookup, device, torch.float32))
    # The rows by the per-row chain (the dense table would be 100k x 32: fine, but tt_rows is independent).
    rows = tt_rows(list(reference.cores), reference.shapes, lookup.indices)
    expected = torch.nn.functional.embedding_bag(
        torch.arange(lookup.indices.numel()), rows, lookup.offsets, mode="sum", include_last_offset=True
    )
    _check_close(out, expected, torch.float32)


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_empty_lookups_and_single_bags(device: torch.device, micro_batches: int) -> None:
    cuda, reference = _modules(device, dim=12, q=(2, 2, 4), micro_batches=micro_batches)
    cases = [
        LookupInput(
            torch.zeros(0, dtype=torch.int64), torch.zeros(4, dtype=torch.int64), torch.zeros(3), None
        ),
        LookupInput(
            torch.zeros(0, dtype=torch.int64), torch.zeros(1, dtype=torch.int64), torch.zeros(0), None
        ),
        LookupInput(torch.tensor([9]), torch.tensor([0, 1]), torch.tensor([1]), None),
        LookupInput(torch.tensor([9, 9, 3]), torch.tensor([0, 3]), torch.tensor([3]), None),
    ]
    for lookup in cases:
        poison_cuda_cache(device)
        out = _forward(cuda, _to(lookup, device, torch.float32))
        expected = oracle_forward(reference, lookup)
        _check_close(out, expected, torch.float32)
        grad_output = torch.ones(expected.shape, dtype=torch.float64)
        poison_cuda_cache(device)
        grads = torch.autograd.grad(
            out, list(cuda.cores), grad_output.to(device, torch.float32), allow_unused=True
        )
        for got, want in zip(grads, core_grads(reference, expected, grad_output)):
            _check_close(got, want, torch.float32)


def test_cuda_equals_the_torch_backend_on_the_same_device(device: torch.device) -> None:
    cuda, _ = _modules(device, dtype=torch.float64, micro_batches=3, seed=8)
    same = TTEmbeddingBag(1000, 32, [8, 8], include_last_offset=True, dtype=torch.float64, device=device,
                          backend="torch", micro_batches=3)  # fmt: skip
    same.load_state_dict(cuda.state_dict())
    lookup = _to(_lookup(1000, 500, 8, weighted=True), device, torch.float64)
    out_cuda, out_torch = _forward(cuda, lookup), _forward(same, lookup)
    assert_rel_close(out_cuda, out_torch, 1e-12)
    grad_output = torch.randn_like(out_cuda)
    for a, b in zip(
        torch.autograd.grad(out_cuda, list(cuda.cores), grad_output),
        torch.autograd.grad(out_torch, list(same.cores), grad_output),
    ):
        assert_rel_close(a, b, 1e-12)


def test_forward_accepts_a_plan_built_by_the_torch_path(device: torch.device) -> None:
    cuda, reference = _modules(device, micro_batches=2)
    lookup = _lookup(1000, 100, 4)
    plan = build_lookup_plan(lookup.indices.to(device), lookup.offsets.to(device), list(cuda.shapes.p_shapes),
                             micro_batches=2)  # fmt: skip
    assert plan.micro_bounds.device.type == "cuda"  # the op copies it to the host itself
    s = cuda.shapes
    out = op("tt_forward")(
        *cuda.cores, *plan_op_args(plan), None, list(s.q_shapes), list(s.ranks), s.embedding_dim, "sum"
    )
    _check_close(out, oracle_forward(reference, lookup), torch.float32)


def test_indices_near_2_pow_40(device: torch.device) -> None:
    """64-bit row arithmetic: 2^40 rows (p = [2^14, 2^13, 2^13]), indices up to 2^40 - 1."""
    p, q, ranks = (1 << 14, 1 << 13, 1 << 13), (1, 2, 2), (2, 3)
    num_embeddings = math.prod(p)
    cuda, reference = _modules(device, num_embeddings=num_embeddings, dim=4, ranks=ranks, p=p, q=q,
                               dtype=torch.float64, micro_batches=2)  # fmt: skip
    generator = torch.Generator().manual_seed(40)
    high = num_embeddings - torch.randint(0, 1 << 20, (600,), generator=generator) - 1
    spread = torch.randint(0, num_embeddings, (400,), generator=generator)
    indices = torch.cat([high, spread, high[:100]])
    indices = indices[torch.randperm(indices.numel(), generator=generator)]
    offsets = torch.arange(0, indices.numel() + 1, 10)
    lookup = LookupInput(indices, offsets, torch.full((offsets.numel() - 1,), 10), None)
    poison_cuda_cache(device)
    out = _forward(cuda, _to(lookup, device, torch.float64))
    rows = tt_rows(list(reference.cores), reference.shapes, indices)
    expected = rows.view(-1, 10, 4).sum(dim=1)
    _check_close(out, expected, torch.float64)
    grad_output = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
    cores = [core.detach().requires_grad_() for core in reference.cores]
    want = torch.autograd.grad(tt_rows(cores, reference.shapes, indices).view(-1, 10, 4).sum(dim=1), cores,
                               grad_output)  # fmt: skip
    got = torch.autograd.grad(out, list(cuda.cores), grad_output.to(device))
    for a, b in zip(got, want):
        _check_close(a, b, torch.float64)


@pytest.mark.slow
def test_output_offsets_beyond_2_pow_31(device: torch.device) -> None:
    """B * D > 2^31: the pooled output and dY are indexed past 2^31 elements (about 20 GB of GPU memory)."""
    if torch.cuda.get_device_properties(device).total_memory < 40 << 30:
        pytest.skip("needs about 40 GB of GPU memory")
    dim, num_bags = 32, (1 << 26) + 1024  # one index per bag; B * D = 2^31 + 32768
    cuda, reference = _modules(device, num_embeddings=50_000, dim=dim, ranks=(4, 4), seed=31)
    generator = torch.Generator(device=device).manual_seed(31)
    uniques = torch.randperm(50_000, device=device, generator=generator)[:4096]
    inverse = torch.randint(0, uniques.numel(), (num_bags,), device=device, generator=generator)
    indices = uniques[inverse]
    offsets = torch.arange(num_bags + 1, device=device)
    out = cuda(indices, offsets)
    rows = tt_rows(list(reference.cores), reference.shapes, uniques.cpu()).to(device)  # float64 (U, D)
    check = torch.cat([torch.arange(num_bags - 4096, num_bags, device=device),
                       torch.randint(0, num_bags, (4096,), device=device, generator=generator)])  # fmt: skip
    _check_close(out[check], rows[inverse[check]], torch.float32)
    grad_output = torch.randn(num_bags, dim, device=device, generator=generator)
    grads = torch.autograd.grad(out, list(cuda.cores), grad_output)
    del out
    unique_grads = torch.zeros(uniques.numel(), dim, device=device, dtype=torch.float64)
    for start in range(0, num_bags, 1 << 24):
        chunk = slice(start, start + (1 << 24))
        unique_grads.index_add_(0, inverse[chunk], grad_output[chunk].double())
    cores = [core.detach().requires_grad_() for core in reference.cores]
    want = torch.autograd.grad(tt_rows(cores, reference.shapes, uniques.cpu()), cores, unique_grads.cpu())
    for got, expected in zip(grads, want):
        # ~16k float32 terms per row summed by one warp: looser, as fbgemm's long-segment tolerances.
        err = max_rel_error(got.cpu().double(), expected)
        assert err < 1e-4, err


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    distribution=st.sampled_from(["uniform", "zipf", "hot", "duplicates"]),
    mode=st.sampled_from(["sum", "mean"]),
    micro_batches=st.integers(1, 6),
    deterministic=st.booleans(),
)
def test_random_shapes_against_the_torch_backend(
    device: torch.device, data: st.DataObject, distribution: str, mode: str, micro_batches: int,
    deterministic: bool,
) -> None:  # fmt: skip
    p = data.draw(st.tuples(*[st.integers(1, 9)] * 3), label="p")
    q = data.draw(st.tuples(*[st.integers(1, 4)] * 3), label="q")
    ranks = data.draw(st.tuples(st.integers(1, 6), st.integers(1, 6)), label="ranks")
    num_embeddings = data.draw(st.integers(1, math.prod(p)), label="N")
    dim = data.draw(st.integers(1, math.prod(q)), label="D")
    num_bags = data.draw(st.integers(1, 40), label="B")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    cuda, reference = _modules(
        device, num_embeddings=num_embeddings, dim=dim, ranks=ranks, p=p, q=q, mode=mode, dtype=torch.float64,
        seed=seed, micro_batches=micro_batches, deterministic=deterministic,
    )  # fmt: skip
    lookup = _lookup(num_embeddings, num_bags, seed, distribution=distribution, mean_length=3,
                     weighted=mode == "sum")  # fmt: skip
    poison_cuda_cache(device, large_bytes=64 << 20)
    out = _forward(cuda, _to(lookup, device, torch.float64))
    expected = oracle_forward(reference, lookup)
    _check_close(out, expected, torch.float64)
    grad_output = torch.randn(
        expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    grads = torch.autograd.grad(out, list(cuda.cores), grad_output.to(device))
    for got, want in zip(grads, core_grads(reference, expected, grad_output)):
        _check_close(got, want, torch.float64)


def test_deterministic_backward_is_bitwise_reproducible(device: torch.device) -> None:
    cuda, _ = _modules(device, deterministic=True, micro_batches=2)
    lookup = _to(_lookup(1000, 1024, 9, distribution="hot", mean_length=12), device, torch.float32)
    out = _forward(cuda, lookup)
    grad_output = torch.randn_like(out)
    first = torch.autograd.grad(out, list(cuda.cores), grad_output)
    for _ in range(3):
        again = _forward(cuda, lookup)
        assert torch.equal(again, out)  # the forward is deterministic in every mode (warp per bag)
        for a, b in zip(torch.autograd.grad(again, list(cuda.cores), grad_output), first):
            assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------- fused updates


@pytest.mark.parametrize("kind", ["sgd", "adagrad", "rowwise_adagrad"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_update_ops_match_the_torch_update(device: torch.device, kind: str, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(12)
    shape = (37, 4096)  # core-1 rows of rank 32
    core = torch.randn(shape, generator=generator, dtype=torch.float64)
    grad = torch.randn(shape, generator=generator, dtype=torch.float64) * 1e-2
    grad[::3] = 0.0  # rows the batch did not touch
    state = {
        "sgd": None,
        "adagrad": torch.rand(shape, generator=generator, dtype=torch.float64),
        "rowwise_adagrad": torch.rand(shape[0], generator=generator, dtype=torch.float64),
    }[kind]
    config = TTOptimizerConfig(kind, lr=0.1, eps=1e-8)
    want_core, want_state = core.clone(), state.clone() if state is not None else None
    fused_update_(config, [want_core], [grad], [want_state])
    got_core = core.to(device, dtype)
    got_state = state.to(device, dtype) if state is not None else None
    args = (got_core, grad.to(device, dtype), 0.1) if kind == "sgd" else (
        got_core, got_state, grad.to(device, dtype), 0.1, 1e-8)  # fmt: skip
    op(f"tt_{kind}_update_")(*args)
    _check_close(got_core, want_core, dtype)
    assert torch.equal(got_core[::3].cpu(), core[::3].to(dtype))  # untouched rows: exactly unchanged
    if state is not None:
        _check_close(got_state, want_state, dtype)


@pytest.mark.parametrize("kind", ["sgd", "adagrad", "rowwise_adagrad"])
def test_training_steps_match_the_torch_backend(device: torch.device, kind: str) -> None:
    config = TTOptimizerConfig(kind, lr=0.05)
    cuda, _ = _modules(device, dtype=torch.float64, optimizer=config, micro_batches=2, seed=13)
    same = TTEmbeddingBag(1000, 32, [8, 8], include_last_offset=True, dtype=torch.float64, device=device,
                          backend="torch", optimizer=config, micro_batches=2)  # fmt: skip
    same.load_state_dict(cuda.state_dict())
    for step in range(3):
        lookup = _to(_lookup(1000, 256, 100 + step), device, torch.float64)
        grad_output = torch.randn(256, 32, dtype=torch.float64, device=device)
        for module in (cuda, same):
            _forward(module, lookup).backward(grad_output)
    for a, b in zip(cuda.state_dict().values(), same.state_dict().values()):
        assert_rel_close(a, b, 1e-10)


# ------------------------------------------------------------------------------------- registration checks


def test_opcheck_on_cuda_tensors(device: torch.device) -> None:
    cuda, _ = _modules(device, dim=12, q=(2, 2, 4), micro_batches=2)
    lookup = _to(_lookup(1000, 64, 14, weighted=True), device, torch.float32)
    plan = op("tt_plan")(lookup.indices, lookup.offsets, list(cuda.shapes.p_shapes), 2, None)
    s = cuda.shapes
    shape_args = (list(s.q_shapes), list(s.ranks), s.embedding_dim)
    cores = [core.detach().clone().requires_grad_() for core in cuda.cores]
    torch.library.opcheck(op("tt_plan"), (lookup.indices, lookup.offsets, list(s.p_shapes), 2, None))
    torch.library.opcheck(
        op("tt_forward"), (*cores, lookup.offsets, *plan, lookup.per_sample_weights, *shape_args, "sum")
    )
    grad_output = torch.randn(64, 12, device=device)
    detached = [core.detach() for core in cuda.cores]
    backward_args = (grad_output, *detached, lookup.offsets, *plan, None, *shape_args, "mean", True)
    torch.library.opcheck(op("tt_backward"), backward_args)
    core, grad = torch.randn(5, 16, device=device), torch.randn(5, 16, device=device)
    torch.library.opcheck(op("tt_sgd_update_"), (core, grad, 0.1))
    torch.library.opcheck(op("tt_adagrad_update_"), (core, torch.zeros_like(core), grad, 0.1, 1e-8))
    torch.library.opcheck(
        op("tt_rowwise_adagrad_update_"), (core, torch.zeros(5, device=device), grad, 0.1, 1e-8)
    )
    assert plan_from_op_args((lookup.offsets, *plan)).num_bags == 64


def test_auto_picks_the_kernels_where_they_apply(device: torch.device) -> None:
    assert resolve_backend("auto", device) == "cuda"
    assert resolve_backend("auto", device, num_cores=4) == "torch"
    assert resolve_backend("auto", device, algorithm="fbtt") == "torch"
    four = TTEmbeddingBag(1000, 16, [4, 4, 4], include_last_offset=True, device=device, backend="cuda")
    with pytest.raises(ValueError, match="the CUDA kernels support 3 TT cores, got num_cores=4"):
        four(torch.tensor([1, 2], device=device), torch.tensor([0, 2], device=device))
