"""An emulated multi-node cluster on one machine: N nodes = N Linux network namespaces joined by veth
links shaped with ``tc tbf``, one torchrun agent per node, and time dilation so that communication costs the
share of a step it costs on the target cluster. Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN); see
``docs/architecture.md`` ("ecorec.cluster"). Modules: ``network`` (namespaces, links, qdiscs, cleanup),
``launch`` (torchrun agents on the emulated network, plain-loopback fallback), ``linkcheck`` (measured rate of
a shaped link), ``dilation`` (cluster profiles, measured kernel rate, link rates), ``settings`` (the config's
``cluster:`` section).
"""

from ecorec.cluster.dilation import (
    REFERENCE,
    ClusterProfile,
    Dilation,
    compute_dilation,
    measure_reference_us,
    profile_from_config,
)
from ecorec.cluster.launch import (
    CLUSTER_ENV,
    ClusterSpec,
    Terminated,
    run_job,
    run_on_cluster,
    run_on_loopback,
)
from ecorec.cluster.linkcheck import LinkCheck, check_link
from ecorec.cluster.network import (
    ClusterCapabilityError,
    ClusterError,
    EmulatedNetwork,
    LinkSpec,
    NodeInfo,
    check_capabilities,
    cleanup,
    list_namespaces,
    new_prefix,
)
from ecorec.cluster.settings import dilation_record, emulated_nodes, emulation_args

__all__ = [
    "CLUSTER_ENV",
    "REFERENCE",
    "ClusterCapabilityError",
    "ClusterError",
    "ClusterProfile",
    "ClusterSpec",
    "Dilation",
    "EmulatedNetwork",
    "LinkCheck",
    "LinkSpec",
    "NodeInfo",
    "Terminated",
    "check_capabilities",
    "check_link",
    "cleanup",
    "compute_dilation",
    "dilation_record",
    "emulated_nodes",
    "emulation_args",
    "list_namespaces",
    "measure_reference_us",
    "new_prefix",
    "profile_from_config",
    "run_job",
    "run_on_cluster",
    "run_on_loopback",
]
