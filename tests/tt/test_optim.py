"""Fused optimizers against torch optimizers (SGD, Adagrad) and a hand-written row-wise Adagrad."""

from __future__ import annotations

import pytest
import torch

from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig
from ecorec.tt.optim import adagrad_update_, rowwise_adagrad_update_
from ecorec.tt.testing import random_lookup

from .utils import ALGORITHMS, copy_cores, module_forward

LR, EPS = 0.05, 1e-8


def _pair(kind: str, algorithm: str = "ecorec", **kwargs) -> tuple[TTEmbeddingBag, TTEmbeddingBag]:
    """A fused module and a plain-gradient twin with the same cores."""
    common = dict(include_last_offset=True, dtype=torch.float64, algorithm=algorithm, **kwargs)
    fused = TTEmbeddingBag(500, 8, [3, 4], optimizer=TTOptimizerConfig(kind, LR, EPS), **common)
    plain = TTEmbeddingBag(500, 8, [3, 4], **common)
    copy_cores(plain, fused)
    return fused, plain


def _batches(count: int = 3):
    return [
        (
            random_lookup(
                500,
                16,
                mean_length=5,
                distribution="zipf",
                weighted=True,
                dtype=torch.float64,
                generator=torch.Generator().manual_seed(20 + i),
            ),  # fmt: skip
            torch.randn(16, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(40 + i)),
        )
        for i in range(count)
    ]


def _assert_same_cores(a: TTEmbeddingBag, b: TTEmbeddingBag) -> None:
    for x, y in zip(a.cores, b.cores):
        assert torch.allclose(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    ("kind", "torch_optimizer"),
    [
        ("sgd", lambda params: torch.optim.SGD(params, lr=LR)),
        ("adagrad", lambda params: torch.optim.Adagrad(params, lr=LR, eps=EPS)),
    ],
)
def test_fused_update_equals_torch_optimizer(kind: str, torch_optimizer, algorithm: str) -> None:
    fused, plain = _pair(kind, algorithm)
    optimizer = torch_optimizer(plain.parameters())
    for lookup, grad in _batches():
        module_forward(fused, lookup).backward(grad)
        optimizer.zero_grad()
        module_forward(plain, lookup).backward(grad)
        optimizer.step()
        assert all(core.grad is None for core in fused.cores)  # fused: no gradient lands in .grad
        _assert_same_cores(fused, plain)


def test_rowwise_adagrad_equals_hand_written_reference() -> None:
    fused, plain = _pair("rowwise_adagrad")
    states = [torch.zeros(core.shape[0], dtype=torch.float64) for core in plain.cores]
    for lookup, grad in _batches():
        module_forward(fused, lookup).backward(grad)
        plain.zero_grad()
        module_forward(plain, lookup).backward(grad)
        with torch.no_grad():
            for core, state in zip(plain.cores, states):
                g = core.grad
                state += (g * g).mean(dim=1)  # fbgemm EXACT_ROWWISE_ADAGRAD: mean of g^2 over the row
                core -= LR * g / (state.sqrt() + EPS)[:, None]
        _assert_same_cores(fused, plain)
    for state, expected in zip(fused.optimizer_states(), states):
        assert torch.allclose(state, expected, rtol=1e-12)


@pytest.mark.parametrize("kind", ["sgd", "adagrad", "rowwise_adagrad"])
def test_update_is_once_per_batch_after_all_micro_batches(kind: str) -> None:
    # M micro-batches and one update == one micro-batch and one update (each micro-batch sees the old cores).
    single, _ = _pair(kind)
    micro = TTEmbeddingBag(
        500, 8, [3, 4], include_last_offset=True, dtype=torch.float64, micro_batches=5,
        optimizer=TTOptimizerConfig(kind, LR, EPS),
    )  # fmt: skip
    copy_cores(micro, single)
    for lookup, grad in _batches(2):
        module_forward(single, lookup).backward(grad)
        module_forward(micro, lookup).backward(grad)
        _assert_same_cores(micro, single)


# The smallest eps the config accepts for float64 cores: sqrt(0) + eps must still be > 0 there.
@pytest.mark.parametrize("eps", [EPS, torch.finfo(torch.float64).tiny])
@pytest.mark.parametrize("kind", ["sgd", "adagrad", "rowwise_adagrad"])
def test_untouched_rows_keep_weights_and_state(kind: str, eps: float) -> None:
    fused = TTEmbeddingBag(
        500, 8, [3, 4], include_last_offset=True, dtype=torch.float64,
        optimizer=TTOptimizerConfig(kind, LR, eps),
    )  # fmt: skip
    before = [core.detach().clone() for core in fused.cores]
    rows = torch.tensor([0, 1, 2])  # p-shapes of 500: digits of rows 0..2 touch row 0 of the first cores only
    out = fused(rows, torch.tensor([0, 3]))
    out.backward(torch.ones_like(out))
    p_last = fused.shapes.p_shapes[-1]
    touched = [{0}, {0}, {0, 1, 2}] if p_last > 2 else None
    assert touched is not None
    for t, (core, old) in enumerate(zip(fused.cores, before)):
        changed = {int(i) for i in torch.nonzero((core != old).any(dim=1)).flatten()}
        assert changed == touched[t]
    for t, state in enumerate(fused.optimizer_states()):
        if state is not None:
            nonzero = {int(i) for i in torch.nonzero(state.reshape(state.shape[0], -1).any(dim=1)).flatten()}
            assert nonzero == touched[t]
    # Rows outside the expected touched set are bitwise unchanged, states there stay 0; nothing is NaN.
    for t, (core, old, state) in enumerate(zip(fused.cores, before, fused.optimizer_states())):
        assert bool(torch.isfinite(core).all())
        untouched = torch.ones(core.shape[0], dtype=torch.bool)
        untouched[sorted(touched[t])] = False
        assert torch.equal(core[untouched], old[untouched])
        if state is not None:
            assert bool(torch.isfinite(state).all()) and not bool(state[untouched].any())


@pytest.mark.parametrize("update", [adagrad_update_, rowwise_adagrad_update_])
def test_eps_zero_would_write_nan_into_untouched_rows(update) -> None:
    # Why the config rejects eps = 0: a never-touched row has S = 0 and g = 0, and 0 / (sqrt(0) + 0) is NaN.
    core = torch.ones(2, 3, dtype=torch.float64)
    grad = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    state = (
        torch.zeros(2, 3, dtype=torch.float64)
        if update is adagrad_update_
        else torch.zeros(2, dtype=torch.float64)
    )
    update(core, state, grad, LR, 0.0)
    assert bool(torch.isnan(core[1]).all()) and bool(torch.isfinite(core[0]).all())


def test_optimizer_state_is_in_state_dict_and_checkpoints_exactly() -> None:
    fused, _ = _pair("adagrad")
    batches = _batches(4)
    for lookup, grad in batches[:2]:
        module_forward(fused, lookup).backward(grad)
    state = {k: v.clone() for k, v in fused.state_dict().items()}
    assert {f"optimizer_state_{t}" for t in range(3)} <= set(state)
    restored = TTEmbeddingBag(
        500,
        8,
        [3, 4],
        include_last_offset=True,
        dtype=torch.float64,
        optimizer=TTOptimizerConfig("adagrad", LR, EPS),
    )
    restored.load_state_dict(state)
    for lookup, grad in batches[2:]:
        module_forward(fused, lookup).backward(grad)
        module_forward(restored, lookup).backward(grad)
    for x, y in zip(fused.state_dict().values(), restored.state_dict().values()):
        assert torch.equal(x, y)  # bitwise: the checkpoint holds everything the update needs


def test_gradient_hook_sees_dense_grads_and_can_change_them() -> None:
    fused, plain = _pair("sgd")
    seen: list[list[torch.Tensor]] = []

    def zero_them(grads: list[torch.Tensor]) -> None:
        seen.append([g.clone() for g in grads])
        for g in grads:
            g.zero_()

    fused.set_gradient_hook(zero_them)
    before = [core.detach().clone() for core in fused.cores]
    lookup, grad = _batches(1)[0]
    module_forward(fused, lookup).backward(grad)
    assert len(seen) == 1 and [g.shape for g in seen[0]] == [c.shape for c in fused.cores]
    assert all(torch.equal(a, b) for a, b in zip(fused.cores, before))  # zeroed grads: no update
    module_forward(plain, lookup).backward(grad)
    for hooked, core in zip(seen[0], plain.cores):
        assert torch.allclose(hooked, core.grad, rtol=1e-12)
    # With plain gradients the hook's changes are what autograd receives.
    plain.zero_grad()
    plain.set_gradient_hook(lambda grads: [g.mul_(2.0) for g in grads])
    module_forward(plain, lookup).backward(grad)
    for hooked, core in zip(seen[0], plain.cores):
        assert torch.allclose(core.grad, 2.0 * hooked, rtol=1e-12)
    plain.set_gradient_hook(None)


def test_fused_update_bumps_version_counters() -> None:
    # A graph that saved the cores before an update must not silently use the updated cores.
    fused, _ = _pair("sgd")
    (first, _), (second, grad) = _batches(2)
    out_a = module_forward(fused, first)
    out_b = module_forward(fused, second)
    versions = [core._version for core in fused.cores]
    out_a.backward(grad)
    assert all(core._version > v for core, v in zip(fused.cores, versions))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out_b.backward(grad)


def test_set_learning_rate() -> None:
    fused, plain = _pair("sgd")
    fused.set_learning_rate(2 * LR)
    assert fused.optimizer is not None and fused.optimizer.lr == 2 * LR
    lookup, grad = _batches(1)[0]
    module_forward(fused, lookup).backward(grad)
    module_forward(plain, lookup).backward(grad)
    with torch.no_grad():
        for core in plain.cores:
            core -= 2 * LR * core.grad
    _assert_same_cores(fused, plain)
    with pytest.raises(ValueError, match="needs a fused optimizer"):
        plain.set_learning_rate(0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kind="adam"), "kind must be one of"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(eps=-1.0), "eps must be >= 0"),
        (dict(kind="sgd", eps=float("nan")), "eps must be >= 0"),
        (dict(kind="adagrad", eps=0.0), r"eps must be > 0 for kind='adagrad' .* got eps=0.0"),
        (dict(kind="rowwise_adagrad", eps=0.0), r"eps must be > 0 for kind='rowwise_adagrad'"),
        (dict(kind="adagrad", eps=-1e-8), "eps must be > 0"),
        (dict(kind="rowwise_adagrad", eps=float("nan")), "eps must be > 0"),
    ],
)
def test_optimizer_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TTOptimizerConfig(**kwargs)


def test_sgd_accepts_eps_zero() -> None:
    assert TTOptimizerConfig("sgd", eps=0.0).eps == 0.0  # unused by SGD


@pytest.mark.parametrize("kind", ["adagrad", "rowwise_adagrad"])
def test_eps_that_rounds_to_zero_in_the_core_dtype_is_rejected(kind: str) -> None:
    config = TTOptimizerConfig(kind, LR, 1e-40)  # > 0 as a Python float, 0 (subnormal) in float32
    TTEmbeddingBag(100, 8, 2, optimizer=config, dtype=torch.float64)  # fine in float64
    with pytest.raises(ValueError, match=r"eps=1e-40 is below the smallest normal torch.float32"):
        TTEmbeddingBag(100, 8, 2, optimizer=config, dtype=torch.float32)
    # A module converted after construction is caught by the update itself (every backend).
    module = TTEmbeddingBag(100, 8, 2, optimizer=config, dtype=torch.float64).to(torch.float32)
    out = module(torch.tensor([1, 2]), torch.tensor([0]))
    with pytest.raises(ValueError, match="below the smallest normal torch.float32"):
        out.sum().backward()


def test_optimizer_state_shapes() -> None:
    shapes = [(4, 6), (5, 12)]
    assert TTOptimizerConfig("sgd").state_shapes(shapes) == [None, None]
    assert TTOptimizerConfig("adagrad").state_shapes(shapes) == shapes
    assert TTOptimizerConfig("rowwise_adagrad").state_shapes(shapes) == [(4,), (5,)]
    assert str(TTOptimizerConfig("rowwise_adagrad").kind) == "rowwise_adagrad"
