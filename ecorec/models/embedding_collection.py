"""``TTEmbeddingBagCollection``: a torchrec ``EmbeddingBagCollection`` whose large tables are TT-compressed.

Drop-in for torchrec's ``EmbeddingBagCollection`` (``KeyedJaggedTensor`` in, ``KeyedTensor`` out; it
implements ``EmbeddingBagCollectionInterface``, so ``torchrec.models.dlrm.DLRM`` takes it as its
``embedding_bag_collection``).
A table is stored as a :class:`~ecorec.tt.TTEmbeddingBag` when its config is a :class:`TTEmbeddingBagConfig`
with at least ``tt_min_rows`` rows, else as a plain ``nn.EmbeddingBag`` (small tables stay uncompressed, as in
the paper: a rank-32 TT of a 32-wide table only compresses from about 10^4 rows on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType
from torch import nn
from torchrec.distributed.utils import merge_fused_params, optimizer_type_to_emb_opt_type
from torchrec.modules.embedding_configs import DataType, EmbeddingBagConfig, pooling_type_to_str
from torchrec.modules.embedding_modules import (
    EmbeddingBagCollectionInterface,
    get_embedding_names_by_table,
    process_pooled_embeddings,
    reorder_inverse_indices,
)
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor

from ecorec.models.tables import check_ids, check_kjt
from ecorec.tt import TTEmbeddingBag, TTOptimizerConfig, TTOptimizerKind

DEFAULT_TT_MIN_ROWS = 10_000

#: fbgemm's fused optimizers that have a TT counterpart (``ecorec.tt.optim``), and back.
TT_OPTIMIZER_OF_EMB_OPT = {
    EmbOptimType.EXACT_SGD: TTOptimizerKind.SGD,
    EmbOptimType.EXACT_ADAGRAD: TTOptimizerKind.ADAGRAD,
    EmbOptimType.EXACT_ROWWISE_ADAGRAD: TTOptimizerKind.ROWWISE_ADAGRAD,
}
#: fbgemm's default ``eps`` of the Adagrad kinds (``SplitTableBatchedEmbeddingBagsCodegen``), used for a TT
#: table when the fused params name none, so TT and uncompressed tables of one model follow the same rule.
FBGEMM_DEFAULT_EPS = 1.0e-8
# Optimizer keywords that a TT update accepts only at the value it implies (torch's defaults).
_NEUTRAL_OPTIMIZER_KWARGS: dict[str, Any] = {
    "weight_decay": 0,
    "initial_accumulator_value": 0,
    "lr_decay": 0,
    "momentum": 0,
    "dampening": 0,
    "nesterov": False,
    "maximize": False,
    "foreach": None,
    "differentiable": False,
    "fused": None,
}


@dataclass
class TTEmbeddingBagConfig(EmbeddingBagConfig):
    """A torchrec ``EmbeddingBagConfig`` plus the TT settings of the table.

    Attributes (beyond ``EmbeddingBagConfig``'s ``num_embeddings``, ``embedding_dim``, ``name``,
    ``feature_names``, ``pooling``, ``data_type``, ...):
        tt_ranks: inner TT ranks ``[r_1, ..., r_{d-1}]`` (their number fixes ``d``).
        tt_p_shapes, tt_q_shapes: explicit factors of the rows / the dim (default: the most balanced).
        round_up_rows: suggested p-shapes may round the rows up (TT-Rec's rule); ``False``: ``prod(p) == N``.
        algorithm: ``"ecorec"``, ``"fbtt"`` or ``"elrec"``.
        micro_batches, max_micro_uniques: ``ecorec``'s micro-batching.
        weight_init, init_std: TT initialisation (see :mod:`ecorec.tt.init`).
    """

    tt_ranks: list[int] = field(default_factory=lambda: [32, 32])
    tt_p_shapes: list[int] | None = None
    tt_q_shapes: list[int] | None = None
    round_up_rows: bool = True
    algorithm: str = "ecorec"
    micro_batches: int = 1
    max_micro_uniques: int | None = None
    weight_init: str = "normal"
    init_std: float | None = None


def _dtype(config: EmbeddingBagConfig) -> torch.dtype:
    if config.data_type == DataType.FP32:
        return torch.float32
    if config.data_type == DataType.FP16:
        return torch.float16
    raise ValueError(f"table {config.name!r}: data_type={config.data_type} is not supported (FP32 or FP16)")


class TTEmbeddingBagCollection(EmbeddingBagCollectionInterface):
    """Pooled embeddings of several features, some tables TT-compressed.

    Shape letters: ``F`` features, ``B`` batch, ``D_f`` embedding dim of feature ``f``. Input and output as
    torchrec's ``EmbeddingBagCollection``::

        features (KJT)   f1: [[3, 7], [], [1]]   f2: [[4], [5], [2, 8, 9]]    (values, lengths per key)
        output (KT)      values (B, sum_f D_f), keys ["f1", "f2"], length_per_key [D_f1, D_f2]

    Args:
        tables: table configs; :class:`TTEmbeddingBagConfig` tables with ``num_embeddings >= tt_min_rows``
            are TT-compressed, the others (and plain ``EmbeddingBagConfig`` tables) are ``nn.EmbeddingBag``
            initialised by the config's ``init_fn``.
        is_weighted: pass the KJT's weights as ``per_sample_weights``.
        device: of all tables.
        tt_min_rows: smallest table compressed.
        optimizer: fused optimizer of the TT tables (``None``: plain gradients); the uncompressed tables
            always have plain parameters for the caller's optimizer.
        deterministic, backend, validate_indices: passed to every :class:`TTEmbeddingBag`; with
            ``validate_indices`` the ids of every table (TT or not) are checked, and an id out of range
            raises ``ValueError`` naming the table's features.

    Example:
        >>> tables = [TTEmbeddingBagConfig(num_embeddings=50_000, embedding_dim=16, name="t1",
        ...                                feature_names=["f1"], tt_ranks=[8, 8])]
        >>> ebc = TTEmbeddingBagCollection(tables)
        >>> kjt = KeyedJaggedTensor.from_lengths_sync(
        ...     ["f1"], torch.tensor([3, 7, 1]), torch.tensor([2, 0, 1])
        ... )
        >>> ebc(kjt).values().shape
        torch.Size([3, 16])
    """

    def __init__(
        self,
        tables: Sequence[EmbeddingBagConfig],
        *,
        is_weighted: bool = False,
        device: torch.device | str | None = None,
        tt_min_rows: int = DEFAULT_TT_MIN_ROWS,
        optimizer: TTOptimizerConfig | None = None,
        deterministic: bool = False,
        backend: str = "auto",
        validate_indices: bool = True,
    ) -> None:
        super().__init__()
        self._is_weighted = is_weighted
        self._validate_indices = validate_indices
        self._embedding_bag_configs = list(tables)
        self.tt_min_rows = tt_min_rows
        self.embedding_bags = nn.ModuleDict()
        seen: set[str] = set()
        for config in self._embedding_bag_configs:
            if config.name in seen:
                raise ValueError(f"Duplicate table name {config.name!r}")
            seen.add(config.name)
            if not config.feature_names:
                config.feature_names = [config.name]
            mode = pooling_type_to_str(config.pooling)
            if isinstance(config, TTEmbeddingBagConfig) and config.num_embeddings >= tt_min_rows:
                self.embedding_bags[config.name] = TTEmbeddingBag(
                    config.num_embeddings,
                    config.embedding_dim,
                    config.tt_ranks,
                    tt_p_shapes=config.tt_p_shapes,
                    tt_q_shapes=config.tt_q_shapes,
                    round_up_rows=config.round_up_rows,
                    mode=mode,
                    include_last_offset=True,
                    algorithm=config.algorithm,
                    micro_batches=config.micro_batches,
                    max_micro_uniques=config.max_micro_uniques,
                    optimizer=optimizer,
                    weight_init=config.weight_init,
                    init_std=config.init_std,
                    deterministic=deterministic,
                    backend=backend,
                    validate_indices=validate_indices,
                    device=device,
                    dtype=_dtype(config),
                )
            else:
                self.embedding_bags[config.name] = nn.EmbeddingBag(
                    config.num_embeddings,
                    config.embedding_dim,
                    mode=mode,
                    include_last_offset=True,
                    device=device,
                    dtype=_dtype(config),
                )
        self._feature_names = [list(config.feature_names) for config in self._embedding_bag_configs]
        self._embedding_names = [
            name for names in get_embedding_names_by_table(self._embedding_bag_configs) for name in names
        ]
        self._lengths_per_embedding = [
            config.embedding_dim for config in self._embedding_bag_configs for _ in config.feature_names
        ]
        self._reset_uncompressed()

    def _reset_uncompressed(self) -> None:
        for config in self._embedding_bag_configs:
            module = self.embedding_bags[config.name]
            if isinstance(module, nn.EmbeddingBag) and module.weight.device.type != "meta":
                assert config.init_fn is not None
                with torch.no_grad():
                    config.init_fn(module.weight)

    def reset_parameters(self) -> None:
        """Re-initialise every table (TT tables by their ``weight_init``, the others by their ``init_fn``)."""
        for module in self.embedding_bags.values():
            if isinstance(module, TTEmbeddingBag):
                module.reset_parameters()
        self._reset_uncompressed()

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        """Pool every feature of every table: ``KeyedTensor`` of ``values (B, sum_f D_f)`` in table order.

        A table shared by several features is looked up once, over the features' bags concatenated.
        """
        if self._validate_indices:
            check_kjt(features)  # negative lengths name the feature, on TT and uncompressed tables alike
        inverse_indices = reorder_inverse_indices(
            inverse_indices=features.inverse_indices_or_none(),
            feature_names=[name for names in self._feature_names for name in names],
        )
        feature_dict = features.to_dict()
        pooled: list[torch.Tensor] = []
        for names, module in zip(self._feature_names, self.embedding_bags.values()):
            # One lookup per table over all its features (F_t * B bags), as fbgemm's TBE does: a fused
            # optimizer then updates the table once per batch, and the features share their unique rows.
            jagged = [feature_dict[name] for name in names]
            lengths = torch.cat([j.lengths() for j in jagged])
            offsets = torch.zeros(lengths.numel() + 1, dtype=lengths.dtype, device=lengths.device)
            torch.cumsum(lengths, 0, out=offsets[1:])
            values = torch.cat([j.values() for j in jagged])
            weights = torch.cat([j.weights() for j in jagged]) if self._is_weighted else None
            if self._validate_indices:
                check_ids(values, int(module.num_embeddings), "/".join(names))
            out = module(values, offsets, per_sample_weights=weights).float()
            pooled.extend(out.chunk(len(names), dim=0))
        return KeyedTensor(
            keys=self._embedding_names,
            values=process_pooled_embeddings(pooled_embeddings=pooled, inverse_indices=inverse_indices),
            length_per_key=self._lengths_per_embedding,
        )

    def is_weighted(self) -> bool:
        return self._is_weighted

    def embedding_bag_configs(self) -> list[EmbeddingBagConfig]:
        return self._embedding_bag_configs

    def compressed_tables(self) -> list[str]:
        """Names of the TT-compressed tables."""
        return [name for name, module in self.embedding_bags.items() if isinstance(module, TTEmbeddingBag)]

    @property
    def device(self) -> torch.device:
        """Where the tables live (torchrec's ``EmbeddingBagCollection.device``; ``meta`` before sharding)."""
        return next(self.parameters()).device


def tt_optimizer_from_fused_params(
    fused_params: Mapping[str, Any], *, table: str
) -> TTOptimizerConfig | None:
    """The TT fused update equal to torchrec/fbgemm fused params (``{"optimizer": EmbOptimType,
    "learning_rate", "eps"}``, what ``apply_optimizer_in_backward`` and a sharder's ``fused_params`` become);
    ``None`` when they name no optimizer.

    ``EXACT_SGD`` -> ``sgd``, ``EXACT_ADAGRAD`` -> ``adagrad``, ``EXACT_ROWWISE_ADAGRAD`` ->
    ``rowwise_adagrad`` (the rules of :mod:`ecorec.tt.optim`, which equal fbgemm's); ``eps`` defaults to
    fbgemm's ``1e-8``. Any other optimizer, or a keyword without a TT meaning (``weight_decay=0.01``), raises
    ``ValueError`` naming the table.
    """
    params = dict(fused_params)
    if "lr" in params:
        params["learning_rate"] = params.pop("lr")
    optimizer = params.pop("optimizer", None)
    if optimizer is None:
        return None
    try:
        emb_opt = EmbOptimType(optimizer)
        kind = TT_OPTIMIZER_OF_EMB_OPT[emb_opt]
    except (ValueError, KeyError):
        allowed = [str(k) for k in TT_OPTIMIZER_OF_EMB_OPT]
        raise ValueError(
            f"TT table {table!r}: fused optimizer {optimizer!s} has no TT update; use one of {allowed} "
            f"(torch.optim.SGD, torch.optim.Adagrad, torchrec.optim.RowWiseAdagrad)"
        ) from None
    lr = params.pop("learning_rate", None)
    if lr is None:
        raise ValueError(f"TT table {table!r}: fused optimizer {emb_opt!s} needs a learning rate ('lr')")
    eps = params.pop("eps", None)
    for key, value in params.items():
        if value is None or (key in _NEUTRAL_OPTIMIZER_KWARGS and value == _NEUTRAL_OPTIMIZER_KWARGS[key]):
            continue
        raise ValueError(
            f"TT table {table!r}: fused param {key}={value!r} has no TT counterpart (the TT update takes "
            f"optimizer, lr and eps only)"
        )
    if kind is TTOptimizerKind.SGD:  # eps has no role in SGD: the config's default keeps equal updates equal
        return TTOptimizerConfig(kind=kind, lr=float(lr))
    return TTOptimizerConfig(kind=kind, lr=float(lr), eps=FBGEMM_DEFAULT_EPS if eps is None else float(eps))


def _same_update(a: TTOptimizerConfig, b: TTOptimizerConfig) -> bool:
    """Whether two fused updates apply the same rule (``eps`` only matters to the Adagrad kinds)."""
    return a.kind == b.kind and a.lr == b.lr and (a.kind is TTOptimizerKind.SGD or a.eps == b.eps)


def resolve_tt_optimizer(
    table: TTEmbeddingBag, name: str, sharder_fused_params: Mapping[str, Any] | None = None
) -> TTOptimizerConfig | None:
    """The fused update a sharded TT table applies, from the sources torchrec reads for its own tables.

    In order: an optimizer applied to the cores with ``apply_optimizer_in_backward`` (their
    ``_optimizer_classes`` / ``_optimizer_kwargs``, merged over the sharder's ``fused_params`` as torchrec
    merges them), else the sharder's ``fused_params`` when they name an ``optimizer``, else the table's own
    :class:`~ecorec.tt.TTOptimizerConfig` (``TTEmbeddingBagCollection(optimizer=...)``); ``None``: plain
    gradients on the cores. Two sources that disagree raise ``ValueError`` naming the table.
    """
    classes = getattr(table.cores[0], "_optimizer_classes", None)
    kwargs = getattr(table.cores[0], "_optimizer_kwargs", None)
    param_params: dict[str, Any] = {}
    if classes:
        if len(classes) != 1 or kwargs is None or len(kwargs) != 1:
            raise ValueError(f"TT table {name!r}: one in-backward optimizer per table, got {len(classes)}")
        param_params = {**kwargs[0], "optimizer": optimizer_type_to_emb_opt_type(classes[0])}
    merged = merge_fused_params(dict(sharder_fused_params or {}), param_params)
    from_torchrec = tt_optimizer_from_fused_params(merged, table=name)
    own = table.optimizer
    if from_torchrec is not None and own is not None and not _same_update(from_torchrec, own):
        raise ValueError(
            f"TT table {name!r}: its TTEmbeddingBagCollection optimizer {own} differs from the torchrec "
            f"optimizer {from_torchrec} (apply_optimizer_in_backward / sharder fused_params); set one of them"
        )
    return from_torchrec if from_torchrec is not None else own
