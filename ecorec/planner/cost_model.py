"""The cost model: predicted compute, communication and memory of each embedding table per iteration.

Inputs are the feature statistics of ``ecorec.stats`` measured at the run's global batch size (nnz, U, G and
the distinct prefixes of every TT level per batch). Outputs, per table and algorithm:

- forward and backward GEMM FLOPs of the TT lookup (``ecorec.tt.tt_gemm_flops``: ecorec ``~G E1 + U E2``
  forward and ``~3 G E1 + 2 U E2`` backward; fbtt per occurrence; elrec prefix reuse forward, per unique
  backward), or for an uncompressed table ``nnz * D`` multiply-adds each way (a gather-reduce; memory-bound,
  so only comparable with TT FLOPs after calibration);
- all-to-all bytes of table-wise model parallelism: the pooled ``[G_batch, D]`` float32 block of the table,
  ``(R - 1) / R`` of which leaves its rank, forward and again backward;
- bytes on its rank: parameters (TT cores or the dense table) plus the optimizer state.

``CostCalibration`` turns FLOPs into seconds with a least-squares fit ``t = a * flops + b`` per algorithm and
device, from kernel-benchmark records (``python -m ecorec.bench tt``); it is saved as JSON and reused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecorec.planner.sharding import TableProfile
from ecorec.records import BenchRecord, RecordError, read_records, sum_over_tables
from ecorec.tt import TTShapes, tt_gemm_flops
from ecorec.types import Algorithm, BenchVariant
from ecorec.utils import write_json_atomic

ALGORITHMS = tuple(a.value for a in Algorithm)
#: Optimizer state per parameter element (adagrad) or per row (rowwise_adagrad).
OPTIMIZERS = ("sgd", "adagrad", "rowwise_adagrad")
_FLOAT_BYTES = 4


@dataclass(frozen=True)
class TableCost:
    """Predicted per-iteration cost of one table under one algorithm.

    Attributes:
        table, algorithm: what is costed (``"none"`` for a plain table).
        forward_flops, backward_flops: GEMM FLOPs (TT) or multiply-adds (uncompressed) of one lookup.
        alltoall_bytes: bytes leaving the table's rank in the forward and backward all-to-all together.
        parameter_bytes, optimizer_state_bytes: memory on the table's rank.
    """

    table: str
    algorithm: str
    forward_flops: float
    backward_flops: float
    alltoall_bytes: float
    parameter_bytes: int
    optimizer_state_bytes: int

    @property
    def flops(self) -> float:
        return self.forward_flops + self.backward_flops

    @property
    def memory_bytes(self) -> int:
        return self.parameter_bytes + self.optimizer_state_bytes


def _state_bytes(
    optimizer: str, rows: Sequence[int], elements: int, element_bytes: int = _FLOAT_BYTES
) -> int:
    if optimizer == "sgd":
        return 0
    if optimizer == "adagrad":
        return elements * element_bytes
    if optimizer == "rowwise_adagrad":
        return sum(rows) * element_bytes
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got optimizer={optimizer!r}")


def tt_table_memory(
    shapes: TTShapes, optimizer: str | None, element_bytes: int = _FLOAT_BYTES
) -> tuple[int, int]:
    """``(parameter bytes, optimizer state bytes)`` of a TT table on its rank: its cores, and the fused
    update's state (``None``/``"sgd"``: none; ``"adagrad"``: one value per core entry; ``"rowwise_adagrad"``:
    one per core row, ``sum(p)``), in elements of ``element_bytes`` (the cores' dtype)."""
    parameters = shapes.num_parameters()
    state = (
        0 if optimizer is None else _state_bytes(optimizer, list(shapes.p_shapes), parameters, element_bytes)
    )
    return parameters * element_bytes, state


def estimate_table_cost(
    row: Mapping[str, Any],
    algorithm: str,
    *,
    global_batch_size: int,
    world_size: int,
    optimizer: str = "sgd",
) -> TableCost:
    """Cost of one table from one row of ``ecorec.stats`` (measured at ``global_batch_size``).

    ``row`` needs ``table``, ``num_embeddings``, ``embedding_dim``, ``tt_p_shapes``, ``tt_q_shapes``,
    ``tt_ranks``, ``nnz``, ``unique``, ``groups`` and ``level_counts``.
    """
    algorithm = Algorithm.parse(algorithm)  # "uncompressed" is read as "none"
    if int(row["batch_size"]) != global_batch_size:
        raise ValueError(
            f"table {row['table']!r}: statistics were measured at batch_size={row['batch_size']}, "
            f"not at the global batch size {global_batch_size} being costed"
        )
    n, d = int(row["num_embeddings"]), int(row["embedding_dim"])
    alltoall = 2.0 * global_batch_size * d * _FLOAT_BYTES * (world_size - 1) / world_size
    if algorithm is Algorithm.NONE:
        work = float(row["nnz"]) * d
        return TableCost(
            table=str(row["table"]),
            algorithm=algorithm.value,
            forward_flops=work,
            backward_flops=work,
            alltoall_bytes=alltoall,
            parameter_bytes=n * d * _FLOAT_BYTES,
            optimizer_state_bytes=_state_bytes(optimizer, [n], n * d),
        )
    shapes = TTShapes(n, d, tuple(row["tt_p_shapes"]), tuple(row["tt_q_shapes"]), tuple(row["tt_ranks"]))
    levels = [round(c) for c in row["level_counts"]]
    forward, backward = tt_gemm_flops(
        shapes, round(row["nnz"]), round(row["unique"]), round(row["groups"]), algorithm, level_counts=levels
    )
    parameter_bytes, state_bytes = tt_table_memory(shapes, optimizer)
    return TableCost(
        table=str(row["table"]),
        algorithm=algorithm.value,
        forward_flops=float(forward),
        backward_flops=float(backward),
        alltoall_bytes=alltoall,
        parameter_bytes=parameter_bytes,
        optimizer_state_bytes=state_bytes,
    )


def table_costs(
    stats: Iterable[Mapping[str, Any]] | Any,
    algorithm: str,
    *,
    global_batch_size: int,
    world_size: int,
    tt_min_rows: int = 0,
    optimizer: str = "sgd",
    tt_min_compression: float = 0.0,
) -> list[TableCost]:
    """Costs of every table of a stats table (polars DataFrame or rows); tables with fewer than
    ``tt_min_rows`` rows, or whose TT cores are less than ``tt_min_compression`` times smaller than the table,
    are costed as uncompressed (they stay plain tables in training: ``TableSettings.compresses``)."""
    rows = stats.iter_rows(named=True) if hasattr(stats, "iter_rows") else stats
    out = []
    for row in rows:
        algo = Algorithm.NONE if int(row["num_embeddings"]) < tt_min_rows else algorithm
        if algo != Algorithm.NONE and tt_min_compression > 0:
            n, d = int(row["num_embeddings"]), int(row["embedding_dim"])
            shapes = TTShapes(
                n, d, tuple(row["tt_p_shapes"]), tuple(row["tt_q_shapes"]), tuple(row["tt_ranks"])
            )
            if n * d < tt_min_compression * shapes.num_parameters():
                algo = Algorithm.NONE
        out.append(
            estimate_table_cost(
                row, algo, global_batch_size=global_batch_size, world_size=world_size, optimizer=optimizer
            )
        )
    return out


@dataclass
class CostCalibration:
    """Seconds per FLOP and per call of each algorithm on one device: ``t = a * flops + b``.

    ``fits[algorithm] = (a, b)``; algorithms without a fit fall back to ``default`` (or raise).
    """

    device: str
    fits: dict[str, tuple[float, float]] = field(default_factory=dict)
    source: str = ""

    def seconds(self, cost: TableCost) -> float:
        if cost.algorithm not in self.fits:
            raise KeyError(
                f"no calibration for algorithm {cost.algorithm!r} on {self.device} (have {sorted(self.fits)})"
            )
        a, b = self.fits[cost.algorithm]
        return a * cost.flops + b

    @classmethod
    def fit(
        cls, records: Iterable[BenchRecord | Mapping[str, Any]], device: str, source: str = ""
    ) -> CostCalibration:
        """Least-squares fit from ``ecorec.bench tt`` records of ``device`` (other devices are ignored).

        One point per measured (variant, batch size, table) (:func:`ecorec.records.sum_over_tables` with
        ``by_table=True``): the median forward+backward time against the FLOPs, ``forward_gflop +
        backward_gflop`` for the TT variants, ``2 * nnz * D`` for ``nn_embedding_bag`` (fitted as algorithm
        ``none``). A single point fits ``b = 0``.
        """
        typed = [r if isinstance(r, BenchRecord) else BenchRecord.from_dict(r) for r in records]
        mine = [
            r for r in typed if str(r.environment.get("device", device)).split(":")[0] == device.split(":")[0]
        ]
        points: dict[str, list[tuple[float, float]]] = {}
        for row in sum_over_tables(mine, by_table=True):
            variant, seconds = row["variant"], row["forward_backward_ms_median"] * 1e-3
            if variant in BenchVariant.tt() and "forward_gflop" in row:
                flops = (row["forward_gflop"] + row["backward_gflop"]) * 1e9
                points.setdefault(variant, []).append((flops, seconds))
            elif variant == BenchVariant.NN_EMBEDDING_BAG:
                flops = 2.0 * row["nnz"] * int(row["embedding_dim"] or 0)
                points.setdefault(Algorithm.NONE.value, []).append((flops, seconds))
        fits: dict[str, tuple[float, float]] = {}
        for algorithm, pts in points.items():
            x = np.array([p[0] for p in pts], dtype=np.float64)
            y = np.array([p[1] for p in pts], dtype=np.float64)
            if len(np.unique(x)) < 2:
                fits[algorithm] = (float(y.sum() / x.sum()), 0.0)
                continue
            design = np.stack([x, np.ones_like(x)], axis=1)
            (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
            if a <= 0:  # noise: fall back to a proportional fit
                a, b = float(y.sum() / x.sum()), 0.0
            fits[algorithm] = (float(a), float(max(b, 0.0)))
        if not fits:
            raise ValueError(f"no benchmark records of device {device!r} to calibrate from")
        return cls(device=device, fits=fits, source=source)

    @classmethod
    def fit_files(cls, paths: Sequence[str | os.PathLike[str]], device: str) -> CostCalibration:
        """:meth:`fit` over the records of ``python -m ecorec.bench tt`` JSON-lines files (``--out``); a line
        that is not a benchmark record raises ``ValueError`` naming the file and line."""
        records = []
        for record in read_records(paths):
            if not isinstance(record, BenchRecord):
                raise RecordError(
                    f"{record.source}: not a kernel-benchmark record (a {record.KIND!r} record)"
                )
            records.append(record)
        source = ", ".join(os.fspath(p) for p in paths)
        return cls.fit(records, device, source=source)

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json_atomic(path, {"device": self.device, "fits": self.fits, "source": self.source})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CostCalibration:
        with open(path) as handle:
            try:
                data = json.load(handle)
                return cls(
                    device=str(data["device"]),
                    fits={
                        Algorithm.parse(k).value: (float(v[0]), float(v[1])) for k, v in data["fits"].items()
                    },
                    source=str(data.get("source", "")),
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as err:
                raise ValueError(f"{path}: not a cost calibration ({type(err).__name__}: {err})") from err


def table_profiles(
    costs: Sequence[TableCost],
    stats: Iterable[Mapping[str, Any]] | Any,
    calibration: CostCalibration | None = None,
) -> list[TableProfile]:
    """Planner inputs: one ``TableProfile`` per cost, its ``cost`` in seconds when calibrated, else FLOPs."""
    rows = stats.iter_rows(named=True) if hasattr(stats, "iter_rows") else stats
    by_table = {str(row["table"]): row for row in rows}
    profiles = []
    for cost in costs:
        row = by_table[cost.table]
        profiles.append(
            TableProfile(
                name=cost.table,
                num_embeddings=int(row["num_embeddings"]),
                embedding_dim=int(row["embedding_dim"]),
                pooling_factor=float(row["pooling_mean"]),
                cost=calibration.seconds(cost) if calibration is not None else cost.flops,
                memory_bytes=cost.memory_bytes,
            )
        )
    return profiles


def planner_inputs(
    stats: Iterable[Mapping[str, Any]] | Any,
    algorithm: str,
    *,
    calibration: CostCalibration | str | os.PathLike[str] | None = None,
    **costing: Any,
) -> list[TableProfile]:
    """Stats table -> ``TableProfile`` per table for ``plan_sharding``: :func:`table_costs` then
    :func:`table_profiles`. ``costing``: the keyword arguments of :func:`table_costs` (global_batch_size,
    world_size, tt_min_rows, optimizer). ``algorithm`` ``"none"`` means uncompressed tables; ``calibration``
    may be a path to a saved :class:`CostCalibration`."""
    if isinstance(calibration, (str, os.PathLike)):
        calibration = CostCalibration.load(calibration)
    rows = list(stats.iter_rows(named=True) if hasattr(stats, "iter_rows") else stats)
    costs = table_costs(rows, algorithm, **costing)
    return table_profiles(costs, rows, calibration)


def stats_file_profiles(
    stats_path: str | os.PathLike[str], algorithm: str, *, num_tables: int, **costing: Any
) -> tuple[list[TableProfile], str]:
    """:func:`planner_inputs` (``costing``: its keyword arguments) for the first ``num_tables`` tables of a
    feature-stats Parquet file (``ecorec.stats``); returns the profiles and their cost unit (``"seconds"``
    when calibrated, else ``"flops"``). What the sharding-plan rules run."""
    from ecorec.stats import read_table_stats

    # more tables than the statistics list: a ValueError naming the file, never a silently smaller plan
    profiles = planner_inputs(read_table_stats(stats_path, num_tables), algorithm, **costing)
    return profiles, "seconds" if costing.get("calibration") else "flops"
