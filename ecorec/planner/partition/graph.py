"""The bipartite sample-row graph HET-GMP partitions, built from a Parquet dataset in bounded memory.

Every sparse feature's rows live in one global id space: feature ``f``'s row ``i`` is global row
``feature_offsets[f] + i`` (the features in dataset order, as HET-GMP's Criteo preprocessing does with its
running per-column offsets). Sample ``s`` (numbered from 0 inside the split) links to every distinct global
row it references; a row referenced twice by one sample is one edge.

Storage is CSR in numpy: ``indptr [N+1]`` (int64) and ``indices [nnz]`` (int64, sorted inside each sample),
plus the CSC transpose on demand. Building streams the split ``chunk_samples`` samples at a time (one
``ParquetRangeReader.read`` per chunk), so peak memory is the graph itself plus one chunk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SampleRowGraph", "build_sample_row_graph", "dataset_fingerprint", "graph_from_lists"]


@dataclass
class SampleRowGraph:
    """CSR of the sample -> global row edges.

    Attributes:
        indptr: ``[N+1]`` int64; sample ``s``'s rows are ``indices[indptr[s]:indptr[s+1]]``.
        indices: ``[nnz]`` int64 global row ids, unique and sorted within a sample.
        num_rows: ``E``, the size of the global id space (sum of the features' table sizes).
        features: feature names in global-id order.
        feature_offsets: ``[F+1]`` int64; feature ``f`` owns global ids ``[offsets[f], offsets[f+1])``.
        fingerprint: identifies the dataset and split the graph came from (``dataset_fingerprint``).
    """

    indptr: np.ndarray
    indices: np.ndarray
    num_rows: int
    features: tuple[str, ...] = ()
    feature_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    fingerprint: str = ""
    _csc: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def num_samples(self) -> int:
        return int(self.indptr.size - 1)

    @property
    def num_edges(self) -> int:
        return int(self.indices.size)

    def sample_of_edge(self) -> np.ndarray:
        """``[nnz]`` int64: the sample of every CSR edge."""
        return np.repeat(np.arange(self.num_samples, dtype=np.int64), np.diff(self.indptr))

    def degrees(self) -> np.ndarray:
        """``[E]`` int64: how many samples reference each row (``deg_e``)."""
        return np.bincount(self.indices, minlength=self.num_rows).astype(np.int64)

    def csc(self) -> tuple[np.ndarray, np.ndarray]:
        """``(colptr [E+1], samples [nnz])``: the samples of row ``e`` are ``samples[colptr[e]:colptr[e+1]]``
        (ascending)."""
        if self._csc is None:
            order = np.argsort(self.indices, kind="stable")
            colptr = np.zeros(self.num_rows + 1, dtype=np.int64)
            np.cumsum(self.degrees(), out=colptr[1:])
            self._csc = (colptr, self.sample_of_edge()[order])
        return self._csc


def _dedup_chunk(indptr: np.ndarray, indices: np.ndarray, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort and deduplicate each sample's ids; returns the new ``(lengths [n], indices)``."""
    n = indptr.size - 1
    sample = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    key = np.unique(sample * np.int64(num_rows) + indices)
    return np.bincount(key // num_rows, minlength=n).astype(np.int64), key % num_rows


def graph_from_lists(samples: Sequence[Sequence[int]], num_rows: int) -> SampleRowGraph:
    """A graph from explicit per-sample global row lists (tests, small tools)."""
    lengths = np.array([len(s) for s in samples], dtype=np.int64)
    indptr = np.zeros(len(samples) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    flat = np.fromiter((i for s in samples for i in s), dtype=np.int64, count=int(lengths.sum()))
    if flat.size and (flat.min() < 0 or flat.max() >= num_rows):
        raise ValueError(f"row ids must lie in [0, {num_rows}), got [{flat.min()}, {flat.max()}]")
    lens, idx = _dedup_chunk(indptr, flat, num_rows)
    indptr = np.zeros(len(samples) + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    return SampleRowGraph(indptr, idx, num_rows, fingerprint="lists")


def dataset_fingerprint(dataset_dir: str | Path, split: str, features: Sequence[str]) -> str:
    """sha256 over the dataset's ``metadata.json`` content (which lists every file's sha256), the split and
    the feature order: a partition is valid for exactly this graph."""
    meta = Path(dataset_dir) / "metadata.json"
    digest = hashlib.sha256(meta.read_bytes())
    digest.update(json.dumps({"split": split, "features": list(features)}).encode())
    return digest.hexdigest()


def build_sample_row_graph(
    dataset_dir: str | Path,
    *,
    split: str = "train",
    features: Sequence[str] | None = None,
    chunk_samples: int = 65536,
    max_samples: int | None = None,
) -> SampleRowGraph:
    """Stream the split of a Parquet dataset into a ``SampleRowGraph``.

    Args:
        dataset_dir: the dataset folder (``metadata.json`` + Parquet parts).
        split: which split's samples are the graph's samples (sample ``s`` = split start + ``s``).
        features: sparse features in global-id order (default: all, in dataset order).
        chunk_samples: samples decoded at a time (bounds the transient memory).
        max_samples: only the first ``max_samples`` samples of the split (None: all).
    """
    from ecorec.data.parquet import ParquetRangeReader, read_metadata

    meta = read_metadata(dataset_dir)
    if split not in meta.splits:
        raise ValueError(f"{dataset_dir}: no split {split!r}; the dataset has {sorted(meta.splits)}")
    names = meta.select_features(features, f"{dataset_dir}")
    if chunk_samples < 1:
        raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum([meta.num_embeddings[f] for f in names], out=offsets[1:])
    num_rows = int(offsets[-1])
    start, stop = meta.splits[split]
    if max_samples is not None:
        stop = min(stop, start + max_samples)
    lengths_parts: list[np.ndarray] = []
    index_parts: list[np.ndarray] = []
    with ParquetRangeReader(meta, names) as reader:
        for lo in range(start, stop, chunk_samples):
            hi = min(stop, lo + chunk_samples)
            cols = reader.read(lo, hi)
            n = hi - lo
            per_sample = np.zeros(n, dtype=np.int64)
            ids, owners = [], []
            for f, name in enumerate(names):
                arr = cols[name]
                offs = arr.offsets.to_numpy().astype(np.int64)
                offs = offs - offs[0]
                vals = arr.values.to_numpy(zero_copy_only=False).astype(np.int64)[: offs[-1]]
                if vals.size and (vals.min() < 0 or vals.max() >= meta.num_embeddings[name]):
                    raise ValueError(
                        f"{dataset_dir}: feature {name!r} has ids outside [0, {meta.num_embeddings[name]}) "
                        f"in samples [{lo}, {hi})"
                    )
                lens = np.diff(offs)
                per_sample += lens
                ids.append(vals + offsets[f])
                owners.append(np.repeat(np.arange(n, dtype=np.int64), lens))
            sample = np.concatenate(owners)
            order = np.argsort(sample, kind="stable")
            flat = np.concatenate(ids)[order]
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(per_sample, out=indptr[1:])
            lens, idx = _dedup_chunk(indptr, flat, num_rows)
            lengths_parts.append(lens)
            index_parts.append(idx)
    lengths = np.concatenate(lengths_parts) if lengths_parts else np.zeros(0, dtype=np.int64)
    indptr = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.concatenate(index_parts) if index_parts else np.zeros(0, dtype=np.int64)
    return SampleRowGraph(
        indptr, indices, num_rows, names, offsets, dataset_fingerprint(dataset_dir, split, names)
    )
