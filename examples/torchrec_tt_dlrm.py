"""TorchRec's DLRM example training loop with TT-compressed tables (EcoRec's TTEmbeddingBagCollection).

The loop is TorchRec's own (``torchrec/github/examples/dlrm/dlrm_main.py``): random Criteo-shaped data
(``RandomRecDataset``), ``DLRM`` + ``DLRMTrain``, the embedding optimizer applied in backward, the planner,
``DistributedModelParallel``, ``CombinedOptimizer`` over ``dmp.fused_optimizer`` and a
``KeyedOptimizerWrapper``, ``TrainPipelineSparseDist``. What changes for TT tables is marked ``# TT:``: the
table configs (and the collection that holds them), the sharder list and the planner's estimators.
``--uncompressed`` runs the same script as plain TorchRec.

    torchrun --standalone --nproc_per_node 2 examples/torchrec_tt_dlrm.py                # CPU, gloo
    torchrun --standalone --nproc_per_node 2 examples/torchrec_tt_dlrm.py --uncompressed  # TorchRec as is
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
import torchmetrics
from torch.utils.data import DataLoader
from torchrec.datasets.criteo import DEFAULT_CAT_NAMES, DEFAULT_INT_NAMES
from torchrec.datasets.random import RandomRecDataset
from torchrec.datasets.utils import Batch
from torchrec.distributed.comm import get_local_size
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
from torchrec.distributed.planner.storage_reservations import HeuristicalStorageReservation
from torchrec.distributed.train_pipeline import TrainPipelineSparseDist
from torchrec.models.dlrm import DLRM, DLRMTrain
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from torchrec.optim.optimizers import in_backward_optimizer_filter
from torchrec.optim.rowwise_adagrad import RowWiseAdagrad

from ecorec.models import TTEmbeddingBagCollection, TTEmbeddingBagConfig  # TT: the collection and its configs
from ecorec.parallel.torchrec_tt import TTEmbeddingBagCollectionSharder  # TT: the sharder
from ecorec.planner.torchrec_tt import tt_enumerator  # TT: the planner's storage and cost estimators


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--num_embeddings_per_feature",
        type=str,
        default=",".join(["200000"] * 8 + ["500"] * 18),
        help="rows of each of the 26 Criteo tables (comma separated)",
    )
    parser.add_argument("--embedding_dim", type=int, default=16)
    parser.add_argument("--dense_arch_layer_sizes", type=str, default="64,16")
    parser.add_argument("--over_arch_layer_sizes", type=str, default="64,32,1")
    parser.add_argument("--batch_size", type=int, default=256, help="local batch size per rank")
    parser.add_argument("--num_batches", type=int, default=20, help="training batches per rank")
    parser.add_argument("--eval_batches", type=int, default=4)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--adagrad", action="store_true", help="Adagrad instead of row-wise Adagrad")
    parser.add_argument("--tt_ranks", type=str, default="16,16", help="TT: inner TT ranks")
    parser.add_argument(
        "--tt_min_rows", type=int, default=10_000, help="TT: smaller tables stay uncompressed"
    )
    parser.add_argument("--memory_cap_bytes", type=int, default=None, help="per-rank memory for the planner")
    parser.add_argument("--uncompressed", action="store_true", help="plain TorchRec: no TT table")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def table_configs(args: argparse.Namespace) -> list[EmbeddingBagConfig]:
    """One table per Criteo categorical feature; TT: the large ones are TTEmbeddingBagConfigs."""
    rows = [int(n) for n in args.num_embeddings_per_feature.split(",")]
    if len(rows) != len(DEFAULT_CAT_NAMES):
        raise ValueError(
            f"--num_embeddings_per_feature needs {len(DEFAULT_CAT_NAMES)} values, got {len(rows)}"
        )
    configs: list[EmbeddingBagConfig] = []
    for name, num_embeddings in zip(DEFAULT_CAT_NAMES, rows):
        common = {
            "name": f"t_{name}",
            "embedding_dim": args.embedding_dim,
            "num_embeddings": num_embeddings,
            "feature_names": [name],
        }
        if not args.uncompressed and num_embeddings >= args.tt_min_rows:  # TT
            tt_ranks = [int(r) for r in args.tt_ranks.split(",")]
            configs.append(TTEmbeddingBagConfig(**common, tt_ranks=tt_ranks))
        else:
            configs.append(EmbeddingBagConfig(**common))
    return configs


def dataloader(args: argparse.Namespace, rank: int, num_batches: int, stage: int) -> DataLoader:
    rows = [int(n) for n in args.num_embeddings_per_feature.split(",")]
    dataset = RandomRecDataset(
        keys=DEFAULT_CAT_NAMES,
        batch_size=args.batch_size,
        hash_sizes=rows,
        ids_per_feature=1,
        num_dense=len(DEFAULT_INT_NAMES),
        manual_seed=args.seed * 1000 + rank * 10 + stage,
        num_batches=num_batches,
    )
    return DataLoader(dataset, batch_size=None, batch_sampler=None, pin_memory=False, num_workers=0)


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        device = torch.device(f"cuda:{rank}")
        backend = "nccl"
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        backend = "gloo"
    dist.init_process_group(backend=backend)
    torch.manual_seed(args.seed)
    world_size = dist.get_world_size()

    configs = table_configs(args)
    if args.uncompressed:
        collection = EmbeddingBagCollection(tables=configs, device=torch.device("meta"))
    else:  # TT
        collection = TTEmbeddingBagCollection(configs, device="meta", tt_min_rows=args.tt_min_rows)
    train_model = DLRMTrain(
        DLRM(
            embedding_bag_collection=collection,  # type: ignore[arg-type]
            dense_in_features=len(DEFAULT_INT_NAMES),
            dense_arch_layer_sizes=[int(n) for n in args.dense_arch_layer_sizes.split(",")],
            over_arch_layer_sizes=[int(n) for n in args.over_arch_layer_sizes.split(",")],
            dense_device=device,
        )
    )
    embedding_optimizer = torch.optim.Adagrad if args.adagrad else RowWiseAdagrad
    # the TT tables take the same in-backward optimizer: the TT sharder fuses it into the TT backward
    apply_optimizer_in_backward(
        embedding_optimizer,
        train_model.model.sparse_arch.parameters(),
        {"lr": args.learning_rate, "eps": 1e-8},
    )

    sharders = [EmbeddingBagCollectionSharder()]
    topology = Topology(
        local_world_size=get_local_size(),
        world_size=world_size,
        compute_device=device.type,
        **(
            {"hbm_cap" if device.type == "cuda" else "ddr_cap": args.memory_cap_bytes}
            if args.memory_cap_bytes
            else {}
        ),
    )
    planner_kwargs = {}
    if not args.uncompressed:
        sharders.insert(0, TTEmbeddingBagCollectionSharder())  # TT
        planner_kwargs["enumerator"] = tt_enumerator(topology, args.batch_size)  # TT
    planner = EmbeddingShardingPlanner(
        topology=topology,
        batch_size=args.batch_size,
        storage_reservation=HeuristicalStorageReservation(percentage=0.05),
        **planner_kwargs,
    )
    plan = planner.collective_plan(train_model, sharders, dist.GroupMember.WORLD)
    if rank == 0:
        print(plan, flush=True)
    model = DistributedModelParallel(module=train_model, device=device, plan=plan, sharders=sharders)

    dense_optimizer = KeyedOptimizerWrapper(
        dict(in_backward_optimizer_filter(model.named_parameters())),
        lambda params: torch.optim.Adagrad(params, lr=args.learning_rate),
    )
    optimizer = CombinedOptimizer([model.fused_optimizer, dense_optimizer])
    pipeline = TrainPipelineSparseDist(model, optimizer, device, execute_all_batches=True)

    model.train()
    batches: Iterator[Batch] = iter(dataloader(args, rank, args.num_batches, 0))
    losses, start, steps = [], time.perf_counter(), 0
    while True:
        try:
            loss, _logits, _labels = pipeline.progress(batches)
        except StopIteration:
            break
        losses.append(float(loss))
        steps += 1
    seconds = time.perf_counter() - start

    model.eval()
    auroc = torchmetrics.AUROC(task="binary").to(device)
    eval_model = pipeline.detach()
    with torch.no_grad():
        for batch in dataloader(args, rank, args.eval_batches, 1):
            _, (_, logits, labels) = eval_model(batch.to(device))
            auroc.update(torch.sigmoid(logits), labels.int())
    local_bytes = sum(
        shard.tensor.numel() * shard.tensor.element_size()
        for value in model.state_dict().values()
        if hasattr(value, "local_shards")
        for shard in value.local_shards()
    )
    result = torch.tensor([seconds / max(steps, 1), local_bytes], dtype=torch.float64)
    gathered = [torch.zeros_like(result) for _ in range(world_size)]
    dist.all_gather(gathered, result)
    value = float(auroc.compute())  # every rank's own samples
    if rank == 0:
        kind = "uncompressed" if args.uncompressed else "TT"
        print(
            f"{kind}: {steps} batches of {args.batch_size} per rank; "
            f"first loss {losses[0]:.4f}, last {losses[-1]:.4f}"
        )
        for r, row in enumerate(gathered):
            print(f"rank {r}: {1e3 * float(row[0]):.1f} ms/batch, embedding tables {int(row[1])} bytes")
        print(f"eval AUROC (rank 0, random labels: about 0.5) {value:.3f}")
    if not all(torch.isfinite(torch.tensor(losses))):
        raise RuntimeError(f"non-finite training loss: {losses}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
