"""``python -m ecorec.bench split --config run.yaml``: how one rank's compute divides between the embedding
kernels and the dense MLPs, on this machine, at the run's per-worker shape.

Time dilation weighs the TT kernel's and the GEMM's rates by this split (``ecorec.cluster.dilation``: the
step-time-weighted mix). What is timed, one thread, after warm-up, median over repeats:

- **embedding**: forward + backward (the fused update included) of one rank's share of the run's tables, every
  ``W``-th table (``W`` = ``parallel.world_size``), on a global batch of ``W * b`` samples of the train split:
  the table-wise modes' work per rank (``[W*b, T/W]`` lookups);
- **dense**: forward + backward of the head (bottom MLP, interaction, top MLP) on ``b`` samples, the pooled
  embeddings ``[b, T, D]`` random, as every mode runs it on its local batch.

Returns ``{"embedding_s", "dense_s", "tt_weight" = embedding / (embedding + dense), ...}``; the command prints
it and writes it to ``--output`` (atomically). :func:`measure_compute_split_concurrently` runs it in N
processes at once (a run's ranks share this machine's cores: two ranks on a 2-vCPU machine run each other's
GEMMs at about half speed) and reports the median process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["measure_compute_split", "measure_compute_split_concurrently", "main"]


def _tt_weight(embedding_s: float, dense_s: float) -> float:
    """The embedding kernels' share of a rank's compute (1 when nothing was timed)."""
    total = embedding_s + dense_s
    return embedding_s / total if total > 0 else 1.0


def _median_seconds(fn: Any, repeats: int, warmup: int) -> tuple[float, list[float]]:
    samples = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            samples.append(elapsed)
    return statistics.median(samples), samples


def measure_compute_split(
    cfg: Any,
    *,
    repeats: int = 3,
    warmup: int = 1,
    threads: int = 1,
    parameter_tables: Sequence[int] = (),
) -> dict[str, Any]:
    """Time one rank's embedding and dense compute of the run ``cfg`` (a ``RunConfig``; see the module).
    ``dense_parameters_by_tables`` gives the head's parameters for each of ``parameter_tables`` table counts
    too (the regime model scales the dense compute and all-reduce by them)."""
    import torch

    from ecorec.models import build_head, build_tables, head_parameters, pool_table
    from ecorec.train.loop import _settings, model_settings
    from ecorec.train.planning import table_specs
    from ecorec.train.sources import dataset_metadata, make_loader

    torch.set_num_threads(threads)
    torch.manual_seed(cfg.run.seed)
    world = cfg.parallel.world_size
    G = cfg.train.global_batch_size
    b = G // world
    metadata = dataset_metadata(cfg)
    features = cfg.features_of(metadata.features)
    specs = table_specs(metadata, features, cfg.model.embedding_dim)
    table_settings, emb_opt, _ = _settings(cfg)
    share = features[::world]
    tables = build_tables(specs, table_settings, cfg.run.seed, names=share, optimizer=emb_opt)
    loader = make_loader(
        cfg, "train", rank=0, world_size=1, features=share, layout="global", shuffle=False, drop_last=True
    )
    sparse = next(iter(loader)).sparse.to_dict()
    D = cfg.model.embedding_dim

    def embedding_step() -> None:
        pooled = torch.cat(
            [
                pool_table(
                    tables[n], sparse[n].values(), sparse[n].offsets(), sparse[n].weights_or_none(), name=n
                )
                for n in share
            ],
            dim=1,
        )
        pooled.backward(torch.full_like(pooled, 1e-3))
        for table in tables.values():
            for p in table.parameters():
                p.grad = None

    head = build_head(model_settings(cfg), metadata.num_dense, len(features), cfg.run.seed)
    dense = torch.randn(b, metadata.num_dense)
    pooled = torch.randn(b, len(features), D, requires_grad=True)
    labels = torch.randint(0, 2, (b,)).float()

    def dense_step() -> None:
        logits = head(dense, pooled)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), labels)
        loss.backward()
        head.zero_grad(set_to_none=True)
        pooled.grad = None

    embedding_s, embedding_samples = _median_seconds(embedding_step, repeats, warmup)
    dense_s, dense_samples = _median_seconds(dense_step, repeats, warmup)
    return {
        "embedding_s": embedding_s,
        "dense_s": dense_s,
        "tt_weight": _tt_weight(embedding_s, dense_s),
        "embedding_samples_s": embedding_samples,
        "dense_samples_s": dense_samples,
        "tables": len(features),
        "num_dense": metadata.num_dense,
        "dense_parameters": sum(p.numel() for p in head.parameters()),
        "dense_parameters_by_tables": {
            str(t): head_parameters(model_settings(cfg), metadata.num_dense, t)
            for t in sorted({len(features), *map(int, parameter_tables)})
        },
        "rank_tables": share,
        "world_size": world,
        "local_batch": b,
        "embedding_dim": D,
        "algorithm": cfg.embeddings.algorithm,
        "threads": threads,
        "load_average": list(os.getloadavg()),
    }


def measure_compute_split_concurrently(
    config: str | os.PathLike[str], concurrency: int, parameter_tables: Sequence[int] = ()
) -> dict[str, Any]:
    """:func:`measure_compute_split` of the run YAML ``config`` in ``concurrency`` fresh processes at once
    (``python -m ecorec.bench split``): ``embedding_s`` and ``dense_s`` are the medians over the processes,
    the other fields the record of the process with the median total; ``processes``: each one's times."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    with tempfile.TemporaryDirectory(prefix="ecorec-split-") as tmp:
        outputs = [os.path.join(tmp, f"split-{i}.json") for i in range(concurrency)]
        extra = ["--parameter-tables", *map(str, parameter_tables)] if parameter_tables else []
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ecorec.bench",
                    "split",
                    "--config",
                    str(config),
                    "--output",
                    out,
                    *extra,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for out in outputs
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=1800)
            if proc.returncode != 0:
                raise RuntimeError(f"python -m ecorec.bench split failed ({proc.returncode}): {err[-2000:]}")
        results = [json.loads(Path(out).read_text()) for out in outputs]
    ordered = sorted(results, key=lambda r: r["embedding_s"] + r["dense_s"])
    median = dict(ordered[len(ordered) // 2])
    median.update(
        embedding_s=statistics.median(r["embedding_s"] for r in results),
        dense_s=statistics.median(r["dense_s"] for r in results),
        concurrency=concurrency,
        processes=[{k: r[k] for k in ("embedding_s", "dense_s", "load_average")} for r in results],
    )
    median["tt_weight"] = _tt_weight(median["embedding_s"], median["dense_s"])
    return median


def main(argv: list[str] | None = None) -> int:
    from ecorec.train.config import load_run_config
    from ecorec.utils import write_json_atomic

    p = argparse.ArgumentParser(prog="python -m ecorec.bench split", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a run's YAML (python -m ecorec.train --config)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--parameter-tables", type=int, nargs="*", default=[], help="head sizes to report too")
    p.add_argument("--output", help="also write the JSON here")
    args = p.parse_args(argv)
    result = measure_compute_split(
        load_run_config(args.config),
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        parameter_tables=args.parameter_tables,
    )
    print(json.dumps(result, indent=1))
    if args.output:
        write_json_atomic(args.output, result)
    return 0
