"""TorchX component of ``python -m ecorec.train`` (what TorchRec's DLRM example users launch with
``torchx run -s local_cwd dist.ddp -j 1x2 --script dlrm_main.py``).

Local (one machine, 2 ranks)::

    torchx run -s local_cwd ecorec/torchx_components.py:train --config run.yaml -j 1x2

SLURM (2 nodes x 4 GPUs; the job runs in the submission directory)::

    torchx run -s slurm -cfg partition=gpu,time=60 ecorec/torchx_components.py:train --config run.yaml \
        -j 2x4 --gpu 4

The component is ``torchx.components.dist.ddp`` with module ``ecorec.train``: torchrun starts
``nproc_per_node`` ranks on each node with a c10d rendezvous; the run config's ``parallel.world_size`` must
equal nodes x ranks per node. Run ``python -m ecorec.train --config run.yaml --prepare`` first to validate the
configuration and write the sharding plan that every rank then reads (as
``workflow_scripts/launch_torchrun.sh`` does); without it each rank plans for itself, with the same result.
"""

# No ``from __future__ import annotations``: torchx decodes CLI arguments from the real annotation objects.
from typing import Dict, Optional  # noqa: UP035 (torchx's component linter reads these spellings only)

import torchx.specs as specs
from torchx.components import dist

__all__ = ["train"]


def train(
    *extra_args: str,
    config: str,
    j: str = "1x2",
    cpu: int = 2,
    gpu: int = 0,
    memMB: int = 4096,  # noqa: N803 (torchx's resource argument name)
    image: str = "ecorec",
    name: str = "ecorec-train",
    rdzv_port: int = 29500,
    max_retries: int = 0,
    env: Optional[Dict[str, str]] = None,  # noqa: UP006, UP045
    resume: bool = False,
) -> specs.AppDef:
    """Distributed EcoRec training (``python -m ecorec.train``) under torchrun.

    Args:
        extra_args: further arguments of ``python -m ecorec.train`` (e.g. ``--stop-after-steps 10``)
        config: run configuration (YAML), a path valid where the job runs
        j: ``{nnodes}x{nproc_per_node}`` (e.g. ``1x2``; nnodes x nproc must equal parallel.world_size)
        cpu: CPUs per node
        gpu: GPUs per node (run.device cuda)
        memMB: memory per node (MB)
        image: container image (local_cwd and slurm run in the current directory and ignore it)
        name: job name
        rdzv_port: c10d rendezvous port on the first node
        max_retries: restarts of the job on failure (resume from the latest checkpoint with resume=True)
        env: environment variables of the workers
        resume: continue from the latest checkpoint of the run's output_dir
    """
    args = ["--config", config, *(["--resume"] if resume else []), *extra_args]
    return dist.ddp(
        *args,
        m="ecorec.train",
        image=image,
        name=name,
        cpu=cpu,
        gpu=gpu,
        memMB=memMB,
        j=j,
        env=env,
        max_retries=max_retries,
        rdzv_port=rdzv_port,
    )
