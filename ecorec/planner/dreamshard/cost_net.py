"""DreamShard's cost network: predicts the measured cost of shards and of whole placements.

Shape letters: ``S`` shards (tables) of a placement, ``F = 21`` features, ``R`` devices, ``N`` placements in a
training batch, ``H = 32`` encoding width.

- Shared table encoder ``F -> 128 -> H`` (ReLU), applied to every shard's features.
- A device's encoding is the **sum** of its shards' encodings (an empty device: the encoding of an all-zero
  feature row, as DreamShard).
- Kernel heads ``H -> 64 -> 1`` on a device encoding: forward compute, communication, backward compute.
- The plan cost (``plan_head``): ``kernels`` (the default) is the **max over devices of the three heads'
  sum**, the formula the measured plan cost is made by (NeuroShard's simulator; given each device's known
  communication, e.g. over the links of :class:`~ecorec.planner.dreamshard.placement.LinkModel`, that replaces
  the communication head in the sum); ``overall`` is DreamShard's overall head ``H -> 64 -> 1`` on the
  element-wise max over devices of device encodings. On the exhaustive placements of small tasks the overall
  head ranked placements poorly (it must learn max-of-sums from pooled encodings), and a network that
  predicts each device reproduces the max of the measured one.

Targets (ms, from :class:`CostSample`): forward = the fused forward column, communication = forward all-to-all
+ backward communication (DreamShard's comm head sees only the backward communication; its forward all-to-all
is part of the plan cost but no head's target, which we find no reason for), backward = backward compute,
overall = the measured plan cost (max over devices of the four columns' sum). Outputs are in ms; the network
works on ``cost / scale`` (``scale``: the mean plan cost of the first fitted data). Loss: the sum of the four
MSEs, Adam, batches sampled with replacement from all data measured so far (DreamShard's replay buffer).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ecorec.planner.dreamshard.features import NUM_FEATURES

#: How the plan cost is predicted (see the module docstring).
PLAN_HEADS = ("kernels", "overall")
#: Columns of a device's measured cost (ms), in DreamShard's order.
COST_COLUMNS = ("forward_compute", "forward_comm", "backward_comm", "backward_compute")


@dataclass
class CostSample:
    """One measured placement.

    Attributes:
        features: ``[S, F]`` normalised features of its shards.
        devices: ``[S]`` device of each shard.
        num_devices: R.
        device_costs: ``[R, 4]`` measured ms per device, :data:`COST_COLUMNS`.
        plan_cost: measured plan cost (ms): max over devices of the row sums.
    """

    features: np.ndarray
    devices: np.ndarray
    num_devices: int
    device_costs: np.ndarray
    plan_cost: float

    def measured_comm(self) -> np.ndarray:
        """``[R]``: each device's measured communication (both all-to-alls, ms)."""
        return self.device_costs[:, 1] + self.device_costs[:, 2]

    def kernel_targets(self) -> np.ndarray:
        """``[R, 3]``: forward, communication (both all-to-alls), backward (ms)."""
        c = self.device_costs
        return np.stack([c[:, 0], c[:, 1] + c[:, 2], c[:, 3]], axis=1)


def _mlp(sizes: Sequence[int], last_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class CostNet(nn.Module):
    """DreamShard's cost network (see the module docstring)."""

    def __init__(
        self,
        num_features: int = NUM_FEATURES,
        hidden: int = 128,
        width: int = 32,
        head: int = 64,
        plan_head: str = "kernels",
    ):
        super().__init__()
        if plan_head not in PLAN_HEADS:
            raise ValueError(f"cost network: plan_head must be one of {PLAN_HEADS}, got {plan_head!r}")
        self.num_features, self.plan_head = num_features, plan_head
        self.encoder = _mlp([num_features, hidden, width], last_relu=True)
        self.kernel_heads = nn.ModuleList([_mlp([width, head, 1], last_relu=False) for _ in range(3)])
        self.overall_head = _mlp([width, head, 1], last_relu=False)
        self.register_buffer("scale", torch.ones(()))

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """``[S, F] -> [S, H]``."""
        return self.encoder(features)

    def empty_encoding(self) -> torch.Tensor:
        """``[H]``: the encoding of an empty device."""
        return self.encoder(torch.zeros(1, self.num_features, dtype=self.scale.dtype)).squeeze(0)

    def device_encodings(self, encodings: torch.Tensor, slots: torch.Tensor, num_slots: int) -> torch.Tensor:
        """Sum ``encodings [S, H]`` into ``num_slots`` devices by ``slots [S]``; empty slots get
        :meth:`empty_encoding`. Returns ``[num_slots, H]``."""
        sums = encodings.new_zeros(num_slots, encodings.shape[1]).index_add(0, slots, encodings)
        counts = torch.zeros(num_slots, dtype=torch.long).index_add(0, slots, torch.ones_like(slots))
        empty = (counts == 0).to(encodings.dtype).unsqueeze(1)
        return sums + empty * self.empty_encoding().unsqueeze(0)

    def kernel_from_encoding(self, device_encoding: torch.Tensor) -> torch.Tensor:
        """``[..., H] -> [..., 3]`` scaled kernel costs (forward, communication, backward)."""
        return torch.cat([h(device_encoding) for h in self.kernel_heads], dim=-1)

    def forward(
        self,
        features: torch.Tensor,
        slots: torch.Tensor,
        owner: torch.Tensor,
        num_plans: int,
        comm: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled predictions for ``num_plans`` placements at once.

        Args:
            features: ``[S, F]`` shards of all placements.
            slots: ``[S]`` global device slot of each shard (placement ``n``'s devices are consecutive slots).
            owner: ``[P]`` placement of each device slot (``P`` = total devices of all placements).
            comm: ``[P]`` known communication of each device slot (divided by ``scale``), used for the plan
                cost instead of the communication head (``plan_head="kernels"``).
        Returns:
            kernel costs ``[P, 3]`` and plan costs ``[num_plans]``, both divided by ``scale``.
        """
        dev = self.device_encodings(self.encode(features), slots, owner.numel())
        kernel = self.kernel_from_encoding(dev)
        if self.plan_head == "kernels":
            total = kernel.sum(dim=1) if comm is None else kernel[:, 0] + kernel[:, 2] + comm
            plan = total.new_full((num_plans,), -math.inf).scatter_reduce(0, owner, total, reduce="amax")
            return kernel, plan
        pooled = dev.new_full((num_plans, dev.shape[1]), -math.inf)
        pooled = pooled.scatter_reduce(0, owner.unsqueeze(1).expand_as(dev), dev, reduce="amax")
        return kernel, self.overall_head(pooled).squeeze(1)

    def predict(
        self, samples: Sequence[CostSample], comm: Sequence[Sequence[float]] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Plan costs ``[N]`` (ms) and kernel costs ``[R_n, 3]`` (ms) of each placement (``comm``: each
        placement's known per-device communication in ms, see :meth:`forward`)."""
        with torch.no_grad():
            feats, slots, owner = _pack(samples)
            known = None if comm is None else _comm_tensor(comm) / float(self.scale)
            kernel, plan = self(feats, slots, owner, len(samples), known)
        scale = float(self.scale)
        kernel_np = kernel.numpy() * scale
        out, start = [], 0
        for s in samples:
            out.append(kernel_np[start : start + s.num_devices])
            start += s.num_devices
        return plan.numpy() * scale, out

    def save(self, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
        """``torch.save`` of the weights, sizes and ``extra`` (e.g. the feature scaler), atomically."""
        from ecorec.utils import atomic_path

        payload = {
            "state_dict": self.state_dict(),
            "num_features": self.num_features,
            "plan_head": self.plan_head,
            "extra": dict(extra or {}),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[CostNet, dict[str, Any]]:
        payload = torch.load(path, weights_only=True)
        plan_head = str(payload.get("plan_head", "overall"))  # files written before the option: overall
        net = cls(num_features=int(payload["num_features"]), plan_head=plan_head)
        net.load_state_dict(payload["state_dict"])
        return net, dict(payload["extra"])


def _comm_tensor(comm: Sequence[Sequence[float]]) -> torch.Tensor:
    return torch.as_tensor(np.concatenate([np.asarray(c, dtype=np.float32) for c in comm]))


def _pack(samples: Sequence[CostSample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    feats, slots, owner = [], [], []
    base = 0
    for n, s in enumerate(samples):
        feats.append(torch.as_tensor(np.asarray(s.features, dtype=np.float32)))
        slots.append(torch.as_tensor(np.asarray(s.devices, dtype=np.int64)) + base)
        owner.extend([n] * s.num_devices)
        base += s.num_devices
    return torch.cat(feats), torch.cat(slots), torch.tensor(owner, dtype=torch.long)


def fit_cost_net(
    net: CostNet,
    samples: Sequence[CostSample],
    *,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 5e-4,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    known_comm: bool = False,
) -> list[float]:
    """Train ``net`` on ``samples`` (``steps`` Adam steps on batches drawn with replacement); returns the
    loss per step. The first call on an untrained net sets ``scale`` to the mean measured plan cost.
    ``known_comm``: the plan cost is predicted with each sample's measured communication (what a caller who
    knows the links passes to :meth:`CostNet.predict`)."""
    if not samples:
        raise ValueError("fit_cost_net: no samples")
    if float(net.scale) == 1.0:
        net.scale.fill_(float(np.mean([s.plan_cost for s in samples])) or 1.0)
    scale = float(net.scale)
    opt = optimizer or torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        batch = [samples[i] for i in rng.integers(0, len(samples), size=batch_size)]
        feats, slots, owner = _pack(batch)
        comm = _comm_tensor([s.measured_comm() for s in batch]) / scale if known_comm else None
        kernel, plan = net(feats, slots, owner, len(batch), comm)
        kernel_target = torch.as_tensor(
            np.concatenate([s.kernel_targets() for s in batch]), dtype=torch.float32
        )
        plan_target = torch.tensor([s.plan_cost for s in batch], dtype=torch.float32)
        loss = nn.functional.mse_loss(plan, plan_target / scale) + sum(
            nn.functional.mse_loss(kernel[:, k], kernel_target[:, k] / scale) for k in range(3)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (NaN below 2 values or if constant)."""
    from scipy.stats import spearmanr

    if len(a) < 2:
        return math.nan
    return float(spearmanr(a, b).statistic)


def prediction_error(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """How well ``predicted`` plan costs match ``measured`` ones: ``plan_mape`` (mean |error| / measured),
    ``plan_mean_signed_error`` (mean (predicted - measured) / measured: a systematic bias shows here),
    ``plan_spearman`` (rank correlation: what a search needs), ``num_placements``."""
    pred, true = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if not len(true):
        return {"num_placements": 0, "plan_mape": math.nan, "plan_mean_signed_error": math.nan,
                "plan_spearman": math.nan}  # fmt: skip
    relative = (pred - true) / np.maximum(true, 1e-12)
    return {
        "num_placements": len(true),
        "plan_mape": float(np.mean(np.abs(relative))),
        "plan_mean_signed_error": float(np.mean(relative)),
        "plan_spearman": rank_correlation(list(pred), list(true)),
    }


def cost_net_error(net: CostNet, samples: Sequence[CostSample], known_comm: bool = False) -> dict[str, float]:
    """Error of ``net`` on ``samples``: :func:`prediction_error` of the plan cost and the weighted MAPE (sum
    |error| / sum |measured|, over devices) of each kernel head (``known_comm``: as in
    :func:`fit_cost_net`)."""
    if not samples:
        return {"num_samples": 0, "plan_mape": math.nan, "plan_spearman": math.nan}
    plan, kernels = net.predict(samples, [s.measured_comm() for s in samples] if known_comm else None)
    measured = np.array([s.plan_cost for s in samples])
    out: dict[str, float] = {"num_samples": len(samples), **prediction_error(list(plan), list(measured))}
    pred_k = np.concatenate(kernels)
    true_k = np.concatenate([s.kernel_targets() for s in samples])
    for k, name in enumerate(("forward", "comm", "backward")):  # weighted: empty devices may cost 0
        denom = max(float(np.abs(true_k[:, k]).sum()), 1e-12)
        out[f"{name}_wmape"] = float(np.abs(pred_k[:, k] - true_k[:, k]).sum() / denom)
    return out
