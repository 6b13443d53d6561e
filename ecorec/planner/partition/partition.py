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
import zipfile
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
        features: list[str] | None = None,
    ) -> Partition:
        """Read a partition file and check it whole: the format, every header field the arrays depend on,
        the arrays' shapes, dtypes and ranges against the header and each other (sample ranks, row owners,
        each rank's priority list = its non-owned rows, the fetch matrix). Every given expectation (this
        run's world size, dataset fingerprint, sample and row counts, features) is checked too. A mismatch
        raises ``PartitionError`` naming the file, the field, both values and the fix. Never unpickles."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such partition file{_MAKE_ONE}")
        arrays = _read_arrays(path)
        header = _parse_header(path, arrays.pop("header"))
        _check_expectations(
            path,
            header,
            {  # the specific facts first: the fingerprint covers them all
                "world_size": world_size,
                "features": None if features is None else list(features),
                "num_samples": num_samples,
                "num_rows": num_rows,
                "dataset_fingerprint": fingerprint,
            },
        )
        data, owner, prios, fetch = _check_arrays(path, header, arrays)
        return cls(data, owner, prios, fetch, header)


#: Where a partition file comes from (said by every "not a partition" error).
_MAKE_ONE = (
    "; a partition is the .npz archive written by `python -m ecorec.planner.partition DATASET OUT.npz -n P` "
    "(rule hetgmp_partition) for this dataset's train split, features and world size: point "
    "hetgmp.partition at one, or make one with that command"
)
_ARRAYS = ("header", "data_partition", "embed_partition", "priority_offsets", "priority_ids", "fetch_matrix")


def _what_is(path: Path) -> str:
    """What the file looks like instead (by its first bytes)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        return "the file is empty"
    if head.startswith(b"\x93NUMPY"):
        return "it is a single .npy array, not an .npz archive of the partition's arrays"
    if head[:1] == b"\x80" or head.startswith((b"(dp", b"(lp", b"ccopy_reg")):
        return "it is a Python pickle (which is never loaded: it could run code)"
    if head.startswith(b"PK"):
        return "it is a zip archive, but not a readable .npz archive"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "it is a text file"
    return f"it is not an .npz archive (it starts with bytes {head.hex()})"


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise PartitionError(f"{path}: not a partition file: {_what_is(path)}{_MAKE_ONE}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise PartitionError(f"{path}: not a partition file: {_what_is(path)}{_MAKE_ONE}")
    with loaded as z:
        missing = [name for name in _ARRAYS if name not in z.files]
        if missing:
            raise PartitionError(
                f"{path}: not a partition file: the .npz archive lacks {missing} (it has {sorted(z.files)})"
                f"{_MAKE_ONE}"
            )
        out = {}
        for name in _ARRAYS:
            try:
                out[name] = z[name]
            except ValueError as err:  # an object array: reading it would unpickle
                if "bject arrays" not in str(err):
                    raise PartitionError(f"{path}: array '{name}' cannot be read: {err}{_MAKE_ONE}") from None
                raise PartitionError(
                    f"{path}: not a partition file: array '{name}' holds Python objects, which are never "
                    f"loaded (unpickling could run code){_MAKE_ONE}"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:  # a truncated or damaged member
                raise PartitionError(
                    f"{path}: array '{name}' cannot be read ({type(err).__name__}: {err}): the file is "
                    f"damaged{_MAKE_ONE}"
                ) from None
        return out


def _parse_header(path: Path, raw: np.ndarray) -> dict[str, Any]:
    if raw.shape != () or raw.dtype.kind not in "US":
        raise PartitionError(f"{path}: field 'header': expected a 0-d string array of JSON{_MAKE_ONE}")
    try:
        header = json.loads(str(raw[()]))
    except json.JSONDecodeError as err:
        raise PartitionError(f"{path}: field 'header': invalid JSON ({err}){_MAKE_ONE}") from None
    if not isinstance(header, dict):
        raise PartitionError(f"{path}: field 'header': expected a JSON object{_MAKE_ONE}")
    if header.get("format_version") != FORMAT_VERSION:
        raise PartitionError(
            f"{path}: header.format_version is {header.get('format_version')!r}, this ecorec reads "
            f"{FORMAT_VERSION}: make the partition again with this version"
        )
    for key in ("world_size", "num_samples", "num_rows"):
        value = header.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "world_size" else 0):
            raise PartitionError(f"{path}: header.{key}: expected a non-negative integer, got {value!r}")
    features, offsets = header.get("features"), header.get("feature_offsets")
    if features or offsets not in (None, [0]):  # graphs built from lists have no features
        if (
            not isinstance(features, list)
            or not isinstance(offsets, list)
            or len(offsets) != len(features) + 1
            or offsets[:1] != [0]
            or offsets[-1] != header["num_rows"]
            or any(not isinstance(a, int) or a > b for a, b in zip(offsets, offsets[1:]))
        ):
            raise PartitionError(
                f"{path}: header.feature_offsets {offsets!r} do not split header.num_rows "
                f"{header['num_rows']} over header.features {features!r}"
            )
    return header


def _check_expectations(path: Path, header: dict[str, Any], expect: dict[str, Any]) -> None:
    for key, want in expect.items():
        if want is None:
            continue
        have = header.get(key)
        if have != want:
            shown = (lambda v: v) if key != "features" else (lambda v: v if v is None else v[:10])
            raise PartitionError(
                f"{path}: {key} is {shown(have)!r} but this run needs {shown(want)!r}; the partition was "
                "made for another dataset (or the dataset changed since), split, feature list or world "
                "size: make it again for this run "
                "(`python -m ecorec.planner.partition DATASET OUT.npz -n P`, rule hetgmp_partition)"
            )


def _check_arrays(
    path: Path, header: dict[str, Any], z: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    P, N, E = header["world_size"], header["num_samples"], header["num_rows"]

    def fail(name: str, problem: str) -> PartitionError:
        return PartitionError(f"{path}: array '{name}': {problem} (the file is damaged or not this format)")

    def integers(name: str, shape: tuple[int, ...]) -> np.ndarray:
        a = z[name]
        if a.dtype.kind not in "iu":
            raise fail(name, f"expected integers, got dtype {a.dtype}")
        if a.shape != shape:
            raise fail(name, f"shape {a.shape}, but the header makes it {shape}")
        return a.astype(np.int64)

    data = integers("data_partition", (N,))
    owner = integers("embed_partition", (E,))
    for name, a in (("data_partition", data), ("embed_partition", owner)):
        if a.size and (a.min() < 0 or a.max() >= P):
            raise fail(name, f"ranks outside [0, {P}) (min {a.min()}, max {a.max()})")
    offsets = integers("priority_offsets", (P + 1,))
    ids = z["priority_ids"]
    if ids.dtype.kind not in "iu" or ids.ndim != 1:
        raise fail("priority_ids", f"expected a 1-d integer array, got {ids.dtype} {ids.shape}")
    ids = ids.astype(np.int64)
    if offsets[0] != 0 or offsets[-1] != ids.size or np.any(np.diff(offsets) < 0):
        raise fail("priority_offsets", f"must rise from 0 to len(priority_ids) = {ids.size}, got {offsets}")
    if ids.size and (ids.min() < 0 or ids.max() >= E):
        raise fail("priority_ids", f"row ids outside [0, {E})")
    owned = np.bincount(owner, minlength=P)
    prios = [ids[offsets[i] : offsets[i + 1]] for i in range(P)]
    for rank, plist in enumerate(prios):
        problem = None
        if plist.size != E - owned[rank]:
            problem = f"{plist.size} rows"
        elif plist.size and np.any(owner[plist] == rank):
            problem = f"row {int(plist[owner[plist] == rank][0])}, which rank {rank} owns"
        elif np.unique(plist).size != plist.size:
            problem = "a row twice"
        if problem is not None:
            raise fail(
                "priority_ids",
                f"rank {rank}'s list must hold exactly the {E - owned[rank]} rows it does not own, each "
                f"once; it has {problem}",
            )
    fetch = z["fetch_matrix"]
    if (
        fetch.shape != (P, P)
        or fetch.dtype.kind != "f"
        or not np.all(np.isfinite(fetch))
        or np.any(fetch < 0)
    ):
        raise fail(
            "fetch_matrix", f"expected [{P}, {P}] finite non-negative floats, got {fetch.dtype} {fetch.shape}"
        )
    return data, owner, prios, fetch.astype(np.float64)


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
