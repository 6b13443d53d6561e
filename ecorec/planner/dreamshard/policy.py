"""DreamShard's placement policy and REINFORCE on the estimated MDP.

Episode (one task, ``T`` tables, ``R`` devices): tables are placed one at a time in a fixed order (descending
predicted single-table cost); the action is a device among the **legal** ones (memory used + the table's bytes
within the cap). The reward is 0 until the last step, then minus the simulator's plan cost. The simulator is
the cost network (:class:`CostNetSimulator`), so no episode is measured: the estimated MDP.

Policy network, per device (``H = 32``):

- a table encoder ``F -> 128 -> H`` (ReLU) of its own, summed over the device's tables (an empty device: the
  encoding of a zero row);
- cost features: the simulator's (forward, communication, backward) prediction for the device's shard **with
  the current table added**, ``3 -> 64 -> H`` (ReLU). DreamShard feeds the current shard's costs and leaves
  the current table implicit in the placement order; adding it tells the policy what the action would cost;
- ``[2H] -> 1`` logit; softmax over the legal devices (the update uses the same legal set as the sampling,
  where DreamShard's update used every device's logit).

REINFORCE (:func:`train_policy`): each batch draws one task and runs ``episodes`` sampled episodes; every
step's return is its episode's final reward, z-scored over the batch; loss = ``-mean(log pi(a|s) * R) -
entropy_weight * mean(entropy)``. At test time the policy takes the argmax (:func:`place_with_policy`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from ecorec.planner.dreamshard.cost_net import CostNet, _mlp
from ecorec.planner.dreamshard.features import NUM_FEATURES
from ecorec.planner.dreamshard.placement import LinkModel, PlacementFailure


class Simulator(Protocol):
    """What an episode asks its environment."""

    def candidate_costs(self, device_tables: Sequence[Sequence[int]], table: int) -> torch.Tensor:
        """``[R, 3]``: predicted (forward, comm, backward) of each device's shard with ``table`` added."""
        ...

    def plan_cost(self, devices: Sequence[int]) -> float:
        """Predicted plan cost of a complete placement (table ``i`` on ``devices[i]``)."""
        ...


class CostNetSimulator:
    """The estimated MDP's simulator: the cost network on one task's normalised features ``[T, F]``; with a
    ``link`` model (and the tables' ``dims``) a plan's communication is the link's, not the network's."""

    def __init__(
        self,
        net: CostNet,
        features: torch.Tensor,
        num_devices: int,
        dims: Sequence[int] | None = None,
        link: LinkModel | None = None,
    ) -> None:
        self.net, self.features, self.num_devices = net, features, num_devices
        self.dims, self.link = dims, link
        if link is not None and (dims is None or len(dims) != len(features)):
            raise ValueError("CostNetSimulator: a link model needs every table's dim")
        with torch.no_grad():
            self.encodings = net.encode(features)  # [T, H]
            self.empty = net.empty_encoding()  # [H]

    def table_costs(self) -> torch.Tensor:
        """``[T]`` predicted cost of each table alone (sum of the three kernel heads; scaled units)."""
        with torch.no_grad():
            return self.net.kernel_from_encoding(self.encodings).sum(dim=1)

    def candidate_costs(self, device_tables: Sequence[Sequence[int]], table: int) -> torch.Tensor:
        with torch.no_grad():
            sums = torch.stack(
                [
                    self.encodings[list(ts)].sum(0) if ts else torch.zeros_like(self.empty)
                    for ts in device_tables
                ]
            )
            return self.net.kernel_from_encoding(sums + self.encodings[table])

    def plan_cost(self, devices: Sequence[int]) -> float:
        with torch.no_grad():
            slots = torch.as_tensor(list(devices), dtype=torch.long)
            owner = torch.zeros(self.num_devices, dtype=torch.long)
            comm = None
            if self.link is not None and self.dims is not None:
                per_device = [0] * self.num_devices
                for d, dim in zip(devices, self.dims, strict=True):
                    per_device[d] += dim
                comm = torch.tensor(self.link.device_ms(per_device)) / float(self.net.scale)
            _, plan = self.net(self.features, slots, owner, 1, comm)
        return float(plan[0]) * float(self.net.scale)


@dataclass
class PlacementProblem:
    """One task as an episode: policy features ``[T, F]``, bytes per table, the cap, the placing order."""

    features: torch.Tensor
    sizes: Sequence[int]
    cap_bytes: float | None
    num_devices: int
    simulator: Simulator
    order: Sequence[int]


class PolicyNet(nn.Module):
    """DreamShard's policy network (see the module docstring); ``cost_scale`` divides the cost features."""

    def __init__(self, num_features: int = NUM_FEATURES, hidden: int = 128, width: int = 32) -> None:
        super().__init__()
        self.num_features = num_features
        self.encoder = _mlp([num_features, hidden, width], last_relu=True)
        self.cost_mlp = _mlp([3, 64, width], last_relu=True)
        self.head = nn.Linear(2 * width, 1)

    def empty_encoding(self) -> torch.Tensor:
        """``[1, H]``: the encoding of an empty device."""
        return self.encoder(torch.zeros(1, self.num_features))

    def logits(
        self,
        encodings: torch.Tensor,
        membership: torch.Tensor,
        candidate_costs: torch.Tensor,
        empty_encoding: torch.Tensor,
    ) -> torch.Tensor:
        """``[R]`` logits from table encodings ``[T, H]``, the 0/1 device membership ``[R, T]``, the
        candidate costs ``[R, 3]`` and :meth:`empty_encoding`."""
        empty = (membership.sum(1, keepdim=True) == 0).to(encodings.dtype)
        devices = membership @ encodings + empty * empty_encoding
        return self.head(torch.cat([devices, self.cost_mlp(candidate_costs)], dim=1)).squeeze(1)


@dataclass
class EpisodeResult:
    devices: list[int]
    log_probs: list[torch.Tensor]
    entropies: list[torch.Tensor]
    failed: bool


def run_episode(
    policy: PolicyNet, problem: PlacementProblem, *, greedy: bool, generator: torch.Generator | None = None
) -> EpisodeResult:
    """Place every table of ``problem`` (sampled actions, or the argmax when ``greedy``)."""
    num_tables, num_devices = len(problem.sizes), problem.num_devices
    encodings = policy.encoder(problem.features)
    empty_encoding = policy.empty_encoding()
    membership = torch.zeros(num_devices, num_tables)
    device_tables: list[list[int]] = [[] for _ in range(num_devices)]
    used = [0] * num_devices
    devices = [-1] * num_tables
    log_probs, entropies = [], []
    cap = math.inf if problem.cap_bytes is None else problem.cap_bytes
    for table in problem.order:
        legal = [d for d in range(num_devices) if used[d] + problem.sizes[table] <= cap]
        if not legal:
            return EpisodeResult(devices, log_probs, entropies, failed=True)
        costs = problem.simulator.candidate_costs(device_tables, table)
        logits = policy.logits(encodings, membership.clone(), costs, empty_encoding)[legal]
        log_p = torch.log_softmax(logits, dim=0)
        if greedy:
            choice = int(torch.argmax(logits))
        else:
            choice = int(torch.multinomial(log_p.detach().exp(), 1, generator=generator))
        log_probs.append(log_p[choice])
        entropies.append(-(log_p.exp() * log_p).sum())
        device = legal[choice]
        devices[table] = device
        device_tables[device].append(table)
        membership[device, table] = 1.0
        used[device] += problem.sizes[table]
    return EpisodeResult(devices, log_probs, entropies, failed=False)


def train_policy(
    policy: PolicyNet,
    problems: Sequence[PlacementProblem],
    optimizer: torch.optim.Optimizer,
    *,
    num_batches: int = 10,
    episodes: int = 10,
    entropy_weight: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """REINFORCE with entropy (see the module docstring); returns the mean simulated plan cost per batch.

    Failed episodes (a table with no legal device) get twice the worst simulated cost of the batch.
    """
    if not problems:
        raise ValueError("train_policy: no problems")
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(num_batches):
        problem = problems[rng.randrange(len(problems))]
        results = [run_episode(policy, problem, greedy=False, generator=generator) for _ in range(episodes)]
        costs = [None if r.failed else problem.simulator.plan_cost(r.devices) for r in results]
        done = [c for c in costs if c is not None]
        worst = 2 * max(done) if done else 1.0
        rewards = torch.tensor([-(worst if c is None else c) for c in costs])
        normalised = (rewards - rewards.mean()) / (rewards.std(unbiased=False) + 1e-8)
        terms, entropy = [], []
        for result, advantage in zip(results, normalised, strict=True):
            terms.extend(-lp * advantage for lp in result.log_probs)
            entropy.extend(result.entropies)
        if not terms:
            continue
        loss = torch.stack(terms).mean() - entropy_weight * torch.stack(entropy).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(sum(done) / len(done)) if done else math.nan)
    return history


def place_with_policy(policy: PolicyNet, problem: PlacementProblem) -> list[int]:
    """The policy's argmax placement: device of each table ``[T]``.

    Raises:
        PlacementFailure: when a table has no legal device.
    """
    with torch.no_grad():
        result = run_episode(policy, problem, greedy=True)
    if result.failed:
        raise PlacementFailure(f"dreamshard: a table fits on no device under the cap {problem.cap_bytes}")
    return result.devices
