"""Benchmark: training step time per precision on this machine (not a test; prints numbers).

    PYTHONPATH=. python tests/train/bench_precision.py [--batch-size 2048] [--steps 16] [--rows 1000]

One process (1 rank, dp, gloo) per precision trains the ``mlperf_dlrm`` preset's head (bottom 512-256-64, top
512-512-256-1, dot interaction) on the random source with 26 uncompressed tables of ``--rows`` rows (small, so
that the step time is the head's, the part autocast changes; TT tables stay fp32 in every precision), and
prints the median step time, samples/s and the last loss of each, relative to the first.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument(
        "--repeats", type=int, default=2, help="rounds, alternately forward and reversed order"
    )
    args = parser.parse_args()

    from ecorec.train.config import run_config_from_dict
    from ecorec.train.loop import run_training

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        order = [p for r in range(args.repeats) for p in (args.precisions[:: -1 if r % 2 else 1])]
        for i, precision in enumerate(order):
            os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
            cfg = run_config_from_dict(
                {
                    "run": {"seed": 0, "output_dir": str(Path(tmp) / f"{i}-{precision}")},
                    "dataset": {
                        "source": "random",
                        "random": {
                            "num_embeddings_per_feature": [args.rows] * 26,
                            "train_samples": args.batch_size * args.steps,
                            "val_samples": 0,
                        },
                    },
                    "model": {"preset": "mlperf_dlrm"},
                    "embeddings": {"algorithm": "none"},
                    "parallel": {"mode": "dp", "world_size": 1},
                    "train": {
                        "global_batch_size": args.batch_size,
                        "steps": args.steps,
                        "precision": precision,
                        "eval_splits": [],
                        "timing_warmup_steps": 4,
                        "log_every": 0,
                    },
                }
            )
            record = run_training(cfg)
            assert record is not None
            m = record["metrics"]
            rows.append(
                (precision, m["timing"]["median_s"] * 1e3, m["timing"]["samples_per_s"], m["loss_curve"][-1])
            )
    best = {
        p: min(r[1] for r in rows if r[0] == p) for p in args.precisions
    }  # least disturbed by others' load
    base = best[args.precisions[0]]
    print(f"{'run':>3} {'precision':>9} {'median ms':>10} {'samples/s':>10} {'last loss':>10}")
    for i, (precision, ms, sps, loss) in enumerate(rows):
        print(f"{i:>3} {precision:>9} {ms:10.1f} {sps:10.0f} {loss:10.5f}")
    for precision, ms in best.items():
        print(f"best {precision}: {ms:.1f} ms per step, {base / ms:.2f}x {args.precisions[0]}")
    print(json.dumps({"load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
