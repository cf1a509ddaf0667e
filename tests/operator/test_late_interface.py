"""Sources whose interface appears after they start, through the real `SourceManager`.

The node end of a veth is deleted (or renamed away) before the DynamicPrefix's source
starts and made again a few seconds later, as a VLAN or bridge brought up after the
operator would be. Each source must report ``InterfaceMissing`` meanwhile and acquire the
prefix once the interface is there, without a restart and without polling. Real radvd,
the kernel's own SLAAC, and real Kea (TESTBED.md sections 2, 3 and 5); waits poll with
deadlines and nothing asserts on how long something took.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv6Network

import pytest

from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import (
    Acquisition,
    NetlinkSpec,
    PrefixSourceSpec,
    RouterAdvertisementSpec,
)
from dynamic_prefix.operator.sources import SourceManager, build_source
from testbed.kea import Kea, PdPool
from testbed.netns import Link, poll_until
from testbed.radvd import PrefixAd, Radvd
from tests.sources.test_netlink import recreate_veth

P1 = IPv6Network("2001:db8:1::/64")
LATE = 5.0  # how long the interface stays absent: a boot or a VLAN coming up later
TIMEOUT = 15.0
netns = pytest.mark.netns


class States:
    """Every state the manager reports for one DynamicPrefix, waited on with deadlines."""

    def __init__(self) -> None:
        self.seen: list[SourceState] = []
        self._changed = asyncio.Event()

    def __call__(self, name: str, state: SourceState) -> None:
        self.seen.append(state)
        self._changed.set()

    async def wait_for(
        self, wanted: str, check: Callable[[SourceState], bool], timeout: float = TIMEOUT
    ) -> SourceState:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for state in self.seen:
                        if check(state):
                            return state
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"never saw {wanted}; saw {self.seen}") from None


def manager(states: States) -> SourceManager:
    return SourceManager(states, build_source)


def acquisition(spec: PrefixSourceSpec) -> Acquisition:
    return Acquisition(sources=(spec,), allow_unique_local=False)


@netns
@pytest.mark.parametrize("kind", ["router-advertisement", "netlink"])
async def test_a_link_source_starts_when_its_interface_appears_later(
    root_slaac_link: Link, kind: str
) -> None:
    interface = root_slaac_link.node_ifname
    await asyncio.to_thread(subprocess.run, ["ip", "link", "del", interface], check=True)
    spec: PrefixSourceSpec = (
        RouterAdvertisementSpec(interface=interface, trusted_routers=frozenset())
        if kind == "router-advertisement"
        else NetlinkSpec(interface=interface)
    )
    states = States()
    sources = manager(states)
    sources.ensure("late", acquisition(spec))
    try:
        missing = await states.wait_for(
            "InterfaceMissing", lambda s: s.reason == "InterfaceMissing"
        )
        assert missing.prefix is None
        assert f"interface {interface} does not exist on this node yet" in missing.message
        assert "hostNetwork" not in missing.message  # nothing says this is not the host
        assert "late" in sources.running()  # started: /readyz counts it as running

        await asyncio.sleep(LATE)  # the interface is absent for a while: nothing happens
        assert [s.reason for s in states.seen] == ["InterfaceMissing"]

        await asyncio.to_thread(recreate_veth, root_slaac_link)
        with Radvd(root_slaac_link, prefixes=[PrefixAd(P1)]):
            appeared = time.monotonic()
            acquired = await states.wait_for("P1", lambda s: s.prefix == P1)
            print(f"{kind}: acquired {time.monotonic() - appeared:.3f} s after the link")
    finally:
        await sources.stop_all()

    assert acquired.source == kind


@netns
@pytest.mark.usefixtures("root_slaac_link")
async def test_a_source_whose_interface_never_appears_keeps_saying_so() -> None:
    states = States()
    sources = manager(states)
    sources.ensure("never", acquisition(NetlinkSpec(interface="dp-never0")))
    try:
        await states.wait_for("InterfaceMissing", lambda s: s.reason == "InterfaceMissing")
        # other links coming and going wake the wait, which looks again and goes on waiting
        await asyncio.to_thread(
            subprocess.run,
            ["ip", "link", "add", "dp-other0", "type", "veth", "peer", "name", "dp-other1"],
            check=True,
        )
        await asyncio.to_thread(subprocess.run, ["ip", "link", "del", "dp-other0"], check=True)
        await asyncio.sleep(1)
    finally:
        await sources.stop_all()
    assert [s.reason for s in states.seen] == ["InterfaceMissing"]
    assert sources.errors("never") == []


MANAGER_IN_NODE = """
import asyncio, json, sys
from dynamic_prefix.model.spec import Acquisition, Dhcpv6PdSpec
from dynamic_prefix.operator.sources import SourceManager, build_source
from dynamic_prefix.sources.dhcpv6 import InMemoryIdentityStore

def report(name, state):
    print(json.dumps({"reason": state.reason, "prefix": str(state.prefix or ""),
                      "message": state.message}), flush=True)

async def main():
    store = InMemoryIdentityStore()
    sources = SourceManager(report, lambda n, s, a: build_source(n, s, a, identity_store=store))
    sources.ensure("late", Acquisition((Dhcpv6PdSpec(sys.argv[1], 56),), False))
    await asyncio.Event().wait()

asyncio.run(main())
"""


@netns
def test_the_dhcpv6_client_starts_when_its_interface_is_renamed_into_place(link: Link) -> None:
    with Kea(link, pools=[PdPool("2001:db8:100::", 40, 56)]):
        interface, namespace = link.node_ifname, link.node_namespace
        assert namespace is not None
        link.run_in_node("ip", "link", "set", interface, "down")
        link.run_in_node("ip", "link", "set", interface, "name", "dp-away0")
        process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                namespace,
                sys.executable,
                "-c",
                MANAGER_IN_NODE,
                interface,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            first = json.loads(process.stdout.readline())
            assert first["reason"] == "InterfaceMissing"
            time.sleep(LATE)  # absent for a while
            link.run_in_node("ip", "link", "set", "dp-away0", "name", interface)
            link.run_in_node("ip", "link", "set", interface, "up")
            lines: list[dict[str, str]] = []

            def delegated() -> dict[str, str] | None:
                line = json.loads(process.stdout.readline())  # type: ignore[union-attr]
                lines.append(line)
                return line if line["reason"] == "LeaseAcquired" else None

            acquired = poll_until(delegated, timeout=TIMEOUT, what="a delegation")
        finally:
            process.terminate()
            process.wait(timeout=10)

    assert IPv6Network(acquired["prefix"]).subnet_of(IPv6Network("2001:db8:100::/40"))
