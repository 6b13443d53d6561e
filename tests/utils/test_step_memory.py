"""Step memory from the allocator (figure 10's memory panel): persistent state counted once per storage, plus
the step's peak above it, against hand-computed byte counts."""

from __future__ import annotations

import torch

from ecorec.utils.memory import measure_step_memory, tensor_bytes


def test_tensor_bytes_counts_each_storage_once() -> None:
    a = torch.zeros(100, dtype=torch.float32)
    b = torch.zeros(10, 10, dtype=torch.float64)
    state = {"a": a, "view": a[10:20], "nested": [b, (b.t(), 3)], "none": None}
    assert tensor_bytes(state) == 100 * 4 + 100 * 8


def test_step_memory_is_state_plus_the_steps_peak() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(256, 128, bias=False)  # 256*128*4 = 131072 bytes
    opt = torch.optim.Adagrad(model.parameters(), lr=0.1)  # state: sum (131072) + step (scalar)
    x = torch.randn(64, 256)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = model(x).square().mean()
        loss.backward()
        opt.step()
        return loss.item()

    def state() -> dict:
        return {"model": model.state_dict(), "opt": opt.state_dict()}

    _, mem = measure_step_memory(step, "cpu", state)
    weight = 256 * 128 * 4
    assert mem.state_bytes == 2 * weight + 4  # weight, Adagrad's sum (made eagerly) and its step counter
    # the step allocates the gradient (weight-sized) and activations [64, 128]; nothing like another 2 weights
    assert weight + 64 * 128 * 4 <= mem.step_bytes <= 3 * weight
    assert mem.peak_bytes == mem.state_bytes + mem.step_bytes
