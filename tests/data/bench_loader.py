"""Benchmark: ParquetBatchLoader throughput on the default synthetic dataset (not a test; prints numbers).

    PYTHONPATH=. python tests/data/bench_loader.py [--samples 102400] [--batch-size 4096] [--work-ms 20]

Generates the default synthetic dataset (32 tables, 13.6 indices per bag) into a temporary folder, then reads
one epoch of the train split with each setting side by side, with and without simulated per-batch model work
(a sleep, which releases the GIL like a real forward/backward does), and prints batches/s and samples/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=102400)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--work-ms", type=float, default=20.0)
    args = parser.parse_args()

    from ecorec.data.loader import ParquetBatchLoader
    from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic"
        start = time.perf_counter()
        meta = generate_synthetic_dataset(
            path, SyntheticConfig(num_samples=args.samples), splits={"train": 1.0}
        )
        print(
            f"generated {meta.num_samples} samples x {len(meta.features)} tables "
            f"in {time.perf_counter() - start:.1f} s"
        )
        settings = [
            ("local  R=1", dict(world_size=1, layout="local")),
            ("global R=4 (8 tables)", dict(world_size=4, layout="global", features=meta.features[:8])),
            ("local  R=4", dict(world_size=4, layout="local")),
        ]
        for work in (0.0, args.work_ms / 1000):
            for name, kwargs in settings:
                rates = []
                for prefetch in (0, 2):
                    loader = ParquetBatchLoader(
                        path, global_batch_size=args.batch_size, prefetch=prefetch, **kwargs
                    )
                    start = time.perf_counter()
                    count = 0
                    for batch in loader:
                        count += batch.labels.numel()
                        if work:
                            time.sleep(work)
                    seconds = time.perf_counter() - start
                    rates.append(len(loader) / seconds)
                    print(
                        f"work {work * 1000:4.0f} ms  {name:22s} prefetch={prefetch}: "
                        f"{len(loader) / seconds:7.1f} batches/s, {count / seconds:9.0f} local samples/s"
                    )
                print(f"    prefetch 2 / prefetch 0 = {rates[1] / rates[0]:.2f}")


if __name__ == "__main__":
    main()
