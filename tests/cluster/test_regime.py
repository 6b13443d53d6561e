"""The regime of an experiment (issue 24): the comm meter and its per-step summary, the dilation's kernel mix
and fan-out, the modelled communication share, the measured shares of a record and the figures' claims, each
against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from ecorec.cluster.dilation import ClusterProfile, compute_dilation, fanout
from ecorec.cluster.regime import (
    Workload,
    dense_parameters_of,
    emulated_workload,
    model_step,
    modelled_regime,
    target_workload,
)
from ecorec.parallel import CommMeter
from ecorec.plots.claims import claim_of
from ecorec.plots.records import measured_shares
from ecorec.train.metrics import comm_metrics

A100 = ClusterProfile(
    "a100", gpus_per_node=4, inter_node_gbit=100, intra_node_gbit=4800, fp32_tflops=20.0, gemm_efficiency=0.5
)
PCIE = ClusterProfile("pcie", gpus_per_node=8, inter_node_gbit=100, intra_node_gbit=100, fp32_tflops=16)


def test_comm_meter_counts_bytes_per_peer_and_time_blocked() -> None:
    meter = CommMeter(rank=1, world_size=4)
    meter.sent("all_to_all", [10, 99, 30, 40])  # its own entry is not communication
    meter.sent_ring("all_reduce", 400)  # ring: 2 (W-1)/W of the buffer to the next rank
    with meter.waiting("all_to_all"):
        pass
    sample = meter.take()
    assert sample.bytes_to == (10, 0, 630, 40)
    assert sample.bytes_by_kind == {"all_to_all": 80, "all_reduce": 600}
    assert set(sample.wait_s) == {"all_to_all"} and sample.exposed_s >= 0.0
    assert sample.bytes_off_node(ranks_per_node=2, rank=1) == 670  # ranks 2 and 3 are the other node
    assert meter.take().bytes_to == (0, 0, 0, 0)  # take starts afresh
    with pytest.raises(ValueError, match="one entry per rank"):
        meter.sent("x", [1, 2])


def test_comm_metrics_are_medians_over_the_timed_steps() -> None:
    from ecorec.parallel.comm import CommSample

    def step(wait: float, nbytes: int) -> CommSample:
        return CommSample((0, nbytes), {"all_to_all": wait}, {"all_to_all": nbytes})

    rank0 = [step(9.0, 999), step(0.1, 100), step(0.3, 300), step(0.2, 200)]
    rank1 = [CommSample((n.bytes_to[1], 0), n.wait_s, n.bytes_by_kind) for n in rank0]
    out = comm_metrics([rank0, rank1], [10.0, 1.0, 1.0, 1.0], warmup_steps=1, ranks_per_node=1)
    assert out["timed_steps"] == 3
    assert out["exposed_ms"] == pytest.approx(200.0) and out["exposed_share"] == pytest.approx(0.2)
    assert out["bytes_per_rank"] == 200 and out["bytes_off_node"] == 200
    assert comm_metrics([rank0, rank1], [1.0] * 4, warmup_steps=1, ranks_per_node=2)["bytes_off_node"] == 0
    assert comm_metrics([[]], [], warmup_steps=0, ranks_per_node=1) is None


def test_dilation_mixes_the_kernels_and_scales_the_fan_out() -> None:
    # TT: 0.416 us on the target, 8.32 here -> 0.05; GEMM: 100 GFLOP/s here, 20e3 x 0.5 there -> 0.01
    d = compute_dilation(A100, 8.32, 1, here_gemm_gflops=100.0, tt_weight=0.75, world=2, target_world=32)
    assert d.tt_factor == pytest.approx(0.05) and d.gemm_factor == pytest.approx(0.01)
    assert d.factor == pytest.approx(0.75 * 0.05 + 0.25 * 0.01)
    # 2 ranks, one per node: half a rank's peers are off-node; 32 GPUs in nodes of 4: 28/32 of them
    assert d.fanout == pytest.approx(0.5 / (28 / 32))
    assert d.link_gbit == pytest.approx(100 / 4 * d.factor * 1 * d.fanout)
    # one emulated node per target node: nothing to scale; a run inside one node of the target: per-GPU links
    assert fanout(A100, world=2, ranks_per_node=1, target_world=8) == pytest.approx(1.0)
    assert fanout(A100, world=4, ranks_per_node=1, target_world=None) == 1.0
    hetgmp = compute_dilation(PCIE, 1.0, 1, here_gemm_gflops=128.0, tt_weight=0.0, world=4, target_world=8)
    assert hetgmp.factor == pytest.approx(128.0 / (16e3 * 0.8))
    assert hetgmp.link_gbit == pytest.approx(100 * hetgmp.factor * (3 / 4) / (7 / 8))
    with pytest.raises(ValueError, match="needs the GEMM rate"):
        compute_dilation(A100, 8.32, 1, tt_weight=0.5)


def test_workload_bytes_and_modelled_share_by_hand() -> None:
    # mp, 4 ranks of which 2 across the link, T = 8, b = 100, D = 4: 2 x 100 x 2 tables x 4 x 4 B to each peer
    w = Workload("mp", world=4, peers_across=2, ranks_per_link=2, tables=8, local_batch=100, embedding_dim=4,
                 dense_parameters=1000)  # fmt: skip
    assert w.alltoall_bytes() == 2 * 100 * 2 * 4 * 4 * 2
    assert w.allreduce_bytes() == pytest.approx(2 * 3 / 4 * 1000 * 4 / 2)
    assert Workload("dp", 4, 2, 2, 8, 100, 4, 1000).alltoall_bytes() == 0
    step = model_step(w, embedding_s=0.3, dense_s=0.1, link_gbit_per_rank=8e-9 * w.alltoall_bytes() / 0.1)
    assert step.alltoall_s == pytest.approx(0.1)
    assert step.comm_share == pytest.approx(step.comm_s / (0.4 + step.comm_s))
    # the target: 32 GPUs in nodes of 4 -> 28 peers across, the node link shared by 4; one node -> all peers
    t = target_workload(A100, mode="mp", world=32, tables=788, local_batch=4096, embedding_dim=32,
                        dense_parameters=10)  # fmt: skip
    assert (t.peers_across, t.ranks_per_link) == (28, 4)
    assert target_workload(PCIE, mode="mp", world=8, tables=8, local_batch=1, embedding_dim=1,
                           dense_parameters=1).peers_across == 7  # fmt: skip
    e = emulated_workload(mode="mp", world=2, ranks_per_node=1, tables=8, local_batch=1, embedding_dim=1,
                          dense_parameters=1)  # fmt: skip
    assert (e.peers_across, e.ranks_per_link) == (1, 1)


def _record(step_s: float, exposed: float, off_node: float, link: float) -> dict:
    return {
        "config": {
            "run": {"name": "ecorec"},
            "parallel": {"world_size": 2},
            "model": {"embedding_dim": 4},
            "embeddings": {"algorithm": "ecorec"},
        },  # fmt: skip
        "metrics": {
            "mode": "twp",
            "world_size": 2,
            "num_tables": 8,
            "global_batch_size": 200,
            "tables": [],
            "timing": {"median_s": step_s},
            "comm": {"exposed_share": exposed, "bytes_off_node": off_node, "ranks_per_node": 1},
            "cluster": {
                "emulated": True,
                "link_gbit": link,
                "ranks_per_node": 1,
                "dilation": {"profile": "a100", "tt_factor": 0.05, "gemm_factor": 0.01},
            },
        },
    }


def test_measured_shares_of_a_record() -> None:
    # 1 Gbit/s, 25e6 bytes off the node: 0.2 s of communication; 1 s step of which 0.1 s blocked
    shares = measured_shares(_record(1.0, 0.1, 25e6, 1.0)["metrics"])
    assert shares["exposed"] == pytest.approx(0.1)
    assert shares["total"] == pytest.approx(0.2 / (0.9 + 0.2))  # without overlap: compute 0.9 s + 0.2 s
    assert measured_shares({"timing": {"median_s": 1.0}})["total"] is None


def test_modelled_regime_scales_the_split_to_the_paper() -> None:
    split = {"tables": 8, "local_batch": 100, "embedding_s": 0.4, "dense_s": 0.2, "algorithm": "ecorec",
             "dense_parameters_by_tables": {"8": 1000, "80": 5000}}  # fmt: skip
    params = dense_parameters_of(split)
    model = modelled_regime(_record(1.0, 0.1, 0.0, 1.0), split, dense_parameters=params, profile=A100,
                            paper_world=32, paper_tables=80)  # fmt: skip
    here, paper = model["here"], model["paper"]
    assert here["embedding_s"] == pytest.approx(0.4) and here["dense_s"] == pytest.approx(0.2)
    assert here["alltoall_s"] == pytest.approx(2 * 100 * 4 * 4 * 4 * 8 / 1e9)  # 4 tables per rank, 1 peer
    assert paper["embedding_s"] == pytest.approx(0.4 * 10 * 0.05)  # 10x the lookups per rank, TT dilation
    assert paper["dense_s"] == pytest.approx(0.2 * 5 * 0.01)  # 5x the head's parameters, GEMM dilation
    assert paper["alltoall_s"] == pytest.approx(2 * 100 * (80 / 32) * 4 * 4 * 28 / (25e9 / 8))
    with pytest.raises(KeyError, match="not 16"):
        params(16)


def _row(system: str, ms: float, std: float = 1.0, tables: int = 8) -> dict:
    return {"system": system, "tables": tables, "time_per_iter_ms": ms, "time_per_iter_ms_std": std}


def test_figure16_claim_needs_the_order_and_the_slope_gain() -> None:
    settings = {"systems": ["bwp", "twp", "twp_reorder", "ecorec"]}
    holds = claim_of("fig16", [_row("bwp", 400), _row("twp", 300), _row("twp_reorder", 280),
                               _row("ecorec", 250)], settings)  # fmt: skip
    assert holds.holds and "ecorec / twp = 0.83" in holds.here and holds.line().startswith("paper: ")
    small_gain = claim_of("fig16", [_row("bwp", 400), _row("twp", 300), _row("twp_reorder", 290),
                                    _row("ecorec", 280, std=30)], settings)  # fmt: skip
    assert small_gain.holds is False and "within the spread: ecorec vs twp_reorder" in small_gain.here
    assert claim_of("fig16", [_row("bwp", 400)], settings).holds is None


def test_hetgmp_claim_compares_with_random_without_mirrors() -> None:
    def r(p: str, sps: float, rows: float) -> dict:
        return {"partitioner": p, "store_rate": 0.0, "bound": 0, "samples_per_s": sps,
                "samples_per_s_std": 5.0, "remote_rows_per_step": rows}  # fmt: skip

    claim = claim_of("hetgmp", [r("random", 100, 1000), r("hetgmp", 125, 600), r("metis", 110, 700)], {})
    assert claim.holds and "hetgmp 1.25x random's samples/s, 0.60x its remote rows" in claim.here
    assert not claim_of("hetgmp", [r("random", 100, 1000), r("hetgmp", 103, 600)], {}).holds
    assert math.isclose(A100.per_rank_gbit(32), 25.0) and A100.per_rank_gbit(4) == 4800
