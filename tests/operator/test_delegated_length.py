"""Subnet offsets are judged against the prefix actually delegated: a real DHCPv6 server
(Kea, in a network namespace) delegates a /48, where offset 256 of /64 exists, or a /60,
where it does not. No requestedPrefixLength is written, so the spec cannot know which."""

from __future__ import annotations

from ipaddress import IPv6Network

import pytest

from testbed.harness import Cluster, OperatorProcess, wait_for
from testbed.kea import Kea, PdPool
from testbed.netns import Link
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    blocks,
    condition,
    current_status,
    dynamic_prefix,
    new_tag,
    wait_event,
)

pytestmark = pytest.mark.netns

FAR = {"name": "far", "offset": 256, "prefixLength": 64}
NEAR = {"name": "near", "offset": 1, "prefixLength": 64}


def delegate(cluster: Cluster, dp: str, link: Link) -> dict[str, object]:
    acquisition = {"dhcpv6pd": {"interface": link.node_ifname}}  # no length written
    cluster.apply(dynamic_prefix(dp, acquisition=acquisition, ranges=(), subnets=[FAR, NEAR],
                                 history=None))  # fmt: skip
    for subnet in ("far", "near"):
        cluster.apply(CILIUM_LB_POOL.manifest(f"{dp}-{subnet}", dp=dp, address_range=None,
                                              subnet=subnet, entries=[]))  # fmt: skip
    return wait_for(lambda: current_status(cluster, dp), timeout=30, what="a delegation")


def test_offset_256_is_served_when_a_48_is_delegated(
    cluster: Cluster, operator: OperatorProcess, root_link: Link
) -> None:
    dp = f"wide-{new_tag()}"
    with Kea(root_link, pools=[PdPool("2001:db8:1000::", 40, 48)]):
        status = delegate(cluster, dp, root_link)
        delegated = IPv6Network(str(status["currentPrefix"]))
        assert delegated.prefixlen == 48
        far = list(delegated.subnets(new_prefix=64))[256]
        wait_for(lambda: blocks(cluster, f"{dp}-far") == [{"cidr": str(far)}] or None,
                 what="the 257th /64 of the /48 in its pool")  # fmt: skip
        degraded = condition(cluster, dp, "Degraded")
        assert degraded is not None
        assert degraded["status"] == "False"


def test_offset_256_is_refused_with_a_condition_when_a_60_is_delegated(
    cluster: Cluster, operator: OperatorProcess, root_link: Link
) -> None:
    dp = f"narrow-{new_tag()}"
    with Kea(root_link, pools=[PdPool("2001:db8:2000::", 48, 60)]):
        status = delegate(cluster, dp, root_link)
        delegated = IPv6Network(str(status["currentPrefix"]))
        assert delegated.prefixlen == 60
        event = wait_event(cluster, dp, "PrefixDoesNotFit")
        assert "spec.subnets[0] (far): offset 256 is past the last subnet" in event["message"]
        degraded = condition(cluster, dp, "Degraded")
        assert degraded is not None
        assert (degraded["status"], degraded["reason"]) == ("True", "PrefixDoesNotFit")
        near = list(delegated.subnets(new_prefix=64))[1]
        wait_for(lambda: blocks(cluster, f"{dp}-near") == [{"cidr": str(near)}] or None,
                 what="the other subnet still served")  # fmt: skip
        assert blocks(cluster, f"{dp}-far") == [], "nothing written for the one that does not fit"
