"""The placement benchmark's timed exchanges on the emulated cluster: its all-to-alls cross the shaped
link, so they take at least the time the link's rate allows for their bytes (the physical lower bound is the
oracle, also the ``comm="link"`` model's value); the network enters the cache key."""

from __future__ import annotations

from pathlib import Path

from ecorec.bench.placement import PlacementBenchConfig, exchange_key, link_exchange_ms, measure_placements
from ecorec.cluster.network import tbf_parameters
from tests.bench.test_placement_bench import PLACEMENT, dataset  # noqa: F401  (dataset: the shared fixture)
from tests.cluster.conftest import needs_net_admin

# PLACEMENT: device 0 holds dims 16 + 8 = 24, device 1 16 + 8 = 24 (table f2 split by columns)
LINK_GBIT, MTU, BATCH = 0.01, 9000, 1024


@needs_net_admin
def test_placement_all_to_alls_cross_the_shaped_link(dataset: Path) -> None:  # noqa: F811
    network = f"emulated:test:2x1:link={LINK_GBIT}gbit"
    config = PlacementBenchConfig(
        dataset=str(dataset),
        batch_size=BATCH,
        world_size=2,
        warmup=1,
        rounds=2,
        repeats=2,
        comm="measured",
        cluster_profile=network,
    )
    args = ["--nodes", "2", "--ranks-per-node", "1", "--link-gbit", str(LINK_GBIT), "--mtu", str(MTU)]
    (cost,) = measure_placements([PLACEMENT], config, launcher="cluster", cluster_args=args)
    # each rank sends its pooled outputs for the other rank's half of the batch: [B/2, 24] float32
    sent = BATCH // 2 * 24 * 4
    burst = tbf_parameters(LINK_GBIT * 1e9, MTU, 50.0)["burst"]  # may pass at once after an idle gap
    floor_ms = (sent - burst) * 8 / (LINK_GBIT * 1e9) * 1e3
    assert floor_ms > 10
    for device in cost.device_costs:
        forward_comm, backward_comm = device[1], device[2]
        assert forward_comm >= 0.9 * floor_ms, (cost.device_costs, floor_ms)
        assert backward_comm >= 0.9 * floor_ms, (cost.device_costs, floor_ms)
    assert link_exchange_ms([24, 24], BATCH, LINK_GBIT) == sent * 8 / (LINK_GBIT * 1e9) * 1e3
    loopback = PlacementBenchConfig(dataset=str(dataset), batch_size=BATCH, world_size=2, comm="measured")
    assert exchange_key(config, (24, 24)) != exchange_key(loopback, (24, 24))
