"""What the kernel benchmark times: TT variants (torch and CUDA backends), ``nn.EmbeddingBag`` and fbgemm's
TBE, each a forward and a training step with the same call convention (:class:`Variant`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ecorec.bench.tt.config import TT_ALGORITHMS, TTBenchConfig
from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig

logger = logging.getLogger("ecorec.bench.tt")


@dataclass
class Variant:
    """One thing to time: its forward and its training step on a batch (indices, offsets with last offset)."""

    name: str
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    train_step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]
    param_bytes: int
    state_bytes: int
    algorithm: str | None = None  # TT algorithm, for the FLOP and traffic counts


def _tensor_bytes(tensors: Sequence[torch.Tensor | None]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def make_tt_variant(
    config: TTBenchConfig,
    algorithm: str,
    micro_batches: int = 1,
    product_strategy: str = "auto",
    backend: str = "torch",
) -> Variant:
    """A :class:`TTEmbeddingBag` with fused SGD (index validation off, as in the uncompressed baselines)."""
    module = TTEmbeddingBag(
        config.num_embeddings,
        config.embedding_dim,
        config.tt_ranks,
        mode=config.mode,
        include_last_offset=True,
        algorithm=algorithm,
        micro_batches=micro_batches,
        fbtt_chunk_size=config.fbtt_chunk_size,
        product_strategy=product_strategy,
        optimizer=TTOptimizerConfig("sgd", config.learning_rate),
        validate_indices=False,
        backend=backend,
        device=config.device,
    )
    module.reset_parameters(torch.Generator(device=config.device).manual_seed(config.seed))

    def train_step(indices: torch.Tensor, offsets: torch.Tensor, grad: torch.Tensor) -> None:
        module(indices, offsets).backward(grad)

    name = algorithm if backend == "torch" else f"{algorithm}_{backend}"
    if micro_batches != 1:
        name = f"{name}_m{micro_batches}"
    if len(config.product_strategies) > 1 and backend == "torch":
        name = f"{name}/{product_strategy}"
    return Variant(
        name,
        lambda indices, offsets: module(indices, offsets),
        train_step,
        _tensor_bytes(list(module.cores)),
        _tensor_bytes(module.optimizer_states()),
        algorithm,
    )


def make_embedding_bag_variant(config: TTBenchConfig) -> Variant:
    """Uncompressed ``nn.EmbeddingBag`` with sparse gradients and ``torch.optim.SGD``."""
    module = nn.EmbeddingBag(
        config.num_embeddings,
        config.embedding_dim,
        mode=config.mode,
        sparse=True,
        include_last_offset=True,
        device=config.device,
    )
    optimizer = torch.optim.SGD(module.parameters(), lr=config.learning_rate)

    def train_step(indices: torch.Tensor, offsets: torch.Tensor, grad: torch.Tensor) -> None:
        module(indices, offsets).backward(grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return Variant(
        "nn_embedding_bag",
        lambda indices, offsets: module(indices, offsets),
        train_step,
        _tensor_bytes([module.weight]),
        0,
    )


def make_tbe_variant(config: TTBenchConfig) -> Variant | None:
    """fbgemm's CPU TBE with ``EXACT_SGD``, or ``None`` (with a log message) where it cannot run."""
    if torch.device(config.device).type != "cpu":
        logger.warning("fbgemm_tbe: the CPU TBE runs on cpu only; skipped on %s", config.device)
        return None
    try:
        from fbgemm_gpu.split_embedding_configs import EmbOptimType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import (
            ComputeDevice,
            EmbeddingLocation,
            PoolingMode,
        )
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            SplitTableBatchedEmbeddingBagsCodegen,
        )
    except ImportError as exc:
        logger.warning("fbgemm_tbe: fbgemm_gpu is not importable (%s); skipped", exc)
        return None
    module = SplitTableBatchedEmbeddingBagsCodegen(
        embedding_specs=[
            (config.num_embeddings, config.embedding_dim, EmbeddingLocation.HOST, ComputeDevice.CPU)
        ],
        optimizer=EmbOptimType.EXACT_SGD,
        learning_rate=config.learning_rate,
        pooling_mode=PoolingMode.SUM if config.mode == "sum" else PoolingMode.MEAN,
    )

    def train_step(indices: torch.Tensor, offsets: torch.Tensor, grad: torch.Tensor) -> None:
        module(indices, offsets).backward(grad)

    weights = module.split_embedding_weights()
    return Variant(
        "fbgemm_tbe",
        lambda indices, offsets: module(indices, offsets),
        train_step,
        _tensor_bytes(weights),
        0,
    )


def make_variants(config: TTBenchConfig) -> list[Variant]:
    """The variants selected by ``config.algorithms`` (and ``micro_batches`` for ``ecorec``)."""
    variants: list[Variant] = []
    dense_bytes = config.num_embeddings * config.embedding_dim * 4
    for name in config.algorithms:
        if name == "ecorec":
            variants.extend(
                make_tt_variant(config, "ecorec", m, strategy)
                for strategy in config.product_strategies
                for m in config.micro_batches
            )
        elif name == "ecorec_cuda":
            if torch.device(config.device).type != "cuda":
                logger.warning(
                    "ecorec_cuda: the CUDA kernels run on CUDA devices only; skipped on %s", config.device
                )
                continue
            variants.extend(
                make_tt_variant(config, "ecorec", m, backend="cuda") for m in config.micro_batches
            )
        elif name in TT_ALGORITHMS:
            variants.extend(make_tt_variant(config, name, 1, s) for s in config.product_strategies)
        elif dense_bytes > config.max_dense_bytes:
            logger.warning(
                "%s: the dense table needs %.2f GiB > --max-dense-bytes; skipped", name, dense_bytes / 2**30
            )
        elif name == "nn_embedding_bag":
            variants.append(make_embedding_bag_variant(config))
        else:
            tbe = make_tbe_variant(config)
            if tbe is not None:
                variants.append(tbe)
    return variants
