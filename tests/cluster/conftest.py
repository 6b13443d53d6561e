"""Fixtures of the emulated-cluster tests: skip what needs root when the capability is missing."""

from __future__ import annotations

import pytest

from ecorec.cluster import ClusterCapabilityError, check_capabilities


def _capable() -> bool:
    try:
        check_capabilities()
    except ClusterCapabilityError:
        return False
    return True


needs_net_admin = pytest.mark.skipif(not _capable(), reason="needs root / CAP_NET_ADMIN + CAP_SYS_ADMIN")
