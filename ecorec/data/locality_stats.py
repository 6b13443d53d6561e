"""Index-locality statistics in the format Meta published with ``dlrm_datasets`` (``locality_stats.txt``).

A file holds one block per source file::

    fbgemm_t788_bs131072_0.pt
    Locality stats after processing 1 batches of size 131072
    Avg # of indices: 1405163864          # nnz per batch, all tables
    Avg # of unique cols: 110259238       # U per batch: distinct (table, row) pairs
    Avg col size: 12.7                    # nnz / U
    Histogram of col sizes:               # fraction of the U unique rows accessed c times, c in (lo, hi]
    (0, 1]: 0.342
    ...
    (32768+: 0.000                        # the open last bucket (published without a closing bracket)
    [0, 1, 2, 4, ..., 32768]              # bucket lower edges
    ['0.000', '0.342', ..., '1.000']      # its CDF
    Ratio of index distribution at different column sizes:   # fraction of the nnz indices in those rows
    (0, 1]: 0.027
    ...

A "col" is one unique row of one table within a batch and its "size" is how often the batch accesses it, so
the histogram describes index reuse. :func:`read_locality_stats` parses any file of this format,
:func:`format_locality_stats` writes it back (byte-identical for the published file), and
:class:`LocalityAccumulator` computes a block from the access counts of generated or converted data.
"""

from __future__ import annotations

import ast
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecorec.data.errors import DataFormatError
from ecorec.utils import atomic_write

#: Lower bucket edges of the published files: buckets (0, 1], (1, 2], (2, 4], ..., (16384, 32768], (32768+.
DEFAULT_EDGES: tuple[int, ...] = (0, *(2**k for k in range(16)))

_HIST_HEADER = "Histogram of col sizes:"
_RATIO_HEADER = "Ratio of index distribution at different column sizes:"
_PROCESSED = re.compile(r"^Locality stats after processing (\d+) batches of size (\d+)$")
_AVG = {
    "avg_indices": re.compile(r"^Avg # of indices: ([0-9.eE+-]+)$"),
    "avg_unique": re.compile(r"^Avg # of unique cols: ([0-9.eE+-]+)$"),
    "avg_col_size": re.compile(r"^Avg col size: ([0-9.eE+-]+)$"),
}
_CLOSED_BUCKET = re.compile(r"^\((\d+), (\d+)\]: ([0-9.eE+-]+)$")
_OPEN_BUCKET = re.compile(r"^\((\d+)\+\]?: ([0-9.eE+-]+)$")
_TABLES_IN_NAME = re.compile(r"_t(\d+)_")
_SUM_TOLERANCE = 0.02  # 17 values rounded to 3 decimals sum to 1 within 0.0085


def locality_source_name(source: str, num_tables: int, batch_size: int) -> str:
    """Name of a locality-stats block: ``<source>_t<T>_bs<B>``, like Meta's ``fbgemm_t788_bs131072_0.pt``, so
    that the number of tables (needed for the mean pooling factor) can be read back from the file."""
    return f"{source}_t{num_tables}_bs{batch_size}"


@dataclass(frozen=True)
class LocalityStatsBlock:
    """One block: statistics of ``num_batches`` batches of ``batch_size`` samples of one source.

    Buckets: ``(edges[k], edges[k+1]]`` for ``k < K-1`` and ``(edges[K-1], inf)``, ``K = len(edges)``.

    Attributes:
        source: the block's first line (the source file name).
        avg_indices: nnz per batch (all tables). avg_unique: U per batch. avg_col_size: nnz / U.
        col_size_hist: ``[K]`` fraction of unique rows whose access count falls in each bucket.
        col_size_cdf: ``[K+1]`` its CDF as printed (starts at 0).
        index_ratio: ``[K]`` fraction of indices that belong to rows of each bucket.
        index_ratio_cdf: ``[K+1]``.
    """

    source: str
    num_batches: int
    batch_size: int
    avg_indices: float
    avg_unique: float
    avg_col_size: float
    edges: tuple[int, ...]
    col_size_hist: tuple[float, ...]
    col_size_cdf: tuple[float, ...]
    index_ratio: tuple[float, ...]
    index_ratio_cdf: tuple[float, ...]

    def __post_init__(self) -> None:
        k = len(self.edges)
        if k < 2 or any(b <= a for a, b in zip(self.edges, self.edges[1:])) or self.edges[0] < 0:
            raise ValueError(f"edges must be >= 0 and strictly increasing, got {self.edges}")
        for name, size in (("col_size_hist", k), ("index_ratio", k), ("col_size_cdf", k + 1)):
            if len(getattr(self, name)) != size:
                raise ValueError(
                    f"{name} must have {size} entries for {k} edges, got {len(getattr(self, name))}"
                )
        if len(self.index_ratio_cdf) != k + 1:
            raise ValueError(f"index_ratio_cdf must have {k + 1} entries, got {len(self.index_ratio_cdf)}")

    @property
    def reference_num_tables(self) -> int | None:
        """Number of tables encoded in the source name (``fbgemm_t788_bs131072_0.pt`` -> 788), if any.

        The last ``_t<N>_`` of the name counts, so a name ``<dataset>_t<T>_bs<B>`` (what ``ecorec.stats`` and
        the synthetic generator write) is read correctly whatever the dataset is called.
        """
        matches = _TABLES_IN_NAME.findall(self.source)
        return int(matches[-1]) if matches else None

    def mean_pooling(self, num_tables: int | None = None) -> float:
        """Average indices per sample per table: ``avg_indices / (num_tables * batch_size)``.

        ``num_tables`` defaults to the one in the source name; raises ``ValueError`` if neither is known.
        """
        tables = num_tables if num_tables is not None else self.reference_num_tables
        if tables is None:
            raise ValueError(
                f"locality stats block {self.source!r}: the number of tables is not in its name "
                "(like '_t788_'); pass num_tables (or set mean_pooling explicitly)"
            )
        if tables < 1 or self.batch_size < 1:
            raise ValueError(
                f"locality stats block {self.source!r}: mean pooling needs num_tables >= 1 and one batch "
                f"size (got num_tables={tables}, batch_size={self.batch_size}; "
                "0 means blocks of different sizes)"
            )
        return self.avg_indices / (tables * self.batch_size)

    def bucket_bounds(self, open_factor: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` int64 ``[K]``: bucket k holds counts in ``(lo[k], hi[k]]``; the open bucket ends at
        ``open_factor * edges[-1]``."""
        lo = np.asarray(self.edges, dtype=np.int64)
        hi = np.append(lo[1:], lo[-1] * open_factor)
        return lo, hi


@dataclass(frozen=True)
class LocalityStats:
    """All blocks of one locality-stats file."""

    blocks: tuple[LocalityStatsBlock, ...]
    path: str | None = field(default=None, compare=False)

    def mean(self) -> LocalityStatsBlock:
        """One block averaging all blocks; histograms weighted by each block's unique rows (col sizes) or
        indices (index ratio), the quantities their fractions are of."""
        if not self.blocks:
            raise ValueError(f"{self.path or 'locality stats'}: no blocks")
        if len(self.blocks) == 1:
            return self.blocks[0]
        edges = self.blocks[0].edges
        for block in self.blocks:
            if block.edges != edges:
                raise ValueError(
                    f"{self.path}: blocks {self.blocks[0].source!r} and {block.source!r} differ in edges"
                )
        batches = np.array([b.num_batches for b in self.blocks], dtype=np.float64)
        uniq = np.array([b.avg_unique for b in self.blocks]) * batches
        nnz = np.array([b.avg_indices for b in self.blocks]) * batches
        w_u = uniq / uniq.sum()
        w_i = nnz / nnz.sum()

        def avg(name: str, weights: np.ndarray) -> tuple[float, ...]:
            return tuple(float(x) for x in weights @ np.array([getattr(b, name) for b in self.blocks]))

        sizes = {b.batch_size for b in self.blocks}
        tables = {b.reference_num_tables for b in self.blocks}
        source = f"mean of {len(self.blocks)} blocks"
        if len(tables) == 1 and None not in tables:  # keep the table count findable in the name
            source += f" ({self.blocks[0].source} .. {self.blocks[-1].source})"
        return LocalityStatsBlock(
            source=source,
            num_batches=int(batches.sum()),
            batch_size=sizes.pop() if len(sizes) == 1 else 0,
            avg_indices=float(nnz.sum() / batches.sum()),
            avg_unique=float(uniq.sum() / batches.sum()),
            avg_col_size=float(nnz.sum() / uniq.sum()),
            edges=edges,
            col_size_hist=avg("col_size_hist", w_u),
            col_size_cdf=avg("col_size_cdf", w_u),
            index_ratio=avg("index_ratio", w_i),
            index_ratio_cdf=avg("index_ratio_cdf", w_i),
        )


def total_variation(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """Total variation distance ``0.5 * sum |p/sum(p) - q/sum(q)|`` between two histograms of equal length."""
    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(q, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"histograms must be 1-D of equal length, got shapes {a.shape} and {b.shape}")
    if a.sum() <= 0 or b.sum() <= 0 or (a < 0).any() or (b < 0).any():
        raise ValueError("histograms must be non-negative with a positive sum")
    return float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())


def bucket_of(counts: np.ndarray, edges: Sequence[int] = DEFAULT_EDGES) -> np.ndarray:
    """Bucket index ``[U]`` of each access count ``[U]`` (counts >= 1): ``k`` with
    ``edges[k] < c <= edges[k+1]``, the last bucket for ``c > edges[-1]``."""
    return np.searchsorted(np.asarray(edges[1:], dtype=np.int64), counts, side="left")


class LocalityAccumulator:
    """Accumulates per-batch access counts of unique rows into a :class:`LocalityStatsBlock`.

    Example::

        acc = LocalityAccumulator()
        for batch in batches:
            for table_indices in batch:           # [nnz_t] row ids of one table
                acc.add(np.unique(table_indices, return_counts=True)[1])
            acc.end_batch()
        block = acc.block("my_dataset", batch_size=4096)
    """

    def __init__(self, edges: Sequence[int] = DEFAULT_EDGES) -> None:
        self.edges = tuple(int(e) for e in edges)
        self._unique = np.zeros(len(self.edges), dtype=np.int64)
        self._indices = np.zeros(len(self.edges), dtype=np.int64)
        self.num_batches = 0

    def add(self, counts: np.ndarray) -> None:
        """Add the access counts ``[U]`` (each >= 1) of unique rows of the current batch (any table)."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.size == 0:
            return
        if counts.min() < 1:
            raise ValueError("access counts must be >= 1")
        buckets = bucket_of(counts, self.edges)
        self._unique += np.bincount(buckets, minlength=len(self.edges))
        self._indices += np.bincount(buckets, weights=counts, minlength=len(self.edges)).astype(np.int64)

    def end_batch(self) -> None:
        self.num_batches += 1

    @property
    def col_size_hist(self) -> np.ndarray:
        """``[K]`` fraction of unique rows per bucket so far."""
        return self._unique / max(int(self._unique.sum()), 1)

    @property
    def index_ratio(self) -> np.ndarray:
        """``[K]`` fraction of indices per bucket so far."""
        return self._indices / max(int(self._indices.sum()), 1)

    def block(self, source: str, batch_size: int) -> LocalityStatsBlock:
        """The block of everything added so far (``num_batches`` = number of :meth:`end_batch` calls)."""
        if self.num_batches == 0 or self._unique.sum() == 0:
            raise ValueError("no batches with indices were added")
        hist = self.col_size_hist
        ratio = self.index_ratio
        total_unique = int(self._unique.sum())
        total_indices = int(self._indices.sum())
        return LocalityStatsBlock(
            source=source,
            num_batches=self.num_batches,
            batch_size=batch_size,
            avg_indices=total_indices / self.num_batches,
            avg_unique=total_unique / self.num_batches,
            avg_col_size=total_indices / total_unique,
            edges=self.edges,
            col_size_hist=tuple(float(x) for x in hist),
            col_size_cdf=(0.0, *(float(x) for x in np.cumsum(hist))),
            index_ratio=tuple(float(x) for x in ratio),
            index_ratio_cdf=(0.0, *(float(x) for x in np.cumsum(ratio))),
        )


# ------------------------------------------------------------------------------------------------------------
# Reading


class _Lines:
    """Line cursor that knows the file and line number, for error messages."""

    def __init__(self, text: str, where: str) -> None:
        self.lines = text.splitlines()
        self.where = where
        self.pos = 0

    def error(self, problem: str, line_no: int | None = None) -> DataFormatError:
        n = self.pos if line_no is None else line_no
        got = self.lines[n - 1] if 0 < n <= len(self.lines) else "<end of file>"
        return DataFormatError(f"{self.where}:{n}: {problem}; got {got!r}")

    def skip_blank(self) -> None:
        while self.pos < len(self.lines) and not self.lines[self.pos].strip():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.lines)

    def next(self, expected: str) -> str:
        if self.pos >= len(self.lines):
            self.pos += 1
            raise self.error(f"expected {expected}")
        line = self.lines[self.pos].strip()
        self.pos += 1
        return line

    def peek(self) -> str | None:
        return self.lines[self.pos].strip() if self.pos < len(self.lines) else None


def _number(lines: _Lines, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise lines.error(f"{what} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise lines.error(f"{what} must be a finite number >= 0")
    return value


def _read_histogram(
    lines: _Lines, header: str
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...]]:
    """Parse a header, its bucket lines, the edges list and the CDF list. Returns (edges, fractions, cdf)."""
    if lines.next(f"{header!r}") != header:
        raise lines.error(f"expected {header!r}")
    header_line = lines.pos
    edges: list[int] = []
    fractions: list[float] = []
    prev_hi = -1
    closed = True
    while closed:
        line = lines.next("a bucket line like '(1, 2]: 0.144' or '(32768+: 0.000'")
        match = _CLOSED_BUCKET.match(line)
        if match:
            lo, hi = int(match.group(1)), int(match.group(2))
            if hi <= lo or (edges and lo != prev_hi):
                raise lines.error("buckets must be contiguous and increasing")
            prev_hi = hi
        else:
            match = _OPEN_BUCKET.match(line)
            if not match:
                raise lines.error(
                    "expected a bucket line like '(1, 2]: 0.144' or the open bucket '(32768+: 0.000'"
                )
            lo = int(match.group(1))
            if edges and lo != prev_hi:
                raise lines.error("the open bucket must start where the last closed bucket ends")
            closed = False
        edges.append(lo)
        fraction = _number(lines, match.groups()[-1], "bucket fraction")
        if fraction > 1:
            raise lines.error("bucket fraction must be <= 1")
        fractions.append(fraction)
    if abs(sum(fractions) - 1.0) > _SUM_TOLERANCE:
        raise lines.error(f"bucket fractions sum to {sum(fractions):.4f}, not 1", header_line)
    try:
        listed = ast.literal_eval(lines.next("the list of bucket edges"))
    except (ValueError, SyntaxError):
        raise lines.error("expected the list of bucket edges like '[0, 1, 2, 4]'") from None
    if not isinstance(listed, list) or [int(x) for x in listed] != edges:
        raise lines.error(f"the edge list must equal the buckets' lower edges {edges}")
    try:
        cdf_raw = ast.literal_eval(lines.next("the CDF list"))
        cdf = tuple(float(x) for x in cdf_raw)
    except (ValueError, SyntaxError, TypeError):
        raise lines.error("expected the CDF list like ['0.000', '0.342']") from None
    if len(cdf) != len(edges) + 1 or any(b < a - 1e-9 for a, b in zip(cdf, cdf[1:])):
        raise lines.error(f"the CDF list must be {len(edges) + 1} non-decreasing numbers")
    return tuple(edges), tuple(fractions), cdf


def _read_block(lines: _Lines) -> LocalityStatsBlock:
    source = lines.next("a source name")
    match = _PROCESSED.match(lines.next("'Locality stats after processing N batches of size B'"))
    if not match:
        raise lines.error("expected 'Locality stats after processing N batches of size B'")
    num_batches, batch_size = int(match.group(1)), int(match.group(2))
    if num_batches < 1 or batch_size < 1:
        raise lines.error("the number of batches and the batch size must be >= 1")
    values: dict[str, float] = {}
    for name, pattern in _AVG.items():
        line = lines.next(pattern.pattern)
        found = pattern.match(line)
        if not found:
            label = pattern.pattern.split(":")[0].lstrip("^")
            raise lines.error(f"expected '{label}: <number>'")
        values[name] = _number(lines, found.group(1), name)
    edges, hist, hist_cdf = _read_histogram(lines, _HIST_HEADER)
    ratio_edges, ratio, ratio_cdf = _read_histogram(lines, _RATIO_HEADER)
    if ratio_edges != edges:
        raise lines.error("the index-ratio buckets differ from the col-size buckets")
    return LocalityStatsBlock(
        source=source,
        num_batches=num_batches,
        batch_size=batch_size,
        edges=edges,
        col_size_hist=hist,
        col_size_cdf=hist_cdf,
        index_ratio=ratio,
        index_ratio_cdf=ratio_cdf,
        **values,
    )


def parse_locality_stats(text: str, where: str = "<string>") -> LocalityStats:
    """Parse the text of a locality-stats file; ``where`` names it in errors (``DataFormatError``)."""
    lines = _Lines(text, where)
    blocks: list[LocalityStatsBlock] = []
    lines.skip_blank()
    while not lines.at_end():
        blocks.append(_read_block(lines))
        lines.skip_blank()
    if not blocks:
        raise DataFormatError(f"{where}:1: no locality-stats block found (empty file?)")
    return LocalityStats(tuple(blocks), path=where)


def read_locality_stats(path: str | os.PathLike[str]) -> LocalityStats:
    """Read and parse a locality-stats file (``DataFormatError`` naming the file and line if malformed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not a UTF-8 text file (byte {err.start})") from None
    return parse_locality_stats(text, str(path))


# ------------------------------------------------------------------------------------------------------------
# Writing


def _histogram_lines(edges: Sequence[int], fractions: Sequence[float], cdf: Sequence[float]) -> list[str]:
    lines = [f"({lo}, {hi}]: {f:.3f}" for lo, hi, f in zip(edges, edges[1:], fractions)]
    lines.append(f"({edges[-1]}+: {fractions[-1]:.3f}")
    lines.append("[" + ", ".join(str(e) for e in edges) + "]")
    lines.append("[" + ", ".join(f"'{c:.3f}'" for c in cdf) + "]")
    return lines


def format_locality_stats(blocks: Iterable[LocalityStatsBlock]) -> str:
    """The text of a locality-stats file holding ``blocks`` (published format, blank line between blocks)."""
    texts = []
    for b in blocks:
        lines = [
            b.source,
            f"Locality stats after processing {b.num_batches} batches of size {b.batch_size}",
            f"Avg # of indices: {round(b.avg_indices)}",
            f"Avg # of unique cols: {round(b.avg_unique)}",
            f"Avg col size: {b.avg_col_size:.1f}",
            _HIST_HEADER,
            *_histogram_lines(b.edges, b.col_size_hist, b.col_size_cdf),
            _RATIO_HEADER,
            *_histogram_lines(b.edges, b.index_ratio, b.index_ratio_cdf),
        ]
        texts.append("\n".join(lines) + "\n")
    return "\n".join(texts)


def write_locality_stats(path: str | os.PathLike[str], blocks: Iterable[LocalityStatsBlock]) -> None:
    """Write ``blocks`` to ``path`` atomically in the published format."""
    with atomic_write(path) as handle:
        handle.write(format_locality_stats(blocks))
