"""``bench train --cluster``: the link settings it runs and its summary (exposed communication = step on the
link minus unshaped step; mp's share; the goal judged only where mp's communication share is >= 30%; the
figure-16 ordering), on hand-made rows."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ecorec.bench.train import _links, _modelled_mp_comm, _parser, _summary


def _row(variant: str, link: str, step_ms: float, gbit: float | None = None) -> dict:
    return {"variant": variant, "link": link, "iteration_median_ms": step_ms, "samples_per_s": 1000 / step_ms,
            "link_gbit": gbit, "world_size": 2, "global_batch_size": 128, "tables": 4}  # fmt: skip


def test_links_of_a_cluster_run(tmp_path: Path) -> None:
    dilation = tmp_path / "d.json"
    dilation.write_text(json.dumps({"profile": "a100_ib100", "link_gbit": 0.7588}))
    args = _parser().parse_args(["--cluster", "--link-gbit", "0.1", "0.5", "--dilation-file", str(dilation)])
    links = _links(args, tmp_path)
    base = ["--nodes", "2", "--ranks-per-node", "1"]
    assert links == [
        ("unshaped", base),
        ("0.1Gbit", [*base, "--link-gbit", "0.1"]),
        ("0.5Gbit", [*base, "--link-gbit", "0.5"]),
        ("a100_ib100@0.759Gbit", [*base, "--dilation-file", str(dilation)]),
    ]
    assert _links(_parser().parse_args([]), tmp_path) == [("loopback", None)]


def test_summary_exposed_communication_and_goal() -> None:
    args = argparse.Namespace(cluster=True, ranks_per_node=1, embedding_dim=8)
    names = ["mp", "bwp", "twp", "twp+reorder", "twp+reorder+slope"]
    rows = [_row(v, "unshaped", t) for v, t in zip(names, [10.0, 12.0, 10.1, 10.5, 10.2])]
    rows += [_row(v, "0.1Gbit", t, 0.1) for v, t in zip(names, [20.0, 19.0, 16.0, 15.0, 14.0])]
    s = _summary(rows, args)
    link = s["links"]["0.1Gbit"]
    assert link["mp_comm_share"] == pytest.approx(0.5)  # (20 - 10) / 20
    slope = link["variants"]["twp+reorder+slope"]
    assert slope["exposed_comm_ms"] == pytest.approx(3.8) and slope["vs_mp"] == pytest.approx(20 / 14)
    assert link["fig16_order_holds"] is True and s["links"]["unshaped"]["fig16_order_holds"] is False
    assert "0.1Gbit 1.43x (met)" in s["goal"]
    # mp's two all-to-alls: 2 passes x b=64 x D=8 x F=4 x (R-P)/R=1/2 x 4 bytes, over a 0.1 Gbit/s link
    nbytes, ms = _modelled_mp_comm(rows[5], args)
    assert nbytes == 2 * 64 * 8 * 4 * 4 // 2 and ms == pytest.approx(nbytes * 8 / 1e8 * 1e3)
