"""Partition a Parquet dataset's split for HET-GMP and write the partition file (the workflow's entry point).

CLI (HET-GMP's ``partition.py -n 8 --rerun 5``)::

    python -m ecorec.planner.partition DATASET OUT.npz -n 8 --method hetgmp --rerun 5 -b 8192 -g 8
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecorec.planner.partition.graph import build_sample_row_graph
from ecorec.planner.partition.partition import PartitionMethod, partition_graph

__all__ = ["main", "partition_dataset"]


def partition_dataset(
    dataset_dir: str | Path,
    out: str | Path,
    *,
    world_size: int,
    method: str = "hetgmp",
    split: str = "train",
    features: Sequence[str] | None = None,
    batch_size: int = 8192,
    gpus_per_node: int = 8,
    rerun: int = 5,
    seed: int = 0,
    hard_cap: float | None = None,
    chunk_samples: int = 65536,
) -> dict[str, Any]:
    """Build the sample-row graph of ``split``, partition it, write ``out`` atomically; returns the header."""
    graph = build_sample_row_graph(dataset_dir, split=split, features=features, chunk_samples=chunk_samples)
    part = partition_graph(
        graph,
        world_size,
        method,
        batch_size=batch_size,
        gpus_per_node=gpus_per_node,
        rerun=rerun,
        seed=seed,
        hard_cap=hard_cap,
    )
    part.header["split"] = split
    part.header["num_edges"] = graph.num_edges
    part.save(out)
    return part.header


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecorec.planner.partition", description=__doc__)
    parser.add_argument("dataset", help="Parquet dataset folder")
    parser.add_argument("out", help="partition file (.npz)")
    parser.add_argument("-n", "--nrank", type=int, default=8, help="world size P")
    parser.add_argument("--method", choices=[m.value for m in PartitionMethod], default="hetgmp")
    parser.add_argument("--split", default="train")
    parser.add_argument("--features", nargs="*", default=None)
    parser.add_argument("-b", "--batch-size", type=int, default=8192, help="per-rank batch of the soft count")
    parser.add_argument("-g", "--ngpus", type=int, default=8, help="ranks per node (weight matrix)")
    parser.add_argument("-r", "--rerun", type=int, default=5, help="refinement rounds (hetgmp)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hard-cap", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    header = partition_dataset(
        args.dataset,
        args.out,
        world_size=args.nrank,
        method=args.method,
        split=args.split,
        features=args.features,
        batch_size=args.batch_size,
        gpus_per_node=args.ngpus,
        rerun=args.rerun,
        seed=args.seed,
        hard_cap=args.hard_cap,
    )
    print(
        f"{args.method}: {header['partition_seconds']:.2f} s, predicted remote rows per step "
        f"{[round(x, 1) for x in header['predicted_fetches_per_step']]}, samples per rank "
        f"{header['samples_per_rank']}"
    )
    return 0
