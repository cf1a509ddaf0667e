"""The prefix filter applies to every source: here a real DHCPv6 server (Kea, in a network
namespace) delegates a /56 to a DynamicPrefix whose filter accepts /48 at the longest.
The delegation is refused: no prefix, PrefixRejected, and the pool is left alone."""

from __future__ import annotations

import pytest

from testbed.harness import Cluster, OperatorProcess
from testbed.kea import Kea, PdPool
from testbed.netns import Link
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    SERVICES_SUBNET,
    SUBNET,
    blocks,
    condition,
    dynamic_prefix,
    new_tag,
    status_of,
    wait_event,
)

pytestmark = pytest.mark.netns


def test_a_delegation_the_filter_refuses_is_not_used(
    cluster: Cluster, operator: OperatorProcess, root_link: Link
) -> None:
    tag = new_tag()
    dp, pool = f"filter-{tag}", f"filter-pool-{tag}"
    acquisition = {
        "dhcpv6pd": {"interface": root_link.node_ifname, "requestedPrefixLength": 56},
        "prefixFilter": {"maxPrefixLength": 48},
    }
    with Kea(root_link, pools=[PdPool("2001:db8:100::", 40, 56)]):
        cluster.apply(dynamic_prefix(dp, acquisition=acquisition, ranges=(),
                                     subnets=[SERVICES_SUBNET], history=None))  # fmt: skip
        cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp, address_range=None, subnet=SUBNET,
                                              entries=[{"cidr": "192.0.2.0/24"}]))  # fmt: skip

        event = wait_event(cluster, dp, "PrefixRejected")
        assert event["type"] == "Warning"
        assert "longer than prefixFilter.maxPrefixLength /48" in event["message"]
        assert "dhcpv6-pd" in event["message"]
        acquired = condition(cluster, dp, "PrefixAcquired")
        assert acquired is not None
        assert (acquired["status"], acquired["reason"]) == ("False", "PrefixRejected")
        assert "currentPrefix" not in status_of(cluster, dp)
        assert blocks(cluster, pool) == [{"cidr": "192.0.2.0/24"}], "left alone"
