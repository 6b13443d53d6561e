"""The regime of an experiment: which share of a training step goes to communication, measured on the emulated
cluster and modelled for the paper's configuration on its target cluster.

**Measured** (a run record's ``metrics.comm``, ``metrics.timing`` and ``metrics.cluster``):

- *exposed*: time the ranks spent blocked in collectives / the step time (what compute did not hide);
- *total*: the busiest rank's off-node bytes per step at the emulated link rate / the step time (what the
  communication costs whether hidden or not; the shaped link is the bottleneck, so bytes / rate is its time).

**Modelled**, per rank and step, for a :class:`Workload` on a :class:`~ecorec.cluster.dilation.ClusterProfile`
(no overlap: the share of a step that a non-pipelined mode spends communicating):

- embedding compute: this machine's measured time of one rank's tables (``ecorec.bench.compute_split``) x
  the TT kernel's dilation x the ratio of lookups per rank (``b x T``; the per-worker batch is the same, so
  only the table count changes it; deduplication would make the larger batch cheaper per lookup, so the
  model overestimates the target's embedding time and underestimates its communication share);
- dense compute: the measured head time x the GEMM dilation x the ratio of dense parameters (FLOPs per sample
  of the MLPs grow with them; the cat interaction makes the top MLP's first layer grow with ``T``);
- all-to-all (mp, bwp, twp, torchrec): ``2 x b x T/W x D x 4`` bytes to each peer behind the rank's
  bottleneck link (forward and backward), at the rank's share of the link;
- all-reduce of the dense gradients (every mode; dp also the table gradients): a ring, ``2 (W - 1) / W`` of
  the buffer through each node's link.

The share is ``communication / (compute + communication)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ecorec.cluster.dilation import ClusterProfile
from ecorec.plots.records import measured_shares

__all__ = [
    "GOAL_POINTS",
    "ModelledStep",
    "Workload",
    "emulated_workload",
    "measured_shares",
    "model_step",
    "modelled_regime",
    "dense_parameters_of",
    "regime_note",
    "regime_rows",
    "regime_summary",
    "target_workload",
]

_FLOAT_BYTES = 4
#: Modes whose tables sit on one rank each and whose pooled embeddings cross by all-to-all.
TABLE_WISE_MODES = ("mp", "bwp", "twp", "torchrec")


@dataclass(frozen=True)
class Workload:
    """One configuration of a training step, per rank.

    Attributes:
        mode: parallel mode (``dp``, ``mp``, ``bwp``, ``twp``, ``torchrec``).
        world: ranks. peers_across: peers of a rank behind its bottleneck link (other nodes; every other
            GPU of a one-node target whose GPUs have their own links). ranks_per_link: ranks sharing the
            bottleneck link (a node's ranks; 1 for per-GPU links).
        tables: T. local_batch: b. embedding_dim: D.
        dense_parameters: parameters of the head's MLPs (their gradients are all-reduced).
        table_gradient_parameters: table parameters whose gradients dp all-reduces (TT cores).
    """

    mode: str
    world: int
    peers_across: int
    ranks_per_link: int
    tables: int
    local_batch: int
    embedding_dim: int
    dense_parameters: int
    table_gradient_parameters: int = 0

    def alltoall_bytes(self) -> float:
        """Bytes one rank sends across its bottleneck link per step (forward and backward all-to-all)."""
        if self.mode not in TABLE_WISE_MODES or self.world <= 1:
            return 0.0
        per_peer = self.local_batch * (self.tables / self.world) * self.embedding_dim * _FLOAT_BYTES
        return 2.0 * per_peer * self.peers_across

    def allreduce_bytes(self) -> float:
        """Bytes through a rank's share of its bottleneck link per step for the ring all-reduce: the link of a
        node carries ``2 (W - 1) / W`` of the buffer, shared by its ``ranks_per_link`` ranks."""
        if self.world <= 1 or self.peers_across == 0:
            return 0.0
        params = self.dense_parameters + (self.table_gradient_parameters if self.mode == "dp" else 0)
        return 2.0 * (self.world - 1) / self.world * params * _FLOAT_BYTES / self.ranks_per_link


@dataclass(frozen=True)
class ModelledStep:
    """Modelled seconds of one rank's step, by part, and the communication share."""

    embedding_s: float
    dense_s: float
    alltoall_s: float
    allreduce_s: float

    @property
    def comm_s(self) -> float:
        return self.alltoall_s + self.allreduce_s

    @property
    def step_s(self) -> float:
        return self.embedding_s + self.dense_s + self.comm_s

    @property
    def comm_share(self) -> float:
        return self.comm_s / self.step_s if self.step_s > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "comm_s": self.comm_s, "step_s": self.step_s, "comm_share": self.comm_share}


def model_step(
    workload: Workload,
    *,
    embedding_s: float,
    dense_s: float,
    link_gbit_per_rank: float,
) -> ModelledStep:
    """The step of ``workload`` whose compute takes ``embedding_s`` and ``dense_s`` (already on the machine
    modelled) and whose ranks each have ``link_gbit_per_rank`` Gbit/s of their bottleneck link."""
    if not link_gbit_per_rank > 0:
        raise ValueError(f"link_gbit_per_rank must be > 0, got {link_gbit_per_rank}")
    rate = link_gbit_per_rank * 1e9 / 8
    return ModelledStep(
        embedding_s=embedding_s,
        dense_s=dense_s,
        alltoall_s=workload.alltoall_bytes() / rate,
        allreduce_s=workload.allreduce_bytes() / rate,
    )


def target_workload(
    profile: ClusterProfile,
    *,
    mode: str,
    world: int,
    tables: int,
    local_batch: int,
    embedding_dim: int,
    dense_parameters: int,
    table_gradient_parameters: int = 0,
) -> Workload:
    """The :class:`Workload` of a target run of ``world`` GPUs on ``profile``."""
    single = profile.single_node(world)
    if single:
        across, sharing = world - 1, 1
    else:
        across, sharing = max(0, world - profile.gpus_per_node), min(world, profile.gpus_per_node)
    return Workload(
        mode=mode,
        world=world,
        peers_across=across,
        ranks_per_link=sharing,
        tables=tables,
        local_batch=local_batch,
        embedding_dim=embedding_dim,
        dense_parameters=dense_parameters,
        table_gradient_parameters=table_gradient_parameters,
    )


def emulated_workload(
    *,
    mode: str,
    world: int,
    ranks_per_node: int,
    tables: int,
    local_batch: int,
    embedding_dim: int,
    dense_parameters: int,
    table_gradient_parameters: int = 0,
) -> Workload:
    """The :class:`Workload` of an emulated run: nodes of ``ranks_per_node`` ranks behind one shaped link."""
    return Workload(
        mode=mode,
        world=world,
        peers_across=max(0, world - ranks_per_node) if world > ranks_per_node else 0,
        ranks_per_link=min(world, ranks_per_node),
        tables=tables,
        local_batch=local_batch,
        embedding_dim=embedding_dim,
        dense_parameters=dense_parameters,
        table_gradient_parameters=table_gradient_parameters,
    )


def _scaled_compute(
    split: Mapping[str, Any],
    tables: int,
    local_batch: int,
    dense_parameters: Callable[[int], int],
    rates: Mapping[str, Any] | None = None,
) -> tuple[float, float]:
    """``(embedding_s, dense_s)`` of one rank on this machine at ``tables`` and ``local_batch``, scaled from
    the measured split: embedding by lookups per rank (``b x T``), dense by ``b`` x the head's parameters;
    and, given the run's kernel ``rates`` (``us_per_lookup``, ``gemm_gflops`` at its concurrency), by their
    ratio to the rates at the split's concurrency (``split["rates"]``)."""
    t_ref, b_ref = int(split["tables"]), int(split["local_batch"])
    embedding = float(split["embedding_s"]) * (tables / t_ref) * (local_batch / b_ref)
    dense = (
        float(split["dense_s"]) * (local_batch / b_ref) * (dense_parameters(tables) / dense_parameters(t_ref))
    )
    ref = split.get("rates") or {}
    if rates and ref.get("us_per_lookup") and rates.get("us_per_lookup"):
        embedding *= float(rates["us_per_lookup"]) / float(ref["us_per_lookup"])
    if rates and ref.get("gemm_gflops") and rates.get("gemm_gflops"):
        dense *= float(ref["gemm_gflops"]) / float(rates["gemm_gflops"])
    return embedding, dense


def modelled_regime(
    record: Mapping[str, Any],
    split: Mapping[str, Any],
    *,
    dense_parameters: Callable[[int], int],
    profile: ClusterProfile,
    paper_world: int | None,
    paper_tables: int | None,
) -> dict[str, Any]:
    """The modelled communication share of one run (``record``: a run record as a dict) on the emulated
    cluster it ran on (``here``), and of the paper's configuration on ``profile`` (``paper``: ``paper_world``
    GPUs, ``paper_tables`` tables, the same per-worker shape), both without overlap (see the module).

    ``split`` is ``python -m ecorec.bench split``'s record; ``dense_parameters(T)`` the head's parameters with
    ``T`` tables (``ecorec.models.head_parameters``). The table-wise modes are modelled as mp; dp as dp."""
    config, metrics = record["config"], record["metrics"]
    cluster = metrics.get("cluster") or {}
    dilation = cluster.get("dilation") or {}
    mode = "dp" if metrics.get("mode") == "dp" else "mp"
    world = int(metrics.get("world_size", config["parallel"]["world_size"]))
    tables = int(metrics.get("num_tables"))
    batch = int(metrics.get("global_batch_size")) // world
    D = int(config["model"]["embedding_dim"])
    per_node = int(cluster.get("ranks_per_node") or 1)
    tt_params = sum(int(t.get("parameters", 0)) for t in metrics.get("tables", []) if t.get("kind") == "tt")
    rates = dilation.get("measurement") or {}
    embedding, dense = _scaled_compute(split, tables, batch, dense_parameters, rates)
    out: dict[str, Any] = {"mode_modelled": mode, "dense_share_here": dense / (embedding + dense)}
    link = cluster.get("link_gbit")
    if link and cluster.get("emulated"):
        here = emulated_workload(
            mode=mode,
            world=world,
            ranks_per_node=per_node,
            tables=tables,
            local_batch=batch,
            embedding_dim=D,
            dense_parameters=dense_parameters(tables),
            table_gradient_parameters=tt_params,
        )
        out["here"] = model_step(
            here, embedding_s=embedding, dense_s=dense, link_gbit_per_rank=float(link) / min(world, per_node)
        ).as_dict()
    if paper_world and paper_tables and dilation.get("tt_factor"):
        tt_factor = float(dilation["tt_factor"])
        gemm_factor = float(dilation.get("gemm_factor") or tt_factor)
        p_embedding, p_dense = _scaled_compute(split, paper_tables, batch, dense_parameters, rates)
        target = target_workload(
            profile,
            mode=mode,
            world=paper_world,
            tables=paper_tables,
            local_batch=batch,
            embedding_dim=D,
            dense_parameters=dense_parameters(paper_tables),
            table_gradient_parameters=int(tt_params * paper_tables / max(1, tables)),
        )
        out["paper"] = model_step(
            target,
            embedding_s=p_embedding * tt_factor,
            dense_s=p_dense * gemm_factor,
            link_gbit_per_rank=profile.per_rank_gbit(paper_world),
        ).as_dict()
        out["paper"].update(world=paper_world, tables=paper_tables, profile=profile.name)
        target = p_embedding * tt_factor + p_dense * gemm_factor
        out["dense_share_paper"] = p_dense * gemm_factor / target if target > 0 else None
    return out


def regime_rows(
    records: Sequence[Mapping[str, Any]],
    *,
    split: Mapping[str, Any] | None,
    paper: Mapping[str, Any] | None,
    profiles: Mapping[str, Mapping[str, Any]],
    figure: str,
) -> list[dict[str, Any]]:
    """One row per run record of a figure: its point, the measured shares (exposed, total) and, for runs of
    the split's algorithm, the modelled shares here and for the paper's configuration (``paper``: the
    figure's ``paper:`` section; ``world`` or ``worlds`` matched to the run's world in order, and its first,
    largest table count). ``profiles``: config ``cluster.profiles``."""
    from ecorec.cluster.dilation import profile_from_config

    paper = paper or {}
    worlds = sorted({int(r["metrics"]["world_size"]) for r in records})
    rows = []
    for record in records:
        metrics = record["metrics"]
        cluster = metrics.get("cluster") or {}
        world = int(metrics["world_size"])
        shares = measured_shares(metrics)
        row: dict[str, Any] = {
            "figure": figure,
            "system": record["config"]["run"].get("name"),
            "mode": metrics.get("mode"),
            "algorithm": record["config"]["embeddings"]["algorithm"],
            "tables": metrics.get("num_tables"),
            "world": world,
            "local_batch": int(metrics["global_batch_size"]) // world,
            "step_ms": 1e3 * shares["step_s"] if shares["step_s"] else None,
            "link_gbit": shares["link_gbit"],
            "measured_exposed": shares["exposed"],
            "measured_total": shares["total"],
            "modelled_here": None,
            "modelled_paper": None,
            "paper_world": None,
            "paper_tables": None,
            "dense_share_here": None,
            "dense_share_paper": None,
        }
        dilation = cluster.get("dilation") or {}
        if split is not None and row["algorithm"] == split.get("algorithm"):
            if "worlds" in paper:
                paper_world = dict(zip(worlds, paper["worlds"])).get(world)
            else:
                paper_world = paper.get("world")
            tables = paper.get("tables")
            paper_tables = tables[0] if isinstance(tables, list) else tables
            profile = profile_from_config(dilation.get("profile") or cluster.get("profile"), profiles)
            model = modelled_regime(
                record,
                split,
                dense_parameters=dense_parameters_of(split),
                profile=profile,
                paper_world=paper_world,
                paper_tables=paper_tables,
            )
            row["modelled_here"] = model.get("here", {}).get("comm_share")
            row["modelled_paper"] = model.get("paper", {}).get("comm_share")
            row["dense_share_here"] = model.get("dense_share_here")
            row["dense_share_paper"] = model.get("dense_share_paper")
            row["paper_world"], row["paper_tables"] = paper_world, paper_tables
        rows.append(row)
    return rows


def dense_parameters_of(split: Mapping[str, Any]) -> Callable[[int], int]:
    """``T -> the head's parameters with T tables`` from a split record (``KeyError`` naming the count when
    the split did not report it: add it to the figure's tables or ``paper.tables``)."""
    table = {int(t): int(n) for t, n in (split.get("dense_parameters_by_tables") or {}).items()}

    def count(tables: int) -> int:
        if tables not in table:
            raise KeyError(
                f"the compute split reports the head's parameters for {sorted(table)} tables, not {tables}"
            )
        return table[tables]

    return count


def regime_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """The lines of a figure's title: the modelled share (here, and the paper's configuration) of the
    reference system's largest point per world (``ecorec`` when present) and, where the measured share misses
    the paper's by more than :data:`GOAL_POINTS`, why (:func:`_gap_note`)."""
    modelled = [r for r in rows if r.get("modelled_here") is not None or r.get("modelled_paper") is not None]
    if not modelled:
        return ""
    by_world: dict[int, Mapping[str, Any]] = {}
    for r in sorted(modelled, key=lambda r: (r["system"] != "ecorec", -int(r["tables"] or 0))):
        by_world.setdefault(int(r["world"]), r)
    parts = []
    for world, r in sorted(by_world.items()):
        here = f"{100 * r['modelled_here']:.0f}%" if r.get("modelled_here") is not None else "n/a"
        text = f"{r['system']} {world} ranks: here {here}"
        if r.get("modelled_paper") is not None:
            text += (
                f", paper ({r['paper_world']} GPUs, {r['paper_tables']} tables) "
                f"{100 * r['modelled_paper']:.0f}%"
            )
        parts.append(text)
    line = "modelled communication share (no overlap): " + "; ".join(parts)
    top = max(by_world.values(), key=lambda r: (int(r["tables"] or 0), int(r["world"])))
    measured, paper = top.get("measured_total"), top.get("modelled_paper")
    if measured is not None and paper is not None and abs(measured - paper) * 100 > GOAL_POINTS:
        line += (
            f"\nmeasured {100 * measured:.0f}% vs paper {100 * paper:.0f}% "
            f"(more than {GOAL_POINTS:g} points): {_gap_note(top)}"
        )
    return line


#: Agreement goal of the measured (no-overlap) and the paper's modelled communication share, in points.
GOAL_POINTS = 5.0


def regime_summary(
    figure_rows: Mapping[str, Sequence[Mapping[str, Any]]],
    point_rows: Mapping[str, Sequence[Mapping[str, Any]]],
    settings: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One row per figure: the paper's claim and its verdict here (:func:`ecorec.plots.claims.claim_of` on the
    figure's CSV rows, ``figure_rows``), and for the training figures the reference system's shares from
    ``point_rows`` (:func:`regime_rows`): measured exposed and total, modelled here and for the paper, and
    whether measured and paper agree within :data:`GOAL_POINTS` (else ``note`` says what differs)."""
    from ecorec.plots.claims import claim_of

    out = []
    for name, rows in figure_rows.items():
        claim = claim_of(name, rows, settings.get(name, {}))
        row: dict[str, Any] = {**claim.as_dict()}
        points = point_rows.get(name) or []
        ref = [p for p in points if p.get("modelled_paper") is not None]
        if ref:
            top = max(ref, key=lambda p: (p["system"] == "ecorec", p["tables"] or 0, p["world"]))
            row.update(
                reference=f"{top['system']} T={top['tables']} {top['world']} ranks",
                measured_exposed=top["measured_exposed"],
                measured_total=top["measured_total"],
                modelled_here=top["modelled_here"],
                modelled_paper=top["modelled_paper"],
            )
            if top["measured_total"] is not None:
                gap = 100 * (top["measured_total"] - top["modelled_paper"])
                row["gap_points"] = gap
                row["within_goal"] = abs(gap) <= GOAL_POINTS
                if abs(gap) > GOAL_POINTS:
                    row["note"] = _gap_note(top)
        out.append(row)
    return out


def _gap_note(point: Mapping[str, Any]) -> str:
    """Why a measured share differs from the paper's modelled one (the model's parts that differ)."""
    reasons = []
    here, paper = point.get("modelled_here"), point.get("modelled_paper")
    if here is not None and point.get("measured_total") is not None:
        if abs(here - point["measured_total"]) * 100 > GOAL_POINTS:
            reasons.append(
                f"the model of this run ({100 * here:.0f}%) misses the measurement: compute or bytes differ "
                "from the split's scaling"
            )
    dense_here, dense_paper = point.get("dense_share_here"), point.get("dense_share_paper")
    if dense_here is not None and dense_paper is not None and dense_here - dense_paper > 0.1:
        reasons.append(
            f"the dense MLPs take {100 * dense_here:.0f}% of a step's compute here but "
            f"{100 * dense_paper:.0f}% on the target (its GEMMs are relatively faster than its TT kernels): "
            "time the link is not dilated for, so communication is a smaller share here"
        )
    if here is not None and paper is not None and abs(here - paper) * 100 > GOAL_POINTS:
        reasons.append(
            f"the paper's {point['paper_tables']} tables on {point['paper_world']} GPUs model at "
            f"{100 * paper:.0f}% against {100 * here:.0f}% for this run's {point['tables']} tables on "
            f"{point['world']} ranks: the head's top MLP grows with the tables (cat interaction), and so do "
            "its compute and all-reduce"
        )
    return "; ".join(reasons)
