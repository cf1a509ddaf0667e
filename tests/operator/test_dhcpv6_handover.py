"""A DHCPv6-PD delegation survives restarts and hand-overs, and is given back on deletion.

Real Kea (and, for the restart, real ISC dhcpd) delegates /56s in the router namespace;
the operator runs in the root namespace on the node end of the veth (as in
test_end_to_end.py). Between two operators a competing client on the same link asks for
the operator's prefix by name (a hint): if the stopped operator had released it, the
server would hand it over. Waits poll with deadlines.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from ipaddress import IPv6Network
from pathlib import Path
from typing import Any

import pytest

from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.sources.base import Dhcpv6Identity
from dynamic_prefix.sources.dhcpv6 import Dhcpv6PdSource, InMemoryIdentityStore
from testbed.controlplane import ControlPlane
from testbed.dhcpd import BindingState, Dhcpd, PrefixPool
from testbed.harness import Cluster, OperatorProcess, wait_for
from testbed.kea import Kea, PdPool
from testbed.netns import Link
from tests.operator.operator_testkit import (
    DP_PATH,
    apply_delegation,
    blocks,
    current_status,
    events_about,
    lease_holder,
    replica,
    status_of,
    wait_event,
)

POOL = PdPool("2001:db8:100::", 40, 56)

pytestmark = pytest.mark.netns


@pytest.fixture
def kea(root_link: Link) -> Iterator[Kea]:
    with Kea(root_link, pools=[POOL], renew=3, rebind=5, preferred=60, valid=120) as server:
        yield server


Holds = Callable[[str], bool]
"""Whether the delegating server still binds a prefix to a client."""


@pytest.fixture(params=["kea", "dhcpd"])
def server_holds(request: pytest.FixtureRequest, root_link: Link) -> Iterator[Holds]:
    """Kea or ISC dhcpd delegating /56s with short timers; what it says it holds."""
    if request.param == "kea":
        with Kea(root_link, pools=[POOL], renew=3, rebind=5, preferred=60, valid=120) as kea:
            yield lambda prefix: active(kea, prefix)
    else:
        pools = [PrefixPool.of("2001:db8:100::/48", 56)]
        with Dhcpd(root_link, pools=pools, renew=3, rebind=5, preferred=60, valid=120) as dhcpd:

            def holds(prefix: str) -> bool:
                lease = dhcpd.lease(prefix)
                return lease is not None and lease.state == BindingState.ACTIVE

            yield holds


def delegation(cluster: Cluster, link: Link, tag: str) -> tuple[str, dict[str, Any]]:
    """Apply a DynamicPrefix asking for a /56 on the link and a pool fed by a subnet."""
    name = f"pd-{tag}"
    status = apply_delegation(cluster, name, link.node_ifname, entries=[{"cidr": "192.0.2.0/24"}])
    return name, status


def active(kea: Kea, prefix: str) -> bool:
    return any(lease.prefix == IPv6Network(prefix) for lease in kea.leases())


def competitor_asks_for(link: Link, prefix: str) -> IPv6Network:
    """Another client on the link, with its own identity, asks for ``prefix`` by name."""

    async def ask() -> IPv6Network:
        got: asyncio.Future[IPv6Network] = asyncio.get_running_loop().create_future()

        def report(state: SourceState) -> None:
            if state.prefix is not None and not got.done():
                got.set_result(state.prefix)

        identity = Dhcpv6Identity(bytes.fromhex("00030001020000c0ffee"), 4242)
        source = Dhcpv6PdSource(
            link.node_ifname,
            requested_prefix_length=56,
            identity_store=InMemoryIdentityStore(identity),
            hint=IPv6Network(prefix),
            solicit_max_delay=0,
        )
        task = asyncio.create_task(source.run(report))
        try:
            async with asyncio.timeout(20):
                return await got
        finally:
            task.cancel()  # no Release: it keeps what it got, as a neighbour's router would
            await asyncio.gather(task, return_exceptions=True)

    return asyncio.run(ask())


def start_operator(control_plane: ControlPlane, log: Path) -> OperatorProcess:
    return OperatorProcess(control_plane, log).start()


def test_a_restart_keeps_the_delegation_and_deletion_releases_it(
    cluster: Cluster,
    control_plane: ControlPlane,
    server_holds: Holds,
    root_link: Link,
    tmp_path: Path,
) -> None:
    tag = secrets.token_hex(3)
    first = start_operator(control_plane, tmp_path / "first.log")
    second: OperatorProcess | None = None
    try:
        name, status = delegation(cluster, root_link, tag)
        prefix = status["currentPrefix"]
        subnet = status["subnets"][0]["cidr"]
        wait_for(lambda: {"cidr": subnet} in blocks(cluster, f"{name}-pool"), what="the subnet")

        first.stop()  # SIGTERM, as on a rolling update: no Release
        assert server_holds(prefix), "the stopped operator gave its delegation back"
        other = competitor_asks_for(root_link, prefix)
        assert other != IPv6Network(prefix)  # still bound to us: the server gave another

        second = start_operator(control_plane, tmp_path / "second.log")
        running = second
        # the status still says what the first operator learnt: wait for the second's own
        wait_for(
            lambda: "LeaseAcquired" in running.log(),
            timeout=30,
            what="the restarted operator's client holding a lease",
        )
        wait_for(
            lambda: (
                (s := current_status(cluster, name))
                and any(
                    c["type"] == "PrefixAcquired" and c["reason"] == "LeaseAcquired"
                    for c in s.get("conditions", [])
                )
            ),
            what="the status written by the restarted operator",
        )
        after = current_status(cluster, name) or {}
        assert after["currentPrefix"] == prefix  # the same delegation: nothing renumbered
        assert "history" not in after
        assert {"cidr": subnet} in blocks(cluster, f"{name}-pool")
        warnings = [e for e in events_about(cluster, name) if e.get("type") == "Warning"]
        assert warnings == []  # a routine restart needs no human

        cluster.delete(f"{DP_PATH}/{name}")
        wait_for(lambda: cluster.get(f"{DP_PATH}/{name}") is None, what="the deletion")
        # the finalizer returned after the Release was answered, the pools emptied first
        assert not server_holds(prefix)
        assert blocks(cluster, f"{name}-pool") == [{"cidr": "192.0.2.0/24"}]
    finally:
        first.stop()
        if second is not None:
            second.stop()
            print("---- second operator log ----\n" + second.log()[-10000:])
        print("---- first operator log ----\n" + first.log()[-10000:])


def test_changing_the_requested_length_releases_the_old_delegation_first(
    cluster: Cluster, operator: OperatorProcess, kea: Kea, root_link: Link
) -> None:
    tag = secrets.token_hex(3)
    name, status = delegation(cluster, root_link, tag)
    old = status["currentPrefix"]

    cluster.patch(
        f"{DP_PATH}/{name}",
        {"spec": {"acquisition": {"dhcpv6pd": {"requestedPrefixLength": 60}}}},
    )

    released = wait_event(cluster, name, "PrefixReleased")
    assert old in released["message"]
    wait_for(lambda: not active(kea, old), timeout=30, what="the old delegation released")
    seen = status_of(cluster, name)
    assert old not in [h["prefix"] for h in seen.get("history", [])]


def test_a_leader_hand_over_keeps_the_delegation(
    cluster: Cluster, control_plane: ControlPlane, kea: Kea, root_link: Link, tmp_path: Path
) -> None:
    """Two replicas; the leader stops (SIGTERM gives the Lease up), the standby takes over
    the DHCPv6 client with the identity in status and gets the same binding."""
    lease = f"dp-handover-{secrets.token_hex(3)}"
    replicas = [replica(control_plane, tmp_path, lease, identity) for identity in ("a", "b")]
    try:
        tag = secrets.token_hex(3)
        name, status = delegation(cluster, root_link, tag)
        prefix, duid = status["currentPrefix"], status["dhcpv6"]["duid"]
        leader = wait_for(lambda: lease_holder(cluster, lease), what="a leader")
        first, second = (replicas[0], replicas[1]) if leader == "a" else (replicas[1], replicas[0])

        first.stop()
        assert active(kea, prefix)
        wait_for(lambda: "LeaseAcquired" in second.log(), timeout=30, what="the new leader's lease")
        wait_for(lambda: lease_holder(cluster, lease) != leader, what="the hand-over")
        after = wait_for(
            lambda: (
                (s := current_status(cluster, name))
                and s["dhcpv6"]["duid"] == duid
                and any(c["reason"] == "LeaseAcquired" for c in s.get("conditions", []))
                and s
            ),
            what="the status written by the new leader",
        )
        assert after["currentPrefix"] == prefix
        assert "history" not in after
        assert [lease.duid.hex() for lease in kea.leases()] == [duid]
    finally:
        for process in replicas:
            process.stop()
            print(f"---- {process.log_path.name} ----\n" + process.log()[-8000:])
