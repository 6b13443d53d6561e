"""The synthetic dataset: the embedded default, calibrated to Meta's published ``dlrm_datasets`` statistics.

What it reproduces (all seeded and deterministic, no network):

- ``T`` tables with row counts log-uniform in ``[rows_min, rows_max]`` (or given);
- per-table mean pooling factors, log-normally spread, whose mean over tables is the published one
  (``avg indices / (788 * 131072)`` = 13.6 for the 2022 file, read from the stats file); per-sample lengths
  are Gamma-Poisson around them, so some bags are empty;
- index reuse: for every batch of ``reference_batch_size`` samples and every table, the access counts of the
  unique rows are drawn from the stats file's "histogram of col sizes" (capped by the table's rows and the
  batch's nnz), the rows are picked by a persistent per-table Zipf popularity (weighted sampling without
  replacement), and the largest counts go to the most popular picks, so hot rows stay hot across batches;
- optional co-occurrence structure (``communities``, ``locality``; off by default): latent sample
  communities that prefer their own rows, so that graph partitioning (HET-GMP) has something to find
  (``community_remap``);
- dense features ``N(0, 1)`` and labels from a planted logistic model over a few sparse features (a scalar
  effect per row, summed over the bag) plus a linear term in the dense features, so a model can learn
  something real.

What is matched, and what only approximately:

- matched: the **col-size histogram** (fraction of a batch's unique rows per access-count bucket), over all
  tables and reference batches; total variation (TV) <= 0.02 to the target when the tables have more rows
  than a batch has indices (measured 0.007-0.015; tables smaller than that are saturated and fold their
  counts, which the calibration cannot undo). ``mean_pooling`` within a few percent.
- approximate: the **index ratio** (fraction of indices per bucket). It follows from the counts drawn, which
  are log-uniform inside a bucket and capped by the table's rows; measured TV 0.12 (8 tables of 1e4..1e6 rows,
  reference batch 2048, three seeds: 0.120-0.125) and 0.04-0.06 (32 default tables, batch 4096); the tests
  bound it at 0.2.
- the **batch size**: the packaged histogram was measured on batches of 131072 samples (all 788 tables), and
  is imposed here per table on batches of ``reference_batch_size`` (default 4096). Reuse grows with the
  batch, so the data follows the histogram's shape at the reference batch size; it is not Meta's data
  subsampled to that batch size. A warning is logged when the two batch sizes differ; to match at the
  training batch size, set ``reference_batch_size`` to it (or give a ``stats_file`` measured at it).

A stats file's mean pooling is ``avg indices / (T * batch size)`` with ``T`` read from the block name
(``fbgemm_t788_bs131072_0.pt``); a name without ``_t<T>_`` falls back to ``num_tables`` with a warning. The
generator's own ``locality_stats.txt`` (block ``<name>_t<T>_bs<B> (synthetic, seed S)``) and the
``feature_stats`` rule's output carry ``T``, so either can be fed back as ``stats_file``.

Cost: O(rows) memory per table (8 bytes per row) and O(rows) time per table and batch (the popularity race),
fine up to ~1e7 rows per table; the default config (32 tables, up to 1e6 rows, 102400 samples) takes seconds.

The achieved reuse histogram and its total variation distance to the target are recorded in ``metadata.json``
and written as ``locality_stats.txt`` (the published format) beside it.

Size (~600 lines, above the ~500 guideline): one generator, whose calibration (targets from the stats file),
popularity race, planted labels and provenance share its configuration and state.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from ecorec.data.locality_stats import (
    LocalityAccumulator,
    LocalityStatsBlock,
    format_locality_stats,
    locality_source_name,
    read_locality_stats,
    total_variation,
)
from ecorec.data.parquet import (
    DENSE,
    LABEL,
    DatasetMetadata,
    ParquetDatasetWriter,
    dense_column,
    sparse_column,
)
from ecorec.data.sources import default_locality_stats_path
from ecorec.utils import environment_record

logger = logging.getLogger(__name__)

LOCALITY_STATS_FILE = "locality_stats.txt"

# Random streams: one per purpose, so each draw is independent of the order of the others.
_STREAM_POPULARITY, _STREAM_TABLES, _STREAM_EFFECTS, _STREAM_SAMPLES, _STREAM_INDICES, _STREAM_CALIBRATION = (
    range(6)
)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the synthetic generator (the ``datasets.<name>`` entry of config.yaml, minus writer keys).

    Attributes:
        num_tables: T. num_samples: samples generated.
        rows: explicit row count per table (length T); otherwise log-uniform in ``[rows_min, rows_max]``.
        mean_pooling: mean indices per sample per table over all tables; ``None``: from the stats file.
        pooling_sigma: log-normal spread of the per-table mean pooling factors (0: all equal).
        pooling_dispersion: Gamma shape of per-sample lengths (smaller: more variance and more empty bags).
        stats_file: locality-stats file to follow; ``None``: the packaged 2022 one (measured at batch
            131072). Its mean pooling needs the table count from the block name; without one,
            ``num_tables`` is used (warning).
        reference_batch_size: batch size at which the reuse histogram is imposed, per table and batch: the
            col-size histogram is matched there (TV <= 0.02), the index ratio only approximately (TV ~0.12,
            see the module docstring). A warning is logged if it differs from the stats file's batch size.
        zipf_alpha: exponent of the per-table row popularity.
        num_dense: dense features. planted_tables: tables carrying label signal (default: min(4, T)).
        planted_weight / dense_weight / label_bias: scale of the sparse and dense terms, and the logit bias.
        seed: everything derives from it.
        communities / locality: co-occurrence knob (``community_remap``); off unless ``communities > 1`` and
            ``locality > 0``, and then the output is byte-identical to a config without them.
    """

    num_tables: int = 32
    num_samples: int = 102_400
    rows: tuple[int, ...] | None = None
    rows_min: int = 1_000
    rows_max: int = 1_000_000
    mean_pooling: float | None = None
    pooling_sigma: float = 1.0
    pooling_dispersion: float = 1.0
    stats_file: str | None = None
    reference_batch_size: int = 4096
    zipf_alpha: float = 1.0
    num_dense: int = 13
    planted_tables: int | None = None
    planted_weight: float = 1.0
    dense_weight: float = 1.0
    label_bias: float = -1.0
    seed: int = 0
    # co-occurrence structure (HET-GMP, issue 16; see ``community_remap``): 0 / 0.0 = off, the default
    communities: int = 0
    locality: float = 0.0

    def __post_init__(self) -> None:
        if self.rows is not None:
            object.__setattr__(self, "rows", tuple(int(r) for r in self.rows))
        if self.planted_tables is None:
            object.__setattr__(self, "planted_tables", min(4, self.num_tables))
        positive = ("num_tables", "num_samples", "rows_min", "rows_max", "reference_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"SyntheticConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.rows_min > self.rows_max:
            raise ValueError(f"SyntheticConfig.rows_min ({self.rows_min}) > rows_max ({self.rows_max})")
        if self.rows is not None and (len(self.rows) != self.num_tables or min(self.rows) < 1):
            raise ValueError(
                f"SyntheticConfig.rows must list {self.num_tables} row counts >= 1, got {self.rows}"
            )
        if self.mean_pooling is not None and not self.mean_pooling > 0:
            raise ValueError(f"SyntheticConfig.mean_pooling must be > 0, got {self.mean_pooling}")
        for name in ("pooling_sigma", "zipf_alpha", "planted_weight", "dense_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyntheticConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.pooling_dispersion <= 0:
            raise ValueError(f"SyntheticConfig.pooling_dispersion must be > 0, got {self.pooling_dispersion}")
        if self.communities < 0 or not 0.0 <= self.locality <= 1.0:
            raise ValueError(
                f"SyntheticConfig: communities must be >= 0 and locality in [0, 1], got "
                f"communities={self.communities}, locality={self.locality}"
            )
        if self.num_dense < 0 or not 0 <= self.planted_tables <= self.num_tables:
            raise ValueError(
                f"SyntheticConfig: num_dense must be >= 0 and planted_tables in [0, num_tables], got "
                f"num_dense={self.num_dense}, planted_tables={self.planted_tables}"
            )

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> SyntheticConfig:
        """Build from a config mapping; an unknown key raises ``ValueError`` naming it."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ValueError(f"unknown synthetic dataset settings {unknown}; known: {sorted(names)}")
        return cls(**dict(settings))

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["rows"] = list(self.rows) if self.rows is not None else None
        if not self.has_communities:  # existing configs keep byte-identical metadata
            out.pop("communities")
            out.pop("locality")
        return out

    @property
    def has_communities(self) -> bool:
        """Whether the co-occurrence knob is on (``communities > 1`` and ``locality > 0``)."""
        return self.communities > 1 and self.locality > 0


def load_target_stats(
    stats_file: str | os.PathLike[str] | None = None, batch_size: int | None = None
) -> LocalityStatsBlock:
    """The block the generator follows (the mean of the file's blocks); ``None``: the packaged 2022 file.

    Blocks measured at different batch sizes describe different reuse (reuse grows with the batch), so they
    are not averaged blindly: a warning names the file and the sizes, and only the blocks of ``batch_size``
    (the configured reference batch size) are used, or, if none has it, those of the most common size (the
    largest on a tie).
    """
    path = Path(stats_file) if stats_file is not None else default_locality_stats_path()
    stats = read_locality_stats(path)
    sizes = sorted({b.batch_size for b in stats.blocks})
    if len(sizes) > 1:
        if batch_size in sizes:
            keep = batch_size
            why = "the configured reference_batch_size"
        else:
            counts = {size: sum(b.batch_size == size for b in stats.blocks) for size in sizes}
            keep = max(sizes, key=lambda size: (counts[size], size))
            why = f"the most common size (reference_batch_size={batch_size} has no block)"
        chosen = [b for b in stats.blocks if b.batch_size == keep]
        logger.warning(
            "%s: its blocks disagree: measured at batch sizes %s; using only the %d block(s) of batch "
            "size %d (%s)",
            path,
            sizes,
            len(chosen),
            keep,
            why,
        )
        stats = dataclasses.replace(
            stats, blocks=tuple(chosen) if isinstance(stats.blocks, tuple) else chosen
        )
    return stats.mean()


class AccessCountSampler:
    """Draws access counts of a batch's unique rows following a locality-stats block.

    The probability of each bucket ``(lo, hi]`` is the fraction of unique rows in it. The published files
    print both histograms to 3 decimals, so the fraction is taken from whichever resolves it better: the
    col-size histogram ``h_k`` itself, or the one implied by the index ratio ``r_k * (nnz / U) / mean_k``
    where ``r_k > h_k`` (the rare, very hot rows: ``h_k`` rounds to 0.000 although they hold a fifth of all
    indices). Within a bucket counts are log-uniform (power-law like); the open last bucket ends at twice its
    lower edge. :meth:`calibrated` then reweights the buckets so that the aggregate over tables, after the
    caps, matches.
    """

    def __init__(self, block: LocalityStatsBlock, probs: np.ndarray | None = None) -> None:
        self.block = block
        self.lo, self.hi = block.bucket_bounds()
        self._log_lo = np.log(self.lo + 1.0)
        self._log_hi = np.log(self.hi + 1.0)
        # Exact mean of one draw in each bucket: P(j) = log((j+1)/j) / log((hi+1)/(lo+1)) for j in (lo, hi].
        means = []
        for lo, hi in zip(self.lo, self.hi):
            j = np.arange(lo + 1, hi + 1, dtype=np.float64)
            means.append(float((j * np.log1p(1.0 / j)).sum() / math.log((hi + 1) / (lo + 1))))
        self.bucket_means = np.asarray(means)
        if probs is None:
            probs = self.target_probs(block, self.bucket_means)
        if probs.sum() <= 0:
            raise ValueError(f"locality stats {block.source!r}: the col-size histogram is all zero")
        self.probs = probs / probs.sum()
        self._cdf = np.cumsum(self.probs)
        self._cdf[-1] = 1.0
        self.mean = float(self.probs @ self.bucket_means)

    @staticmethod
    def target_probs(block: LocalityStatsBlock, bucket_means: np.ndarray) -> np.ndarray:
        """``[K]`` fraction of unique rows per bucket, each from the better-resolved published histogram."""
        hist = np.asarray(block.col_size_hist, dtype=np.float64)
        ratio = np.asarray(block.index_ratio, dtype=np.float64)
        col_size = block.avg_indices / block.avg_unique if block.avg_unique > 0 else block.avg_col_size
        implied = ratio * col_size / bucket_means
        probs = np.where(ratio > hist, implied, hist)
        return probs / probs.sum()

    def draw(self, rng: np.random.Generator, nnz: int, max_unique: int) -> np.ndarray:
        """Counts ``[U]`` (int64, descending, each >= 1) summing to exactly ``nnz``, with ``U <= max_unique``.

        Draws until the sum reaches ``nnz`` and trims the last draw; if more than ``max_unique`` rows would be
        needed, the draws are folded onto ``max_unique`` rows (their counts added).
        """
        if nnz <= 0:
            return np.zeros(0, dtype=np.int64)
        parts = []
        total = 0
        n = int(nnz / self.mean * 1.2) + 16
        # Buckets a table of this nnz cannot hold are left out (their draws would only be trimmed into a
        # lower bucket, over-producing it), and counts stay <= nnz.
        cdf, log_hi, hi = self._cdf, self._log_hi, self.hi
        if self.lo[-1] >= nnz or self.hi[-1] > nnz:
            probs = np.where(self.lo < nnz, self.probs, 0.0)
            cdf = np.cumsum(probs / probs.sum())
            cdf[-1] = 1.0
            hi = np.minimum(self.hi, nnz)
            log_hi = np.log(hi + 1.0)
        while total < nnz:
            bucket = np.searchsorted(cdf, rng.random(n), side="right")
            bucket = np.minimum(bucket, len(self.probs) - 1)
            u = rng.random(n)
            c = np.floor(np.exp(self._log_lo[bucket] + u * (log_hi[bucket] - self._log_lo[bucket])))
            c = np.clip(c.astype(np.int64), self.lo[bucket] + 1, hi[bucket])
            parts.append(c)
            total += int(c.sum())
        counts = np.concatenate(parts)
        cumulative = np.cumsum(counts)
        unique = int(np.searchsorted(cumulative, nnz, side="left")) + 1
        counts = counts[:unique]
        counts[-1] -= int(cumulative[unique - 1]) - nnz
        if unique > max_unique:
            folded = np.bincount(np.arange(unique) % max_unique, weights=counts, minlength=max_unique)
            counts = folded.astype(np.int64)
        return -np.sort(-counts)

    def calibrated(
        self,
        rng: np.random.Generator,
        nnz: Sequence[int],
        max_unique: Sequence[int],
        iterations: int = 8,
        repeats: int = 16,
    ) -> AccessCountSampler:
        """A sampler whose bucket weights are corrected so that counts drawn for tables with these ``nnz``
        and row caps aggregate to this sampler's target (multiplicative correction, ``iterations`` rounds).

        Each bucket is corrected on the histogram that resolves it (as in :meth:`target_probs`): the hot
        buckets (index ratio above the col-size fraction: few rows, many indices) on the **index ratio**,
        the others on the col-size histogram. A hot count larger than a table's batch nnz is trimmed into a
        lower bucket, so matching the hot tail's col-size fraction alone under-produces the hottest buckets'
        indices (and over-produces the one below); correcting them on their share of indices does not.
        """
        target_hist = self.target_probs(self.block, self.bucket_means)
        target_ratio = np.asarray(self.block.index_ratio, dtype=np.float64)
        target_ratio = target_ratio / target_ratio.sum() if target_ratio.sum() > 0 else target_ratio
        hot = target_ratio > np.asarray(self.block.col_size_hist, dtype=np.float64)
        sampler: AccessCountSampler = self
        for _ in range(iterations):
            acc = LocalityAccumulator(self.block.edges)
            for _ in range(repeats):  # the hot buckets hold few rows: several pilot batches per round
                for n, cap in zip(nnz, max_unique):
                    acc.add(sampler.draw(rng, int(n), int(cap)))
            hist, ratio = acc.col_size_hist, acc.index_ratio
            achieved = np.where(hot, ratio, hist)
            target = np.where(hot, target_ratio, target_hist)
            factor = np.where((achieved > 0) & (target > 0), target / np.maximum(achieved, 1e-12), 1.0)
            factor = np.where(hot, np.sqrt(factor), factor)  # damped: the index ratio reacts more than 1:1
            sampler = AccessCountSampler(self.block, sampler.probs * np.clip(factor, 0.2, 5.0))
        return sampler


class RowPopularity:
    """Persistent popularity of one table's rows: Zipf weights ``(k+1)^-alpha`` over a seeded permutation.

    :meth:`pick` samples distinct rows with probability proportional to weight (successive sampling without
    replacement, via the exponential race ``top-k of w / Exp(1)``) and returns them most popular first, so the
    largest access counts of every batch go to the same few hot rows.
    """

    def __init__(self, num_rows: int, alpha: float, rng: np.random.Generator) -> None:
        self.num_rows = num_rows
        dtype = np.int32 if num_rows < 2**31 else np.int64  # O(rows) memory: 8 bytes per row with the weights
        self.rows_by_rank = rng.permutation(num_rows).astype(dtype)
        self.weights = np.power(np.arange(1, num_rows + 1, dtype=np.float32), np.float32(-alpha))

    def pick(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """``k <= num_rows`` distinct row ids ``[k]``, in decreasing popularity."""
        if k >= self.num_rows:
            return self.rows_by_rank.astype(np.int64)
        with np.errstate(divide="ignore"):  # an Exp(1) draw of exactly 0 gives an infinite key: picked
            keys = self.weights / rng.standard_exponential(self.num_rows, dtype=np.float32)
        ranks = np.sort(np.argpartition(-keys, k - 1)[:k])
        return self.rows_by_rank[ranks].astype(np.int64)


def table_batch_indices(
    rng: np.random.Generator, lengths: np.ndarray, popularity: RowPopularity, sampler: AccessCountSampler
) -> tuple[np.ndarray, np.ndarray]:
    """One table's indices for one batch.

    Args:
        lengths: ``[B]`` bag sizes.
    Returns:
        ``(values [nnz] int64, counts [U] int64)``: the bags' row ids concatenated in bag order, and the
        access count of each unique row (for statistics).
    """
    nnz = int(lengths.sum())
    counts = sampler.draw(rng, nnz, popularity.num_rows)
    rows = popularity.pick(rng, len(counts))
    values = np.repeat(rows, counts)
    rng.shuffle(values)
    return values, counts


# -- co-occurrence structure (HET-GMP, issue 16) -----------------------------------------------------------
_STREAM_COMMUNITIES = 6


def community_remap(
    rng: np.random.Generator,
    values: np.ndarray,
    communities: np.ndarray,
    popularity: RowPopularity,
    num_communities: int,
    locality: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Make samples of one latent community prefer their own rows (the ``communities`` / ``locality`` knob).

    Every row of a table belongs to community ``rank % K`` (``rank``: its popularity rank, ``K`` =
    ``num_communities``). Each index, independently with probability ``locality``, moves to the row of the
    same popularity tier (``rank // K``) in its sample's community: ``rank' = (rank // K) * K + c`` (kept when
    that rank is past the table's end). ``locality = 0`` is the independent Zipf stream; ``locality = 1`` puts
    every index of a community-``c`` sample on community-``c`` rows, so a partition by community removes
    all remote rows. Popularity is kept within a tier (``K`` ranks), but a hot row's accesses split among the
    ``K`` rows of its tier, so reuse per row drops with ``locality`` (the achieved histogram is recorded).

    Args:
        values: ``[nnz]`` row ids of one table in bag order. communities: ``[nnz]`` the community of each
            index's sample.
    Returns:
        ``(values [nnz], counts [U])``: remapped ids and the access count of each unique row.
    """
    K = num_communities
    order = popularity.rows_by_rank.astype(np.int64)
    rank_of = np.empty(popularity.num_rows, dtype=np.int64)
    rank_of[order] = np.arange(popularity.num_rows)
    rank = rank_of[values]
    moved = (rank // K) * K + communities
    move = (rng.random(values.size) < locality) & (moved < popularity.num_rows)
    out = np.where(move, order[np.minimum(moved, popularity.num_rows - 1)], values)
    counts = np.unique(out, return_counts=True)[1]
    return out, -np.sort(-counts)


# -- end co-occurrence structure ----------------------------------------------------------------------------


def _log_uniform_rows(rng: np.random.Generator, n: int, rows_min: int, rows_max: int) -> np.ndarray:
    rows = np.exp(rng.uniform(math.log(rows_min), math.log(rows_max), size=n))
    return np.clip(np.round(rows), rows_min, rows_max).astype(np.int64)


def _table_mean_pooling(rng: np.random.Generator, n: int, mean: float, sigma: float) -> np.ndarray:
    spread = np.exp(sigma * rng.standard_normal(n))
    return mean * spread / spread.mean()


def _bag_lengths(
    rng: np.random.Generator, num_samples: int, means: np.ndarray, dispersion: float
) -> np.ndarray:
    """``[num_samples, T]`` Gamma-Poisson lengths with per-table means ``[T]``."""
    rates = rng.gamma(dispersion, means / dispersion, size=(num_samples, len(means)))
    return rng.poisson(rates).astype(np.int64)


class SyntheticDatasetGenerator:
    """Generates the synthetic dataset batch by batch (see the module docstring).

    Attributes:
        table_rows: ``[T]`` rows per table. table_mean_pooling: ``[T]`` target mean bag size per table.
        planted: indices of the tables carrying label signal. target: the locality-stats block followed.
    """

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.target = load_target_stats(config.stats_file, config.reference_batch_size)
        stats_name = config.stats_file or default_locality_stats_path().name
        if self.target.batch_size != config.reference_batch_size:
            logger.warning(
                "synthetic: the reuse histogram of %s was measured at batch size %s but is imposed per table "
                "at reference_batch_size=%d; the col-size histogram is matched at %d, the index ratio only "
                "approximately (see ecorec.data.synthetic)",
                stats_name,
                self.target.batch_size or "(mixed)",
                config.reference_batch_size,
                config.reference_batch_size,
            )
        mean_pooling = config.mean_pooling
        if mean_pooling is None:
            tables = self.target.reference_num_tables
            if tables is None:
                tables = config.num_tables
                logger.warning(
                    "synthetic: locality stats block %r of %s has no table count in its name (like "
                    "'_t788_'); taking the mean pooling as avg indices / (num_tables=%d * batch size %d); "
                    "set mean_pooling to override",
                    self.target.source,
                    stats_name,
                    tables,
                    self.target.batch_size,
                )
            mean_pooling = self.target.mean_pooling(tables)
        self.mean_pooling = float(mean_pooling)
        rng = _rng(config.seed, _STREAM_TABLES)
        if config.rows is not None:
            self.table_rows = np.asarray(config.rows, dtype=np.int64)
        else:
            self.table_rows = _log_uniform_rows(rng, config.num_tables, config.rows_min, config.rows_max)
        self.table_mean_pooling = _table_mean_pooling(
            rng, config.num_tables, self.mean_pooling, config.pooling_sigma
        )
        self.planted = np.sort(rng.choice(config.num_tables, size=config.planted_tables, replace=False))
        self.dense_weights = (
            rng.standard_normal(config.num_dense) * config.dense_weight / math.sqrt(max(config.num_dense, 1))
        ).astype(np.float32)
        pilot = _rng(config.seed, _STREAM_CALIBRATION)
        pilot_nnz = _bag_lengths(
            pilot, config.reference_batch_size, self.table_mean_pooling, config.pooling_dispersion
        )
        self.sampler = AccessCountSampler(self.target).calibrated(
            pilot, pilot_nnz.sum(axis=0), self.table_rows
        )
        self._popularity: list[RowPopularity] = []
        for t, rows in enumerate(self.table_rows):
            self._popularity.append(
                RowPopularity(int(rows), config.zipf_alpha, _rng(config.seed, _STREAM_POPULARITY, t))
            )
        self._effects = {
            int(t): _rng(config.seed, _STREAM_EFFECTS, int(t))
            .standard_normal(int(self.table_rows[t]))
            .astype(np.float32)
            for t in self.planted
        }
        self.features = tuple(f"f{t}" for t in range(config.num_tables))
        self.locality = LocalityAccumulator(self.target.edges)
        self.total_indices = np.zeros(config.num_tables, dtype=np.int64)

    @property
    def num_batches(self) -> int:
        return math.ceil(self.config.num_samples / self.config.reference_batch_size)

    def batch(self, index: int) -> pa.RecordBatch:
        """Batch ``index`` (samples ``[index*B_ref, ...)``): label, dense and every feature column.

        Also adds its access counts to :attr:`locality` (call each batch once for meaningful statistics).
        """
        cfg = self.config
        start = index * cfg.reference_batch_size
        n = min(cfg.reference_batch_size, cfg.num_samples - start)
        if n <= 0:
            raise IndexError(f"batch {index} is past the end ({self.num_batches} batches)")
        rng = _rng(cfg.seed, _STREAM_SAMPLES, index)
        lengths = _bag_lengths(rng, n, self.table_mean_pooling, cfg.pooling_dispersion)
        dense = rng.standard_normal((n, cfg.num_dense), dtype=np.float32)
        logit = cfg.label_bias + dense @ self.dense_weights
        columns: dict[str, pa.Array] = {}
        for t in range(cfg.num_tables):
            values, counts = table_batch_indices(
                _rng(cfg.seed, _STREAM_INDICES, index, t), lengths[:, t], self._popularity[t], self.sampler
            )
            if cfg.has_communities:  # co-occurrence knob (issue 16); off by default
                values, counts = community_remap(
                    _rng(cfg.seed, _STREAM_COMMUNITIES, index, t),
                    values,
                    np.repeat(self.sample_communities(index, n), lengths[:, t]),
                    self._popularity[t],
                    cfg.communities,
                    cfg.locality,
                )
            self.locality.add(counts)
            self.total_indices[t] += len(values)
            columns[self.features[t]] = sparse_column(lengths[:, t], values)
            if t in self._effects:
                bag = np.repeat(np.arange(n), lengths[:, t])
                bag_sum = np.bincount(bag, weights=self._effects[t][values], minlength=n)
                logit = logit + cfg.planted_weight * bag_sum / math.sqrt(max(self.table_mean_pooling[t], 1.0))
        self.locality.end_batch()
        labels = (rng.random(n) < np.exp(-np.logaddexp(0.0, -logit))).astype(np.float32)  # sigmoid, stable
        arrays = {
            LABEL: pa.array(labels),
            **({DENSE: dense_column(dense)} if cfg.num_dense else {}),
            **columns,
        }
        return pa.RecordBatch.from_pydict(arrays)

    def sample_communities(self, index: int, n: int) -> np.ndarray:
        """``[n]`` latent community of each sample of batch ``index`` (co-occurrence knob)."""
        return _rng(self.config.seed, _STREAM_COMMUNITIES, index).integers(0, self.config.communities, n)

    def batches(self, progress: bool = False) -> Iterator[pa.RecordBatch]:
        for index in tqdm(range(self.num_batches), desc="synthetic", unit="batch", disable=not progress):
            yield self.batch(index)

    def reuse_report(self) -> dict[str, Any]:
        """Target vs achieved reuse histograms (and their total variation distances) of the batches so far."""
        achieved = self.locality.block("synthetic", self.config.reference_batch_size)
        return {
            "reference_batch_size": self.config.reference_batch_size,
            "edges": list(self.target.edges),
            "target_col_size_hist": list(self.target.col_size_hist),
            "achieved_col_size_hist": list(achieved.col_size_hist),
            "col_size_total_variation": total_variation(achieved.col_size_hist, self.target.col_size_hist),
            "target_index_ratio": list(self.target.index_ratio),
            "achieved_index_ratio": list(achieved.index_ratio),
            "index_ratio_total_variation": total_variation(achieved.index_ratio, self.target.index_ratio),
            "achieved_avg_col_size": achieved.avg_col_size,
            "target_avg_col_size": self.target.avg_col_size,
        }


def generate_synthetic_dataset(
    path: str | os.PathLike[str],
    config: SyntheticConfig,
    *,
    row_group_size: int = 4096,
    splits: Mapping[str, float | Sequence[int]] | None = None,
    samples_per_file: int | None = None,
    progress: bool = False,
) -> DatasetMetadata:
    """Generate the dataset into the Parquet folder ``path`` (atomically) and return its metadata.

    ``metadata.json`` records the settings, the derived table facts (rows, mean pooling, planted tables), the
    reuse report (target/achieved histograms and total variation) and the environment; ``locality_stats.txt``
    holds the achieved statistics in the published format.
    """
    generator = SyntheticDatasetGenerator(config)
    with ParquetDatasetWriter(
        path,
        features=generator.features,
        num_dense=config.num_dense,
        has_labels=True,
        row_group_size=row_group_size,
        samples_per_file=samples_per_file,
    ) as writer:
        for batch in generator.batches(progress):
            writer.write(batch)
        # named like Meta's files (the table count is read back), so it can be fed back as stats_file
        name = locality_source_name(Path(path).name, config.num_tables, config.reference_batch_size)
        block = generator.locality.block(
            f"{name} (synthetic, seed {config.seed})",
            config.reference_batch_size,
        )
        (writer.temp_dir / LOCALITY_STATS_FILE).write_text(format_locality_stats([block]), encoding="utf-8")
        metadata = writer.finish(
            source="synthetic",
            num_embeddings={f: int(r) for f, r in zip(generator.features, generator.table_rows)},
            splits=splits,
            provenance=_provenance(generator),
        )
    reuse = metadata.provenance["reuse"]
    logger.info(
        "synthetic dataset %s: %d samples, %d tables, %d indices; reuse TV %.4f (index ratio TV %.4f)",
        path,
        metadata.num_samples,
        config.num_tables,
        int(generator.total_indices.sum()),
        reuse["col_size_total_variation"],
        reuse["index_ratio_total_variation"],
    )
    return metadata


def _provenance(generator: SyntheticDatasetGenerator) -> dict[str, Any]:
    g = generator
    return {
        "generator": "ecorec.data.synthetic",
        "settings": g.config.to_json(),
        "stats_file": str(g.config.stats_file or default_locality_stats_path().name),
        "target_source": g.target.source,
        "mean_pooling": g.mean_pooling,
        "table_rows": [int(r) for r in g.table_rows],
        "table_mean_pooling_target": [float(m) for m in g.table_mean_pooling],
        "table_mean_pooling_achieved": [float(x) / g.config.num_samples for x in g.total_indices],
        "planted_tables": [g.features[t] for t in g.planted],
        "reuse": g.reuse_report(),
        "environment": environment_record(),
    }


# ------------------------------------------------------------------------------------------------------------
# Lookups for kernel benchmarks and Meta-format test files


def synthetic_table_lookup(
    num_embeddings: int,
    batch_size: int,
    *,
    mean_pooling: float | None = None,
    stats_file: str | os.PathLike[str] | None = None,
    zipf_alpha: float = 1.0,
    pooling_dispersion: float = 1.0,
    seed: int = 0,
    batch_index: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One table's lookup at ``batch_size``, calibrated like the synthetic dataset (reuse at this batch size).

    The row popularity depends on ``seed`` only, so different ``batch_index`` values give different batches of
    the same table (hot rows persist).

    Returns:
        ``(indices [nnz] int64, offsets [B+1] int64)`` with ``B = batch_size``.
    """
    if num_embeddings < 1 or batch_size < 1:
        raise ValueError(f"num_embeddings and batch_size must be >= 1, got {num_embeddings}, {batch_size}")
    target = load_target_stats(stats_file, batch_size)
    mean = target.mean_pooling() if mean_pooling is None else mean_pooling
    rng = _rng(seed, _STREAM_SAMPLES, batch_index)
    lengths = _bag_lengths(rng, batch_size, np.array([mean], dtype=np.float64), pooling_dispersion)[:, 0]
    popularity = RowPopularity(num_embeddings, zipf_alpha, _rng(seed, _STREAM_POPULARITY, 0))
    values, _ = table_batch_indices(
        _rng(seed, _STREAM_INDICES, batch_index, 0), lengths, popularity, AccessCountSampler(target)
    )
    offsets = np.zeros(batch_size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return torch.from_numpy(values), torch.from_numpy(offsets)


def synthetic_meta_dlrm_tensors(
    num_tables: int,
    batch_size: int,
    *,
    rows: Sequence[int] | None = None,
    rows_min: int = 1_000,
    rows_max: int = 1_000_000,
    mean_pooling: float | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic data in Meta's ``dlrm_datasets`` layout (write it with ``ecorec.data.write_meta_dlrm_file``).

    Returns:
        ``(indices [nnz] int64, offsets [T*B+1] int64, lengths [T, B] int64)``, offsets table-major: bag
        ``(t, b)`` is ``indices[offsets[t*B+b] : offsets[t*B+b+1]]``.
    """
    config = SyntheticConfig(
        num_tables=num_tables,
        num_samples=batch_size,
        rows=tuple(rows) if rows is not None else None,
        rows_min=rows_min,
        rows_max=rows_max,
        mean_pooling=mean_pooling,
        reference_batch_size=batch_size,
        num_dense=0,
        planted_tables=0,
        seed=seed,
    )
    generator = SyntheticDatasetGenerator(config)
    rng = _rng(seed, _STREAM_SAMPLES, 0)
    lengths = _bag_lengths(rng, batch_size, generator.table_mean_pooling, config.pooling_dispersion).T.copy()
    values = [
        table_batch_indices(
            _rng(seed, _STREAM_INDICES, 0, t), lengths[t], generator._popularity[t], generator.sampler
        )[0]
        for t in range(num_tables)
    ]
    indices = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(num_tables * batch_size + 1, dtype=np.int64)
    np.cumsum(lengths.reshape(-1), out=offsets[1:])
    return torch.from_numpy(indices), torch.from_numpy(offsets), torch.from_numpy(lengths)
