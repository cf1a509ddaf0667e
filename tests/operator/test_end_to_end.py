"""End to end on one machine: a router in a network namespace, the operator, the pools.

The node end of the veth lives in the root namespace (with accept_ra_defrtr=0, so the
machine never takes a default route from the test router), where the operator runs and
can reach the control plane on loopback. radvd or Kea in the router namespace play the
ISP's router.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from dynamic_prefix.model import api
from testbed.dnsmasq import Dnsmasq
from testbed.harness import Cluster, OperatorProcess, wait_for
from testbed.kea import Kea, PdPool
from testbed.netns import Link, namespaces_supported
from testbed.radvd import PrefixAd, Radvd
from tests.operator.operator_testkit import events_about

DP_PATH = f"/apis/{api.API_VERSION}/{api.PLURAL}"
POOLS = "/apis/cilium.io/v2/ciliumloadbalancerippools"

pytestmark = pytest.mark.netns


@pytest.fixture
def link() -> Iterator[Link]:
    supported, reason = namespaces_supported()
    if not supported:
        pytest.skip(f"network namespaces unavailable: {reason}")
    with Link(node_in_root_namespace=True) as created:
        yield created


def blocks(cluster: Cluster, name: str) -> list[Any]:
    obj = cluster.get(f"{POOLS}/{name}")
    return [] if obj is None else list(obj["spec"].get("blocks") or [])


def test_cilium_pool_follows_the_prefix_a_router_advertises(
    cluster: Cluster, operator: OperatorProcess, link: Link
) -> None:
    tag = secrets.token_hex(3)
    old, new = "2001:db8:e1::/64", "2001:db8:e2::/64"
    with Radvd(link, prefixes=[PrefixAd(old, valid=600, preferred=300)]) as radvd:
        cluster.apply(
            {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "metadata": {"name": f"ra-{tag}"},
                "spec": {
                    "acquisition": {
                        "routerAdvertisement": {
                            "interface": link.node_ifname,
                            "trustedRouters": [str(link.router.link_local)],
                        }
                    },
                    "addressRanges": [
                        {"name": "lb", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}
                    ],
                },
            }
        )
        cluster.apply(
            {
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumLoadBalancerIPPool",
                "metadata": {
                    "name": f"ra-pool-{tag}",
                    "annotations": {
                        api.ANNOTATION_NAME: f"ra-{tag}",
                        api.ANNOTATION_ADDRESS_RANGE: "lb",
                    },
                },
                "spec": {"blocks": [{"cidr": "192.0.2.0/24"}]},
            }
        )
        first = {"start": "2001:db8:e1:0:f000::", "stop": "2001:db8:e1:0:ffff:ffff:ffff:ffff"}
        wait_for(
            lambda: blocks(cluster, f"ra-pool-{tag}") == [{"cidr": "192.0.2.0/24"}, first],
            what="pool filled from the router's prefix",
        )
        status = (cluster.get(f"{DP_PATH}/ra-{tag}") or {})["status"]
        assert status["prefixSource"] == "router-advertisement"
        assert status["currentPrefix"] == old

        # renumbering as routers do it: the old prefix deprecated, still valid for a while
        radvd.set_prefixes(
            [PrefixAd(new, valid=600, preferred=300), PrefixAd(old, valid=300, preferred=0)]
        )
        second = {"start": "2001:db8:e2:0:f000::", "stop": "2001:db8:e2:0:ffff:ffff:ffff:ffff"}
        wait_for(
            lambda: blocks(cluster, f"ra-pool-{tag}") == [{"cidr": "192.0.2.0/24"}, second, first],
            what="pool follows the new prefix and keeps the old one",
        )
        status = (cluster.get(f"{DP_PATH}/ra-{tag}") or {})["status"]
        assert status["currentPrefix"] == new
        assert [h["prefix"] for h in status["history"]] == [old]

        # the router withdraws the old prefix (valid lifetime 0): its lifetime has ended,
        # so it leaves the history and the pool at once
        radvd.set_prefixes([PrefixAd(new, valid=600, preferred=300)], withdraw=[old])
        wait_for(
            lambda: blocks(cluster, f"ra-pool-{tag}") == [{"cidr": "192.0.2.0/24"}, second],
            what="the withdrawn prefix leaves the pool",
        )
        status = (cluster.get(f"{DP_PATH}/ra-{tag}") or {})["status"]
        assert status.get("history", []) == []


def test_subnet_of_a_delegated_prefix_reaches_the_pool(
    cluster: Cluster, operator: OperatorProcess, link: Link
) -> None:
    tag = secrets.token_hex(3)
    with Kea(link, pools=[PdPool("2001:db8:100::", 40, 56)]):
        cluster.apply(
            {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "metadata": {"name": f"pd-{tag}"},
                "spec": {
                    "acquisition": {
                        "dhcpv6pd": {"interface": link.node_ifname, "requestedPrefixLength": 56}
                    },
                    "subnets": [{"name": "services", "offset": 1, "prefixLength": 64}],
                },
            }
        )
        cluster.apply(
            {
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumLoadBalancerIPPool",
                "metadata": {
                    "name": f"pd-pool-{tag}",
                    "annotations": {
                        api.ANNOTATION_NAME: f"pd-{tag}",
                        api.ANNOTATION_SUBNET: "services",
                    },
                },
                "spec": {"blocks": []},
            }
        )
        status = wait_for(
            lambda: (
                ((cluster.get(f"{DP_PATH}/pd-{tag}") or {}).get("status") or {}).get(
                    "currentPrefix"
                )
                and (cluster.get(f"{DP_PATH}/pd-{tag}") or {})["status"]
            ),
            timeout=30,
            what="a delegated prefix in status",
        )
        assert status["prefixSource"] == "dhcpv6-pd"
        delegated = status["currentPrefix"]
        assert delegated.startswith("2001:db8:1")
        assert delegated.endswith("/56")
        assert status["dhcpv6"]["duid"]  # kept for restarts and leader changes
        (subnet,) = status["subnets"]
        wait_for(
            lambda: blocks(cluster, f"pd-pool-{tag}") == [{"cidr": subnet["cidr"]}],
            what="pool holds the carved subnet",
        )
        assert subnet["cidr"].endswith("/64")


def test_a_withdrawal_from_an_untrusted_router_keeps_the_old_prefix_for_two_hours(
    cluster: Cluster, operator: OperatorProcess, link: Link
) -> None:
    """RFC 4862 5.5.3 e: without trustedRouters, anyone on the link could send the RA."""
    tag = secrets.token_hex(3)
    old, new = "2001:db8:e3::/64", "2001:db8:e4::/64"
    with Radvd(link, prefixes=[PrefixAd(old, valid=86400, preferred=14400)]) as radvd:
        cluster.apply(
            {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "metadata": {"name": f"wd-{tag}"},
                "spec": {
                    "acquisition": {"routerAdvertisement": {"interface": link.node_ifname}},
                    "addressRanges": [
                        {"name": "lb", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}
                    ],
                },
            }
        )
        cluster.apply(
            {
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumLoadBalancerIPPool",
                "metadata": {
                    "name": f"wd-pool-{tag}",
                    "annotations": {
                        api.ANNOTATION_NAME: f"wd-{tag}",
                        api.ANNOTATION_ADDRESS_RANGE: "lb",
                    },
                },
                "spec": {"blocks": []},
            }
        )
        first = {"start": "2001:db8:e3:0:f000::", "stop": "2001:db8:e3:0:ffff:ffff:ffff:ffff"}
        wait_for(lambda: blocks(cluster, f"wd-pool-{tag}") == [first], what="the first prefix")

        withdrawn_at = dt.datetime.now(dt.UTC)
        radvd.set_prefixes([PrefixAd(new, valid=86400, preferred=14400)], withdraw=[old])
        second = {"start": "2001:db8:e4:0:f000::", "stop": "2001:db8:e4:0:ffff:ffff:ffff:ffff"}
        wait_for(
            lambda: blocks(cluster, f"wd-pool-{tag}") == [second, first],
            what="the new prefix first, the withdrawn one kept",
        )
        status = (cluster.get(f"{DP_PATH}/wd-{tag}") or {})["status"]
        (entry,) = status["history"]
        assert entry["prefix"] == old
        until = dt.datetime.fromisoformat(entry["validUntil"].replace("Z", "+00:00"))
        two_hours = dt.timedelta(hours=2)
        assert withdrawn_at + two_hours - dt.timedelta(seconds=5) <= until
        assert until <= dt.datetime.now(dt.UTC) + two_hours + dt.timedelta(seconds=1)
        (changed,) = events_about(cluster, f"wd-{tag}", reason="PrefixChanged")
        assert (
            f"{old} stays in the pools, deprecated, until {entry['validUntil']}"
            in (changed["message"])
        )


def test_pools_follow_a_dnsmasq_router_through_a_reboot_and_a_live_renumbering(
    cluster: Cluster, operator: OperatorProcess, link: Link
) -> None:
    """dnsmasq, not radvd: a router that reboots into a new prefix stops mentioning the
    old one (no withdrawal, no deprecation); one renumbered live deprecates the old one."""
    tag = secrets.token_hex(3)
    first, second, third = "2001:db8:d1::/64", "2001:db8:d2::/64", "2001:db8:d3::/64"
    with Dnsmasq(link, prefix=first, lease_time=600) as dnsmasq:
        cluster.apply(
            {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "metadata": {"name": f"dm-{tag}"},
                "spec": {
                    "acquisition": {
                        "routerAdvertisement": {
                            "interface": link.node_ifname,
                            "trustedRouters": [str(link.router.link_local)],
                        }
                    },
                    "addressRanges": [
                        {"name": "lb", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}
                    ],
                    "transition": {"maxPrefixHistory": 3},
                },
            }
        )
        cluster.apply(
            {
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumLoadBalancerIPPool",
                "metadata": {
                    "name": f"dm-pool-{tag}",
                    "annotations": {
                        api.ANNOTATION_NAME: f"dm-{tag}",
                        api.ANNOTATION_ADDRESS_RANGE: "lb",
                    },
                },
                "spec": {"blocks": []},
            }
        )

        def block(prefix: str) -> dict[str, str]:
            head = prefix.removesuffix("::/64")
            return {"start": f"{head}:0:f000::", "stop": f"{head}:0:ffff:ffff:ffff:ffff"}

        wait_for(
            lambda: blocks(cluster, f"dm-pool-{tag}") == [block(first)],
            timeout=15,  # dnsmasq's first RA comes up to 5 s after it starts
            what="the first prefix",
        )

        dnsmasq.renumber(second)  # a reboot: the old prefix is simply no longer announced
        wait_for(
            lambda: blocks(cluster, f"dm-pool-{tag}") == [block(second), block(first)],
            timeout=30,
            what="the new prefix first, the one no longer announced kept",
        )
        status = (cluster.get(f"{DP_PATH}/dm-{tag}") or {})["status"]
        assert status["currentPrefix"] == second
        assert [h["prefix"] for h in status["history"]] == [first]

        dnsmasq.renumber(third, restart=False)  # live: the old one deprecated, still valid
        wait_for(
            lambda: (
                blocks(cluster, f"dm-pool-{tag}") == [block(third), block(second), block(first)]
            ),
            timeout=30,
            what="the newest prefix first, both older ones kept while valid",
        )
        status = (cluster.get(f"{DP_PATH}/dm-{tag}") or {})["status"]
        assert status["currentPrefix"] == third
        assert [h["prefix"] for h in status["history"]] == [second, first]
        warnings = [e for e in events_about(cluster, f"dm-{tag}") if e.get("type") == "Warning"]
        assert warnings == []
