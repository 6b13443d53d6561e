"""Sample/row partitions for HET-GMP: the methods, the result, and its file format.

Methods (``PartitionMethod``):

- ``random``: HET-GMP without ``--partition``: every row's owner uniform at random (seeded) and samples in
  ``P`` contiguous equal shards.
- ``hetgmp``: random start, then ``rerun`` rounds of HET-GMP's alternating refinement (``refine.py``).
- ``metis``: METIS (``pymetis``) on the bipartite sample-row graph with two balance constraints (samples and
  rows balanced separately); its edge cut is the number of (sample, remote row) pairs, i.e. remote rows per
  sample summed over samples, without the per-batch deduplication.
- ``hypergraph``: Mt-KaHyPar (``mtkahypar``, connectivity objective ``km1``, its deterministic preset). Nodes
  are the samples (balanced); each row referenced by >= 2 samples is a hyperedge over them; a row's owner is
  the rank holding most of its samples. Then ``lambda_e - 1`` is the number of ranks other than ``e``'s
  owner that need ``e``, and ``km1`` is exactly the number of distinct (row, remote rank) pairs per epoch
  (the soft count at saturation). The issue's phrasing, samples as hyperedges over rows, would count remote
  *ranks* per sample rather than rows; putting rows in the node set too (tried) lets the balance constraint
  trade samples against rows and put most samples on one rank.

Rows no sample references are never fetched; the library methods leave them out of their graphs and give them
round-robin owners (``id % P``).

File format (``Partition.save``; one ``.npz``, written atomically):

- ``header``: a 0-d string array holding JSON: ``format_version`` (1), ``method``, ``world_size``,
  ``gpus_per_node``, ``batch_size``, ``seed``, ``rerun``, ``hard_cap``, ``num_samples``, ``num_rows``,
  ``features``, ``feature_offsets``, ``dataset_fingerprint``, ``objective_history``,
  ``predicted_fetches_per_step`` (per rank), ``partition_seconds``, ``samples_per_rank``, ``rows_per_rank``;
- ``data_partition`` ``[N]`` int32: rank of each sample of the split (sample ``s`` = split start + ``s``);
- ``embed_partition`` ``[E]`` int32: owner rank of each global row;
- ``priority_offsets`` ``[P+1]`` int64 and ``priority_ids`` ``[sum]`` int64: rank ``i``'s non-owned rows by
  descending priority are ``priority_ids[priority_offsets[i]:priority_offsets[i+1]]``;
- ``fetch_matrix`` ``[P, P]`` float64: expected rows rank ``i`` fetches from ``j`` per step.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecorec.planner.partition.graph import SampleRowGraph
from ecorec.planner.partition.objective import (
    comm_weights,
    count_matrix,
    fetch_matrix,
    priority_lists,
    soft_count_table,
)
from ecorec.planner.partition.refine import refine
from ecorec.utils.atomic import atomic_path

__all__ = ["FORMAT_VERSION", "Partition", "PartitionError", "PartitionMethod", "partition_graph"]

FORMAT_VERSION = 1


class PartitionError(ValueError):
    """A partition file that is unreadable or does not match the dataset / world size it is used with."""


class PartitionMethod(enum.StrEnum):
    RANDOM = "random"
    HETGMP = "hetgmp"
    METIS = "metis"
    HYPERGRAPH = "hypergraph"


@dataclass
class Partition:
    """Sample -> rank, row -> owner rank, per-rank priorities of non-owned rows, and the predictions.

    Attributes:
        data: ``[N]`` int64 rank of each sample. owner: ``[E]`` int64 owner rank of each row.
        priorities: per rank, its non-owned rows by descending priority (``[E - owned_i]`` int64 each).
        fetch: ``[P, P]`` predicted rows fetched per step (``objective.fetch_matrix``).
        header: the JSON header (see the module docstring).
    """

    data: np.ndarray
    owner: np.ndarray
    priorities: list[np.ndarray]
    fetch: np.ndarray
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def world_size(self) -> int:
        return int(self.header["world_size"])

    def predicted_fetches_per_step(self) -> np.ndarray:
        """``[P]``: expected remote rows each rank fetches per step (no mirrors)."""
        return self.fetch.sum(axis=1) - np.diag(self.fetch)

    def samples_of(self, rank: int) -> np.ndarray:
        """The split-relative sample ids of ``rank``, ascending."""
        return np.flatnonzero(self.data == rank)

    def mirrors_of(self, rank: int, store_rate: float) -> np.ndarray:
        """HET-GMP's mirror set: the top ``int(store_rate * len(priorities[rank]))`` non-owned rows."""
        if not 0.0 <= store_rate <= 1.0:
            raise ValueError(f"store_rate must be in [0, 1], got {store_rate}")
        plist = self.priorities[rank]
        return plist[: int(store_rate * plist.size)]

    def save(self, path: str | Path) -> None:
        """Write the ``.npz`` atomically (the format in the module docstring)."""
        P = len(self.priorities)
        offsets = np.zeros(P + 1, dtype=np.int64)
        np.cumsum([p.size for p in self.priorities], out=offsets[1:])
        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    header=np.array(json.dumps(self.header, sort_keys=True)),
                    data_partition=self.data.astype(np.int32),
                    embed_partition=self.owner.astype(np.int32),
                    priority_offsets=offsets,
                    priority_ids=(np.concatenate(self.priorities) if P else np.zeros(0, dtype=np.int64)),
                    fetch_matrix=self.fetch,
                )

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        world_size: int | None = None,
        fingerprint: str | None = None,
        num_samples: int | None = None,
        num_rows: int | None = None,
    ) -> Partition:
        """Read a partition file; every given expectation is checked and a mismatch raises
        ``PartitionError`` naming the file, the field, and both values."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"][()]))
                data = z["data_partition"].astype(np.int64)
                owner = z["embed_partition"].astype(np.int64)
                offsets = z["priority_offsets"]
                ids = z["priority_ids"].astype(np.int64)
                fetch = z["fetch_matrix"].astype(np.float64)
        except FileNotFoundError:
            raise
        except (OSError, KeyError, ValueError) as err:
            raise PartitionError(f"{path}: not a partition file: {err}") from None
        if header.get("format_version") != FORMAT_VERSION:
            raise PartitionError(
                f"{path}: format_version {header.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        expect = {
            "world_size": world_size,
            "dataset_fingerprint": fingerprint,
            "num_samples": num_samples,
            "num_rows": num_rows,
        }
        for key, want in expect.items():
            if want is not None and header.get(key) != want:
                raise PartitionError(
                    f"{path}: {key} is {header.get(key)!r} but this run needs {want!r}; "
                    "the partition was made for another dataset, split or world size"
                )
        P = int(header["world_size"])
        if data.size != header["num_samples"] or owner.size != header["num_rows"] or offsets.size != P + 1:
            raise PartitionError(f"{path}: array sizes do not match the header")
        if (data.size and (data.min() < 0 or data.max() >= P)) or (
            owner.size and (owner.min() < 0 or owner.max() >= P)
        ):
            raise PartitionError(f"{path}: ranks outside [0, {P})")
        prios = [ids[offsets[i] : offsets[i + 1]] for i in range(P)]
        return cls(data, owner, prios, fetch, header)


def _round_robin_unreferenced(owner: np.ndarray, degrees: np.ndarray, P: int) -> None:
    free = np.flatnonzero(degrees == 0)
    owner[free] = free % P


def _metis(graph: SampleRowGraph, P: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import pymetis

    N, E = graph.num_samples, graph.num_rows
    deg = graph.degrees()
    used = np.flatnonzero(deg > 0)
    local = np.full(E, -1, dtype=np.int64)
    local[used] = np.arange(used.size) + N
    colptr, col_samples = graph.csc()
    # Vertices: samples 0..N-1, then referenced rows N..N+U-1; undirected edges both ways.
    xadj = np.zeros(N + used.size + 1, dtype=np.int64)
    xadj[1 : N + 1] = np.diff(graph.indptr)
    xadj[N + 1 :] = deg[used]
    np.cumsum(xadj, out=xadj)
    adjncy = np.concatenate([local[graph.indices], col_samples])
    vweights = np.zeros((N + used.size, 2), dtype=np.int64)
    vweights[:N, 0] = 1
    vweights[N:, 1] = 1
    opts = pymetis.Options(seed=seed)
    _, parts = pymetis.part_graph(
        P,
        pymetis.CSRAdjacency(xadj.tolist(), adjncy.tolist()),
        vweights=vweights.reshape(-1).tolist(),
        options=opts,
    )
    parts = np.asarray(parts, dtype=np.int64)
    owner = np.zeros(E, dtype=np.int64)
    owner[used] = parts[N:]
    _round_robin_unreferenced(owner, deg, P)
    return parts[:N].copy(), owner


def _hypergraph(
    graph: SampleRowGraph, P: int, seed: int, epsilon: float, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    import mtkahypar

    N, E = graph.num_samples, graph.num_rows
    deg = graph.degrees()
    used = np.flatnonzero(deg > 1)  # a row of one sample can never be cut
    colptr, col_samples = graph.csc()
    edges = [col_samples[colptr[e] : colptr[e + 1]].tolist() for e in used]
    init = mtkahypar.initialize(threads, False)
    mtkahypar.set_seed(seed)
    ctx = init.context_from_preset(mtkahypar.PresetType.DETERMINISTIC)
    ctx.set_partitioning_parameters(P, epsilon, mtkahypar.Objective.KM1)
    ctx.logging = False
    hg = init.create_hypergraph(ctx, N, len(edges), edges)
    data = np.asarray(hg.partition(ctx).get_partition(), dtype=np.int64)
    # owner: the rank holding most of the row's samples (ties rotate with the id), so it is in the row's
    # connectivity set and km1 counts exactly its remote ranks
    cnt = count_matrix(graph.indptr, graph.indices, data, P, E).astype(np.int64)
    rotate = (np.arange(P)[:, None] + np.arange(E)[None, :]) % P
    owner = np.argmax(cnt * P + rotate, axis=0).astype(np.int64)
    _round_robin_unreferenced(owner, deg, P)
    return data, owner


def partition_graph(
    graph: SampleRowGraph,
    world_size: int,
    method: PartitionMethod | str = PartitionMethod.HETGMP,
    *,
    batch_size: int = 8192,
    gpus_per_node: int = 8,
    rerun: int = 5,
    seed: int = 0,
    hard_cap: float | None = None,
    epsilon: float = 0.03,
    threads: int = 1,
) -> Partition:
    """Partition ``graph`` over ``world_size`` ranks with ``method``.

    Args:
        graph: the sample-row graph. world_size: P.
        method: random | hetgmp | metis | hypergraph.
        batch_size: per-rank batch B of the soft count (HET-GMP ``-b``).
        gpus_per_node: g of the weight matrix (HET-GMP ``-g``).
        rerun: hetgmp refinement rounds. seed: every random choice.
        hard_cap: hetgmp: optional hard balance cap (multiple of the balanced size, >= 1).
        epsilon, threads: hypergraph imbalance and Mt-KaHyPar threads.
    """
    method = PartitionMethod(method)
    P, N, E = world_size, graph.num_samples, graph.num_rows
    if P < 1:
        raise ValueError(f"world_size must be >= 1, got {P}")
    t0 = time.perf_counter()
    degrees = graph.degrees()
    S = soft_count_table(N, P, batch_size, int(degrees.max(initial=0)) + 1)
    mat = comm_weights(P, gpus_per_node)
    rng = np.random.default_rng(seed)
    history: list[float] = []
    if method is PartitionMethod.RANDOM:
        owner = rng.integers(0, P, E, dtype=np.int64)
        data = (np.arange(N, dtype=np.int64) * P) // max(1, N)
    elif method is PartitionMethod.HETGMP:
        data0 = rng.integers(0, P, N, dtype=np.int64)
        owner0 = rng.integers(0, P, E, dtype=np.int64)
        st, history = refine(
            graph,
            data0,
            owner0,
            world_size=P,
            S=S,
            mat=mat,
            batch_size=batch_size,
            rerun=rerun,
            hard_cap=hard_cap,
        )
        data, owner = st.data, st.owner
    elif method is PartitionMethod.METIS:
        data, owner = _metis(graph, P, seed)
    else:
        data, owner = _hypergraph(graph, P, seed, epsilon, threads)
    seconds = time.perf_counter() - t0
    cnt = count_matrix(graph.indptr, graph.indices, data, P, E)
    fetch = fetch_matrix(cnt, owner, S, N, batch_size)
    prios = priority_lists(cnt, owner, S, mat, degrees)
    header = {
        "format_version": FORMAT_VERSION,
        "method": method.value,
        "world_size": P,
        "gpus_per_node": gpus_per_node,
        "batch_size": batch_size,
        "seed": seed,
        "rerun": rerun if method is PartitionMethod.HETGMP else 0,
        "hard_cap": hard_cap,
        "num_samples": N,
        "num_rows": E,
        "features": list(graph.features),
        "feature_offsets": [int(x) for x in graph.feature_offsets],
        "dataset_fingerprint": graph.fingerprint,
        "objective_history": history,
        "weighted_objective": float((fetch * mat).sum()),
        "predicted_fetches_per_step": (fetch.sum(axis=1) - np.diag(fetch)).tolist(),
        "partition_seconds": seconds,
        "samples_per_rank": np.bincount(data, minlength=P).tolist(),
        "rows_per_rank": np.bincount(owner, minlength=P).tolist(),
    }
    return Partition(data, owner, prios, fetch, header)
