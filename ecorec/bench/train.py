"""``python -m ecorec.bench train``: the distributed modes side by side on the same data and model.

Each variant is one real training run (``python -m ecorec.train`` under torchrun, ``--world`` ranks, gloo on
CPU): dp, mp, bwp, twp (K stages, plan order), twp+reorder, twp+reorder+slope (EcoRec) with TT tables, and
torchrec (DMP over uncompressed tables). From each run record: global samples/s (G / median iteration time,
and the mean and standard deviation over the timing windows), iteration time median/p90, peak memory per rank
and its max.

Output: one JSON line per variant (stdout and ``--output``) and a table; the goal it reports against is
twp+reorder+slope >= 1.3x mp samples/s. With ``--repeats N`` the variants run N times, interleaved, so slow
phases of a shared machine hit every variant alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ecorec.records import RunRecord
from ecorec.types import Algorithm
from ecorec.utils import atomic_write, environment_record

__all__ = ["VARIANTS", "main"]

VARIANTS: dict[str, dict[str, Any]] = {
    "dp": {"mode": "dp"},
    "mp": {"mode": "mp", "sharding": "greedy"},
    "bwp": {"mode": "bwp", "sharding": "greedy", "num_micro_batches": 4},
    "twp": {"mode": "twp", "sharding": "greedy", "reorder": False, "skew_degree": 0.0},
    "twp+reorder": {"mode": "twp", "sharding": "greedy", "reorder": True, "skew_degree": 0.0},
    "twp+reorder+slope": {"mode": "twp", "sharding": "greedy", "reorder": True, "skew_degree": 0.5},
    "torchrec": {"mode": "torchrec"},
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ecorec.bench train", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", help="Parquet dataset folder (default: generate a synthetic one)")
    p.add_argument("--tables", type=int, default=24, help="synthetic tables")
    p.add_argument("--rows-min", type=int, default=2_000)
    p.add_argument("--rows-max", type=int, default=400_000)
    p.add_argument("--mean-pooling", type=float, default=4.0)
    p.add_argument("--world", type=int, default=2, help="ranks (torchrun --nproc-per-node)")
    p.add_argument("--local-batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--warmup", type=int, default=4, help="steps left out of the timing")
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--algorithm", default="ecorec", choices=[a.value for a in Algorithm.tt()])
    p.add_argument("--tt-ranks", type=int, nargs="+", default=[16, 16])
    p.add_argument("--tt-min-rows", type=int, default=1000)
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--num-micro-keys", type=int, default=4)
    p.add_argument("--num-micro-uidx", type=int, default=1)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="keep run folders here (default: a temporary folder)")
    p.add_argument("--output", help="also write the JSON lines to this file (atomically)")
    return p


def _synthetic(path: Path, args: argparse.Namespace) -> None:
    from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

    samples = args.local_batch * args.world * (args.steps + 2)
    generate_synthetic_dataset(
        path,
        SyntheticConfig(
            num_tables=args.tables,
            num_samples=samples,
            rows_min=args.rows_min,
            rows_max=args.rows_max,
            mean_pooling=args.mean_pooling,
            num_dense=13,
            seed=args.seed,
        ),
        row_group_size=min(4096, args.local_batch * args.world),
        splits=None,
    )


def _run_config(args: argparse.Namespace, variant: str, dataset: Path, out: Path) -> dict[str, Any]:
    parallel = {
        **VARIANTS[variant],
        "world_size": args.world,
        "num_micro_keys": args.num_micro_keys,
        "num_micro_uidx": args.num_micro_uidx if args.algorithm == "ecorec" else 1,
    }
    if parallel["mode"] != "twp":
        parallel.pop("num_micro_keys")
        parallel.pop("num_micro_uidx")
    torchrec = parallel["mode"] == "torchrec"
    D = args.embedding_dim
    return {
        "run": {"seed": args.seed, "device": "cpu", "output_dir": str(out), "name": variant},
        "dataset": {"path": str(dataset), "prefetch": 2},
        "model": {
            "kind": "dlrm",
            "embedding_dim": D,
            "interaction": "cat",
            "dense_arch": [64, D],
            "over_arch": [128, 64, 1],
        },
        "embeddings": {
            "algorithm": Algorithm.NONE.value if torchrec else args.algorithm,
            "tt_ranks": list(args.tt_ranks),
            "tt_min_rows": args.tt_min_rows,
            "optimizer": "sgd",
            "lr": 0.05,
            "update": "fused",
        },
        "dense_optimizer": {"kind": "sgd", "lr": 0.05},
        "parallel": parallel,
        "train": {
            "global_batch_size": args.local_batch * args.world,
            "steps": args.steps,
            "eval_splits": [],
            "timing_warmup_steps": args.warmup,
            "timing_windows": args.windows,
            "log_every": 0,
        },
    }


def _launch(config: Path, world: int) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ecorec.train", "--config", str(config), "--prepare"]
    prep = subprocess.run(cmd, capture_output=True, text=True)
    if prep.returncode != 0:
        return prep
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={world}",
        "-m",
        "ecorec.train",
        "--config",
        str(config),
    ]
    return subprocess.run(cmd, capture_output=True, text=True)


def _row(variant: str, repeat: int, record: RunRecord) -> dict[str, Any]:
    m = record["metrics"]
    t = m["timing"]
    memory = m["peak_memory_bytes"]
    return {
        "benchmark": "train",
        "variant": variant,
        "mode": m["mode"],
        "repeat": repeat,
        "world_size": m["world_size"],
        "global_batch_size": m["global_batch_size"],
        "samples_per_s": t["samples_per_s"],
        "window_samples_per_s_mean": t["window_samples_per_s_mean"],
        "window_samples_per_s_std": t["window_samples_per_s_std"],
        "iteration_median_ms": t["median_s"] * 1e3,
        "iteration_p90_ms": t["p90_s"] * 1e3,
        "peak_memory_mib_per_rank": [b / 2**20 for b in memory["per_rank"]],
        "peak_memory_mib_max": memory["max"] / 2**20,
        "memory_kind": memory["kind"],
        "tt_tables": m["num_tt_tables"],
        "tables": m["num_tables"],
        "final_loss": m["loss_curve"][-1],
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"{'variant':<20} {'samples/s':>10} {'windows mean±std':>20} {'median ms':>10} {'p90 ms':>8} "
    head += f"{'peak MiB/rank':>20} {'vs mp':>6}"
    mp = [r["samples_per_s"] for r in rows if r["variant"] == "mp"]
    base = sum(mp) / len(mp) if mp else None
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{r['samples_per_s'] / base:.2f}x" if base else "-"
        mem = "/".join(f"{v:.0f}" for v in r["peak_memory_mib_per_rank"])
        window = f"{r['window_samples_per_s_mean']:.0f}±{r['window_samples_per_s_std']:.0f}"
        lines.append(
            f"{r['variant']:<20} {r['samples_per_s']:>10.0f} {window:>20} {r['iteration_median_ms']:>10.1f} "
            f"{r['iteration_p90_ms']:>8.1f} {mem:>20} {ratio:>6}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ecorec-bench-train-") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dataset = Path(args.dataset) if args.dataset else work / "dataset"
        if not args.dataset and not (dataset / "metadata.json").is_file():
            print(f"generating a synthetic dataset ({args.tables} tables) in {dataset}", file=sys.stderr)
            _synthetic(dataset, args)
        rows: list[dict[str, Any]] = []
        for repeat in range(args.repeats):
            for variant in args.variants:
                out = work / f"{variant}-{repeat}"
                config = work / f"{variant}-{repeat}.yaml"
                config.write_text(yaml.safe_dump(_run_config(args, variant, dataset, out), sort_keys=False))
                print(f"running {variant} (repeat {repeat})", file=sys.stderr)
                proc = _launch(config, args.world)
                if proc.returncode != 0:
                    print(proc.stdout[-2000:] + proc.stderr[-4000:], file=sys.stderr)
                    print(f"{variant}: the run failed (exit {proc.returncode})", file=sys.stderr)
                    return 1
                record_path = out / "record.json"
                row = _row(variant, repeat, RunRecord.from_json(record_path.read_text(), str(record_path)))
                rows.append(row)
                print(json.dumps(row), flush=True)
    env = environment_record(world_size=args.world)
    summary = _summary(rows)
    print(_table(rows))
    print(summary["goal"])
    if args.output:
        with atomic_write(args.output) as handle:
            for row in rows:
                handle.write(json.dumps({**row, "config": vars(args)}) + "\n")
            handle.write(json.dumps({"benchmark": "train", "summary": summary, "environment": env}) + "\n")
    return 0


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(variant: str) -> float | None:
        values = [r["samples_per_s"] for r in rows if r["variant"] == variant]
        return sum(values) / len(values) if values else None

    mp, twp = mean("mp"), mean("twp+reorder+slope")
    ratio = twp / mp if mp and twp else None
    goal = (
        f"goal twp+reorder+slope >= 1.3x mp: {ratio:.2f}x ({'met' if ratio >= 1.3 else 'missed'})"
        if ratio is not None
        else "goal twp+reorder+slope >= 1.3x mp: not measured (needs both variants)"
    )
    return {"twp_over_mp": ratio, "goal": goal, "cpu_count": os.cpu_count()}
