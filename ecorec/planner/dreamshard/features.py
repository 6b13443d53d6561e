"""DreamShard's 21 table features of a task's tables, and their normalisation.

Feature vector of one task table (or column shard) ``(name, dim)``, in DreamShard's order::

    [dim, rows, pooling_factor, size = rows * dim, bin_0, ..., bin_16]

``rows``, ``pooling_factor`` and the bins come from the measured table statistics
(:func:`ecorec.stats.dataset_table_features`), ``dim`` from the task. Normalisation (:class:`FeatureScaler`):

- ``task`` (DreamShard): ``rows``, ``pooling_factor`` and ``size`` z-scored within each task (population std);
  ``dim`` and the bins raw.
- ``global`` (NeuroShard; the default): ``log1p`` of ``dim``, ``rows``, ``pooling_factor`` and ``size``,
  z-scored with means and stds fitted once on the training pool; bins raw. A shard's cost depends on absolute
  sizes, which a per-task z-score hides, so the default keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ecorec.planner.dreamshard.tasks import TaskTable
from ecorec.stats.table_features import REUSE_BIN_COLUMNS

FEATURE_NAMES: tuple[str, ...] = ("dim", "rows", "pooling_factor", "size", *REUSE_BIN_COLUMNS)
NUM_FEATURES = len(FEATURE_NAMES)  # 21
_SCALED = 4  # dim, rows, pooling_factor, size


class TableCatalog:
    """The measured statistics of a dataset's tables (one row per table of
    :data:`ecorec.stats.TABLE_FEATURE_COLUMNS`)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        missing = [
            c for c in ("table", "rows", "pooling_factor", *REUSE_BIN_COLUMNS) if c not in frame.columns
        ]
        if missing:
            raise ValueError(f"table statistics: missing columns {missing}")
        self.frame = frame
        self._rows = {r["table"]: r for r in frame.iter_rows(named=True)}

    def __contains__(self, name: str) -> bool:
        return name in self._rows

    @property
    def names(self) -> list[str]:
        return list(self._rows)

    def rows(self, name: str) -> int:
        return int(self._row(name)["rows"])

    def pooling_factor(self, name: str) -> float:
        return float(self._row(name)["pooling_factor"])

    def _row(self, name: str) -> Mapping[str, Any]:
        try:
            return self._rows[name]
        except KeyError:
            raise KeyError(f"table statistics have no table {name!r}") from None

    def raw(self, tables: Sequence[TaskTable]) -> np.ndarray:
        """Unnormalised features ``[T, 21]`` (float64) of ``tables``, in :data:`FEATURE_NAMES` order."""
        out = np.zeros((len(tables), NUM_FEATURES), dtype=np.float64)
        for i, table in enumerate(tables):
            row = self._row(table.name)
            out[i, 0] = table.dim
            out[i, 1] = row["rows"]
            out[i, 2] = row["pooling_factor"]
            out[i, 3] = float(row["rows"]) * table.dim
            out[i, 4:] = [row[c] for c in REUSE_BIN_COLUMNS]
        return out


@dataclass
class FeatureScaler:
    """Normalises raw features ``[T, 21]`` (see the module docstring); ``mean``/``std`` of the 4 scaled
    columns for ``mode="global"``."""

    mode: str = "global"
    mean: list[float] = field(default_factory=lambda: [0.0] * _SCALED)
    std: list[float] = field(default_factory=lambda: [1.0] * _SCALED)

    def __post_init__(self) -> None:
        if self.mode not in ("global", "task"):
            raise ValueError(f"feature normalisation must be 'global' or 'task', got {self.mode!r}")

    @classmethod
    def fit(cls, raw: np.ndarray, mode: str = "global") -> FeatureScaler:
        """Fit on the raw features ``[N, 21]`` of the training pool."""
        scaler = cls(mode=mode)
        if mode == "global" and len(raw):
            logs = np.log1p(raw[:, :_SCALED])
            scaler.mean = [float(v) for v in logs.mean(axis=0)]
            scaler.std = [float(v) if v > 1e-12 else 1.0 for v in logs.std(axis=0)]
        return scaler

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Normalised features ``[T, 21]`` (float32)."""
        out = np.array(raw, dtype=np.float64, copy=True)
        if self.mode == "global":
            out[:, :_SCALED] = (np.log1p(out[:, :_SCALED]) - np.asarray(self.mean)) / np.asarray(self.std)
        elif len(out):
            cols = out[:, 1:_SCALED]
            std = cols.std(axis=0)
            out[:, 1:_SCALED] = (cols - cols.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)
        return out.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureScaler:
        return cls(mode=str(data["mode"]), mean=list(data["mean"]), std=list(data["std"]))
