"""Resources of a training run on one machine or a SLURM cluster, from its world size and the config.

A run of ``world`` ranks spans ``nodes = max(1, world / procs_per_node)`` nodes (``train.procs_per_node``:
ranks per node, GPUs per node on cuda) with ``agents_per_node`` torchrun agents on each (usually 1); several
agents are launched with srun (the MPI mode of the SLURM executor plugin), GPUs are requested per node with
gres. Every value is what the ``train`` rule's ``resources:`` and its launcher need.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunResources:
    """Resources of one run.

    Attributes:
        world: ranks. nodes: machines. agents: torchrun agents in all. procs_per_agent: ranks per agent.
        threads: CPUs of one agent (``--cpus-per-task``). gres: GPUs per node on cuda (``"gpu:N"``), else
        ``None``. mpi: ``"srun"`` when there are several agents (the rule's shell runs srun), else ``None``.
        tasks: SLURM tasks (the agents) when there are several, else ``None``.
    """

    world: int
    nodes: int
    agents: int
    procs_per_agent: int
    threads: int
    gres: str | None

    @classmethod
    def of_run(
        cls, world: int, *, procs_per_node: int, agents_per_node: int, cpus_per_proc: int, device: str
    ) -> RunResources:
        """Resources of a run of ``world`` ranks; raises ``ValueError`` naming the config key when the world
        does not split over nodes or agents."""
        if world < 1:
            raise ValueError(f"world size must be >= 1, got {world}")
        if world > procs_per_node and world % procs_per_node:
            raise ValueError(
                f"world size {world} is not a multiple of train.procs_per_node={procs_per_node} "
                "(multi-node runs)"
            )
        nodes = max(1, world // procs_per_node)
        agents = nodes * min(agents_per_node, world)
        if world % agents:
            raise ValueError(
                f"world size {world} does not split over {agents} torchrun agents (train.agents_per_node="
                f"{agents_per_node})"
            )
        procs_per_agent = world // agents
        gres = f"gpu:{min(world, procs_per_node)}" if device == "cuda" else None
        return cls(
            world=world,
            nodes=nodes,
            agents=agents,
            procs_per_agent=procs_per_agent,
            threads=procs_per_agent * cpus_per_proc,
            gres=gres,
        )

    @property
    def mpi(self) -> str | None:
        return "srun" if self.agents > 1 else None

    @property
    def tasks(self) -> int | None:
        return self.agents if self.agents > 1 else None


def bench_gres(device: str) -> str | None:
    """One GPU for a kernel benchmark on cuda (unset on cpu)."""
    return "gpu:1" if device == "cuda" else None
