"""The netlink source against the kernel's own SLAAC, driven by real radvd.

The node end of the veth is in the root namespace with ``accept_ra=2``, ``autoconf=1``
and ``accept_ra_defrtr=0``: the kernel configures addresses from the test router but
never a default route. Waits poll for what they expect with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv6Network
from pathlib import Path

import pytest

from dynamic_prefix.sources.base import InterfaceMissing
from dynamic_prefix.sources.netlink import KERNEL, NetlinkSource, kernel_ra_problems
from testbed.netns import Link, run_command
from testbed.radvd import PrefixAd, Radvd
from tests.requirements import needs_namespaces
from tests.sources.reports import Reports

TIMEOUT = 10.0
P1 = IPv6Network("2001:db8:1::/64")
P2 = IPv6Network("2001:db8:2::/64")


@contextlib.asynccontextmanager
async def running(source: NetlinkSource) -> AsyncIterator[Reports]:
    """Run ``source`` until the block ends, once it has reported that it started."""
    reports = Reports()
    task = asyncio.create_task(source.run(reports))
    try:
        waiting = asyncio.create_task(
            reports.wait_for(lambda s: s.reason == "Starting", what="the start")
        )
        done, _ = await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiting.cancel()
            task.result()
            pytest.fail("run() returned")
        await waiting
        yield reports
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def link() -> Iterator[Link]:
    needs_namespaces()
    with Link(node_in_root_namespace=True, slaac=True) as up:
        yield up


# --- against the kernel ----------------------------------------------------------------------


@pytest.mark.netns
async def test_prefix_of_the_address_the_kernel_configures_is_acquired(link: Link) -> None:
    source = NetlinkSource(link.node_ifname)
    async with running(source) as reports:
        with Radvd(link, prefixes=[PrefixAd(P1, valid=3600, preferred=1800)]):
            state = await reports.wait_for(lambda s: s.prefix == P1, what="P1")

    assert state.reason == "Acquired"
    assert state.origin == KERNEL
    assert state.source == "netlink"
    assert state.valid_until is not None
    assert state.preferred_until is not None
    now = dt.datetime.now(dt.UTC)
    # The kernel's lifetimes, counted from the RA: whole seconds, so within a second or so.
    assert abs(state.valid_until - (now + dt.timedelta(seconds=3600))) < dt.timedelta(seconds=2)
    assert abs(state.preferred_until - (now + dt.timedelta(seconds=1800))) < dt.timedelta(seconds=2)


@pytest.mark.netns
async def test_address_already_there_at_start_is_found_by_the_initial_dump(link: Link) -> None:
    with Radvd(link, prefixes=[PrefixAd(P1)]):
        await asyncio.to_thread(link.wait_for_node_address, P1)
        source = NetlinkSource(link.node_ifname)
        async with running(source) as reports:
            state = await reports.wait_for(lambda s: s.prefix == P1, what="P1")

    assert state.reason == "Acquired"


@pytest.mark.netns
async def test_renumbering_with_the_old_prefix_withdrawn_is_one_change(link: Link) -> None:
    source = NetlinkSource(link.node_ifname)
    with Radvd(link, prefixes=[PrefixAd(P1)]) as radvd:
        async with running(source) as reports:
            await reports.wait_for(lambda s: s.prefix == P1, what="P1")
            mark = reports.mark()

            await asyncio.to_thread(radvd.set_prefixes, [PrefixAd(P2)], withdraw=[P1])
            state = await reports.wait_for(lambda s: s.prefix == P2, what="P2", since=mark)

    assert state.reason == "Changed"
    assert state.message.startswith(f"prefix changed from {P1} to {P2}")
    # the kernel keeps P1, deprecated, for at most two hours (RFC 4862 5.5.3 e): so do we
    assert f"{P1} is deprecated" in state.message
    assert [s.prefix for s in reports.states[mark:]][:1] == [P2]  # no gap, no detour
    assert {prefix for prefix, _ in reports.states[-1].valid_until_of} == {P1}


@pytest.mark.netns
async def test_a_withdrawn_prefix_is_kept_deprecated_as_long_as_the_kernel_keeps_it(
    link: Link,
) -> None:
    source = NetlinkSource(link.node_ifname)
    with Radvd(link, prefixes=[PrefixAd(P1, valid=86400, preferred=14400)]) as radvd:
        async with running(source) as reports:
            await reports.wait_for(lambda s: s.prefix == P1, what="P1")
            mark = reports.mark()

            await asyncio.to_thread(radvd.set_prefixes, [], withdraw=[P1])
            state = await reports.wait_for(
                lambda s: s.reason == "Deprecated", what="deprecation", since=mark
            )
            # RFC 4862's two-hour rule: the kernel keeps the address, deprecated.
            kept = await asyncio.to_thread(link.wait_for_node_address, P1, deprecated=True)
            now = dt.datetime.now(dt.UTC)

    assert state.prefix == P1
    assert 0 < kept.valid_lifetime <= 7200
    assert state.valid_until is not None
    assert state.valid_until <= now + dt.timedelta(hours=2, seconds=1)


@pytest.mark.netns
async def test_prefix_is_deprecated_then_expires_once_radvd_stops(link: Link) -> None:
    source = NetlinkSource(link.node_ifname)
    with Radvd(link, prefixes=[PrefixAd(P1, valid=6, preferred=3)]) as radvd:
        async with running(source) as reports:
            await reports.wait_for(lambda s: s.prefix == P1, what="P1")
            mark = reports.mark()
            await asyncio.to_thread(radvd.stop)
            deprecated = await reports.wait_for(
                lambda s: s.reason == "Deprecated", what="deprecation", since=mark
            )
            expired = await reports.wait_for(
                lambda s: s.prefix is None, what="expiry", since=mark, timeout=15
            )

    assert deprecated.prefix == P1
    assert expired.reason == "Expired"


@pytest.mark.netns
async def test_interface_deleted_withdraws_and_its_return_is_followed(link: Link) -> None:
    source = NetlinkSource(link.node_ifname)
    with Radvd(link, prefixes=[PrefixAd(P1)]) as radvd:
        async with running(source) as reports:
            await reports.wait_for(lambda s: s.prefix == P1, what="P1")
            await asyncio.to_thread(radvd.stop)
            mark = reports.mark()
            await asyncio.to_thread(run_command, ["ip", "link", "del", link.node_ifname])
            gone = await reports.wait_for(lambda s: s.prefix is None, what="withdrawal", since=mark)

            await asyncio.to_thread(recreate_veth, link)
            mark = reports.mark()
            with Radvd(link, prefixes=[PrefixAd(P2)]):
                back = await reports.wait_for(lambda s: s.prefix == P2, what="P2", since=mark)

    assert gone.reason == "Withdrawn"
    assert back.reason == "Acquired"
    assert source.restarts == 0


def recreate_veth(link: Link) -> None:
    """Make the deleted veth again, same names, SLAAC on, no default route."""
    node, router = link.node_ifname, link.router_ifname
    run_command(
        [
            *("ip", "link", "add", "name", node, "type", "veth", "peer", "name", router),
            *("netns", link.router_namespace),
        ]
    )
    settings = {
        "accept_dad": 0,
        "accept_ra": 2,
        "autoconf": 1,
        "accept_ra_defrtr": 0,
        "accept_ra_rtr_pref": 0,
        "accept_ra_rt_info_max_plen": 0,
    }
    run_command(
        [
            "sysctl",
            "-qw",
            *(f"net.ipv6.conf.{node}.{key}={value}" for key, value in settings.items()),
        ]
    )
    link.run_in_router("sysctl", "-qw", f"net.ipv6.conf.{router}.accept_dad=0")
    link.run_in_router("ip", "link", "set", router, "up")
    run_command(["ip", "link", "set", node, "up"])


# --- failing clearly, and the pieces ---------------------------------------------------------


async def test_nonexistent_interface_is_missing_to_be_waited_for() -> None:
    with pytest.raises(InterfaceMissing, match="interface dp-nosuch0 does not exist on this node"):
        await NetlinkSource("dp-nosuch0").run(Reports())


def test_kernel_settings_that_prevent_slaac_are_named(tmp_path: Path) -> None:
    def settings(interface: str, accept_ra: int, autoconf: int, forwarding: int) -> None:
        directory = tmp_path / interface
        directory.mkdir()
        for name, value in {
            "accept_ra": accept_ra,
            "autoconf": autoconf,
            "forwarding": forwarding,
        }.items():
            (directory / name).write_text(f"{value}\n")

    settings("good", 1, 1, 0)
    settings("router", 2, 1, 1)
    settings("deaf", 1, 0, 1)

    assert kernel_ra_problems("good", tmp_path) == []
    assert kernel_ra_problems("router", tmp_path) == []
    assert kernel_ra_problems("missing", tmp_path) == []
    assert kernel_ra_problems("deaf", tmp_path) == [
        "the kernel ignores Router Advertisements on deaf (accept_ra=1, forwarding=1; "
        "set accept_ra=2 on a router)",
        "SLAAC is off on deaf (autoconf=0)",
    ]
