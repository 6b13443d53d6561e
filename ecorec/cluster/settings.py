"""The config's ``cluster:`` section (validated by schemas/config.schema.yaml) turned into what the workflow
needs: the dilation of a profile measured on this machine, and the ``launch_torchrun.sh --emulate`` arguments
of one training run. No Snakemake here: rules/train.smk calls these."""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Mapping
from typing import Any

from ecorec.cluster.dilation import (
    compute_dilation,
    measure_concurrently,
    median_rates,
    profile_from_config,
)
from ecorec.cluster.network import ClusterCapabilityError, check_capabilities

_LOG = logging.getLogger(__name__)

__all__ = [
    "dilation_record",
    "dominant_kernel",
    "emulated_network",
    "emulated_nodes",
    "emulation_args",
    "link_network",
    "measure_rates",
    "placement_network",
    "placement_study_settings",
]


def emulated_nodes(world: int, ranks_per_node: int) -> tuple[int, int]:
    """``(nodes, ranks per node)`` of a run of ``world`` ranks: ``world / ranks_per_node`` nodes, or one
    node of ``world`` ranks when the world is smaller than a node; a world that does not split evenly is an
    error."""
    if world < 1 or ranks_per_node < 1:
        raise ValueError(f"world ({world}) and cluster.ranks_per_node ({ranks_per_node}) must be >= 1")
    if world <= ranks_per_node:
        return 1, world
    if world % ranks_per_node:
        raise ValueError(
            f"world size {world} does not split into nodes of cluster.ranks_per_node={ranks_per_node}"
        )
    return world // ranks_per_node, ranks_per_node


def measure_rates(concurrency: int, *, threads: int = 1, repeats: int = 5) -> dict[str, Any]:
    """This machine's TT reference kernel and FP32 GEMM rates with ``concurrency`` processes of ``threads``
    threads running at once (the ranks of a run sharing the cores): the median process, and every
    process's measurement."""
    results = measure_concurrently(("tt", "gemm"), concurrency, repeats=repeats, threads=threads)
    return {"concurrency": concurrency, "threads": threads, **median_rates(results), "processes": results}


def dominant_kernel(profile: Any, rates: Mapping[str, Any], split: Mapping[str, Any]) -> str:
    """``"tt"`` or ``"gemm"``: the kernel that takes the larger part of the target's compute, i.e. the larger
    of the split's embedding time x the TT factor and its dense time x the GEMM factor (a profile without an
    FP32 rate: ``"tt"``)."""
    if profile.fp32_tflops is None:
        return "tt"
    tt_factor = profile.target_us / float(rates["us_per_lookup"])
    gemm_factor = float(rates["gemm_gflops"]) / profile.target_gemm_gflops
    embedding = float(split["embedding_s"]) * tt_factor
    dense = float(split["dense_s"]) * gemm_factor
    return "tt" if embedding >= dense else "gemm"


def dilation_record(
    cluster: Mapping[str, Any], rates: Mapping[str, Any], *, split: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The dilation of ``cluster.profile`` at ``cluster.ranks_per_node`` ranks per node as a JSON-able dict
    (the ``--dilation-file`` of ``python -m ecorec.cluster run``), from this machine's ``rates``
    (:func:`measure_rates` with as many concurrent processes as the run has ranks).

    ``cluster.kernel``: ``tt`` (the TT reference kernel alone), ``gemm`` (the FP32 GEMM alone), ``mix``
    (both, weighted by ``split["tt_weight"]``, the embedding share of a rank's compute here from ``python -m
    ecorec.bench split``) or ``auto`` (the one that dominates the *target's* compute: the split's embedding
    and dense times, each dilated by its kernel's factor); ``cluster.world`` and ``cluster.target_world``:
    the run's ranks and the target world it stands for (the link's fan-out)."""
    profile = profile_from_config(cluster["profile"], cluster["profiles"])
    kernel = cluster.get("kernel", "tt")
    if kernel in ("mix", "auto") and split is None:
        raise ValueError(f"cluster.kernel {kernel!r} needs the compute split (python -m ecorec.bench split)")
    measurement: dict[str, Any] = {**rates, "measured": True}
    if split is not None:
        measurement["split"] = dict(split)
    gemm = rates.get("gemm_gflops") if profile.fp32_tflops is not None else None
    if kernel == "auto":
        kernel = dominant_kernel(profile, rates, split)  # type: ignore[arg-type]
        measurement["auto"] = kernel
    weight = {"tt": 1.0, "gemm": 0.0}.get(kernel)
    if weight is None:
        weight = float(split["tt_weight"])  # type: ignore[index]
    target = cluster.get("target_world")
    world = int(cluster.get("world", cluster["ranks_per_node"]))
    d = compute_dilation(
        profile,
        float(rates["us_per_lookup"]),
        int(cluster["ranks_per_node"]),
        link_gbit=cluster.get("link_gbit"),
        shape_intra_node=bool(cluster.get("shape_intra_node", False)),
        here_gemm_gflops=gemm,
        tt_weight=weight,
        world=world,
        target_world=int(target) if target is not None else None,
        concurrency=int(rates.get("concurrency", 1)),
    )
    return {**d.as_dict(), "kernel": kernel, "measurement": measurement, "description": profile.description}


def emulation_args(cluster: Mapping[str, Any], world: int, dilation_file: str) -> str:
    """The ``--emulate`` value of ``launch_torchrun.sh`` for a run of ``world`` ranks (shell-quoted words)."""
    nodes, per_node = emulated_nodes(world, int(cluster["ranks_per_node"]))
    args = ["--nodes", str(nodes), "--ranks-per-node", str(per_node), "--dilation-file", str(dilation_file)]
    args += ["--mtu", str(cluster.get("mtu", 9000)), "--queue-ms", str(cluster.get("queue_ms", 50.0))]
    if cluster.get("link_gbit") is not None:
        args += ["--link-gbit", str(cluster["link_gbit"])]
    return " ".join(shlex.quote(a) for a in args)


def emulated_network(
    cluster: Mapping[str, Any], world: int, dilation_file: str
) -> tuple[list[str] | None, str]:
    """``(python -m ecorec.cluster run arguments, network label)`` for ``world`` ranks of a job that starts
    its own ranks (the placement benchmark): the label names the profile, the nodes and the link rates, so
    that it can key cached measurements. Without the capability to emulate: ``(None, "loopback")`` after a
    warning (the caller then uses plain loopback ranks, and its records say so)."""
    try:
        check_capabilities()
    except ClusterCapabilityError as exc:
        _LOG.warning("NOT EMULATED, plain loopback: %s", exc)
        return None, "loopback"
    nodes, per_node = emulated_nodes(world, int(cluster["ranks_per_node"]))
    with open(dilation_file) as handle:
        dilation = json.load(handle)
    link = cluster.get("link_gbit") or dilation["link_gbit"]
    label = f"emulated:{dilation['profile']}:{nodes}x{per_node}:link={float(link):.4g}gbit"
    if dilation.get("intra_gbit") is not None:
        label += f":intra={float(dilation['intra_gbit']):.4g}gbit"
    return shlex.split(emulation_args(cluster, world, dilation_file)), label


def link_network(cluster: Mapping[str, Any], world: int, dilation_file: str) -> dict[str, Any]:
    """The emulated cluster's links as rates, for a job that charges its exchanges their bytes over the link
    (the placement benchmark's ``comm: link``; no namespaces, no capability needed): ``link_gbit`` (per node
    and direction), ``intra_gbit`` (``None``: a node's own exchanges unshaped), ``ranks_per_node`` and the
    ``network`` label that keys cached measurements."""
    nodes, per_node = emulated_nodes(world, int(cluster["ranks_per_node"]))
    with open(dilation_file) as handle:
        dilation = json.load(handle)
    link = float(cluster.get("link_gbit") or dilation["link_gbit"])
    intra = dilation.get("intra_gbit")
    label = f"link-rate:{dilation['profile']}:{nodes}x{per_node}:link={link:.4g}gbit"
    if intra is not None:
        label += f":intra={float(intra):.4g}gbit"
    return {
        "link_gbit": link,
        "intra_gbit": None if intra is None else float(intra),
        "ranks_per_node": per_node,
        "network": label,
    }


def placement_network(
    cluster: Mapping[str, Any], world: int, dilation_file: str, comm: str
) -> dict[str, Any]:
    """The ``cluster`` entry of the placement study's settings: the link rates (:func:`link_network`) when
    its exchanges are charged over the link (``comm="link"``), else the emulated cluster's launcher arguments
    and label (:func:`emulated_network`; ``args`` ``None`` without the capability: loopback ranks)."""
    if comm == "link":
        return link_network(cluster, world, dilation_file)
    args, network = emulated_network(cluster, world, dilation_file)
    return {"args": args, "network": network}


def placement_study_settings(
    settings: Mapping[str, Any], cluster: Mapping[str, Any] | None, dilation_file: str | None
) -> dict[str, Any]:
    """The placement study's settings (config ``placement``) with their ``cluster`` entry
    (:func:`placement_network`, its ``bench.comm``, default ``link``) when the devices are ranks of the
    emulated cluster (``cluster`` given), else as they are."""
    out = dict(settings)
    if cluster:
        comm = out.get("bench", {}).get("comm", "link")
        out["cluster"] = placement_network(cluster, int(out["devices"]), str(dilation_file), comm)
    return out
