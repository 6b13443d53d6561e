"""The config's ``cluster:`` section (validated by schemas/config.schema.yaml) turned into what the workflow
needs: the dilation of a profile measured on this machine, and the ``launch_torchrun.sh --emulate`` arguments
of one training run. No Snakemake here: rules/train.smk calls these."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from ecorec.cluster.dilation import compute_dilation, measure_reference_us, profile_from_config

__all__ = ["dilation_record", "emulated_nodes", "emulation_args"]


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


def dilation_record(cluster: Mapping[str, Any], *, repeats: int = 5) -> dict[str, Any]:
    """Measure this machine's reference kernel time (``cluster.dilation_threads`` threads, one rank's
    share) and return the dilation of ``cluster.profile`` at ``cluster.ranks_per_node`` ranks per node, with
    the measurement, as a JSON-able dict (the ``--dilation-file`` of ``python -m ecorec.cluster run``)."""
    profile = profile_from_config(cluster["profile"], cluster["profiles"])
    here = measure_reference_us(repeats=repeats, threads=int(cluster.get("dilation_threads", 1)))
    d = compute_dilation(
        profile,
        here["us_per_lookup"],
        int(cluster["ranks_per_node"]),
        link_gbit=cluster.get("link_gbit"),
        shape_intra_node=bool(cluster.get("shape_intra_node", False)),
    )
    return {**d.as_dict(), "measurement": {**here, "measured": True}, "description": profile.description}


def emulation_args(cluster: Mapping[str, Any], world: int, dilation_file: str) -> str:
    """The ``--emulate`` value of ``launch_torchrun.sh`` for a run of ``world`` ranks (shell-quoted words)."""
    nodes, per_node = emulated_nodes(world, int(cluster["ranks_per_node"]))
    args = ["--nodes", str(nodes), "--ranks-per-node", str(per_node), "--dilation-file", str(dilation_file)]
    args += ["--mtu", str(cluster.get("mtu", 9000)), "--queue-ms", str(cluster.get("queue_ms", 50.0))]
    if cluster.get("link_gbit") is not None:
        args += ["--link-gbit", str(cluster["link_gbit"])]
    return " ".join(shlex.quote(a) for a in args)
