"""Fixtures of the workflow tests: the local SLURM cluster (started once per session, stopped at its end)."""

from __future__ import annotations

import pytest

from tests.workflow.slurm_cluster import ClusterUnavailable, LocalSlurmCluster


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    cluster = LocalSlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except ClusterUnavailable as err:
        pytest.skip(f"no local SLURM cluster: {err}")
    yield cluster
    cluster.stop()
