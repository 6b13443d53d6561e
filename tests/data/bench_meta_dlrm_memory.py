"""Benchmark: peak memory of converting a large Meta-format file to Parquet (not a test; prints numbers).

    PYTHONPATH=. python tests/data/bench_meta_dlrm_memory.py [--tables 128] [--batch-size 65536]

Writes a synthetic Meta-format ``.pt.gz`` (T tables x B samples, 2021 shape by default), then converts it in
fresh subprocesses, once per ``tables_per_file`` setting, and reports each run's peak RSS (``VmHWM``), its RSS
right before converting (after imports and a warm-up conversion of a tiny file), and the difference, next to
the size of one table's column chunk (one row group of one table: ``row_group_size x mean pooling x 8``
bytes) and of one table's whole column.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import json, sys, time
from ecorec.data.meta_dlrm import convert_meta_dlrm, write_meta_dlrm_file
from ecorec.data.synthetic import synthetic_meta_dlrm_tensors
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
def peak_rss_mb():  # VmHWM: this process's own peak (ru_maxrss would include the parent's, kept across exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
src, out, tables_per_file, row_group_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# Warm-up on a tiny file: the first Parquet write maps ~60 MiB of library code and buffers, whatever the size.
write_meta_dlrm_file(out + "-warm.pt.gz", *synthetic_meta_dlrm_tensors(2, 64, rows_min=10, rows_max=100))
convert_meta_dlrm([out + "-warm.pt.gz"], out + "-warm", source="meta_dlrm_2021", strict_shape=False)
before = rss_mb()
start = time.perf_counter()
convert_meta_dlrm([src], out, source="meta_dlrm_2021", strict_shape=False, tables_per_file=tables_per_file,
                  row_group_size=row_group_size)
seconds = time.perf_counter() - start
print(json.dumps({"rss_before_mb": before, "peak_rss_mb": peak_rss_mb(), "seconds": seconds}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--row-group-size", type=int, default=4096)
    parser.add_argument("--tables-per-file", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from ecorec.data.meta_dlrm import write_meta_dlrm_file
    from ecorec.data.synthetic import synthetic_meta_dlrm_tensors

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        src = Path(tmp) / f"fbgemm_t{args.tables}_bs{args.batch_size}.pt.gz"
        start = time.perf_counter()
        indices, offsets, lengths = synthetic_meta_dlrm_tensors(args.tables, args.batch_size, seed=0)
        write_meta_dlrm_file(src, indices, offsets, lengths, compresslevel=1)
        nnz = indices.numel()
        per_table = lengths.sum(dim=1).to(torch.float64)
        del indices, offsets, lengths
        print(
            f"source: {args.tables} tables x {args.batch_size} samples, {nnz} indices "
            f"({nnz * 8 / 2**20:.0f} MiB as int64), {src.stat().st_size / 2**20:.0f} MiB gzip; "
            f"made in {time.perf_counter() - start:.0f} s"
        )
        mean_pooling = nnz / (args.tables * args.batch_size)
        chunk_mb = args.row_group_size * mean_pooling * 8 / 2**20
        largest_chunk_mb = float(per_table.max()) / args.batch_size * args.row_group_size * 8 / 2**20
        column_mb = args.batch_size * mean_pooling * 8 / 2**20
        print(
            f"one table's column chunk (row group {args.row_group_size}): mean {chunk_mb:.2f} MiB, "
            f"largest table {largest_chunk_mb:.2f} MiB; one table's whole column: {column_mb:.1f} MiB"
        )
        results = []
        for k in args.tables_per_file:
            out = Path(tmp) / f"out-{k}"
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(src), str(out), str(k), str(args.row_group_size)],
                capture_output=True,
                text=True,
                check=True,
            )
            record = json.loads(proc.stdout.strip().splitlines()[-1])
            delta = record["peak_rss_mb"] - record["rss_before_mb"]
            record.update(tables_per_file=k, delta_mb=delta, delta_over_chunk=delta / chunk_mb)
            results.append(record)
            print(
                f"tables_per_file={k:3d}: peak RSS {record['peak_rss_mb']:.0f} MiB, "
                f"before {record['rss_before_mb']:.0f} MiB, peak - before {delta:.1f} MiB "
                f"= {delta / chunk_mb:.1f} x one column chunk "
                f"({delta / (k * chunk_mb):.1f} x the {k} column chunks of a row group); "
                f"{record['seconds']:.1f} s"
            )
        print(json.dumps(results))


if __name__ == "__main__":
    main()
