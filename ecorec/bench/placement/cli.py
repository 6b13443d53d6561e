"""``python -m ecorec.bench placement``: the measured cost of each placement of a JSON file, one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.distributed as dist

from ecorec.bench.placement.comm import worker
from ecorec.bench.placement.config import COMM_MODES, PlacementBenchConfig
from ecorec.bench.placement.measure import measure_placements
from ecorec.planner.dreamshard.placement import TABLE_KINDS, Placement


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ecorec.bench placement",
        description="Measured cost of table placements (DreamShard's protocol); prints one JSON line each.",
    )
    parser.add_argument("--dataset", required=True, help="Parquet dataset folder")
    parser.add_argument(
        "--placements",
        required=True,
        help="JSON file: a list of placements ({num_devices, shards: [[table, dim, device, column], ...]})",
    )
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--kind", choices=TABLE_KINDS, default="uncompressed")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch-index", type=int, default=0)
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed iterations of a piece before its rounds"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every piece")
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations of a round (its minimum)")
    parser.add_argument("--tt-ranks", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--tt-min-rows", type=int, default=1000)
    parser.add_argument("--algorithm", default="ecorec")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--comm",
        choices=COMM_MODES,
        default="measured",
        help="link: all-to-alls cost their bytes over --link-gbit; measured: timed between the ranks",
    )
    parser.add_argument("--link-gbit", type=float, default=None, help="Gbit/s per device (--comm link)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--compute-clock",
        choices=("thread", "wall"),
        default="thread",
        help="compute columns in thread CPU time (CPU; default) or wall time",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the measuring thread to a core")
    parser.add_argument(
        "--launcher",
        choices=("spawn", "torchrun"),
        default="spawn",
        help="spawn: loopback ranks started here; torchrun: this process is one rank of a torchrun job "
        "(e.g. on the emulated cluster), world size from the environment",
    )
    parser.add_argument("--cluster-profile", default="loopback", help="network the ranks span (cache key)")
    parser.add_argument("--output", default=None, help="also write the JSON lines here (rank 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # effective when nothing large was allocated yet
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"] and len(argv) == 2:
        return worker(argv[1])
    args = _parser().parse_args(argv)
    with open(args.placements) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as err:
            print(f"{args.placements}: invalid JSON ({err})", file=sys.stderr)
            return 2
    try:
        placements = [Placement.from_dict(p) for p in data]
    except (KeyError, TypeError, ValueError) as err:
        print(f"{args.placements}: not a list of placements ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    if not placements:
        print(f"{args.placements}: no placements", file=sys.stderr)
        return 2
    launcher, rank = "spawn", 0
    if args.launcher == "torchrun":
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
        launcher, rank = "group", dist.get_rank()
        world = dist.get_world_size()
    else:
        world = placements[0].num_devices
    try:
        config = PlacementBenchConfig(
            dataset=args.dataset,
            batch_size=args.batch_size,
            world_size=world,
            kind=args.kind,
            split=args.split,
            batch_index=args.batch_index,
            warmup=args.warmup,
            rounds=args.rounds,
            repeats=args.repeats,
            tt_ranks=tuple(args.tt_ranks),
            tt_min_rows=args.tt_min_rows,
            algorithm=args.algorithm,
            device=args.device,
            comm=args.comm,
            link_gbit=args.link_gbit,
            cluster_profile=args.cluster_profile,
            cache_dir=args.cache_dir,
            threads=args.threads,
            compute_clock=args.compute_clock,
            pin=not args.no_pin,
        )
    except ValueError as err:
        print(str(err), file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    costs = measure_placements(placements, config, launcher=launcher)
    if rank == 0:
        lines = [
            json.dumps({**{k: v for k, v in c.to_dict().items() if k != "samples"}, "cached": c.cached})
            for c in costs
        ]
        print("\n".join(lines))
        if args.output:
            from ecorec.utils import atomic_write

            with atomic_write(args.output) as handle:
                handle.write("\n".join(lines) + "\n")
    if args.launcher == "torchrun":
        dist.destroy_process_group()
    return 0
