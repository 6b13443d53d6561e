"""Result records, typed: one :class:`BenchRecord` per kernel measurement, one :class:`RunRecord` per training
run, and the one aggregation of kernel measurements over tables (:func:`sum_over_tables`).

On disk a record is one JSON object ``{"kind", "version", "config", "environment", "metrics"}``: a run's
``record.json`` (``ecorec.train``) holds one, a kernel benchmark's ``.jsonl`` (``python -m ecorec.bench tt``)
one per line. ``kind`` is ``"bench"`` or ``"run"``; ``version`` is :data:`RECORD_VERSION` (records written
before versions existed have neither key: read as version 0, their kind told by their metrics). Writers:
``ecorec.bench.tt`` and ``ecorec.train.loop``; readers: the planner's calibration, ``ecorec.plots`` and the
benchmark reports, all through :func:`read_records` / :meth:`Record.from_dict`.

Standard library only, so every layer may use it.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = [
    "RECORD_VERSION",
    "BenchRecord",
    "Record",
    "RecordError",
    "RunRecord",
    "percentile",
    "read_records",
    "sum_over_tables",
    "timing_summary",
]

#: Version of the record layout this code writes (and the newest it reads).
RECORD_VERSION = 1

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """A file or object that is not a result record; the message names the file (and line)."""


@dataclass
class Record:
    """A result: what was configured, where it ran, what was measured.

    Attributes:
        config: the settings (a run's full run configuration; a benchmark's options with the table's rows).
        environment: ``ecorec.utils.environment_record()`` of the machine.
        metrics: the measurements (see :class:`BenchRecord` and :class:`RunRecord`).
        version: layout version (:data:`RECORD_VERSION` when written by this code).
        source: the file it was read from (not written).
    """

    KIND: ClassVar[str] = ""

    config: dict[str, Any]
    environment: dict[str, Any]
    metrics: dict[str, Any]
    version: int = RECORD_VERSION
    source: str = field(default="", compare=False)

    # ---- serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "version": self.version,
            "config": self.config,
            "environment": self.environment,
            "metrics": self.metrics,
        }

    def to_json(self, indent: int | None = None) -> str:
        """One JSON object (sorted keys; values JSON cannot hold, e.g. paths, as strings)."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str, indent=indent)

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "<record>") -> R:
        """The typed record of a decoded JSON object. On :class:`Record` itself the kind picks the class
        (``"bench"`` / ``"run"``; without one, a ``variant`` metric means a benchmark). Raises
        :class:`RecordError` naming ``where``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("metrics"), Mapping):
            raise RecordError(f"{where}: not a result record (no `metrics` object)")
        kind = data.get("kind") or (BenchRecord.KIND if "variant" in data["metrics"] else RunRecord.KIND)
        target: type[Record] = cls
        if not cls.KIND:
            target = _KINDS.get(kind)  # type: ignore[assignment]
            if target is None:
                raise RecordError(f"{where}: unknown record kind {kind!r} (have {sorted(_KINDS)})")
        elif kind != cls.KIND:
            raise RecordError(f"{where}: a {kind!r} record, expected {cls.KIND!r}")
        version = data.get("version", 0)
        if not isinstance(version, int) or not 0 <= version <= RECORD_VERSION:
            raise RecordError(
                f"{where}: record version {version!r} is not one this ecorec reads (0 ... {RECORD_VERSION})"
            )
        for key in ("config", "environment"):
            if not isinstance(data.get(key, {}), Mapping):
                raise RecordError(f"{where}: `{key}` is not an object")
        record = target(
            config=dict(data.get("config", {})),
            environment=dict(data.get("environment", {})),
            metrics=dict(data["metrics"]),
            version=version,
            source=str(data.get("source", "")) or (where if where != "<record>" else ""),
        )
        record.validate(where)
        return record  # type: ignore[return-value]

    @classmethod
    def from_json(cls: type[R], text: str, where: str = "<record>") -> R:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise RecordError(f"{where}: not a JSON record ({err})") from err
        return cls.from_dict(data, where)

    def validate(self, where: str) -> None:
        """Check the metrics this kind needs; raises :class:`RecordError` naming ``where`` and the key."""

    # ---- mapping view (records were plain dicts before; readers may still index them) ---------------------
    def __getitem__(self, key: str) -> Any:
        if key in ("config", "environment", "metrics", "source", "version"):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


@dataclass
class BenchRecord(Record):
    """One kernel measurement (``python -m ecorec.bench tt``): one variant on one table at one batch size.

    Metrics (among others): ``variant``, ``batch_size``, ``table`` (``None`` for generated lookups),
    ``num_embeddings``, ``forward_ms_{median,p10,p90,samples}``, ``forward_backward_ms_{...}`` (samples: ms
    per repeat, repeat ``i`` on batch ``i % num_batches``), ``param_bytes``, ``optimizer_state_bytes``,
    ``nnz``, ``num_uniques``, ``num_groups``, ``forward_gflop``/``backward_gflop`` (TT variants), peaks.
    """

    KIND: ClassVar[str] = "bench"
    _REQUIRED: ClassVar[tuple[str, ...]] = ("variant", "batch_size")

    def validate(self, where: str) -> None:
        missing = [k for k in self._REQUIRED if k not in self.metrics]
        if missing:
            raise RecordError(f"{where}: not a kernel-benchmark record (no metrics {missing})")

    @property
    def variant(self) -> str:
        return str(self.metrics["variant"])

    @property
    def batch_size(self) -> int:
        return int(self.metrics["batch_size"])

    @property
    def table(self) -> str | None:
        return self.metrics.get("table")

    def samples(self, prefix: str) -> list[float]:
        """Per-repeat times (ms) of ``prefix`` (``"forward_ms"`` or ``"forward_backward_ms"``)."""
        return [float(x) for x in self.metrics.get(f"{prefix}_samples", [])]


@dataclass
class RunRecord(Record):
    """One training run (``ecorec.train``): ``config`` is the run configuration; metrics hold ``loss_curve``,
    ``timing`` (windows, per-step seconds), ``peak_memory_bytes``, ``eval`` / ``final_auroc``, the plan."""

    KIND: ClassVar[str] = "run"

    @property
    def system(self) -> str:
        return str(self.config.get("run", {}).get("name", ""))


_KINDS: dict[str, type[Record]] = {BenchRecord.KIND: BenchRecord, RunRecord.KIND: RunRecord}


def read_records(paths: Iterable[str | os.PathLike[str]]) -> list[BenchRecord | RunRecord]:
    """Every record of ``paths``: a ``.jsonl`` file holds one per line, any other file one.

    Raises:
        RecordError: a file that is not JSON, or an object that is not a record, naming the file (and line).
    """
    records: list[BenchRecord | RunRecord] = []
    for path in map(Path, paths):
        text = path.read_text()
        if path.suffix == ".jsonl":
            chunks = [(f"{path}:{i + 1}", line) for i, line in enumerate(text.splitlines()) if line.strip()]
        else:
            chunks = [(str(path), text)]
        for where, chunk in chunks:
            record = Record.from_json(chunk, where)
            record.source = str(path)
            records.append(record)  # type: ignore[arg-type]
    return records


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile, ``q`` in [0, 1] (numpy's default); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    lo, hi = math.floor(position), math.ceil(position)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def timing_summary(prefix: str, samples: Sequence[float]) -> dict[str, Any]:
    """``<prefix>_median``, ``_mean``, ``_p10``, ``_p90`` and ``_samples`` of per-repeat times."""
    return {
        f"{prefix}_median": statistics.median(samples),
        f"{prefix}_mean": statistics.fmean(samples),
        f"{prefix}_p10": percentile(samples, 0.1),
        f"{prefix}_p90": percentile(samples, 0.9),
        f"{prefix}_samples": list(samples),
    }


_SUMMED = ("num_embeddings", "param_bytes", "optimizer_state_bytes", "nnz", "num_uniques", "num_groups")
_SUMMED_IF_PRESENT = ("forward_gflop", "backward_gflop")
_MAXED = ("peak_forward_bytes", "peak_forward_backward_bytes")


def _as_bench(record: BenchRecord | Mapping[str, Any]) -> BenchRecord:
    return record if isinstance(record, BenchRecord) else BenchRecord.from_dict(record)


def sum_over_tables(
    records: Iterable[BenchRecord | Mapping[str, Any]], *, by_table: bool = False
) -> list[dict[str, Any]]:
    """The one aggregation of kernel measurements: per (batch size, variant), the paper's "all tables" time.

    Repeat ``i`` of every table used batch ``i % num_batches``, so the per-repeat times are summed over the
    tables first (repeat by repeat, as many repeats as every table has), then summarised over the repeats
    (median, mean, p10, p90, samples: :func:`timing_summary`). Rows, parameter and optimizer bytes, ``nnz``,
    ``U``, ``G`` (and the GFLOPs where every table has them) are summed; peak memory is the largest table's
    (each table ran alone). A (batch size, variant) measured on fewer tables than others at its batch size
    (e.g. a dense baseline skipped above ``--max-dense-bytes``) is left out: a sum over fewer tables is not
    an all-tables time. A table measured twice for one variant raises ``RecordError``.

    With ``by_table=True`` every (batch size, variant, table) is its own group (one row per measurement, in
    the same form): what the planner's calibration fits to.

    Returns:
        rows sorted by (variant, batch size[, table]), each with ``batch_size``, ``variant``, ``table``
        (``"all"``, or the table), ``num_tables``, ``repeats`` and the sums above.
    """
    typed = [_as_bench(r) for r in records]
    groups: dict[tuple[Any, ...], list[BenchRecord]] = {}
    tables_at: dict[int, set[Any]] = {}
    for record in typed:
        key = (record.variant, record.batch_size) + ((str(record.table),) if by_table else ())
        members = groups.setdefault(key, [])
        if any(m.table == record.table for m in members):
            raise RecordError(
                f"{record.variant} at batch {record.batch_size}: table {record.table!r} measured twice "
                f"({record.source or 'records'})"
            )
        members.append(record)
        tables_at.setdefault(record.batch_size, set()).add(record.table)
    rows = []
    for key, members in sorted(groups.items()):
        variant, batch_size = key[0], key[1]
        if not by_table and {m.table for m in members} != tables_at[batch_size]:
            continue
        row: dict[str, Any] = {
            "batch_size": batch_size,
            "variant": variant,
            "table": members[0].table if by_table else "all",
            "num_tables": len(members),
        }
        for prefix in ("forward_ms", "forward_backward_ms"):
            per_table = [m.samples(prefix) for m in members]
            repeats = min(len(s) for s in per_table)
            if repeats == 0:
                raise RecordError(f"{variant} at batch {batch_size}: no {prefix}_samples in the records")
            row.update(timing_summary(prefix, [sum(s[i] for s in per_table) for i in range(repeats)]))
            row["repeats"] = repeats
        for name in _SUMMED:
            row[name] = sum(float(m.metrics.get(name, 0.0)) for m in members)
        for name in _SUMMED_IF_PRESENT:
            if all(name in m.metrics for m in members):
                row[name] = sum(float(m.metrics[name]) for m in members)
        for name in _MAXED:
            if all(name in m.metrics for m in members):
                row[name] = max(m.metrics[name] for m in members)
        row["embedding_dim"] = members[0].config.get("embedding_dim")
        row["device"] = str(members[0].environment.get("device", ""))
        rows.append(row)
    return rows
