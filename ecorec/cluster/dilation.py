"""Time dilation: the emulated links run at the target cluster's rates scaled by how much slower this machine
computes than the target, so that communication costs the same share of a step as on the target cluster::

    dilation       = throughput_here / throughput_target
    rate_emulated  = rate_target x dilation x P / gpus_per_node   (inter-node; P emulated ranks per node)
    intra_emulated = intra_rate_target x dilation                 (per rank, with intra-node shaping only)

The ``P / gpus_per_node`` factor keeps each rank's share of its node's link: a target node's link carries the
traffic of ``gpus_per_node`` GPUs, an emulated node's that of ``P`` ranks. A target run that fits in one node
(``target_world <= gpus_per_node``: HET-GMP's 8 GPUs) is bound by each GPU's own link instead (PCIe or NVLink,
``intra_node_gbit``), so ``rate_emulated = intra_rate_target x dilation x P``.

**Fan-out.** Shrinking the node count changes which share of a rank's all-to-all leaves its node:
``(W - P) / W`` here (``W`` ranks, ``P`` per node) against ``(W_t - G) / W_t`` on the target (``W_t`` GPUs,
``G`` per node; ``(W_t - 1) / W_t`` over per-GPU links in one node). Given the target world a run stands for,
the link is scaled by the ratio of the two (:func:`fanout`), so that a rank's off-node bytes take the target's
time per unit of work; without one (``target_world=None``) each emulated node stands for one target node and
nothing is scaled.

**Two kernels.** The TT kernel rate alone dilates the embedding part; the dense MLPs run GEMMs, whose rate
here (:func:`measure_gemm_gflops`, FP32, one MLP layer at the paper's local batch) is compared with the
profile's FP32 peak x ``gemm_efficiency`` (an assumption of the profile). An experiment uses one of them or
their step-time-weighted mix: with ``w`` the share of the step's compute in the embedding kernels here,
``dilation = w x dilation_tt + (1 - w) x dilation_gemm`` (the target's compute time over this machine's, part
by part). Both factors and the weight are recorded. When several ranks share this machine's cores, both rates
are measured with as many concurrent processes as the run has ranks (:func:`measure_concurrently`).

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

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "GEMM_REFERENCE",
    "REFERENCE",
    "ClusterProfile",
    "Dilation",
    "compute_dilation",
    "fanout",
    "measure_concurrently",
    "measure_gemm_gflops",
    "measure_reference_us",
    "median_rates",
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


#: The dense part's kernel: one FP32 GEMM of an MLP layer at the paper's local batch (4096x512 by 512x512).
GEMM_REFERENCE: dict[str, Any] = {"m": 4096, "k": 512, "n": 512, "dtype": "float32"}


@dataclass(frozen=True)
class ClusterProfile:
    """A target cluster. Rates in Gbit/s: ``inter_node_gbit`` per node and direction, ``intra_node_gbit`` per
    GPU (``None``: intra-node links are never shaped). ``target_speedup`` (>0) scales the reference kernel
    timing to the target GPU; ``target_us_per_lookup`` (optional) replaces reference / speedup outright.
    ``fp32_tflops`` (the GPU's FP32 peak) x ``gemm_efficiency`` (assumed) is the target's GEMM rate."""

    name: str
    gpus_per_node: int
    inter_node_gbit: float
    intra_node_gbit: float | None = None
    target_speedup: float = 1.0
    target_us_per_lookup: float | None = None
    fp32_tflops: float | None = None
    gemm_efficiency: float = 0.8
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
        if self.fp32_tflops is not None and not self.fp32_tflops > 0:
            raise ValueError(f"cluster profile {self.name}: fp32_tflops must be > 0, got {self.fp32_tflops}")
        if not 0 < self.gemm_efficiency <= 1:
            raise ValueError(
                f"cluster profile {self.name}: gemm_efficiency must be in (0, 1], got {self.gemm_efficiency}"
            )

    @property
    def target_gemm_gflops(self) -> float | None:
        """The target's FP32 GEMM rate (GFLOP/s): peak x efficiency (``None`` without ``fp32_tflops``)."""
        return None if self.fp32_tflops is None else self.fp32_tflops * 1e3 * self.gemm_efficiency

    def single_node(self, target_world: int) -> bool:
        """Whether a target run of ``target_world`` GPUs fits in one node (then per-GPU links bind)."""
        return target_world <= self.gpus_per_node and self.intra_node_gbit is not None

    def per_rank_gbit(self, target_world: int | None) -> float:
        """A target GPU's bottleneck rate: its share of the node link, or (a run in one node) its own
        intra-node link."""
        if target_world is not None and self.single_node(target_world):
            return float(self.intra_node_gbit)  # type: ignore[arg-type]
        return self.inter_node_gbit / self.gpus_per_node

    def cross_fraction(self, target_world: int) -> float:
        """Share of a target GPU's peers behind its bottleneck link (see :func:`fanout`)."""
        if target_world <= 1:
            return 0.0
        if self.single_node(target_world):
            return (target_world - 1) / target_world
        return max(0, target_world - self.gpus_per_node) / target_world

    @property
    def target_us(self) -> float:
        """Target time per lookup (fwd + bwd, us) of the reference configuration."""
        if self.target_us_per_lookup is not None:
            return self.target_us_per_lookup
        return REFERENCE["us_per_lookup"] / self.target_speedup


def fanout(profile: ClusterProfile, world: int, ranks_per_node: int, target_world: int | None) -> float:
    """Link scale that gives a rank of an emulated run of ``world`` ranks (``ranks_per_node`` per node) the
    off-node share of a target run of ``target_world`` GPUs: ``((W - P) / W) / cross_fraction(W_t)``.
    ``1.0`` without a target world, for a run in one node, or when the target's traffic stays in its nodes."""
    if target_world is None or world <= ranks_per_node:
        return 1.0
    target = profile.cross_fraction(target_world)
    if target <= 0:
        return 1.0
    return ((world - ranks_per_node) / world) / target


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
    tt_factor: float = 0.0
    gemm_factor: float | None = None
    tt_weight: float = 1.0
    here_gemm_gflops: float | None = None
    target_gemm_gflops: float | None = None
    world: int | None = None
    target_world: int | None = None
    fanout: float = 1.0
    concurrency: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_dilation(
    profile: ClusterProfile,
    here_us_per_lookup: float,
    ranks_per_node: int,
    *,
    link_gbit: float | None = None,
    shape_intra_node: bool = False,
    here_gemm_gflops: float | None = None,
    tt_weight: float = 1.0,
    world: int | None = None,
    target_world: int | None = None,
    concurrency: int = 1,
) -> Dilation:
    """``factor = w x tt_factor + (1 - w) x gemm_factor`` with ``tt_factor = target_us / here_us`` and
    ``gemm_factor = here_gemm_gflops / the target's`` (``w = tt_weight``; 1: the TT kernel alone, the
    default); inter-node rate = the profile's per-rank rate x factor x ranks_per_node x :func:`fanout` of
    ``world`` ranks standing for ``target_world`` GPUs (``link_gbit`` overrides it); intra-node rate = the
    profile's per-GPU rate x factor, applied only with ``shape_intra_node``."""
    if not here_us_per_lookup > 0:
        raise ValueError(f"here_us_per_lookup must be > 0, got {here_us_per_lookup}")
    if ranks_per_node < 1:
        raise ValueError(f"ranks_per_node must be >= 1, got {ranks_per_node}")
    if not 0.0 <= tt_weight <= 1.0:
        raise ValueError(f"tt_weight must be in [0, 1], got {tt_weight}")
    tt_factor = profile.target_us / here_us_per_lookup
    gemm_factor = None
    if here_gemm_gflops is not None:
        if not here_gemm_gflops > 0:
            raise ValueError(f"here_gemm_gflops must be > 0, got {here_gemm_gflops}")
        if profile.target_gemm_gflops is None:
            raise ValueError(f"cluster profile {profile.name}: a GEMM dilation needs fp32_tflops")
        gemm_factor = here_gemm_gflops / profile.target_gemm_gflops
    if tt_weight < 1.0 and gemm_factor is None:
        raise ValueError(f"tt_weight {tt_weight} < 1 needs the GEMM rate here (here_gemm_gflops)")
    factor = tt_weight * tt_factor + (1.0 - tt_weight) * (gemm_factor or 0.0)
    scale = fanout(profile, world, ranks_per_node, target_world) if world is not None else 1.0
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
            else profile.per_rank_gbit(target_world) * factor * ranks_per_node * scale
        ),
        intra_gbit=intra,
        link_gbit_override=link_gbit is not None,
        assumption=assumption,
        tt_factor=tt_factor,
        gemm_factor=gemm_factor,
        tt_weight=tt_weight,
        here_gemm_gflops=here_gemm_gflops,
        target_gemm_gflops=profile.target_gemm_gflops,
        world=world,
        target_world=target_world,
        fanout=scale,
        concurrency=concurrency,
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


def measure_gemm_gflops(
    repeats: int = 5, warmup: int = 2, seed: int = 0, threads: int | None = None
) -> dict[str, Any]:
    """Time FP32 ``[m, k] @ [k, n]`` (:data:`GEMM_REFERENCE`) on this machine's CPU; returns ``{"gflops"
    (median over repeats), "samples_ms", "threads", ...}``."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    ref = GEMM_REFERENCE
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(ref["m"], ref["k"], generator=gen)
    b = torch.randn(ref["k"], ref["n"], generator=gen)
    out = torch.empty(ref["m"], ref["n"])
    samples = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        elapsed = time.perf_counter() - start
        if i >= warmup:
            samples.append(elapsed * 1e3)
    median = sorted(samples)[len(samples) // 2]
    flops = 2.0 * ref["m"] * ref["k"] * ref["n"]
    return {
        "gflops": flops / (median * 1e-3) / 1e9,
        "samples_ms": samples,
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "reference": dict(ref),
    }


_MEASUREMENTS = {"tt": measure_reference_us, "gemm": measure_gemm_gflops}
#: Seconds the concurrent measurements wait for each other's start-up (imports) before they start together.
_START_DELAY_S = 8.0


def _measure_all(kinds: list[str], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {kind: _MEASUREMENTS[kind](**kwargs) for kind in kinds}


def _measure_child(argv: list[str]) -> None:
    """Entry of one concurrent measurement process: ``kinds kwargs-json start-at``; prints the JSON result."""
    kinds, kwargs, start_at = argv[0].split(","), json.loads(argv[1]), float(argv[2])
    import torch  # noqa: F401 (imported before the shared start)

    time.sleep(max(0.0, start_at - time.time()))
    print(json.dumps(_measure_all(kinds, kwargs)))


def measure_concurrently(kinds: Sequence[str], concurrency: int, **kwargs: Any) -> list[dict[str, Any]]:
    """Run the measurements ``kinds`` (``"tt"``: :func:`measure_reference_us`, ``"gemm"``:
    :func:`measure_gemm_gflops`) in ``concurrency`` processes at once (one thread each unless ``threads`` is
    given), as the ranks of a run share this machine's cores; returns each process's ``{kind: result}``.
    ``concurrency == 1`` measures in this process. The processes are fresh interpreters (``python -c``),
    started together once all have imported torch."""
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in _MEASUREMENTS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be among {sorted(_MEASUREMENTS)}, got {kinds!r}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    kwargs = {"threads": 1, **kwargs}
    if concurrency == 1:
        return [_measure_all(kinds, kwargs)]
    start_at = time.time() + _START_DELAY_S
    code = "import sys; from ecorec.cluster.dilation import _measure_child; _measure_child(sys.argv[1:])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, ",".join(kinds), json.dumps(kwargs), repr(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(concurrency)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"a concurrent {kinds} measurement exited with {proc.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def median_rates(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """``{"us_per_lookup", "gemm_gflops"}``: the median process of :func:`measure_concurrently`'s results
    (a key is absent when its kind was not measured)."""
    out: dict[str, float] = {}
    tt = sorted(r["tt"]["us_per_lookup"] for r in results if "tt" in r)
    gemm = sorted(r["gemm"]["gflops"] for r in results if "gemm" in r)
    if tt:
        out["us_per_lookup"] = tt[len(tt) // 2]
    if gemm:
        out["gemm_gflops"] = gemm[len(gemm) // 2]
    return out
