"""The cost network fits a cost function it can represent (a real oracle)."""

import numpy as np
import pytest
import torch

from ecorec.planner.dreamshard.cost_net import CostNet, CostSample, cost_net_error, fit_cost_net


def _oracle_samples(rng, count, weights):
    """Per-table cost w.x (x >= 0); a device's forward / comm / backward = 1 / 0.5 / 2 x its tables' sum;
    plan cost = max over devices of the device total (3.5 x the largest device sum)."""
    samples = []
    for _ in range(count):
        num_devices = int(rng.integers(2, 5))
        num_tables = int(rng.integers(2, 9))
        x = rng.uniform(0, 1, size=(num_tables, 21)).astype(np.float32)
        devices = rng.integers(0, num_devices, size=num_tables)
        per_device = np.bincount(devices, weights=x @ weights, minlength=num_devices)
        costs = np.stack([per_device, 0.25 * per_device, 0.25 * per_device, 2 * per_device], axis=1)
        samples.append(CostSample(x, devices, num_devices, costs, float(costs.sum(axis=1).max())))
    return samples


def test_cost_net_fits_a_representable_cost_function():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.5, 2.0, size=21)
    train, held_out = _oracle_samples(rng, 512, weights), _oracle_samples(rng, 128, weights)
    net = CostNet()
    before = cost_net_error(net, held_out)
    fit_cost_net(net, train, steps=800, batch_size=64, lr=2e-3)
    error = cost_net_error(net, held_out)
    assert error["plan_mape"] < 0.05, (before, error)
    assert error["plan_spearman"] > 0.97, error
    assert max(error["forward_wmape"], error["comm_wmape"], error["backward_wmape"]) < 0.1, error


def test_cost_net_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    samples = _oracle_samples(rng, 8, np.ones(21))
    net = CostNet()
    fit_cost_net(net, samples, steps=2, batch_size=4)
    net.save(tmp_path / "net.pt", extra={"scaler": {"mode": "task"}})
    loaded, extra = CostNet.load(tmp_path / "net.pt")
    np.testing.assert_allclose(loaded.predict(samples)[0], net.predict(samples)[0])
    assert extra == {"scaler": {"mode": "task"}}


def test_a_known_communication_replaces_the_comm_head_in_the_plan():
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    samples = _oracle_samples(rng, 6, np.ones(21))
    net = CostNet()
    net.scale.fill_(4.0)
    _, kernels = net.predict(samples)
    comm = [rng.uniform(0, 50, size=s.num_devices) for s in samples]
    plans, _ = net.predict(samples, comm)
    for plan, k, c in zip(plans, kernels, comm, strict=True):
        assert plan == pytest.approx(float((k[:, 0] + k[:, 2] + c).max()), rel=1e-5)
    overall = CostNet(plan_head="overall")  # DreamShard's head ignores it
    assert np.allclose(overall.predict(samples)[0], overall.predict(samples, comm)[0])
    with pytest.raises(ValueError, match="plan_head must be one of"):
        CostNet(plan_head="mean")
