"""Time dilation: hand-computed factors and link rates, profiles from the config, the measured reference
kernel, the workflow's emulation arguments, and the train rule's wiring (dry run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ecorec.cluster import (
    REFERENCE,
    ClusterProfile,
    compute_dilation,
    emulated_nodes,
    emulation_args,
    measure_reference_us,
    profile_from_config,
)
from tests.workflow.snakemake_cli import REPO_ROOT, run_snakemake


def test_factor_and_rates_by_hand() -> None:
    a100 = ClusterProfile("a100", gpus_per_node=4, inter_node_gbit=100, intra_node_gbit=4800)
    d = compute_dilation(a100, here_us_per_lookup=8.32, ranks_per_node=2)
    assert d.factor == pytest.approx(0.416 / 8.32)  # = 0.05
    assert d.link_gbit == pytest.approx(100 * 0.05 * 2 / 4)  # each rank keeps its share of the node's link
    assert d.intra_gbit is None and not d.link_gbit_override
    d = compute_dilation(a100, 8.32, 2, shape_intra_node=True, link_gbit=1.5)
    assert d.intra_gbit == pytest.approx(4800 * 0.05) and d.link_gbit == 1.5 and d.link_gbit_override
    fast = ClusterProfile("h100", 8, 400, target_speedup=4.0)
    assert compute_dilation(fast, 1.04, 8).factor == pytest.approx(0.104 / 1.04)
    measured = ClusterProfile("x", 4, 100, target_us_per_lookup=0.2)
    assert compute_dilation(measured, 2.0, 4).link_gbit == pytest.approx(10.0)
    with pytest.raises(ValueError, match="here_us_per_lookup"):
        compute_dilation(a100, 0.0, 1)


def test_profiles_of_the_default_config() -> None:
    cluster = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())["cluster"]
    profile = profile_from_config(cluster["profile"], cluster["profiles"])
    assert profile.gpus_per_node == 4 and profile.inter_node_gbit == 100 and profile.target_us == 0.416
    with pytest.raises(KeyError, match="known"):
        profile_from_config("nope", cluster["profiles"])
    with pytest.raises(ValueError, match="inter_node_gbit"):
        ClusterProfile("bad", 4, 0)


def test_reference_measurement_runs_the_fbtt_configuration() -> None:
    out = measure_reference_us(repeats=1, warmup=0, threads=1)
    assert out["us_per_lookup"] > 0 and len(out["samples_ms"]) == 1 and out["threads"] == 1
    nnz = REFERENCE["batch_size"] * REFERENCE["pooling"]
    assert out["us_per_lookup"] == pytest.approx(out["samples_ms"][0] * 1e3 / nnz)


def test_emulation_args() -> None:
    assert (
        emulated_nodes(4, 2) == (2, 2) and emulated_nodes(2, 4) == (1, 2) and emulated_nodes(2, 1) == (2, 1)
    )
    with pytest.raises(ValueError, match="ranks_per_node=2"):
        emulated_nodes(3, 2)
    cluster = {"ranks_per_node": 1, "mtu": 9000, "queue_ms": 50, "link_gbit": None}
    assert emulation_args(cluster, 2, "d.json") == (
        "--nodes 2 --ranks-per-node 1 --dilation-file d.json --mtu 9000 --queue-ms 50"
    )
    assert emulation_args({**cluster, "link_gbit": 0.5}, 2, "d.json").endswith("--link-gbit 0.5")


def test_train_rule_runs_on_the_emulated_cluster_when_asked(tmp_path: Path) -> None:
    (tmp_path / "results" / "datasets" / "synthetic").mkdir(parents=True)
    overlay = tmp_path / "emulate.yaml"
    overlay.write_text(yaml.safe_dump({"cluster": {"emulate": True, "link_gbit": 0.25}}))
    target = "results/runs/synthetic/ecorec/ecorec/T8-R2-b512-W32/record.json"
    proc = run_snakemake("-n", "-p", "--cores", "2", "--configfile", str(REPO_ROOT / "config.yaml"),
                         str(overlay), "--", target, workdir=tmp_path)  # fmt: skip
    text = proc.stdout + proc.stderr
    # the auto dilation (the kernel that dominates the target): this machine's rates with 2 concurrent
    # ranks, the compute split, the 32-GPU fan-out
    assert "rule cluster_dilation" in text
    assert "results/cluster/dilation-a100_ib100-auto-p1-R2-W32.json" in text
    assert "rule cluster_rates" in text and "results/cluster/rates-c2.json" in text
    assert "rule compute_split" in text
    assert "--emulate '--nodes 2 --ranks-per-node 1 --dilation-file" in text and "--link-gbit 0.25'" in text
    loopback = tmp_path / "loopback.yaml"
    loopback.write_text(yaml.safe_dump({"cluster": {"emulate": False}}))
    plain_target = target.replace("-W32/", "-W2/")  # without emulation a run stands for itself
    plain = run_snakemake("-n", "-p", "--cores", "2", "--configfile", str(REPO_ROOT / "config.yaml"),
                          str(loopback), "--", plain_target, workdir=tmp_path)  # fmt: skip
    assert "--emulate" not in plain.stdout + plain.stderr and "cluster_dilation" not in plain.stdout
