"""End to end on one machine: a router in a network namespace, the operator, the pools.

The node end of the veth lives in the root namespace (with accept_ra_defrtr=0, so the
machine never takes a default route from the test router), where the operator runs and
can reach the control plane on loopback. radvd or Kea in the router namespace play the
ISP's router.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

import pytest

from testbed.dnsmasq import Dnsmasq
from testbed.harness import Cluster, OperatorProcess, wait_for
from testbed.kea import Kea, PdPool
from testbed.netns import Link
from testbed.radvd import PrefixAd, Radvd
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    apply_delegation,
    blocks,
    dynamic_prefix,
    events_about,
    status_of,
    wait_current,
    wait_event,
)

pytestmark = pytest.mark.netns


def follow_advertisements(
    cluster: Cluster,
    name: str,
    link: Link,
    *,
    trusted: bool = True,
    history: int | None = None,
    entries: Sequence[Any] = (),
) -> str:
    """DynamicPrefix ``name`` with range ``lb`` of the prefix advertised on ``link`` (if
    ``trusted``, only by the router there), and Cilium LB pool ``{name}-pool`` holding
    ``entries`` and that range, applied; the pool's name."""
    ra: dict[str, Any] = {"interface": link.node_ifname}
    if trusted:
        ra["trustedRouters"] = [str(link.router.link_local)]
    cluster.apply(dynamic_prefix(name, acquisition={"routerAdvertisement": ra}, history=history))
    pool = f"{name}-pool"
    cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=name, entries=entries))
    return pool


def test_cilium_pool_follows_the_prefix_a_router_advertises(
    cluster: Cluster, operator: OperatorProcess, root_link: Link
) -> None:
    tag = secrets.token_hex(3)
    old, new = "2001:db8:e1::/64", "2001:db8:e2::/64"
    with Radvd(root_link, prefixes=[PrefixAd(old, valid=600, preferred=300)]) as radvd:
        pool = follow_advertisements(
            cluster, f"ra-{tag}", root_link, entries=[{"cidr": "192.0.2.0/24"}]
        )
        first = {"start": "2001:db8:e1:0:f000::", "stop": "2001:db8:e1:0:ffff:ffff:ffff:ffff"}
        wait_for(
            lambda: blocks(cluster, pool) == [{"cidr": "192.0.2.0/24"}, first],
            what="pool filled from the router's prefix",
        )
        # the pools do not wait for the status write (design.md, Order of writes)
        status = wait_current(cluster, f"ra-{tag}", old)
        assert status["prefixSource"] == "router-advertisement"

        # renumbering as routers do it: the old prefix deprecated, still valid for a while
        radvd.set_prefixes(
            [PrefixAd(new, valid=600, preferred=300), PrefixAd(old, valid=300, preferred=0)]
        )
        second = {"start": "2001:db8:e2:0:f000::", "stop": "2001:db8:e2:0:ffff:ffff:ffff:ffff"}
        wait_for(
            lambda: blocks(cluster, pool) == [{"cidr": "192.0.2.0/24"}, second, first],
            what="pool follows the new prefix and keeps the old one",
        )
        status = wait_current(cluster, f"ra-{tag}", new)
        assert [h["prefix"] for h in status["history"]] == [old]

        # the router withdraws the old prefix (valid lifetime 0): its lifetime has ended,
        # so it leaves the history and the pool at once
        radvd.set_prefixes([PrefixAd(new, valid=600, preferred=300)], withdraw=[old])
        wait_for(
            lambda: blocks(cluster, pool) == [{"cidr": "192.0.2.0/24"}, second],
            what="the withdrawn prefix leaves the pool",
        )
        wait_for(
            lambda: status_of(cluster, f"ra-{tag}").get("history", []) == [],
            what="the withdrawn prefix leaves the history",
        )


def test_subnet_of_a_delegated_prefix_reaches_the_pool(
    cluster: Cluster, operator: OperatorProcess, root_link: Link
) -> None:
    tag = secrets.token_hex(3)
    with Kea(root_link, pools=[PdPool("2001:db8:100::", 40, 56)]):
        status = apply_delegation(cluster, f"pd-{tag}", root_link.node_ifname)
        assert status["prefixSource"] == "dhcpv6-pd"
        delegated = status["currentPrefix"]
        assert delegated.startswith("2001:db8:1")
        assert delegated.endswith("/56")
        assert status["dhcpv6"]["duid"]  # kept for restarts and leader changes
        (subnet,) = status["subnets"]
        wait_for(
            lambda: blocks(cluster, f"pd-{tag}-pool") == [{"cidr": subnet["cidr"]}],
            what="pool holds the carved subnet",
        )
        assert subnet["cidr"].endswith("/64")


def test_a_withdrawal_from_an_untrusted_router_keeps_the_old_prefix_for_two_hours(
    cluster: Cluster, operator: OperatorProcess, root_link: Link
) -> None:
    """RFC 4862 5.5.3 e: without trustedRouters, anyone on the link could send the RA."""
    tag = secrets.token_hex(3)
    old, new = "2001:db8:e3::/64", "2001:db8:e4::/64"
    with Radvd(root_link, prefixes=[PrefixAd(old, valid=86400, preferred=14400)]) as radvd:
        pool = follow_advertisements(cluster, f"wd-{tag}", root_link, trusted=False)
        first = {"start": "2001:db8:e3:0:f000::", "stop": "2001:db8:e3:0:ffff:ffff:ffff:ffff"}
        wait_for(lambda: blocks(cluster, pool) == [first], what="the first prefix")

        withdrawn_at = dt.datetime.now(dt.UTC)
        radvd.set_prefixes([PrefixAd(new, valid=86400, preferred=14400)], withdraw=[old])
        second = {"start": "2001:db8:e4:0:f000::", "stop": "2001:db8:e4:0:ffff:ffff:ffff:ffff"}
        wait_for(
            lambda: blocks(cluster, pool) == [second, first],
            what="the new prefix first, the withdrawn one kept",
        )
        status = wait_current(cluster, f"wd-{tag}", new)
        (entry,) = status["history"]
        assert entry["prefix"] == old
        until = dt.datetime.fromisoformat(entry["validUntil"].replace("Z", "+00:00"))
        two_hours = dt.timedelta(hours=2)
        assert withdrawn_at + two_hours - dt.timedelta(seconds=5) <= until
        assert until <= dt.datetime.now(dt.UTC) + two_hours + dt.timedelta(seconds=1)
        wait_event(cluster, f"wd-{tag}", "PrefixChanged")
        (changed,) = events_about(cluster, f"wd-{tag}", reason="PrefixChanged")
        assert (
            f"{old} stays in the pools, deprecated, until {entry['validUntil']}"
            in (changed["message"])
        )


def test_pools_follow_a_dnsmasq_router_through_a_reboot_and_a_live_renumbering(
    cluster: Cluster, operator: OperatorProcess, root_link: Link
) -> None:
    """dnsmasq, not radvd: a router that reboots into a new prefix stops mentioning the
    old one (no withdrawal, no deprecation); one renumbered live deprecates the old one."""
    tag = secrets.token_hex(3)
    first, second, third = "2001:db8:d1::/64", "2001:db8:d2::/64", "2001:db8:d3::/64"
    with Dnsmasq(root_link, prefix=first, lease_time=600) as dnsmasq:
        pool = follow_advertisements(cluster, f"dm-{tag}", root_link, history=3)

        def block(prefix: str) -> dict[str, str]:
            head = prefix.removesuffix("::/64")
            return {"start": f"{head}:0:f000::", "stop": f"{head}:0:ffff:ffff:ffff:ffff"}

        wait_for(
            lambda: blocks(cluster, pool) == [block(first)],
            timeout=15,  # dnsmasq's first RA comes up to 5 s after it starts
            what="the first prefix",
        )

        dnsmasq.renumber(second)  # a reboot: the old prefix is simply no longer announced
        wait_for(
            lambda: blocks(cluster, pool) == [block(second), block(first)],
            timeout=30,
            what="the new prefix first, the one no longer announced kept",
        )
        status = wait_current(cluster, f"dm-{tag}", second)
        assert [h["prefix"] for h in status["history"]] == [first]

        dnsmasq.renumber(third, restart=False)  # live: the old one deprecated, still valid
        wait_for(
            lambda: blocks(cluster, pool) == [block(third), block(second), block(first)],
            timeout=30,
            what="the newest prefix first, both older ones kept while valid",
        )
        status = wait_current(cluster, f"dm-{tag}", third)
        assert [h["prefix"] for h in status["history"]] == [second, first]
        warnings = [e for e in events_about(cluster, f"dm-{tag}") if e.get("type") == "Warning"]
        assert warnings == []
