"""Each figure's claim in the paper and whether it holds here, decided from the figure's own rows.

A claim is held to what its figure measured: orderings compare the plotted means, and a difference smaller
than the larger of the two error bars (the spread of the timing windows) is reported as *within the spread*
rather than counted for or against the claim. The figure titles and the report's regime table state every
claim as ``paper: <claim>; here: holds | does not hold (<numbers>)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Claim", "claim_of"]

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Claim:
    """One figure's claim: the paper's words, the numbers here, and the verdict (``None``: no data)."""

    figure: str
    paper: str
    here: str
    holds: bool | None

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "not measured"}[self.holds]

    def line(self) -> str:
        return f"paper: {self.paper}; here: {self.verdict} ({self.here})"

    def as_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "paper": self.paper, "here": self.here, "verdict": self.verdict}


def _faster(a: Row, b: Row, key: str = "time_per_iter_ms") -> bool | None:
    """``True`` if ``a`` is faster than ``b`` by more than the larger error bar, ``False`` if slower by more,
    ``None`` within the spread."""
    gap = b[key] - a[key]
    spread = max(a.get(f"{key}_std", 0.0) or 0.0, b.get(f"{key}_std", 0.0) or 0.0)
    if abs(gap) <= spread:
        return None
    return gap > 0


def _fig10(rows: Sequence[Row], settings: Mapping[str, Any]) -> Claim:
    parts, holds = [], True
    for t in sorted({r["tables"] for r in rows}, reverse=True):
        point = {r["system"]: r for r in rows if r["tables"] == t}
        ours = point.get("ecorec")
        if ours is None:
            return Claim("fig10", _FIG10, "no ecorec run", None)
        ratios = ", ".join(
            f"{s} {point[s]['time_per_iter_ms'] / ours['time_per_iter_ms']:.2f}x"
            for s in settings["systems"]
            if s != "ecorec" and s in point
        )
        parts.append(f"T={t}: ecorec {ours['time_per_iter_ms']:.0f} ms, others {ratios}")
        holds &= all(
            ours["time_per_iter_ms"] <= r["time_per_iter_ms"]
            for s, r in point.items()
            if s in _PAPER_BASELINES
        )
    return Claim("fig10", _FIG10, "; ".join(parts), holds)


_FIG10 = (
    "EcoRec has a lower time per iteration than EL-Rec and TT-Rec at every table count (up to 3.1x faster "
    "than EL-Rec; the other systems' ratios are shown too)"
)
#: The systems the paper compares EcoRec with in figures 10 and 12 (TorchRec: this project's extra baseline).
_PAPER_BASELINES = ("elrec", "ttrec")


def _fig12(rows: Sequence[Row], settings: Mapping[str, Any]) -> Claim:
    key = "target_samples_per_s" if all(_finite(r.get("target_samples_per_s")) for r in rows) else None
    key = key or "throughput_samples_per_s"
    parts, holds = [], True
    for w in sorted({r["world_size"] for r in rows}):
        point = {r["system"]: r for r in rows if r["world_size"] == w}
        if "ecorec" not in point:
            return Claim("fig12", _FIG12, "no ecorec run", None)
        best = max(point, key=lambda s: point[s][key])
        holds &= best == "ecorec"
        parts.append(f"{w} ranks: best {best}")
    unit = "target-equivalent samples/s" if key == "target_samples_per_s" else "samples/s"
    return Claim("fig12", _FIG12, f"{'; '.join(parts)} ({unit})", holds)


_FIG12 = "EcoRec has the highest throughput at every scale"


def _fig16(rows: Sequence[Row], settings: Mapping[str, Any]) -> Claim:
    order = list(settings["systems"])
    parts, holds = [], True
    for t in sorted({r["tables"] for r in rows}, reverse=True):
        point = {r["system"]: r for r in rows if r["tables"] == t}
        if any(s not in point for s in order):
            return Claim("fig16", _FIG16, "missing runs", None)
        times = [point[s]["time_per_iter_ms"] for s in order]
        ordered = all(a > b for a, b in zip(times, times[1:]))
        within = [
            f"{order[i + 1]} vs {order[i]}"
            for i in range(len(order) - 1)
            if _faster(point[order[i + 1]], point[order[i]]) is None
        ]
        last_vs_twp = times[-1] / times[1] if len(times) > 2 else math.nan
        holds &= ordered and last_vs_twp <= 0.9
        text = f"T={t}: " + " > ".join(f"{s} {v:.0f} ms" for s, v in zip(order, times))
        text += f"; {order[-1]} / {order[1]} = {last_vs_twp:.2f}"
        if within:
            text += f"; within the spread: {', '.join(within)}"
        parts.append(text)
    return Claim("fig16", _FIG16, "; ".join(parts), holds)


_FIG16 = "time per iteration bwp > twp > +reorder > +slope (here also: +slope <= 0.9x twp)"


def _fig11(rows: Sequence[Row], settings: Mapping[str, Any]) -> Claim:
    key = "forward_backward_ms_median"
    parts, holds = [], True
    for b in sorted({r["batch_size"] for r in rows}):
        point = {r["variant"]: r for r in rows if r["batch_size"] == b}
        if "ecorec" not in point:
            return Claim("fig11", _FIG11, "no ecorec kernel", None)
        others = {v: r for v, r in point.items() if v in ("elrec", "fbtt")}
        holds &= all(point["ecorec"][key] <= r[key] for r in others.values())
        parts.append(
            f"B={b}: " + ", ".join(f"{v} {r[key] / point['ecorec'][key]:.2f}x" for v, r in others.items())
        )
    return Claim("fig11", _FIG11, "; ".join(parts) + " of ecorec's time", holds)


_FIG11 = "EcoRec's TT kernel is the fastest TT kernel (forward + backward) at every batch size"


def _table1(rows: Sequence[Row], settings: Mapping[str, Any]) -> Claim:
    key = "peak_forward_backward_bytes"
    tt = [r for r in rows if r.get("variant") in ("ecorec", "elrec", "fbtt") and _finite(r.get(key))]
    parts, holds = [], True
    for b in sorted({r["batch_size"] for r in tt}):
        point = {r["variant"]: r for r in tt if r["batch_size"] == b}
        if "ecorec" not in point:
            return Claim("table1", _TABLE1, "no ecorec row", None)
        holds &= all(point["ecorec"][key] <= r[key] for r in point.values())
        parts.append(f"B={b}: " + ", ".join(f"{v} {r[key] / 2**20:.0f} MiB" for v, r in point.items()))
    return Claim("table1", _TABLE1, "; ".join(parts), holds if parts else None)


_TABLE1 = "EcoRec needs the least training memory of the TT kernels"


def _hetgmp(rows: Sequence[Row], settings: Mapping[str, Any]) -> Claim:
    base = [r for r in rows if r["store_rate"] == 0 and r["bound"] == min(x["bound"] for x in rows)]
    point = {r["partitioner"]: r for r in base}
    if "random" not in point or len(point) < 2:
        return Claim("hetgmp", _HETGMP, "no random baseline without mirrors", None)
    rand = point["random"]
    best = max((p for p in point if p != "random"), key=lambda p: point[p]["samples_per_s"])
    ours = point[best]
    speed = ours["samples_per_s"] / rand["samples_per_s"]
    rows_ratio = ours["remote_rows_per_step"] / rand["remote_rows_per_step"]
    faster = _faster(ours, rand, key="samples_per_s")
    text = (
        f"no mirrors, bound {rand['bound']}: {best} {speed:.2f}x random's samples/s, "
        f"{rows_ratio:.2f}x its remote rows"
    )
    if faster is None:
        text += " (within the spread)"
    # samples/s: larger is better, so "_faster" with that key says whether `ours` is *slower*
    return Claim("hetgmp", _HETGMP, text, faster is False and rows_ratio < 1)


_HETGMP = "graph partitioning fetches fewer remote rows and trains faster than a random partition"


def _placement(rows: Sequence[Row], settings: Mapping[str, Any]) -> Claim:
    """Does a learned placer beat the best greedy by more than the measurement's repeat-to-repeat spread, and
    how much could any placer win (the best greedy over the measured optimum of the small tasks)?"""
    point = {r["placer"]: r for r in rows}
    learned = [
        p
        for p in ("dreamshard", "neuroshard")
        if p in point and _finite(point[p].get("relative_to_best_greedy_mean"))
    ]
    if not learned:
        return Claim("placement", _PLACEMENT, "no learned placer measured", None)
    first = rows[0]
    noise = first.get("measurement_relative_iqr")
    noise = float(noise) if _finite(noise) else 0.0
    parts = [f"{p} {point[p]['relative_to_best_greedy_mean']:.3f}x the best greedy" for p in learned]
    optimum = [
        f"{p} {point[p]['relative_to_optimum_mean']:.3f}x"
        for p in learned
        if _finite(point[p].get("relative_to_optimum_mean"))
    ]
    headroom = first.get("best_greedy_headroom_mean")
    if _finite(headroom):
        parts.append(
            f"small tasks: the best greedy is {headroom:.1%} above the measured optimum"
            + (f" ({', '.join(optimum)} the optimum)" if optimum else "")
        )
    best = min(point[p]["relative_to_best_greedy_mean"] for p in learned)
    within = abs(best - 1.0) <= noise
    parts.append(f"measurement IQR {noise:.1%}" + (" (within the spread)" if within else ""))
    return Claim("placement", _PLACEMENT, "; ".join(parts), best < 1.0 and not within)


_PLACEMENT = "a learned placement (DreamShard) costs less than the best greedy baseline (19% less at 4 GPUs)"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


_CLAIMS = {
    "fig10": _fig10,
    "fig11": _fig11,
    "fig12": _fig12,
    "fig16": _fig16,
    "table1": _table1,
    "hetgmp": _hetgmp,
    "placement": _placement,
}


def claim_of(name: str, rows: Sequence[Row], settings: Mapping[str, Any]) -> Claim:
    """The claim of figure ``name`` judged on its plotted ``rows`` (the figure's CSV rows)."""
    if name not in _CLAIMS:
        raise ValueError(f"no claim for figure {name!r}; known: {sorted(_CLAIMS)}")
    if not rows:
        return Claim(name, "", "no rows", None)
    return _CLAIMS[name](rows, settings)
