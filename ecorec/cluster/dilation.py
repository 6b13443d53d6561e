"""Time dilation: the emulated links run at the target cluster's rates scaled by how much slower this machine
computes than the target, so that communication costs the same share of a step as on the target cluster::

    dilation       = throughput_here / throughput_target
    rate_emulated  = rate_target x dilation x P / gpus_per_node   (inter-node; P emulated ranks per node)
    intra_emulated = intra_rate_target x dilation                 (per rank, with intra-node shaping only)

The ``P / gpus_per_node`` factor keeps each rank's share of its node's link: a target node's link carries the
traffic of ``gpus_per_node`` GPUs, an emulated node's that of ``P`` ranks.

Throughput is the TT kernel rate, measured like for like: the only published per-lookup timing of a TT
embedding kernel is the FBTT (TT-Rec) README's benchmark, ``p = [200, 220, 250]``, ``q = [4, 4, 4]``, TT ranks
``[32, 32]``, ``B = 512``, ``nnz = 10240`` (pooling 20), ``D = 64``, N = 11e6 rows, uniform random indices:
0.416 us per lookup, forward + backward (GPU not stated). Here we time ``ecorec.tt``'s ``fbtt`` algorithm (the
same per-occurrence chain) on exactly that configuration (:func:`measure_reference_us`), so

    dilation = (reference_us_per_lookup / target_speedup) / us_per_lookup_here

where a profile's ``target_speedup`` states how much faster the target GPU is than the GPU of the reference
figure (an assumption, written into every record with the profile). A profile may instead give
``target_us_per_lookup`` measured on its GPU with ``python -m ecorec.cluster dilation --measure`` there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "REFERENCE",
    "ClusterProfile",
    "Dilation",
    "compute_dilation",
    "measure_reference_us",
    "profile_from_config",
]

REFERENCE: dict[str, Any] = {
    "source": "FBTT (TT-Rec) README sample benchmark: FWD-BWD time/nnz 0.416 us",
    "algorithm": "fbtt",
    "num_embeddings": 11_000_000,
    "p_shapes": [200, 220, 250],
    "q_shapes": [4, 4, 4],
    "tt_ranks": [32, 32],
    "batch_size": 512,
    "pooling": 20,
    "us_per_lookup": 0.416,
}


@dataclass(frozen=True)
class ClusterProfile:
    """A target cluster. Rates in Gbit/s: ``inter_node_gbit`` per node and direction, ``intra_node_gbit`` per
    GPU (``None``: intra-node links are never shaped). ``target_speedup`` (>0) scales the reference kernel
    timing to the target GPU; ``target_us_per_lookup`` (optional) replaces reference / speedup outright."""

    name: str
    gpus_per_node: int
    inter_node_gbit: float
    intra_node_gbit: float | None = None
    target_speedup: float = 1.0
    target_us_per_lookup: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1:
            raise ValueError(
                f"cluster profile {self.name}: gpus_per_node must be >= 1, got {self.gpus_per_node}"
            )
        if not self.inter_node_gbit > 0:
            raise ValueError(
                f"cluster profile {self.name}: inter_node_gbit must be > 0, got {self.inter_node_gbit}"
            )
        if self.intra_node_gbit is not None and not self.intra_node_gbit > 0:
            raise ValueError(
                f"cluster profile {self.name}: intra_node_gbit must be > 0, got {self.intra_node_gbit}"
            )
        if not self.target_speedup > 0:
            raise ValueError(
                f"cluster profile {self.name}: target_speedup must be > 0, got {self.target_speedup}"
            )
        if self.target_us_per_lookup is not None and not self.target_us_per_lookup > 0:
            raise ValueError(
                f"cluster profile {self.name}: target_us_per_lookup must be > 0, "
                f"got {self.target_us_per_lookup}"
            )

    @property
    def target_us(self) -> float:
        """Target time per lookup (fwd + bwd, us) of the reference configuration."""
        if self.target_us_per_lookup is not None:
            return self.target_us_per_lookup
        return REFERENCE["us_per_lookup"] / self.target_speedup


def profile_from_config(name: str, profiles: Mapping[str, Mapping[str, Any]]) -> ClusterProfile:
    """The profile ``name`` of the config's ``cluster.profiles`` (KeyError naming the known ones)."""
    if name not in profiles:
        raise KeyError(f"cluster.profile {name!r} is not in cluster.profiles (known: {sorted(profiles)})")
    return ClusterProfile(name=name, **dict(profiles[name]))


@dataclass(frozen=True)
class Dilation:
    """The dilation of one run: factor, the measured and target kernel times, and the resulting rates."""

    profile: str
    factor: float
    here_us_per_lookup: float
    target_us_per_lookup: float
    target_inter_node_gbit: float
    target_intra_node_gbit: float | None
    ranks_per_node: int
    gpus_per_node: int
    link_gbit: float
    intra_gbit: float | None
    link_gbit_override: bool
    assumption: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_dilation(
    profile: ClusterProfile,
    here_us_per_lookup: float,
    ranks_per_node: int,
    *,
    link_gbit: float | None = None,
    shape_intra_node: bool = False,
) -> Dilation:
    """``factor = target_us / here_us``; inter-node rate = the profile's x factor x ranks_per_node /
    gpus_per_node (``link_gbit`` overrides it); intra-node rate = the profile's per-GPU rate x factor, applied
    only with ``shape_intra_node``."""
    if not here_us_per_lookup > 0:
        raise ValueError(f"here_us_per_lookup must be > 0, got {here_us_per_lookup}")
    if ranks_per_node < 1:
        raise ValueError(f"ranks_per_node must be >= 1, got {ranks_per_node}")
    factor = profile.target_us / here_us_per_lookup
    intra = None
    if shape_intra_node and profile.intra_node_gbit is not None:
        intra = profile.intra_node_gbit * factor
    if profile.target_us_per_lookup is not None:
        assumption = f"target kernel time {profile.target_us_per_lookup} us/lookup measured on the target"
    else:
        assumption = (
            f"target kernel time = {REFERENCE['source']} / target_speedup {profile.target_speedup} "
            "(the reference GPU is not stated)"
        )
    return Dilation(
        profile=profile.name,
        factor=factor,
        here_us_per_lookup=here_us_per_lookup,
        target_us_per_lookup=profile.target_us,
        target_inter_node_gbit=profile.inter_node_gbit,
        target_intra_node_gbit=profile.intra_node_gbit,
        ranks_per_node=ranks_per_node,
        gpus_per_node=profile.gpus_per_node,
        link_gbit=(
            float(link_gbit)
            if link_gbit is not None
            else profile.inter_node_gbit * factor * ranks_per_node / profile.gpus_per_node
        ),
        intra_gbit=intra,
        link_gbit_override=link_gbit is not None,
        assumption=assumption,
    )


def measure_reference_us(
    repeats: int = 5, warmup: int = 1, seed: int = 0, threads: int | None = None
) -> dict:
    """Time ``ecorec.tt``'s ``fbtt`` forward + backward (fused SGD) on :data:`REFERENCE`'s configuration on
    this machine's CPU; returns ``{"us_per_lookup" (median over repeats), "samples_ms", "threads", ...}``."""
    import torch

    from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig

    if threads is not None:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    ref = REFERENCE
    bag = TTEmbeddingBag(
        ref["num_embeddings"],
        16 * 4,
        ref["tt_ranks"],
        tt_p_shapes=ref["p_shapes"],
        tt_q_shapes=ref["q_shapes"],
        algorithm=ref["algorithm"],
        optimizer=TTOptimizerConfig(kind="sgd", lr=0.01),
        round_up_rows=False,
    )
    nnz = ref["batch_size"] * ref["pooling"]
    offsets = torch.arange(0, nnz + 1, ref["pooling"], dtype=torch.int64)
    samples = []
    for i in range(warmup + repeats):
        indices = torch.randint(0, ref["num_embeddings"], (nnz,), generator=gen, dtype=torch.int64)
        start = time.perf_counter()
        out = bag(indices, offsets=offsets)
        out.sum().backward()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            samples.append(elapsed * 1e3)
    median = sorted(samples)[len(samples) // 2]
    return {
        "us_per_lookup": median * 1e3 / nnz,
        "samples_ms": samples,
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "reference": dict(ref),
    }
