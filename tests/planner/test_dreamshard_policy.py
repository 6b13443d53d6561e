"""REINFORCE on a two-device toy MDP with a known optimum finds it."""

import itertools

import torch

from ecorec.planner.dreamshard.policy import PlacementProblem, PolicyNet, place_with_policy, train_policy

COSTS = [5.0, 4.0, 3.0, 3.0, 2.0, 1.0]  # two devices: the best makespan is 9 (e.g. {5, 4} / {3, 3, 2, 1})


class ToySimulator:
    """Exact costs: a device's forward cost is the sum of its tables' costs; the plan cost the max."""

    def candidate_costs(self, device_tables, table):
        loads = [sum(COSTS[t] for t in tables) + COSTS[table] for tables in device_tables]
        return torch.tensor([[load / 10, 0.0, 0.0] for load in loads])

    def plan_cost(self, devices):
        return max(sum(c for c, d in zip(COSTS, devices, strict=True) if d == dev) for dev in range(2))


def _problem(cap=None):
    features = torch.zeros(len(COSTS), 21)
    features[:, 0] = torch.tensor(COSTS) / 5
    return PlacementProblem(features, [1] * len(COSTS), cap, 2, ToySimulator(), list(range(len(COSTS))))


def test_reinforce_finds_the_optimum_of_a_toy_mdp():
    optimum = min(ToySimulator().plan_cost(p) for p in itertools.product(range(2), repeat=len(COSTS)))
    assert optimum == 9.0
    torch.manual_seed(0)
    policy = PolicyNet()
    problem = _problem()
    simulator = ToySimulator()
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    history = train_policy(policy, [problem], optimizer, num_batches=40, episodes=10, entropy_weight=1e-3)
    assert simulator.plan_cost(place_with_policy(policy, problem)) == optimum
    assert history[0] > optimum + 0.5  # the untrained policy's samples were not already optimal
    assert sum(history[-5:]) / 5 < sum(history[:5]) / 5  # sampled episodes improved too


def test_policy_respects_the_memory_cap():
    policy = PolicyNet()
    devices = place_with_policy(policy, _problem(cap=3))
    assert sorted(devices.count(d) for d in range(2)) == [3, 3]
