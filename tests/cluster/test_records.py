"""What figures read from run records on the emulated cluster: the allocator's step peak as the plotted memory
(max RSS beside it), the cluster columns, and the title line (profile, dilation, rate, or NOT EMULATED)."""

from __future__ import annotations

import pytest

from ecorec.plots.records import cluster_summary, train_point


def _record(cluster: dict | None, step_memory: dict | None) -> dict:
    metrics = {
        "mode": "twp", "num_tables": 8, "world_size": 2, "global_batch_size": 128,
        "timing": {"warmup_steps": 0, "per_step_s": [0.1] * 3,
                   "windows": [{"seconds": 0.1, "num_steps": 1}] * 3},
        "peak_memory_bytes": {"per_rank": [900 * 2**20] * 2, "max": 900 * 2**20, "kind": "max_rss"},
        "cluster": cluster,
    }  # fmt: skip
    if step_memory is not None:
        metrics["step_memory_bytes"] = step_memory
    return {
        "config": {"run": {"name": "ecorec"}, "dataset": {}, "embeddings": {"algorithm": "ecorec"},
                   "parallel": {"mode": "twp", "world_size": 2}, "train": {"global_batch_size": 128}},
        "environment": {},
        "metrics": metrics,
    }  # fmt: skip


def test_step_memory_is_plotted_and_rss_kept() -> None:
    step = {"per_rank": [3 * 2**20, 5 * 2**20], "max": 5 * 2**20, "state_per_rank": [2**20, 2 * 2**20],
            "step_per_rank": [2 * 2**20, 3 * 2**20], "method": "state_dict bytes + profiler",
            "step": 0}  # fmt: skip
    cluster = {"emulated": True, "nodes": 2, "ranks_per_node": 1, "link_gbit": 0.759,
               "profile": "a100_ib100", "dilation": {"profile": "a100_ib100", "factor": 0.0303}}  # fmt: skip
    point = train_point(_record(cluster, step))
    assert point["peak_memory_mib"] == 5 and point["rss_memory_mib"] == 900 and point["state_memory_mib"] == 2
    assert point["peak_memory_kind"] == "state_dict bytes + profiler"
    assert point["cluster_link_gbit"] == 0.759 and point["cluster_dilation"] == pytest.approx(0.0303)
    assert cluster_summary([_record(cluster, step)]) == (
        "emulated 1 ranks/node, link 0.759 Gbit/s (a100_ib100, dilation 0.0303)"
    )
    old = train_point(_record(None, None))  # a record from before step memory: RSS is what there is
    assert old["peak_memory_mib"] == 900 and old["cluster_emulated"] == ""


def test_fallback_is_named_in_the_title() -> None:
    fallback = _record({"emulated": False, "reason": "needs CAP_NET_ADMIN"}, None)
    assert cluster_summary([fallback]) == "NOT EMULATED (plain loopback: no CAP_NET_ADMIN)"
    assert cluster_summary([_record(None, None)]) == ""
