"""Per-table embedding modules for the distributed modes: TT (any algorithm) or uncompressed by a row
threshold, with initial weights that depend only on (run seed, table name), never on which rank builds the
table.

A rank that builds only its own tables therefore holds exactly the weights a single process builds, which is
what lets every mode be checked step by step against a single-process run.

The modules share one call convention, ``table(values, offsets, per_sample_weights) -> [B, D]`` with
``offsets`` of length ``B + 1`` (``include_last_offset``): ``ecorec.tt.TTEmbeddingBag`` and
``nn.EmbeddingBag``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ecorec.types import DEFAULT_TT_INIT, TT_INITS, Algorithm

if TYPE_CHECKING:  # pragma: no cover
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

__all__ = [
    "EmbeddingOptimizerSettings",
    "TableSettings",
    "TableSpec",
    "build_tables",
    "check_ids",
    "check_kjt",
    "check_lengths",
    "derive_seed",
    "is_tt_table",
    "pool_table",
    "set_tt_learning_rate",
    "tt_compression_ratio",
    "tt_num_parameters",
    "uncompressed_init",
    "uncompressed_init_std",
]

TT_ALGORITHMS = tuple(a.value for a in Algorithm.tt())
ALGORITHMS = tuple(a.value for a in Algorithm)


@dataclass(frozen=True)
class TableSpec:
    """One embedding table: ``name`` (also its sparse feature's name), ``num_embeddings`` rows,
    ``embedding_dim``."""

    name: str
    num_embeddings: int
    embedding_dim: int

    def __post_init__(self) -> None:
        if self.num_embeddings < 1:
            raise ValueError(f"table {self.name!r}: num_embeddings must be >= 1, got {self.num_embeddings}")
        if self.embedding_dim < 1:
            raise ValueError(f"table {self.name!r}: embedding_dim must be >= 1, got {self.embedding_dim}")


@dataclass(frozen=True)
class TableSettings:
    """How tables are built.

    Args:
        algorithm: TT algorithm (``"ecorec"``, ``"fbtt"``, ``"elrec"``) for tables with at least
        ``tt_min_rows``
            rows, or ``"none"``: every table uncompressed.
        tt_ranks: inner TT ranks ``[r1, ..., r_{d-1}]`` (the number of cores is ``len(tt_ranks) + 1``).
        tt_min_rows: tables with fewer rows stay uncompressed (``nn.EmbeddingBag``).
        micro_batches: TT micro-batches over unique indices (``num_micro_uidx`` of the table-wise pipeline).
        tt_min_compression: a table is TT only if its TT cores are at least this many times smaller than
            the uncompressed table (``N * D / TT parameters``, :func:`tt_compression_ratio`); the default 1.0
            never builds TT cores larger than the table they replace.
        tt_init: initialisation of the TT cores (``ecorec.tt.init``: ``"sampled_gaussian"``, TT-Rec's,
            ``"normal"`` or ``"uniform"``).
        tt_init_std: with ``"sampled_gaussian"``, the std of the reconstructed rows' entries; ``None``:
            :func:`uncompressed_init_std`, the std of an uncompressed table's initial entries, so a TT
            table starts at the scale of the table it replaces. With ``"normal"``: the std of every core
            entry (``None``: ``1/sqrt(N)``). Not accepted with ``"uniform"``.
    """

    algorithm: str = "ecorec"
    tt_ranks: tuple[int, ...] = (16, 16)
    tt_min_rows: int = 1000
    micro_batches: int = 1
    tt_min_compression: float = 1.0
    tt_init: str = DEFAULT_TT_INIT
    tt_init_std: float | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if not self.tt_ranks or any(r < 1 for r in self.tt_ranks):
            raise ValueError(f"tt_ranks must be a non-empty list of positive ints, got {self.tt_ranks}")
        if self.tt_min_rows < 0:
            raise ValueError(f"tt_min_rows must be >= 0, got {self.tt_min_rows}")
        if self.micro_batches < 1:
            raise ValueError(f"micro_batches must be >= 1, got {self.micro_batches}")
        if not self.tt_min_compression >= 0:
            raise ValueError(f"tt_min_compression must be >= 0, got {self.tt_min_compression}")
        if self.tt_init not in TT_INITS:
            raise ValueError(f"tt_init must be one of {TT_INITS}, got {self.tt_init!r}")
        if self.tt_init_std is not None and not self.tt_init_std > 0:
            raise ValueError(f"tt_init_std must be > 0, got {self.tt_init_std}")
        if self.tt_init_std is not None and self.tt_init == "uniform":
            raise ValueError("tt_init_std is not used by tt_init 'uniform'; leave it unset")

    def tt_init_kwargs(self, spec: TableSpec) -> dict[str, Any]:
        """``weight_init`` and ``init_std`` of ``ecorec.tt.TTEmbeddingBag`` for the TT table ``spec``."""
        std = self.tt_init_std
        if std is None and self.tt_init == "sampled_gaussian":
            std = uncompressed_init_std(spec.num_embeddings)
        return {"weight_init": self.tt_init, "init_std": std}

    def compresses(self, spec: TableSpec) -> bool:
        """Whether ``spec`` becomes a TT table: a TT algorithm, at least ``tt_min_rows`` rows, and TT cores at
        least ``tt_min_compression`` times smaller than the table."""
        if self.algorithm == Algorithm.NONE or spec.num_embeddings < self.tt_min_rows:
            return False
        return tt_compression_ratio(spec, self.tt_ranks) >= self.tt_min_compression

    def table_kind(self, spec: TableSpec) -> dict[str, Any]:
        """What ``spec`` becomes: ``{"table", "kind": "tt" | "uncompressed", "parameters", "compression",
        "reason"}`` (``compression``: uncompressed parameters / this table's parameters; 1.0 uncompressed)."""
        dense = spec.num_embeddings * spec.embedding_dim
        if self.algorithm == Algorithm.NONE:
            reason, ratio = "algorithm none", None
        elif spec.num_embeddings < self.tt_min_rows:
            reason, ratio = f"{spec.num_embeddings} rows < tt_min_rows={self.tt_min_rows}", None
        else:
            ratio = tt_compression_ratio(spec, self.tt_ranks)
            if ratio >= self.tt_min_compression:
                tt = tt_num_parameters(spec, self.tt_ranks)
                return {
                    "table": spec.name,
                    "kind": "tt",
                    "parameters": tt,
                    "compression": dense / tt,
                    "reason": f"TT cores {ratio:.3g}x smaller, tt_min_compression={self.tt_min_compression}",
                }
            reason = f"TT cores only {ratio:.3g}x smaller < tt_min_compression={self.tt_min_compression}"
        return {
            "table": spec.name,
            "kind": "uncompressed",
            "parameters": dense,
            "compression": 1.0,
            "reason": reason,
        }


@dataclass(frozen=True)
class EmbeddingOptimizerSettings:
    """Optimizer of the embedding tables (TT cores and uncompressed tables).

    ``kind`` in sgd, adagrad, rowwise_adagrad (the kinds fbgemm and ``ecorec.tt`` fuse). ``update="fused"``
    applies the update inside the TT backward, once per batch; ``"plain"`` leaves gradients on the TT cores
    for a torch optimizer with the same rule. Uncompressed tables always use the torch optimizer.
    ``lr`` is the rate of uncompressed tables, ``tt_lr`` that of TT tables (``None``: ``lr``).
    """

    kind: str = "sgd"
    lr: float = 0.1
    eps: float = 1e-8
    update: str = "fused"
    tt_lr: float | None = None

    @property
    def tt_rate(self) -> float:
        """The TT tables' learning rate (``tt_lr``, else ``lr``)."""
        return self.lr if self.tt_lr is None else self.tt_lr

    def __post_init__(self) -> None:
        if self.kind not in ("sgd", "adagrad", "rowwise_adagrad"):
            raise ValueError(
                f"embedding optimizer kind must be sgd, adagrad or rowwise_adagrad, got {self.kind!r}"
            )
        if self.update not in ("fused", "plain"):
            raise ValueError(f"embedding optimizer update must be 'fused' or 'plain', got {self.update!r}")
        if not self.lr >= 0:
            raise ValueError(f"embedding optimizer lr must be >= 0, got {self.lr}")
        if self.tt_lr is not None and not self.tt_lr >= 0:
            raise ValueError(f"embedding optimizer tt_lr must be >= 0, got {self.tt_lr}")


def tt_num_parameters(spec: TableSpec, tt_ranks: Sequence[int]) -> int:
    """Parameters of the TT cores ``spec`` gets with ``tt_ranks`` (the shapes ``TTEmbeddingBag`` picks)."""
    from ecorec.tt import TTShapes

    shapes = TTShapes.from_sizes(spec.num_embeddings, spec.embedding_dim, list(tt_ranks))
    return int(shapes.num_parameters())


def tt_compression_ratio(spec: TableSpec, tt_ranks: Sequence[int]) -> float:
    """``N * D / TT parameters``: how many times smaller the TT cores are than the table (< 1: larger)."""
    return spec.num_embeddings * spec.embedding_dim / tt_num_parameters(spec, tt_ranks)


def derive_seed(seed: int, *names: str) -> int:
    """A 63-bit seed derived from ``seed`` and ``names`` (stable across processes, platforms and Python
    runs)."""
    digest = hashlib.sha256("\0".join([str(seed), *names]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def uncompressed_init_std(num_embeddings: int) -> float:
    """Std of the entries of :func:`uncompressed_init` (uniform on ``±1/sqrt(N)``): ``1/sqrt(3 N)``."""
    return 1.0 / math.sqrt(3.0 * num_embeddings)


def uncompressed_init(spec: TableSpec, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The initial ``[N, D]`` weight of an uncompressed table: uniform(-1/sqrt(N), 1/sqrt(N)) (torchrec's
    ``EmbeddingBagConfig`` default), drawn from a generator seeded by ``derive_seed(seed, name)``."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "table", spec.name))
    bound = math.sqrt(1.0 / spec.num_embeddings)
    weight = torch.empty(spec.num_embeddings, spec.embedding_dim, dtype=dtype)
    return weight.uniform_(-bound, bound, generator=gen)


def is_tt_table(module: nn.Module) -> bool:
    """Whether ``module`` is an ``ecorec.tt.TTEmbeddingBag``."""
    return hasattr(module, "cores") and hasattr(module, "set_gradient_hook")


def _tt_classes() -> tuple[Any, Any]:
    try:
        from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig
    except ImportError as err:  # pragma: no cover - only before the tt branch is installed
        raise ImportError(
            "TT tables need ecorec.tt (TTEmbeddingBag, TTOptimizerConfig); set algorithm='none' to train "
            "uncompressed tables"
        ) from err
    return TTEmbeddingBag, TTOptimizerConfig


def _build_tt(
    spec: TableSpec, settings: TableSettings, optimizer: EmbeddingOptimizerSettings | None, seed: int
) -> nn.Module:
    tt_cls, opt_cls = _tt_classes()
    fused = None
    if optimizer is not None and optimizer.update == "fused":
        fused = opt_cls(kind=optimizer.kind, lr=optimizer.tt_rate, eps=optimizer.eps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "table", spec.name))
        return tt_cls(
            spec.num_embeddings,
            spec.embedding_dim,
            list(settings.tt_ranks),
            mode="sum",
            include_last_offset=True,
            algorithm=settings.algorithm,
            micro_batches=settings.micro_batches,
            optimizer=fused,
            **settings.tt_init_kwargs(spec),
        )


def _build_uncompressed(spec: TableSpec, seed: int) -> nn.EmbeddingBag:
    table = nn.EmbeddingBag(spec.num_embeddings, spec.embedding_dim, mode="sum", include_last_offset=True)
    with torch.no_grad():
        table.weight.copy_(uncompressed_init(spec, seed))
    return table


def build_tables(
    specs: Sequence[TableSpec],
    settings: TableSettings,
    seed: int,
    *,
    names: Sequence[str] | None = None,
    optimizer: EmbeddingOptimizerSettings | None = None,
    device: torch.device | str | None = None,
) -> nn.ModuleDict:
    """Build the tables named in ``names`` (default: all of ``specs``), in that order, as an
    ``nn.ModuleDict``.

    TT tables get ``optimizer`` fused into their backward when ``optimizer.update == "fused"``; otherwise they
    keep plain core gradients. Weights are created on the CPU (so they do not depend on the device's RNG) and
    then moved to ``device``.
    """
    by_name: Mapping[str, TableSpec] = {s.name: s for s in specs}
    if len(by_name) != len(specs):
        raise ValueError("table names must be unique")
    wanted = list(names) if names is not None else [s.name for s in specs]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"unknown tables: {unknown[:10]}")
    tables = nn.ModuleDict()
    for name in wanted:
        spec = by_name[name]
        module = (
            _build_tt(spec, settings, optimizer, seed)
            if settings.compresses(spec)
            else _build_uncompressed(spec, seed)
        )
        tables[name] = module
    if device is not None:
        tables.to(device)
    return tables


def check_ids(values: torch.Tensor, num_embeddings: int, name: str = "") -> None:
    """Raise ``ValueError`` naming the table/feature ``name``, the first bad id and its position when an id of
    ``values [nnz]`` is outside ``[0, num_embeddings)`` (one min/max reduction)."""
    if not values.numel():
        return
    lo, hi = torch.aminmax(values)
    if int(lo) < 0 or int(hi) >= num_embeddings:
        bad = int(torch.nonzero((values < 0) | (values >= num_embeddings))[0, 0])
        raise ValueError(
            f"table/feature {name or '?'!r}: id {int(values[bad])} at position {bad} of the batch's "
            f"{values.numel()} ids is outside [0, {num_embeddings}) (the table has {num_embeddings} rows; "
            f"min id {int(lo)}, max id {int(hi)})"
        )


def check_lengths(lengths: torch.Tensor, name: str = "", num_values: int | None = None) -> None:
    """Raise ``ValueError`` naming the feature ``name`` when a bag length of ``lengths [B]`` is negative, or
    (``num_values`` given) when the lengths do not sum to the feature's number of values. One min and one sum
    per feature and batch."""
    if lengths.numel() and int(lengths.min()) < 0:
        bad = int(torch.nonzero(lengths < 0)[0, 0])
        raise ValueError(
            f"feature {name or '?'!r}: lengths must be >= 0, got {int(lengths[bad])} for bag {bad} of "
            f"{lengths.numel()} (a KeyedJaggedTensor's lengths count each bag's ids)"
        )
    if num_values is not None and int(lengths.sum()) != num_values:
        raise ValueError(
            f"feature {name or '?'!r}: lengths sum to {int(lengths.sum())} but the feature has {num_values} "
            "values (ids); each bag's length must count its ids"
        )


def check_kjt(features: KeyedJaggedTensor) -> None:
    """Check a ``KeyedJaggedTensor`` before it is split by key: every feature's lengths ``>= 0`` and all of
    them summing to the number of values (``ValueError`` naming the feature); torch would otherwise fail in
    ``split_with_sizes``, in an index check, or on offsets the caller never passed."""
    lengths = features.lengths()
    if lengths.numel() and int(lengths.min()) < 0:
        per_key = lengths.split(_bags_per_key(features))
        for key, part in zip(features.keys(), per_key):
            check_lengths(part, key)
    total, nnz = int(lengths.sum()), int(features.values().numel())
    if total != nnz:
        raise ValueError(
            f"KeyedJaggedTensor with keys {features.keys()[:10]}: its lengths sum to {total} but it has "
            f"{nnz} values (ids); each bag's length must count its ids"
        )


def _bags_per_key(features: KeyedJaggedTensor) -> list[int]:
    """Bags of each key (``stride`` per key, or the variable batch sizes)."""
    if features.variable_stride_per_key():
        return [int(n) for n in features.stride_per_key()]
    return [features.stride()] * len(features.keys())


def pool_table(
    table: nn.Module,
    values: torch.Tensor,
    offsets: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    name: str = "",
    validate: bool = True,
) -> torch.Tensor:
    """Pooled embeddings ``[B, D]`` of one table for bags given by ``values: [nnz]`` and ``offsets: [B +
    1]``.

    ``validate``: ids outside ``[0, num_embeddings)`` raise ``ValueError`` naming the table/feature ``name``,
    the bad id, its position and the table size, for TT and uncompressed tables alike (one min/max per
    table and batch; without it ``nn.EmbeddingBag`` fails deep inside torch, or on CUDA with a device-side
    assert); so do negative bag lengths ("lengths must be >= 0") and offsets that do not end at the number
    of ids.
    """
    if validate:
        check_lengths(offsets[1:] - offsets[:-1], name, values.numel())
        check_ids(values, int(table.num_embeddings), name)
    if weights is None:
        return table(values, offsets)
    return table(values, offsets, per_sample_weights=weights)


def set_tt_learning_rate(table: nn.Module, lr: float) -> None:
    """Set the learning rate of a TT table's fused optimizer."""
    setter = getattr(table, "set_learning_rate", None)
    if setter is None:
        raise TypeError(
            f"{type(table).__name__} has no set_learning_rate(lr); cannot schedule its fused update"
        )
    setter(lr)
