"""TTEmbeddingBag as an ``nn.Module``: ``.to()`` converts cores and optimizer state, DDP, exact p-shapes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig
from ecorec.tt.testing import random_lookup

from .utils import REL_TOL, assert_rel_close, copy_cores, module_forward, oracle_forward_float64


def _lookup(num_embeddings: int = 500, dtype: torch.dtype = torch.float64, seed: int = 50):
    return random_lookup(
        num_embeddings, 12, mean_length=5, distribution="zipf", weighted=True, dtype=dtype,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["adagrad", "rowwise_adagrad"])
def test_to_float64_converts_cores_and_optimizer_state(kind: str) -> None:
    config = TTOptimizerConfig(kind, lr=0.05, eps=1e-8)
    module = TTEmbeddingBag(500, 8, [3, 4], include_last_offset=True, optimizer=config, dtype=torch.float32)
    lookup32 = _lookup(dtype=torch.float32)
    module_forward(module, lookup32).backward(torch.ones(12, 8))  # non-zero float32 state
    cores32 = [core.detach().clone() for core in module.cores]
    states32 = [state.clone() for state in module.optimizer_states()]
    assert all(state.dtype == torch.float32 and bool(state.any()) for state in states32)

    converted = module.to(torch.float64)
    assert converted is module
    assert all(isinstance(core, torch.nn.Parameter) and core.dtype == torch.float64 for core in module.cores)
    for core, old in zip(module.cores, cores32):
        assert torch.equal(core.detach(), old.double())  # float32 -> float64 is exact
    for state, old in zip(module.optimizer_states(), states32):
        assert state is not None and state.dtype == torch.float64 and torch.equal(state, old.double())
    assert {name for name, _ in module.named_buffers()} == {f"optimizer_state_{t}" for t in range(3)}

    # The converted module trains in float64 exactly like a module built in float64 with the same values.
    twin = TTEmbeddingBag(500, 8, [3, 4], include_last_offset=True, optimizer=config, dtype=torch.float64)
    copy_cores(twin, module)
    for state, src in zip(twin.optimizer_states(), module.optimizer_states()):
        state.copy_(src)
    lookup64, grad = _lookup(dtype=torch.float64, seed=51), torch.randn(12, 8, dtype=torch.float64)
    out = module_forward(module, lookup64)
    assert out.dtype == torch.float64
    assert_rel_close(out, oracle_forward_float64(module, lookup64), REL_TOL[torch.float64])
    out.backward(grad)
    module_forward(twin, lookup64).backward(grad)
    for a, b in zip(module.cores, twin.cores):
        assert torch.equal(a, b)
    for a, b in zip(module.optimizer_states(), twin.optimizer_states()):
        assert torch.equal(a, b)


@pytest.fixture
def gloo_world_of_one(tmp_path: Path):
    """A gloo process group of this process alone (file store under ``tmp_path``), destroyed afterwards."""
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")  # NOTE: torch built without distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("algorithm", ["ecorec", "fbtt", "elrec"])
def test_ddp_gradients_equal_the_unwrapped_module(gloo_world_of_one, algorithm: str) -> None:
    common = dict(include_last_offset=True, algorithm=algorithm, dtype=torch.float64, weight_init="uniform")
    plain = TTEmbeddingBag(500, 8, [3, 4], **common)
    wrapped_module = TTEmbeddingBag(500, 8, [3, 4], **common)
    copy_cores(wrapped_module, plain)
    ddp = DistributedDataParallel(wrapped_module, process_group=gloo_world_of_one)
    opt_plain = torch.optim.SGD(plain.parameters(), lr=0.1)
    opt_ddp = torch.optim.SGD(ddp.parameters(), lr=0.1)
    for step in range(3):  # several steps: DDP's reducer and the cores stay in step
        lookup = _lookup(seed=60 + step)
        grad = torch.randn(12, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(70 + step))
        opt_plain.zero_grad()
        opt_ddp.zero_grad()
        module_forward(plain, lookup).backward(grad)
        ddp(lookup.indices, lookup.offsets, per_sample_weights=lookup.per_sample_weights).backward(grad)
        for a, b in zip(wrapped_module.cores, plain.cores):
            assert a.grad is not None and b.grad is not None
            assert torch.allclose(a.grad, b.grad, rtol=1e-12, atol=1e-14)
        opt_plain.step()
        opt_ddp.step()
    for a, b in zip(wrapped_module.cores, plain.cores):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_fused_optimizer_with_all_reduce_hook(gloo_world_of_one) -> None:
    # The data-parallel recipe for fused updates: all-reduce (and average) the dense core gradients in the
    # gradient hook.
    config = TTOptimizerConfig("adagrad", lr=0.05, eps=1e-8)
    single = TTEmbeddingBag(500, 8, [3, 4], include_last_offset=True, optimizer=config, dtype=torch.float64)
    replica = TTEmbeddingBag(500, 8, [3, 4], include_last_offset=True, optimizer=config, dtype=torch.float64)
    copy_cores(replica, single)
    world = dist.get_world_size(gloo_world_of_one)
    calls: list[int] = []

    def all_reduce(grads: list[torch.Tensor]) -> None:
        calls.append(len(grads))
        for g in grads:
            dist.all_reduce(g, group=gloo_world_of_one)
            g.div_(world)

    replica.set_gradient_hook(all_reduce)
    for step in range(2):
        lookup = _lookup(seed=80 + step)
        grad = torch.randn(12, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(90 + step))
        module_forward(single, lookup).backward(grad)
        module_forward(replica, lookup).backward(grad)
    assert calls == [3, 3]
    for a, b in zip(replica.cores, single.cores):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_round_up_rows_false_gives_an_exact_factorisation() -> None:
    # 1001 = 7 * 11 * 13: exact with round_up_rows=False; TT-Rec's rule (the default) rounds up to 1100 rows.
    rounded = TTEmbeddingBag(1001, 8, 3, include_last_offset=True, dtype=torch.float64)
    assert rounded.shapes.p_shapes == (10, 10, 11) and rounded.shapes.padded_rows > 1001
    exact = TTEmbeddingBag(1001, 8, 3, include_last_offset=True, dtype=torch.float64, round_up_rows=False)
    assert exact.shapes.p_shapes == (7, 11, 13) and math.prod(exact.shapes.p_shapes) == 1001
    assert [core.shape[0] for core in exact.cores] == [7, 11, 13]
    lookup = _lookup(num_embeddings=1001)
    lookup = lookup._replace(indices=torch.cat([lookup.indices[:-1], torch.tensor([1000])]))  # the last row
    assert_rel_close(
        module_forward(exact, lookup), oracle_forward_float64(exact, lookup), REL_TOL[torch.float64]
    )
    with pytest.raises(
        ValueError, match=r"round_up_rows=False needs prod\(p_shapes\) == num_embeddings=1001"
    ):
        TTEmbeddingBag(1001, 8, 3, tt_p_shapes=[10, 10, 11], round_up_rows=False)
