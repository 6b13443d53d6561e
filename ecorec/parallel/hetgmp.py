"""HET-GMP ("hetgmp"): uncompressed rows sharded by owner rank, hot-row mirrors, bounded staleness.

Every sparse feature's rows live in one global id space (feature ``f``'s row ``i`` is global id
``offset[f] + i``). A partition (``ecorec.planner.partition``) gives each global row an owner rank and each
rank its training samples; rank ``r`` stores the rows it owns plus mirrors of the top ``store_rate`` fraction
of its priority list. Samples are data parallel (``layout="local"``, the rank's own ``b`` samples of the
partition; ``ecorec.data.partitioned``) and so is the head (gradients all-reduced by ``HybridParallelModel``).

Per-row version clocks count *occurrence-weighted* updates: a batch that touches row ``e`` ``k`` times adds
``k`` to ``e``'s clock when its gradient reaches the owner.

One step, every rank (collectives in the same order everywhere):

1. **pull** (forward of step t): deduplicate the batch's global ids; for every non-owned id send
   ``(id, local version)`` to its owner (local version of a mirror, or ``STALE`` when not stored); the owner
   replies with its clock; a query is outdated iff ``local == STALE or local + bound < owner clock``, and only
   outdated rows' values (+ the row-wise Adagrad state) travel back. A refreshed mirror becomes
   ``owner value + its not-yet-pushed local delta`` (read-your-writes) and takes the owner's clock.
2. forward/backward of the head over the pooled rows (``[b, F, D]``, sum pooling).
3. **push** (backward of step t): per unique id the gradient sum ``g`` and occurrence count ``k``.
   Owned rows: kept for the owner's update. Mirrors: applied to the local copy at once (``delta`` by the same
   rule the owner uses, on the mirror's copy of the optimizer state), accumulated with their count, and
   pushed when more than ``bound`` updates are pending (then the local clock advances by the pushed count).
   Other rows: pushed at once. The owner sums its own and every received gradient per row and applies the
   optimizer once (SGD ``w -= lr*g``; row-wise Adagrad ``s += mean(g^2); w -= lr*g/(sqrt(s)+eps)``), and
   advances the clock by the summed counts.
4. optional **prefetch** (``prefetch=True``): the pull of step t+1's batch runs right after step t's push,
   inside step t's backward (HET-GMP's ``pushPull``); with ``bound=0`` both orders read identical values.

``bound=0`` is synchronous SGD for the embeddings: every touched mirror pushes every step (``k >= 1 > 0``),
and any clock gap refetches; the losses and weights equal one process training on the global batch.
With ``bound > 0`` and row-wise Adagrad, a mirror's buffered gradients reach the owner as one summed update
(one Adagrad step instead of several), as in any stale-synchronous scheme.

Counters (``HetGMPStats``, per rank, cumulative): remote rows fetched (value payloads), their bytes, query
bytes (ids + versions + clock replies), pushed rows and bytes, the largest staleness ever read
(owner clock minus the version served), created and applied gradient sums (for the exactly-once check).
:meth:`HetGMPEmbeddings.flush` pushes every pending mirror update (call it before reading the weights).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from ecorec.models import EmbeddingOptimizerSettings, TableSpec, uncompressed_init
from ecorec.models.tables import check_kjt
from ecorec.parallel.base import EmbeddingStrategy
from ecorec.parallel.comm import CommMeter
from ecorec.parallel.env import ShardingEnv
from ecorec.parallel.hybrid import HybridParallelModel
from ecorec.parallel.types import BatchLike, InputLayout, ParallelMode, StepOutput

__all__ = ["STALE", "HetGMPEmbeddings", "HetGMPModel", "HetGMPStats", "HetGMPStore"]

STALE = -(2**62)
"""Version of a mirror that was never fetched: always outdated."""


@dataclass
class HetGMPStats:
    """Cumulative per-rank counters (see the module docstring)."""

    steps: int = 0
    fetched_rows: int = 0
    fetched_bytes: int = 0
    query_bytes: int = 0
    pushed_rows: int = 0
    pushed_bytes: int = 0
    max_staleness: int = 0
    local_mirror_reads: int = 0
    per_step_fetched: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "per_step_fetched"}


class HetGMPStore(nn.Module):
    """This rank's stored rows: owned rows ``[0, n_own)``, then mirrors ``[n_own, n_own + n_mirror)``.

    Buffers: ``ids [S]`` global ids; ``weight [S, D]``; ``version [S]`` int64; ``state [S]`` row-wise Adagrad
    sums (a copy for mirrors); ``pending_count [n_mirror]``; ``pending_grad [n_mirror, D]`` (gradient not yet
    pushed); ``pending_delta [n_mirror, D]`` (local change not yet at the owner); ``slot [E]`` int64 (global
    id -> slot or -1; dense, one int64 per global row); ``owner [E]`` int64.
    """

    def __init__(self, owner: torch.Tensor, owned: torch.Tensor, mirrors: torch.Tensor, weight: torch.Tensor):
        super().__init__()
        n_own, n_mir = owned.numel(), mirrors.numel()
        ids = torch.cat([owned, mirrors])
        slot = torch.full((owner.numel(),), -1, dtype=torch.long)
        slot[ids] = torch.arange(ids.numel())
        version = torch.zeros(ids.numel(), dtype=torch.long)
        version[n_own:] = STALE
        D = weight.shape[1]
        self.n_own, self.n_mirror = n_own, n_mir
        self.register_buffer("owner", owner.long())
        self.register_buffer("ids", ids.long())
        self.register_buffer("slot", slot)
        self.register_buffer("weight", weight)
        self.register_buffer("version", version)
        self.register_buffer("state", torch.zeros(ids.numel(), dtype=weight.dtype))
        self.register_buffer("pending_count", torch.zeros(n_mir, dtype=torch.long))
        self.register_buffer("pending_grad", torch.zeros(n_mir, D, dtype=weight.dtype))
        self.register_buffer("pending_delta", torch.zeros(n_mir, D, dtype=weight.dtype))

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of the owned rows and of the mirrors (values, versions, state, pending buffers)."""
        D, es = self.weight.shape[1], self.weight.element_size()
        row = D * es + 8 + es
        return {"owned": self.n_own * row, "mirrors": self.n_mirror * (row + 8 + 2 * D * es)}


def _exchange(
    send: torch.Tensor,
    send_counts: Sequence[int],
    recv_counts: Sequence[int],
    group: dist.ProcessGroup | None,
    meter: CommMeter | None = None,
) -> torch.Tensor:
    """``all_to_all_single`` of rows (dim 0) with per-rank counts; returns the received rows. ``meter``
    records the bytes sent to each rank and the time blocked (the whole exchange: it is synchronous)."""
    tail = send.shape[1:]
    width = int(np.prod(tail)) if tail else 1
    recv = send.new_empty((int(sum(recv_counts)), *tail))
    if meter is not None:
        meter.sent("fetch", [c * width * send.element_size() for c in send_counts])
    with meter.waiting("fetch") if meter is not None else contextlib.nullcontext():
        dist.all_to_all_single(
            recv.view(-1) if recv.numel() else recv.reshape(-1),
            send.contiguous().view(-1) if send.numel() else send.reshape(-1),
            [c * width for c in recv_counts],
            [c * width for c in send_counts],
            group=group,
        )
    return recv


def _counts(send_counts: torch.Tensor, group: dist.ProcessGroup | None) -> list[int]:
    recv = torch.empty_like(send_counts)
    dist.all_to_all_single(recv, send_counts.contiguous(), group=group)
    return recv.tolist()


class HetGMPEmbeddings(EmbeddingStrategy):
    """HET-GMP's embedding store as an ``EmbeddingStrategy`` (``layout="local"``).

    Args (``HetGMPEmbeddings(specs, env, owner, mirrors, optimizer, *, bound, seed, prefetch=False)``):
        specs: every table in the global feature order (uncompressed; one global id space).
        env: :class:`~ecorec.parallel.env.ShardingEnv` (rank, world size, group, device; no placement: rows,
            not tables, are placed, by ``owner``), as every other strategy takes.
        owner: ``[E]`` owner rank of every global row (``Partition.owner``).
        mirrors: global ids this rank mirrors (``Partition.mirrors_of(rank, store_rate)``).
        optimizer: ``sgd`` or ``rowwise_adagrad`` (applied by the owner).
        bound: staleness bound (0 = synchronous).
        seed: run seed; initial rows are ``uncompressed_init`` of every table (the other modes' weights).
        prefetch: pull step t+1's rows during step t's backward (``HetGMPModel`` feeds the next batch).

    The store (``tables["hetgmp"]``, a :class:`HetGMPStore`) holds the rank's owned rows, its mirrors and the
    mirrors' not-yet-pushed updates, so its ``state_dict`` is this rank's complete embedding state; reading
    it is local (no collective). :meth:`flush`, which brings every pending update to its owner, is a
    collective: every rank must call it.
    """

    mode = ParallelMode.HETGMP
    layout = InputLayout.LOCAL

    def __init__(
        self,
        specs: Sequence[TableSpec],
        env: ShardingEnv,
        owner: np.ndarray | torch.Tensor,
        mirrors: np.ndarray | torch.Tensor,
        optimizer: EmbeddingOptimizerSettings,
        *,
        bound: int,
        seed: int,
        prefetch: bool = False,
    ) -> None:
        if not isinstance(env, ShardingEnv):
            raise TypeError(
                f"env: expected a ShardingEnv (ShardingEnv.from_group(group, device=...)), got "
                f"{type(env).__name__}"
            )
        if env.placement is not None:
            raise ValueError(
                "hetgmp places rows by `owner`, not tables: give a ShardingEnv without placement"
            )
        D = {s.embedding_dim for s in specs}
        if len(D) != 1:
            raise ValueError(f"hetgmp needs one embedding_dim for every table, got {sorted(D)}")
        if optimizer.kind not in ("sgd", "rowwise_adagrad"):
            raise ValueError(f"hetgmp supports sgd and rowwise_adagrad, got {optimizer.kind!r}")
        if bound < 0:
            raise ValueError(f"bound must be >= 0, got {bound}")
        self.specs = list(specs)
        offsets = np.zeros(len(specs) + 1, dtype=np.int64)
        np.cumsum([s.num_embeddings for s in specs], out=offsets[1:])
        owner_t = torch.as_tensor(np.asarray(owner), dtype=torch.long)
        if owner_t.numel() != offsets[-1]:
            raise ValueError(
                f"owner has {owner_t.numel()} rows but the tables have {int(offsets[-1])} in all; "
                "the partition was made for other tables"
            )
        if owner_t.numel() and not 0 <= int(owner_t.min()) <= int(owner_t.max()) < env.world_size:
            raise ValueError(
                f"owner: ranks must be in [0, {env.world_size}) (the env's world size), got "
                f"[{int(owner_t.min())}, {int(owner_t.max())}]"
            )
        store = self._build_store(
            owner_t, torch.as_tensor(np.asarray(mirrors), dtype=torch.long), seed, env.rank
        )
        super().__init__(
            nn.ModuleDict({"hetgmp": store}),
            env,
            features=[s.name for s in specs],
            embedding_dim=D.pop(),
        )
        self.store = store.to(self.device)
        self.offsets = torch.as_tensor(offsets, device=self.device)
        self.optimizer = optimizer
        self.lr = optimizer.lr
        self.bound = bound
        self.prefetch = prefetch
        self.stats = HetGMPStats()
        self.created_grad = torch.zeros(self.embedding_dim, dtype=torch.float64)
        self.applied_grad = torch.zeros(self.embedding_dim, dtype=torch.float64)
        self.created_count = 0
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None = None
        self._next_sparse: KeyedJaggedTensor | None = None
        self._prefetched: tuple[torch.Tensor, torch.Tensor] | None = None

    def _build_store(self, owner: torch.Tensor, mirrors: torch.Tensor, seed: int, rank: int) -> HetGMPStore:
        owned = torch.nonzero(owner == rank).flatten()
        mirrors = torch.unique(mirrors)
        if mirrors.numel() and (owner[mirrors] == rank).any():
            raise ValueError("mirrors must not include rows this rank owns")
        ids = torch.cat([owned, mirrors])
        D = self.specs[0].embedding_dim
        weight = torch.empty(ids.numel(), D)
        start = 0
        for spec in self.specs:  # one table's initial weights alive at a time
            stop = start + spec.num_embeddings
            sel = torch.nonzero((ids >= start) & (ids < stop)).flatten()
            if sel.numel():
                weight[sel] = uncompressed_init(spec, seed)[ids[sel] - start]
            start = stop
        return HetGMPStore(owner, owned, mirrors, weight)

    @property
    def input_features(self) -> list[str]:
        return list(self.features)

    # -- helpers ------------------------------------------------------------------------------------------

    def _global_ids(self, sparse: KeyedJaggedTensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(ids [nnz], bag [nnz], b)``: global id and output bag (``f*b + sample``) of every occurrence."""
        if list(sparse.keys()) != self.features:
            raise ValueError(f"hetgmp input keys {list(sparse.keys())} != features {self.features}")
        check_kjt(sparse)
        b = sparse.stride()
        lengths = sparse.lengths().view(len(self.features), b)
        values = sparse.values().to(self.device)
        feat = torch.repeat_interleave(torch.arange(len(self.features), device=self.device), lengths.sum(1))
        bag = torch.repeat_interleave(
            torch.arange(len(self.features) * b, device=self.device), lengths.reshape(-1)
        )
        return values + self.offsets[feat], bag, b

    def _apply_rule(self, rows: torch.Tensor, state: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """The update ``delta`` of the optimizer for ``grad [n, D]``; ``state [n]`` is advanced in place."""
        if self.optimizer.kind == "sgd":
            return -self.lr * grad
        state += grad.pow(2).mean(dim=1)
        return -self.lr * grad / (state.sqrt() + self.optimizer.eps).unsqueeze(1)

    # -- pull ---------------------------------------------------------------------------------------------

    def _pull(self, uniq: torch.Tensor) -> torch.Tensor:
        """Rows ``[U, D]`` for ``uniq`` (sorted global ids), fetching the outdated ones (collective)."""
        st = self.store
        R, me = self.world_size, self.rank
        rows = torch.empty(uniq.numel(), self.embedding_dim, dtype=st.weight.dtype, device=self.device)
        owners = st.owner[uniq]
        slots = st.slot[uniq]
        local_own = owners == me
        rows[local_own] = st.weight[slots[local_own]]
        remote = torch.nonzero(~local_own).flatten()
        remote = remote[torch.argsort(owners[remote], stable=True)]
        q_ids = uniq[remote]
        q_slot = slots[remote]
        q_ver = torch.where(q_slot >= 0, st.version[q_slot.clamp(min=0)], torch.full_like(q_slot, STALE))
        send_counts = torch.bincount(owners[remote], minlength=R)
        if R == 1:
            return rows
        recv_counts = _counts(send_counts, self.group)
        sc = send_counts.tolist()
        got = _exchange(torch.stack([q_ids, q_ver], 1), sc, recv_counts, self.group, self.env.comm_meter)
        # owner side: clocks, outdated rows' values
        o_slot = st.slot[got[:, 0]]
        clock = st.version[o_slot]
        outdated = (got[:, 1] == STALE) | (got[:, 1] + self.bound < clock)
        clock_back = _exchange(clock, recv_counts, sc, self.group, self.env.comm_meter)
        src = torch.repeat_interleave(torch.arange(R, device=self.device), torch.tensor(recv_counts))
        out_counts = torch.bincount(src[outdated], minlength=R).tolist()
        payload = torch.cat([st.weight[o_slot[outdated]], st.state[o_slot[outdated]].unsqueeze(1)], 1)
        # requester side
        mine_out = (q_ver == STALE) | (q_ver + self.bound < clock_back)
        dst = torch.repeat_interleave(torch.arange(R, device=self.device), send_counts)
        in_counts = torch.bincount(dst[mine_out], minlength=R).tolist()
        values = _exchange(payload, out_counts, in_counts, self.group, self.env.comm_meter)
        D = self.embedding_dim
        fetched_pos = remote[mine_out]
        rows[fetched_pos] = values[:, :D]
        # refresh mirrors among the fetched rows (read-your-writes), and serve fresh mirrors locally
        f_slot = q_slot[mine_out]
        is_mirror = f_slot >= 0
        if is_mirror.any():
            ms = f_slot[is_mirror]
            mi = ms - st.n_own
            st.weight[ms] = values[is_mirror, :D] + st.pending_delta[mi]
            st.version[ms] = clock_back[mine_out][is_mirror]
            st.state[ms] = values[is_mirror, D]
            rows[fetched_pos[is_mirror]] = st.weight[ms]
        fresh = ~mine_out
        if fresh.any():
            rows[remote[fresh]] = st.weight[q_slot[fresh]]
            lag = int((clock_back[fresh] - q_ver[fresh]).max())
            self.stats.max_staleness = max(self.stats.max_staleness, lag)
            self.stats.local_mirror_reads += int(fresh.sum())
        n_fetched = int(mine_out.sum())
        self.stats.fetched_rows += n_fetched
        self.stats.fetched_bytes += n_fetched * D * st.weight.element_size()
        self.stats.query_bytes += q_ids.numel() * 3 * 8
        self.stats.per_step_fetched.append(n_fetched)
        return rows

    # -- strategy interface --------------------------------------------------------------------------------

    def set_next(self, sparse: KeyedJaggedTensor | None) -> None:
        """The next training batch's sparse input (prefetch); ``None``: none known."""
        self._next_sparse = sparse if self.prefetch else None

    def forward(self, sparse: KeyedJaggedTensor, *, training: bool = True) -> torch.Tensor:
        ids, bag, b = self._global_ids(sparse)
        if self._prefetched is not None and training:
            uniq, rows = self._prefetched
            self._prefetched = None
            uniq_now, inverse = torch.unique(ids, return_inverse=True)
            if not torch.equal(uniq_now, uniq):
                raise RuntimeError("prefetched rows belong to another batch than the one being trained")
        else:
            uniq, inverse = torch.unique(ids, return_inverse=True)
            rows = self._pull(uniq)
        pooled = torch.zeros(len(self.features) * b, self.embedding_dim, dtype=rows.dtype, device=self.device)
        pooled.index_add_(0, bag, rows[inverse])
        out = pooled.view(len(self.features), b, self.embedding_dim).transpose(0, 1).contiguous()
        if not training:
            return out
        self._last = (uniq, inverse, bag, b)
        return out.requires_grad_()

    def backward(self, grad: torch.Tensor) -> None:
        if self._last is None:
            raise RuntimeError("backward() without a training forward()")
        uniq, inverse, bag, b = self._last
        self._last = None
        flat = grad.transpose(0, 1).reshape(len(self.features) * b, self.embedding_dim)
        g = torch.zeros(uniq.numel(), self.embedding_dim, dtype=flat.dtype, device=self.device)
        g.index_add_(0, inverse, flat[bag])
        k = torch.bincount(inverse, minlength=uniq.numel())
        self._push(uniq, g, k)
        self.stats.steps += 1
        if self._next_sparse is not None:
            ids, _, _ = self._global_ids(self._next_sparse)
            self._next_sparse = None
            nxt = torch.unique(ids)
            self._prefetched = (nxt, self._pull(nxt))

    def _push(self, uniq: torch.Tensor, g: torch.Tensor, k: torch.Tensor, *, flush: bool = False) -> None:
        """Push this step's gradients (and due mirror flushes); owners apply (collective)."""
        st = self.store
        R, me = self.world_size, self.rank
        self.created_grad += g.double().sum(0)
        self.created_count += int(k.sum())
        owners = st.owner[uniq]
        slots = st.slot[uniq]
        own = owners == me
        mirror = (~own) & (slots >= 0)
        plain = (~own) & (slots < 0)
        # mirrors: local update on the copy, accumulate, push when more than `bound` are pending
        push_ids = [uniq[plain]]
        push_k = [k[plain]]
        push_g = [g[plain]]
        if mirror.any():
            ms = slots[mirror]
            mi = ms - st.n_own
            state = st.state[ms].clone()
            delta = self._apply_rule(st.weight[ms], state, g[mirror])
            st.state[ms] = state
            st.weight[ms] += delta
            st.pending_delta[mi] += delta
            st.pending_grad[mi] += g[mirror]
            st.pending_count[mi] += k[mirror]
        due = torch.nonzero(st.pending_count > (0 if flush else self.bound)).flatten()
        if due.numel():
            push_ids.append(st.ids[st.n_own + due])
            push_k.append(st.pending_count[due].clone())
            push_g.append(st.pending_grad[due].clone())
            st.version[st.n_own + due] += st.pending_count[due]
            st.pending_count[due] = 0
            st.pending_grad[due] = 0
            st.pending_delta[due] = 0
        ids_out = torch.cat(push_ids)
        k_out = torch.cat(push_k)
        g_out = torch.cat(push_g)
        # owner's own gradients of owned rows
        acc_slot = [slots[own]]
        acc_k = [k[own]]
        acc_g = [g[own]]
        if R > 1:
            dst = st.owner[ids_out]
            order = torch.argsort(dst, stable=True)
            ids_out, k_out, g_out, dst = ids_out[order], k_out[order], g_out[order], dst[order]
            send_counts = torch.bincount(dst, minlength=R)
            sc = send_counts.tolist()
            rc = _counts(send_counts, self.group)
            meta = _exchange(torch.stack([ids_out, k_out], 1), sc, rc, self.group, self.env.comm_meter)
            grads = _exchange(g_out, sc, rc, self.group, self.env.comm_meter)
            self.stats.pushed_rows += ids_out.numel()
            self.stats.pushed_bytes += ids_out.numel() * (16 + self.embedding_dim * g_out.element_size())
            acc_slot.append(st.slot[meta[:, 0]])
            acc_k.append(meta[:, 1])
            acc_g.append(grads)
        slot_all = torch.cat(acc_slot)
        if slot_all.numel():
            if (slot_all < 0).any() or (slot_all >= st.n_own).any():
                raise RuntimeError("received a gradient for a row this rank does not own")
            touched, inv = torch.unique(slot_all, return_inverse=True)
            G = torch.zeros(touched.numel(), self.embedding_dim, dtype=g.dtype, device=self.device)
            G.index_add_(0, inv, torch.cat(acc_g))
            K = torch.zeros(touched.numel(), dtype=torch.long, device=self.device)
            K.index_add_(0, inv, torch.cat(acc_k))
            state = st.state[touched].clone()
            st.weight[touched] += self._apply_rule(st.weight[touched], state, G)
            st.state[touched] = state
            st.version[touched] += K
            self.applied_grad += G.double().sum(0)

    def flush(self) -> None:
        """Push every pending mirror update now (collective); afterwards owners hold every update."""
        empty = torch.empty(0, dtype=torch.long, device=self.device)
        self._push(empty, torch.empty(0, self.embedding_dim, device=self.device), empty, flush=True)

    def set_learning_rate(self, lr: float) -> None:
        self.lr = lr

    def stats_record(self) -> dict[str, Any]:
        """The counters as plain data, with the store's memory (``owned`` / ``mirrors`` bytes) and mirror
        rows."""
        return {
            **self.stats.as_dict(),
            "memory": self.store.memory_bytes(),
            "mirror_rows": self.store.n_mirror,
        }

    def owned_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(global ids [n_own], weights [n_own, D])`` of the rows this rank owns (after :meth:`flush`, the
        trained values)."""
        st = self.store
        return st.ids[: st.n_own], st.weight[: st.n_own]


class HetGMPModel(HybridParallelModel):
    """``HybridParallelModel`` over ``HetGMPEmbeddings``: the owner-applied learning rate follows the
    schedule, step outputs carry the fetch counters, and with ``prefetch`` the next batch is read one step
    ahead."""

    strategy: HetGMPEmbeddings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lookahead: BatchLike | None = None

    def train_step(self, batches: Iterator[BatchLike]) -> StepOutput:
        strategy = self.strategy
        if not strategy.prefetch:
            return self._step_with_stats(batches)
        current = self._lookahead if self._lookahead is not None else next(batches)
        try:
            self._lookahead = next(batches)
        except StopIteration:
            self._lookahead = None
        strategy.set_next(self._lookahead.sparse.to(self.device) if self._lookahead is not None else None)
        return self._step_with_stats(iter([current]))

    def _step_with_stats(self, batches: Iterator[BatchLike]) -> StepOutput:
        before = self.strategy.stats.fetched_rows, self.strategy.stats.fetched_bytes
        out = super().train_step(batches)
        out.extra["remote_rows"] = float(self.strategy.stats.fetched_rows - before[0])
        out.extra["remote_bytes"] = float(self.strategy.stats.fetched_bytes - before[1])
        return out

    def set_learning_rates(self, dense_lr: float, embedding_lr: float, tt_lr: float | None = None) -> None:
        """``tt_lr`` is accepted for the common interface; this mode has no TT tables."""
        super().set_learning_rates(dense_lr, embedding_lr, tt_lr)
        self.strategy.set_learning_rate(embedding_lr)

    def state_dict(self) -> dict[str, Any]:
        """This rank's state, read locally (no collective: one rank may save alone): the head, the optimizers
        and the store, whose buffers include the mirrors' not-yet-pushed gradients and deltas, so loading it
        continues training exactly. For the trained rows with every update at its owner (e.g. to export
        them), call ``strategy.flush()`` on every rank first (a collective), then
        ``strategy.owned_rows()``."""
        return super().state_dict()
