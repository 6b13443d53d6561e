"""``TTEmbeddingBag``: an ``nn.EmbeddingBag`` whose table is stored as TT cores.

Shape letters: ``B`` bags, ``nnz`` indices, ``N`` rows, ``D`` embedding dim, ``d`` cores, ``p``/``q`` factors
of ``N``/``D``, ``r`` ranks, ``U`` distinct rows, ``M`` micro-batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ecorec.tt.init import WEIGHT_INITS, init_tt_cores_
from ecorec.tt.inputs import normalize_bag_input
from ecorec.tt.ops import (
    ALGORITHMS,
    BACKENDS,
    DEFAULT_FBTT_CHUNK_SIZE,
    TTLookup,
    resolve_backend,
    tt_backward,
    tt_forward,
    tt_fused_update_,
    tt_preprocess,
)
from ecorec.tt.optim import TTOptimizerConfig
from ecorec.tt.primitives import PRODUCT_STRATEGIES
from ecorec.tt.reference import tt_full_weight
from ecorec.tt.shapes import TTShapes

GradientHook = Callable[[list[torch.Tensor]], None]
POOLING_MODES = ("sum", "mean")


class _TTLookupFunction(torch.autograd.Function):
    """Autograd node of one lookup: dense core gradients, or a fused update (then no gradient is returned)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        module: TTEmbeddingBag,
        lookup: TTLookup,
        per_sample_weights: torch.Tensor | None,
        *cores: torch.Tensor,
    ) -> torch.Tensor:
        output = tt_forward(cores, module.shapes, lookup, per_sample_weights, module.mode)
        ctx.module = module
        ctx.lookup = lookup
        ctx.per_sample_weights = per_sample_weights
        ctx.save_for_backward(*cores)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        module: TTEmbeddingBag = ctx.module
        cores = ctx.saved_tensors
        grads = tt_backward(
            cores,
            module.shapes,
            ctx.lookup,
            grad_output,
            ctx.per_sample_weights,
            module.mode,
            deterministic=module.deterministic,
        )
        if module._gradient_hook is not None:
            module._gradient_hook(grads)
        if module.optimizer is None:
            return (None, None, None, *grads)
        tt_fused_update_(module.optimizer, cores, grads, module.optimizer_states(), ctx.lookup.backend)
        return (None, None, None, *(None for _ in grads))


class TTEmbeddingBag(nn.Module):
    """Bags of embeddings from a TT-compressed table, with the interface of ``nn.EmbeddingBag``.

    The ``N x D`` table is ``d`` TT cores, core ``t`` a parameter of shape ``(p_t, r_t * q_t * r_{t+1})``; row
    ``idx`` (digits ``I_t`` row-major over ``p``) is ``G_0[I_0] @ G_1[I_1] @ ... @ G_{d-1}[I_{d-1}]``
    flattened row-major over ``q``, truncated to ``D`` columns.

    Input layout (as ``nn.EmbeddingBag``; ``include_last_offset=True`` shown)::

        indices  [ 3  7  7 | . | 1 ]      (nnz,) int32/int64 rows in [0, N)
        offsets  [ 0        3   3   4 ]   (B+1,) bag boundaries   (or lengths [3, 0, 1], (B,))
        output   [ E3+E7+E7 | 0 | E1 ]    (B, D); "mean" divides by the bag length, empty bags give zeros

    Args:
        num_embeddings: ``N``.
        embedding_dim: ``D``.
        tt_ranks: inner ranks ``[r_1, ..., r_{d-1}]`` or one int for all.
        tt_p_shapes, tt_q_shapes: explicit factors of ``N`` / ``D`` (default: the most balanced; ``prod(q) ==
            D`` unless ``enforce_embedding_dim=False``).
        num_cores: ``d`` when no shape list fixes it (default 3).
        enforce_embedding_dim: suggested q-shapes multiply to exactly ``D`` (else round up; extra columns are
            computed and dropped).
        round_up_rows: suggested p-shapes may factor ``N`` rounded up to a multiple of ``10^k`` when that is
            more balanced (TT-Rec's rule, the default); ``False``: an exact factorisation, ``prod(p) == N``
            (explicit ``tt_p_shapes`` must then multiply to ``N``). See :meth:`TTShapes.from_sizes`.
        mode: ``"sum"`` or ``"mean"``.
        include_last_offset: ``offsets`` has ``B + 1`` entries ending at ``len(indices)``.
        algorithm: ``"ecorec"`` (unique rows + prefix groups, micro-batched), ``"fbtt"`` (TT-Rec, per
            occurrence, chunked) or ``"elrec"`` (EL-Rec: prefix reuse forward, per-unique backward); same
            storage for all.
        micro_batches: ``M`` for ``ecorec`` (capped at ``U``).
        max_micro_uniques: for ``ecorec``, at most this many unique rows per micro-batch (raises ``M`` if
            needed). fbtt_chunk_size: occurrences per chunk for ``fbtt`` (0: all at once).
        optimizer: ``None`` (gradients land in the cores' ``.grad``, any torch optimizer works) or a
            :class:`TTOptimizerConfig` (fused update inside backward, once per batch; ``.grad`` stays
            ``None``; state in buffers ``optimizer_state_<t>``).
        weight_init: ``"normal"``, ``"uniform"`` or ``"sampled_gaussian"`` (see :mod:`ecorec.tt.init`).
        init_std: std for ``"normal"`` entries / target row std for ``"sampled_gaussian"``.
        deterministic: accumulate core-row gradients with sorted segment sums instead of ``index_add_`` (whose
            CUDA kernel sums with float atomics), on every core and algorithm. (The op-level autograd of
            ``torch.ops.ecorec.tt_forward`` has no such argument: it follows
            ``torch.are_deterministic_algorithms_enabled()``.)
        product_strategy: how the small per-item GEMMs run in the torch backend (``"auto"``, ``"gather"``,
            ``"grouped"``, ``"slices"``; same results, different speed and transient memory; see
            :func:`ecorec.tt.primitives.resolve_product_strategy`).
        backend: ``"auto"`` (the CUDA kernels of ``kernels/`` for CUDA cores when they can run the lookup:
            ``algorithm="ecorec"``, 3 cores, float32/float64; built on first use; else the torch path),
            ``"torch"`` (force the pure-torch path) or ``"cuda"`` (the CUDA kernels or a clear error); see
            :func:`ecorec.tt.ops.resolve_backend`. ``product_strategy`` applies to the torch path only.
        validate_indices: check index range and offsets/lengths values (O(nnz); a device sync on CUDA).
        device, dtype: of the cores.

    With a fused ``optimizer`` call the module once per batch (concatenate the bags of features that share the
    table, as :class:`ecorec.models.TTEmbeddingBagCollection` does): the first backward updates the cores in
    place, so a second lookup of the same batch would find the cores it saved modified, and autograd raises.

    Example:
        >>> bag = TTEmbeddingBag(1000, 16, [8, 8], include_last_offset=True)
        >>> out = bag(torch.tensor([3, 7, 7, 1]), torch.tensor([0, 3, 3, 4]))
        >>> out.shape
        torch.Size([3, 16])
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        tt_ranks: Sequence[int] | int,
        *,
        tt_p_shapes: Sequence[int] | None = None,
        tt_q_shapes: Sequence[int] | None = None,
        num_cores: int | None = None,
        enforce_embedding_dim: bool = True,
        round_up_rows: bool = True,
        mode: str = "sum",
        include_last_offset: bool = False,
        algorithm: str = "ecorec",
        micro_batches: int = 1,
        max_micro_uniques: int | None = None,
        fbtt_chunk_size: int = DEFAULT_FBTT_CHUNK_SIZE,
        optimizer: TTOptimizerConfig | None = None,
        weight_init: str = "normal",
        init_std: float | None = None,
        deterministic: bool = False,
        product_strategy: str = "auto",
        backend: str = "auto",
        validate_indices: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"mode must be one of {POOLING_MODES}, got mode={mode!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got algorithm={algorithm!r}")
        if product_strategy not in PRODUCT_STRATEGIES:
            raise ValueError(
                f"product_strategy must be one of {PRODUCT_STRATEGIES}, got {product_strategy!r}"
            )
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
        if weight_init not in WEIGHT_INITS:
            raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got weight_init={weight_init!r}")
        if isinstance(micro_batches, bool) or not isinstance(micro_batches, int) or micro_batches < 1:
            raise ValueError(f"micro_batches must be an int >= 1, got micro_batches={micro_batches!r}")
        if max_micro_uniques is not None and max_micro_uniques < 1:
            raise ValueError(
                f"max_micro_uniques must be >= 1 or None, got max_micro_uniques={max_micro_uniques}"
            )
        if fbtt_chunk_size < 0:
            raise ValueError(f"fbtt_chunk_size must be >= 0, got fbtt_chunk_size={fbtt_chunk_size}")
        if algorithm != "ecorec" and (micro_batches != 1 or max_micro_uniques is not None):
            raise ValueError(
                f"micro_batches/max_micro_uniques apply to algorithm='ecorec' only, got "
                f"algorithm={algorithm!r} with micro_batches={micro_batches}, "
                f"max_micro_uniques={max_micro_uniques}"
            )
        if optimizer is not None and not isinstance(optimizer, TTOptimizerConfig):
            raise ValueError(f"optimizer must be a TTOptimizerConfig or None, got {type(optimizer).__name__}")
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating point dtype, got dtype={dtype}")
        if optimizer is not None:
            optimizer.check_dtype(dtype)
        self.shapes = TTShapes.from_sizes(
            num_embeddings,
            embedding_dim,
            tt_ranks,
            p_shapes=tt_p_shapes,
            q_shapes=tt_q_shapes,
            num_cores=num_cores,
            enforce_embedding_dim=enforce_embedding_dim,
            round_up_rows=round_up_rows,
        )
        self.mode = mode
        self.include_last_offset = include_last_offset
        self.algorithm = algorithm
        self.micro_batches = micro_batches
        self.max_micro_uniques = max_micro_uniques
        self.fbtt_chunk_size = fbtt_chunk_size
        self.optimizer = optimizer
        self.weight_init = weight_init
        self.init_std = init_std
        self.deterministic = deterministic
        self.product_strategy = product_strategy
        self.backend = backend
        self.validate_indices = validate_indices
        self._gradient_hook: GradientHook | None = None
        self.cores = nn.ParameterList(
            [
                nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
                for shape in self.shapes.core_shapes()
            ]
        )
        if optimizer is not None:
            for t, shape in enumerate(optimizer.state_shapes(self.shapes.core_shapes())):
                if shape is not None:
                    self.register_buffer(
                        f"optimizer_state_{t}", torch.zeros(shape, device=device, dtype=dtype)
                    )
        self.reset_parameters()

    @property
    def num_embeddings(self) -> int:
        return self.shapes.num_embeddings

    @property
    def embedding_dim(self) -> int:
        return self.shapes.embedding_dim

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the cores (``weight_init``), zero the optimizer state; skips ``meta`` tensors."""
        init_tt_cores_(
            list(self.cores), self.shapes, self.weight_init, init_std=self.init_std, generator=generator
        )
        for state in self.optimizer_states():
            if state is not None and state.device.type != "meta":
                with torch.no_grad():
                    state.zero_()

    def optimizer_states(self) -> list[torch.Tensor | None]:
        """Per core, the fused optimizer's state buffer (``None`` for SGD or without an optimizer)."""
        return [getattr(self, f"optimizer_state_{t}", None) for t in range(self.shapes.num_cores)]

    def set_learning_rate(self, lr: float) -> None:
        """Change the fused optimizer's learning rate (for schedules)."""
        if self.optimizer is None:
            raise ValueError(
                "set_learning_rate needs a fused optimizer; this TTEmbeddingBag has optimizer=None"
            )
        self.optimizer = dataclasses.replace(self.optimizer, lr=lr)

    def set_gradient_hook(self, fn: GradientHook | None) -> None:
        """Call ``fn(grads)`` on the list of dense core gradients of every backward, before they are returned
        to autograd (``optimizer=None``) or applied by the fused optimizer; ``fn`` may modify them in place
        (data parallel all-reduces there). ``None`` removes the hook."""
        self._gradient_hook = fn

    def forward(
        self,
        indices: torch.Tensor,
        offsets: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        per_sample_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled embeddings.

        Args:
            indices: ``(nnz,)`` (with ``offsets`` or ``lengths``) or ``(B, L)``; int32/int64 in ``[0, N)``.
            offsets: ``(B,)``, or ``(B+1,)`` ending at ``nnz`` when ``include_last_offset``.
            lengths: ``(B,)`` non-negative bag lengths summing to ``nnz``.
            per_sample_weights: ``indices``-shaped weights of the cores' dtype (``mode="sum"`` only; no
                gradient flows to them).

        Returns:
            ``Tensor[B, D]``.
        """
        core0 = self.cores[0]
        bag = normalize_bag_input(
            indices,
            offsets,
            lengths,
            per_sample_weights,
            num_embeddings=self.num_embeddings,
            include_last_offset=self.include_last_offset,
            mode=self.mode,
            device=core0.device,
            dtype=core0.dtype,
            validate_values=self.validate_indices,
        )
        if bag.per_sample_weights is not None and bag.per_sample_weights.requires_grad:
            raise ValueError(
                "per_sample_weights.requires_grad=True is not supported by TTEmbeddingBag; detach them"
            )
        lookup = tt_preprocess(
            bag.indices,
            bag.offsets,
            self.shapes,
            algorithm=self.algorithm,
            micro_batches=self.micro_batches,
            max_micro_uniques=self.max_micro_uniques,
            fbtt_chunk_size=self.fbtt_chunk_size,
            backend=resolve_backend(
                self.backend,
                core0.device,
                algorithm=self.algorithm,
                num_cores=self.shapes.num_cores,
                dtype=core0.dtype,
            ),
            product_strategy=self.product_strategy,
        )
        cores = tuple(self.cores)
        if torch.is_grad_enabled() and any(core.requires_grad for core in cores):
            return _TTLookupFunction.apply(self, lookup, bag.per_sample_weights, *cores)
        return tt_forward(cores, self.shapes, lookup, bag.per_sample_weights, self.mode)

    def full_weight(self) -> torch.Tensor:
        """The dense ``Tensor[N, D]`` table, differentiable; ``O(prod(p) prod(q))`` memory (small tables)."""
        return tt_full_weight(list(self.cores), self.shapes)

    def extra_repr(self) -> str:
        s = self.shapes
        parts = [
            f"{s.num_embeddings}, {s.embedding_dim}",
            f"p_shapes={list(s.p_shapes)}",
            f"q_shapes={list(s.q_shapes)}",
            f"ranks={list(s.ranks)}",
            f"mode={self.mode!r}",
            f"algorithm={self.algorithm!r}",
        ]
        if self.algorithm == "ecorec" and (self.micro_batches != 1 or self.max_micro_uniques is not None):
            parts.append(f"micro_batches={self.micro_batches}, max_micro_uniques={self.max_micro_uniques}")
        if self.include_last_offset:
            parts.append("include_last_offset=True")
        if self.optimizer is not None:
            parts.append(f"optimizer={self.optimizer.kind.value}(lr={self.optimizer.lr})")
        return ", ".join(parts)
