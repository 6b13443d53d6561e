"""DreamShard's outer loop: measure -> fit the cost network -> train the policy on the estimated MDP.

Each iteration (DreamShard's ``train.py``):

1. sample ``placements_per_iteration`` placements from the current policy on random training tasks (and, in
   the first iteration, the placements of ``seed_placers`` on every training task: measured anchors near the
   good plans; DreamShard starts from the policy's samples alone, ``seed_placers=()``; and ``shard_samples``
   random groups of 1 to ``shard_tables`` tables of a training task on one device, NeuroShard's compute-cost
   data: the policy's placements of large tasks show the network few small groups, whose cost per table
   differs (a fused group's cost grows faster than its tables' as it outgrows the caches));
2. **measure** them (the caller's ``measure``, e.g. :func:`ecorec.bench.placement.measure_placements`)
   and add them to the replay buffer of cost samples;
3. fit the cost network ``cost_steps`` Adam steps on batches drawn from all samples so far;
4. run REINFORCE ``rl_batches`` x ``rl_episodes`` episodes on the estimated MDP;
5. save a checkpoint ``iter-<k>.pt`` (both networks, the optimizer, the samples, the history).

One Adam optimizer covers both networks, its learning rate scaled by ``1 - k / iterations`` (DreamShard).
A run resumes from the last checkpoint in ``checkpoint_dir`` written with the same settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ecorec.planner.dreamshard.cost_net import CostNet, CostSample, cost_net_error, fit_cost_net
from ecorec.planner.dreamshard.placement import Placement, PlacementFailure, placement_from_devices
from ecorec.planner.dreamshard.placers import PlacerContext, make_problem, place
from ecorec.planner.dreamshard.policy import PolicyNet, run_episode, train_policy
from ecorec.planner.dreamshard.tasks import Task

logger = logging.getLogger(__name__)


class MeasuredCost(Protocol):
    device_costs: list[list[float]]
    plan_cost: float


#: ``measure(placements) -> costs``, one per placement, in order.
MeasureFn = Callable[[Sequence[Placement]], Sequence[MeasuredCost]]


@dataclass(frozen=True)
class TrainingSettings:
    iterations: int = 10
    placements_per_iteration: int = 10
    cost_steps: int = 300
    cost_batch_size: int = 64
    rl_batches: int = 10
    rl_episodes: int = 10
    entropy_weight: float = 1e-3
    lr: float = 5e-4
    seed: int = 0
    seed_placers: tuple[str, ...] = ()
    shard_samples: int = 0
    shard_tables: int = 8

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrainingResult:
    cost_net: CostNet
    policy: PolicyNet
    samples: list[CostSample]
    history: list[dict[str, Any]] = field(default_factory=list)


def cost_sample(placement: Placement, cost: MeasuredCost, context: PlacerContext) -> CostSample:
    """A measured placement as cost-network data (normalised features of its shards)."""
    features = context.features([s.task_table for s in placement.shards]).numpy()
    return CostSample(
        features=features,
        devices=np.asarray(placement.devices(), dtype=np.int64),
        num_devices=placement.num_devices,
        device_costs=np.asarray(cost.device_costs, dtype=np.float64),
        plan_cost=float(cost.plan_cost),
    )


def _sample_to_payload(s: CostSample) -> dict[str, Any]:
    return {
        "features": torch.as_tensor(s.features),
        "devices": torch.as_tensor(s.devices),
        "num_devices": s.num_devices,
        "device_costs": torch.as_tensor(s.device_costs),
        "plan_cost": s.plan_cost,
    }


def _sample_from_payload(d: dict[str, Any]) -> CostSample:
    return CostSample(
        d["features"].numpy(),
        d["devices"].numpy(),
        int(d["num_devices"]),
        d["device_costs"].numpy(),
        d["plan_cost"],
    )


def save_checkpoint(
    path: str | os.PathLike[str], result: TrainingResult, optimizer, settings, iteration
) -> None:
    from ecorec.utils import atomic_path

    payload = {
        "settings": asdict(settings),
        "settings_key": settings.key(),
        "iteration": iteration,
        "cost_net": result.cost_net.state_dict(),
        "policy": result.policy.state_dict(),
        "optimizer": optimizer.state_dict(),
        "samples": [_sample_to_payload(s) for s in result.samples],
        "history": json.dumps(result.history),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _latest_checkpoint(checkpoint_dir: str | None, settings: TrainingSettings) -> dict[str, Any] | None:
    if checkpoint_dir is None or not os.path.isdir(checkpoint_dir):
        return None
    for name in sorted(os.listdir(checkpoint_dir), reverse=True):
        if name.startswith("iter-") and name.endswith(".pt"):
            payload = torch.load(os.path.join(checkpoint_dir, name), weights_only=True)
            if payload.get("settings_key") == settings.key():
                return payload
    return None


def _shard_samples(
    tasks: Sequence[Task], num_devices: int, settings: TrainingSettings, rng: random.Random
) -> list[Placement]:
    """``shard_samples`` random groups of 1 to ``shard_tables`` tables of random training tasks, each on
    device 0 (the other devices empty)."""
    out = []
    for _ in range(settings.shard_samples):
        task = tasks[rng.randrange(len(tasks))]
        size = rng.randint(1, min(settings.shard_tables, len(task.tables)))
        tables = rng.sample(list(task.tables), size)
        out.append(placement_from_devices(tables, [0] * size, num_devices))
    return out


def train_dreamshard(
    tasks: Sequence[Task],
    context: PlacerContext,
    measure: MeasureFn,
    settings: TrainingSettings,
    *,
    checkpoint_dir: str | None = None,
) -> TrainingResult:
    """Run the outer loop on the training ``tasks`` (see the module docstring); ``context`` gives the
    catalog, scaler, memory model, device count and cap (its ``cost_net``/``policy`` are set here)."""
    if not tasks:
        raise ValueError("train_dreamshard: no training tasks")
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    net, policy = CostNet(), PolicyNet()
    optimizer = torch.optim.Adam(list(net.parameters()) + list(policy.parameters()), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: max(1.0 - k / settings.iterations, 1.0 / settings.iterations)
    )
    result = TrainingResult(net, policy, [])
    start = 0
    resumed = _latest_checkpoint(checkpoint_dir, settings)
    if resumed is not None:
        net.load_state_dict(resumed["cost_net"])
        policy.load_state_dict(resumed["policy"])
        optimizer.load_state_dict(resumed["optimizer"])
        result.samples = [_sample_from_payload(d) for d in resumed["samples"]]
        result.history = json.loads(resumed["history"])
        start = int(resumed["iteration"]) + 1
        with warnings.catch_warnings():  # replaying the schedule before any optimizer step of this process
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(start):
                scheduler.step()
        rng = random.Random(f"{settings.seed}-{start}")
        logger.info("resumed from iteration %d", start - 1)
    context.cost_net, context.policy = net, policy
    generator = torch.Generator().manual_seed(settings.seed)
    for iteration in range(start, settings.iterations):
        placements: list[Placement] = []
        if iteration == 0:
            placements.extend(_shard_samples(tasks, context.num_devices, settings, rng))
            for placer in settings.seed_placers:
                for task in tasks:
                    try:
                        placements.append(place(placer, task, context))
                    except PlacementFailure as err:
                        logger.info("seed placement skipped: %s", err)
        for _ in range(settings.placements_per_iteration):
            task = tasks[rng.randrange(len(tasks))]
            with torch.no_grad():
                episode = run_episode(
                    policy, make_problem(task.tables, context), greedy=False, generator=generator
                )
            if not episode.failed:
                placements.append(placement_from_devices(task.tables, episode.devices, context.num_devices))
        costs = measure(placements)
        new = [cost_sample(p, c, context) for p, c in zip(placements, costs, strict=True)]
        known_comm = context.link is not None
        before = cost_net_error(net, new, known_comm) if result.samples else None
        result.samples.extend(new)
        losses = fit_cost_net(
            net,
            result.samples,
            steps=settings.cost_steps,
            batch_size=settings.cost_batch_size,
            seed=settings.seed + iteration,
            optimizer=optimizer,
            known_comm=known_comm,
        )
        problems = [make_problem(t.tables, context) for t in tasks]
        rl = train_policy(
            policy,
            problems,
            optimizer,
            num_batches=settings.rl_batches,
            episodes=settings.rl_episodes,
            entropy_weight=settings.entropy_weight,
            seed=settings.seed * 1000 + iteration,
        )
        scheduler.step()
        entry = {
            "iteration": iteration,
            "measured": len(new),
            "samples": len(result.samples),
            "mean_measured_plan_cost": float(np.mean([s.plan_cost for s in new])) if new else None,
            "cost_loss_last": losses[-1],
            "error_on_new_before_fit": before,
            "rl_mean_simulated_cost": [float(x) for x in rl],
        }
        result.history.append(entry)
        logger.info("iteration %d: %s", iteration, json.dumps(entry))
        if checkpoint_dir is not None:
            save_checkpoint(
                os.path.join(checkpoint_dir, f"iter-{iteration:03d}.pt"),
                result,
                optimizer,
                settings,
                iteration,
            )
    return result
