"""The Router Advertisement source against real radvd and crafted packets.

The node end of the veth is in the root namespace (as the operator's end-to-end test
needs it) with the kernel ignoring RAs there, so only the raw socket under test hears
the router. Waits poll for what they expect with a deadline; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import TypeVar

import pytest

from dynamic_prefix.protocols.ndp import (
    NdpDropReason,
    PrefixInformation,
    RouterAdvertisement,
    SourceLinkLayerAddress,
    build_router_advertisement,
    parse_router_solicitation,
)
from dynamic_prefix.protocols.tracker import IGNORED_REMEMBERED, TrackerPolicy
from dynamic_prefix.sources.base import SourceError
from dynamic_prefix.sources.router_advertisement import (
    DropReason,
    RaListener,
    ReceiveDropReason,
    RouterAdvertisementSource,
    SolicitationPacing,
)
from testbed.netns import Link, run_command
from testbed.radvd import PrefixAd, Radvd, send_crafted_ra
from tests.link.test_interfaces import ROUTES
from tests.requirements import needs_namespaces, unavailable
from tests.sources.reports import Reports

T = TypeVar("T")

TIMEOUT = 10.0
FAST = SolicitationPacing(max_delay=0)
P1 = IPv6Network("2001:db8:1::/64")
P2 = IPv6Network("2001:db8:2::/64")
PACKETS = Path(__file__).parents[1] / "protocols" / "packets"
FLOOD_SIZE = 10_000


# --- helpers ------------------------------------------------------------------------------


async def eventually(probe: Callable[[], T | None], *, what: str, timeout: float = TIMEOUT) -> T:
    """Poll ``probe`` (on the event loop, so receivers keep running) until not None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if loop.time() > deadline:
            pytest.fail(f"{what}: not seen within {timeout:g} s")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(source: RouterAdvertisementSource) -> AsyncIterator[Reports]:
    """Run ``source`` in a task until the block ends; fail at once if it dies."""
    reports = Reports()
    task = asyncio.create_task(source.run(reports))

    def started() -> bool | None:
        if task.done():
            task.result()  # raises what run() raised
            pytest.fail("run() returned")
        return True if source.listener is not None else None

    try:
        await eventually(started, what="the source to start")
        yield reports
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def packet(name: str) -> bytes:
    """A golden packet of the codec tests: hex octets, ``#`` comments ignored."""
    text = (PACKETS / name).read_text()
    return bytes.fromhex("".join(line.partition("#")[0] for line in text.splitlines()))


def test_receive_drop_reasons_are_stable_metric_labels() -> None:
    assert {reason.value for reason in ReceiveDropReason} == {
        "hop-limit",
        "not-link-local-source",
        "wrong-interface",
        "untrusted-router",
        "receive-buffer-overflow",
    }
    assert not {r.value for r in ReceiveDropReason} & {r.value for r in NdpDropReason}


def expected_reason(name: str) -> NdpDropReason:
    """The ``Expected drop reason:`` a golden bad packet states in its comment."""
    for line in (PACKETS / name).read_text().splitlines():
        _, marker, reason = line.partition("Expected drop reason:")
        if marker:
            return NdpDropReason(reason.strip())
    raise AssertionError(f"{name} states no expected drop reason")


def ra(*prefixes: IPv6Network, valid: int = 3600, preferred: int = 1800) -> bytes:
    """A well-formed RA announcing ``prefixes`` for SLAAC."""
    return build_router_advertisement(
        RouterAdvertisement(
            cur_hop_limit=64,
            router_lifetime=0,
            options=tuple(
                PrefixInformation(
                    prefix=prefix,
                    on_link=True,
                    autonomous=True,
                    valid_lifetime=valid,
                    preferred_lifetime=preferred,
                )
                for prefix in prefixes
            ),
        )
    )


# Sends "source hop-limit hex" lines from the router namespace, one socket per source.
_SEND_FROM = r"""
import errno, socket, sys, time
index = socket.if_nametoindex(sys.argv[1])
sockets = {}
sent = 0
for line in sys.stdin:
    source, hop_limit, payload = line.split()
    sock = sockets.get(source)
    if sock is None:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.bind((source, 0, 0, index))
        sockets[source] = sock
    hops = [(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, int(hop_limit).to_bytes(4, sys.byteorder))]
    while True:
        try:
            sock.sendmsg([bytes.fromhex(payload)], hops, 0, ("ff02::1", 0, 0, index))
            break
        except OSError as err:
            if err.errno != errno.ENOBUFS:
                raise
            time.sleep(0.001)
    sent += 1
print(sent)
"""


@dataclass(frozen=True, slots=True)
class Crafted:
    """One ICMPv6 message to put on the link from the router side."""

    source: IPv6Address
    payload: bytes
    hop_limit: int = 255


def send_from(link: Link, packets: Sequence[Crafted]) -> int:
    """Send ``packets`` from the router end with the source address each names.

    The test bed's `send_crafted_ras` always sends from the router's own link-local
    address; these tests also need other routers and a global source. Every source must
    be an address of the router end (see `add_router_address`).
    """
    lines = "".join(f"{p.source} {p.hop_limit} {p.payload.hex()}\n" for p in packets)
    result = link.run_in_router(
        sys.executable, "-I", "-c", _SEND_FROM, link.router_ifname, input=lines, timeout=120
    )
    return int(result.stdout.strip())


def add_router_address(link: Link, address: str) -> IPv6Address:
    """Give the router end one more address (no duplicate address detection)."""
    link.run_in_router("ip", "addr", "add", f"{address}/64", "dev", link.router_ifname, "nodad")
    return IPv6Address(address)


def recreate_veth(link: Link) -> int:
    """Make the deleted veth again, same names and router MAC; return the new node index.

    The router keeps its link-local address (it derives from the MAC), as a real router
    does when only the node's interface goes away and comes back.
    """
    node, router = link.node_ifname, link.router_ifname
    run_command(
        [
            *("ip", "link", "add", "name", node, "type", "veth", "peer", "name", router),
            *("address", link.router.mac, "netns", link.router_namespace),
        ]
    )
    run_command(
        [
            "sysctl",
            "-qw",
            f"net.ipv6.conf.{node}.accept_dad=0",
            f"net.ipv6.conf.{node}.accept_ra=0",
            f"net.ipv6.conf.{node}.autoconf=0",
        ]
    )
    link.run_in_router("sysctl", "-qw", f"net.ipv6.conf.{router}.accept_dad=0")
    link.run_in_router("ip", "link", "set", router, "up")
    run_command(["ip", "link", "set", node, "up"])
    return int(json.loads(run_command(["ip", "-j", "link", "show", node]).stdout)[0]["ifindex"])


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def link() -> Iterator[Link]:
    needs_namespaces()
    with Link(node_in_root_namespace=True) as up:
        yield up


@pytest.fixture
def radvd(link: Link) -> Iterator[Radvd]:
    """radvd announcing P1; its periodic RAs are 16 s apart at first, 30-40 s later.

    So within a test, any RA other than its first (sent before the source listens) is
    the answer to a solicitation or to a reload.
    """
    with Radvd(
        link, prefixes=[PrefixAd(P1, valid=3600, preferred=1800)], min_interval=30, max_interval=40
    ) as daemon:
        yield daemon


def source_on(link: Link, *, policy: TrackerPolicy | None = None) -> RouterAdvertisementSource:
    return RouterAdvertisementSource(link.node_ifname, policy=policy, pacing=FAST)


def listener_of(source: RouterAdvertisementSource) -> RaListener:
    listener = source.listener
    assert listener is not None
    return listener


# --- first prefix, change, withdrawal, expiry -----------------------------------------------


@pytest.mark.netns
async def test_first_prefix_is_the_answer_to_a_solicitation_not_a_periodic_ra(
    link: Link, radvd: Radvd
) -> None:
    source = source_on(link)
    async with running(source) as reports:
        state = await reports.wait_for(lambda s: s.prefix == P1, what="P1")
        listener = listener_of(source)

        log = radvd.log_text()
        assert f"received RS from: {link.node.link_local}" in log
        assert f"sending RA to {link.node.link_local}" in log  # the unicast answer
        assert log.count("sending RA to ff02::1") == 1  # only the one before we listened
        assert (listener.solicitations_sent, listener.accepted) == (1, 1)

    assert reports.states[0].reason == "Starting"
    assert state.reason == "Acquired"
    assert state.origin == str(link.router.link_local)
    assert state.source == "router-advertisement"
    now = dt.datetime.now(dt.UTC)
    assert state.valid_until is not None
    assert state.preferred_until is not None
    assert now + dt.timedelta(seconds=3590) < state.valid_until <= now + dt.timedelta(seconds=3600)
    assert now + dt.timedelta(seconds=1790) < state.preferred_until
    assert state.preferred_until <= now + dt.timedelta(seconds=1800)


@pytest.mark.netns
async def test_router_solicitation_goes_to_all_routers_with_hop_limit_255_and_our_mac(
    link: Link,
) -> None:
    capture = link.python_in_router(
        r"""
import json, socket, struct
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
words = [0xFFFFFFFF] * 8
words[133 >> 5] &= ~(1 << (133 & 31)) & 0xFFFFFFFF
sock.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("=8I", *words))
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
sock.settimeout(20)
print("ready", flush=True)
data, ancillary, _flags, sender = sock.recvmsg(1500, 256)
found = {"source": sender[0].split("%")[0], "message": data.hex()}
for level, kind, value in ancillary:
    if kind == socket.IPV6_HOPLIMIT:
        found["hop_limit"] = int.from_bytes(value[:4], "little")
    if kind == socket.IPV6_PKTINFO:
        found["destination"] = socket.inet_ntop(socket.AF_INET6, value[:16])
print(json.dumps(found), flush=True)
"""
    )
    assert capture.stdout is not None
    assert (await asyncio.to_thread(capture.stdout.readline)).strip() == b"ready"

    source = source_on(link)
    async with running(source):
        line = await asyncio.wait_for(asyncio.to_thread(capture.stdout.readline), TIMEOUT)

    found = json.loads(line)
    assert found["destination"] == "ff02::2"
    assert found["hop_limit"] == 255
    assert found["source"] == str(link.node.link_local)
    solicitation = parse_router_solicitation(bytes.fromhex(found["message"]))
    assert solicitation.options == (
        SourceLinkLayerAddress(bytes.fromhex(link.node.mac.replace(":", ""))),
    )


@pytest.mark.netns
async def test_new_prefix_after_config_rewrite_and_sighup_is_reported_as_a_change(
    link: Link, radvd: Radvd
) -> None:
    source = source_on(link)
    async with running(source) as reports:
        await reports.wait_for(lambda s: s.prefix == P1, what="P1")
        mark = reports.mark()

        await asyncio.to_thread(radvd.set_prefixes, [PrefixAd(P2)])
        state = await reports.wait_for(lambda s: s.prefix == P2, what="P2", since=mark)

    assert state.reason == "Changed"
    assert f"from {P1} to {P2}" in state.message
    assert all(s.prefix == P2 for s in reports.states[mark:])  # never without a prefix


@pytest.mark.netns
async def test_prefix_withdrawn_with_zero_lifetimes_by_a_trusted_router_leaves_no_prefix(
    link: Link, radvd: Radvd
) -> None:
    trusted = TrackerPolicy(trusted_routers=frozenset({link.router.link_local}))
    source = source_on(link, policy=trusted)
    async with running(source) as reports:
        await reports.wait_for(lambda s: s.prefix == P1, what="P1")
        mark = reports.mark()

        await asyncio.to_thread(radvd.set_prefixes, [], withdraw=[P1])
        state = await reports.wait_for(
            lambda s: s.prefix is None, what="the withdrawal", since=mark
        )

    assert state.reason == "Withdrawn"
    assert state.message.startswith(f"prefix {P1} was withdrawn by {link.router.link_local}")
    assert (state.valid_until, state.preferred_until) == (None, None)


@pytest.mark.netns
async def test_prefix_withdrawn_by_an_untrusted_router_stays_deprecated_for_two_hours(
    link: Link, radvd: Radvd
) -> None:
    source = source_on(link)
    async with running(source) as reports:
        await reports.wait_for(lambda s: s.prefix == P1, what="P1")
        mark = reports.mark()

        await asyncio.to_thread(radvd.set_prefixes, [], withdraw=[P1])
        state = await reports.wait_for(
            lambda s: s.reason == "Deprecated", what="the deprecation", since=mark
        )
        now = dt.datetime.now(dt.UTC)

    assert state.prefix == P1
    assert state.valid_until is not None
    assert state.valid_until <= now + dt.timedelta(hours=2, seconds=1)


@pytest.mark.netns
async def test_prefix_is_deprecated_then_expires_at_its_lifetimes_once_radvd_stops(
    link: Link,
) -> None:
    source = source_on(link)
    with Radvd(link, prefixes=[PrefixAd(P1, valid=6, preferred=3)]) as daemon:
        async with running(source) as reports:
            acquired = await reports.wait_for(lambda s: s.prefix == P1, what="P1")
            mark = reports.mark()
            await asyncio.to_thread(daemon.stop)  # its last RA refreshes the lifetimes
            deprecated = await reports.wait_for(
                lambda s: s.reason == "Deprecated", what="deprecation", since=mark
            )
            expired = await reports.wait_for(lambda s: s.prefix is None, what="expiry", since=mark)
            expired_at = dt.datetime.now(dt.UTC)

    assert acquired.reason == "Acquired"
    assert deprecated.prefix == P1
    assert expired.reason == "Expired"
    last_known = [s for s in reports.states if s.prefix == P1][-1]
    assert last_known.valid_until is not None
    # Not before its valid lifetime ran out (the clock conversions allow a few ms).
    assert expired_at >= last_known.valid_until - dt.timedelta(milliseconds=50)


# --- what is dropped ----------------------------------------------------------------------------

BAD_PACKETS = sorted(
    path.name
    for path in PACKETS.glob("bad-*.hex")
    # A Router Solicitation never reaches the socket: its ICMPv6 filter passes RAs only.
    if path.name != "bad-rs-as-ra.hex"
)
if not BAD_PACKETS:  # an empty parametrize would skip those tests, not fail them
    raise RuntimeError(f"no golden bad packets found in {PACKETS}")


@dataclass(frozen=True, slots=True)
class BadCase:
    name: str
    reason: DropReason
    send: Callable[[Link], None]


def _sending(payload: bytes, *, hop_limit: int = 255) -> Callable[[Link], None]:
    def send(link: Link) -> None:
        send_crafted_ra(link, payload, hop_limit=hop_limit)

    return send


def _send_from_a_global_address(link: Link) -> None:
    global_source = IPv6Address("2001:db8:ffff::1")
    if not any(a.address == global_source for a in link.addresses(link.router)):
        add_router_address(link, str(global_source))
    send_from(link, [Crafted(global_source, ra(P2))])


def _bad_cases() -> list[BadCase]:
    cases = [BadCase(name, expected_reason(name), _sending(packet(name))) for name in BAD_PACKETS]
    cases.append(
        BadCase("hop-limit-64", ReceiveDropReason.HOP_LIMIT, _sending(ra(P2), hop_limit=64))
    )
    cases.append(
        BadCase(
            "global-source", ReceiveDropReason.NOT_LINK_LOCAL_SOURCE, _send_from_a_global_address
        )
    )
    return cases


@pytest.mark.netns
@pytest.mark.parametrize("case", _bad_cases(), ids=lambda case: case.name)
async def test_bad_packet_is_dropped_by_reason_and_the_next_good_ra_is_taken(
    link: Link, case: BadCase
) -> None:
    source = source_on(link)
    async with running(source) as reports:
        listener = listener_of(source)
        # The first packets after link-up can be lost: send until one is counted.
        for _attempt in range(20):
            await asyncio.to_thread(case.send, link)
            with contextlib.suppress(pytest.fail.Exception):
                await eventually(
                    lambda: listener.drop_counts[case.reason] or None,
                    what=f"a {case.reason} drop",
                    timeout=0.5,
                )
                break
        dropped = dict(listener.drop_counts)

        await asyncio.to_thread(send_crafted_ra, link, ra(P1))
        state = await reports.wait_for(lambda s: s.prefix == P1, what="P1 after the bad packet")

    assert set(dropped) == {case.reason}
    assert dropped[case.reason] >= 1
    assert listener.received == listener.accepted + sum(dropped.values())
    assert state.reason == "Acquired"
    assert [s.reason for s in reports.states] == ["Starting", "Acquired"]


@pytest.mark.netns
async def test_untrusted_router_is_ignored_while_a_consumer_trusting_it_takes_the_prefix(
    link: Link, radvd: Radvd
) -> None:
    router = link.router.link_local
    trusting = source_on(link, policy=TrackerPolicy(trusted_routers=frozenset({router})))
    stranger = IPv6Address("fe80::dead")
    wary = source_on(link, policy=TrackerPolicy(trusted_routers=frozenset({stranger})))

    async with running(wary) as wary_reports, running(trusting) as trusting_reports:
        state = await trusting_reports.wait_for(lambda s: s.prefix == P1, what="P1")
        await eventually(
            lambda: wary.drop_counts[ReceiveDropReason.UNTRUSTED_ROUTER] or None,
            what="the RA refused by the wary consumer",
        )
        assert listener_of(wary) is listener_of(trusting)
        assert not listener_of(wary).drop_counts  # the packet itself was fine

    assert state.origin == str(router)
    assert [s.reason for s in wary_reports.states] == ["Starting"]
    assert wary.state.prefix is None
    assert wary.tracker.prefixes == ()
    assert trusting.drop_counts == {}


# --- sharing and surviving ----------------------------------------------------------------------


@pytest.mark.netns
async def test_two_consumers_share_one_socket_and_a_late_one_gets_the_prefix_at_once(
    link: Link, radvd: Radvd
) -> None:
    first = source_on(link)
    second = source_on(link, policy=TrackerPolicy(allow_ula=True))
    async with running(first) as first_reports:
        await first_reports.wait_for(lambda s: s.prefix == P1, what="P1 for the first")
        listener = listener_of(first)
        async with running(second) as second_reports:
            # Replayed from the listener's memory: no second solicitation, no new RA.
            state = await second_reports.wait_for(lambda s: s.prefix == P1, what="P1")
            assert listener_of(second) is listener
            assert (listener.solicitations_sent, listener.accepted) == (1, 1)

        assert first.listener is listener
        assert listener.ifindex == link.node.ifindex  # still open for the first

    assert listener.ifindex is None  # the last one out closed it
    assert state.reason == "Acquired"
    # Counted from when the RA arrived, not from when it was replayed.
    assert state.valid_until is not None
    assert first.state.valid_until is not None
    assert abs(state.valid_until - first.state.valid_until) < dt.timedelta(milliseconds=10)

    third = source_on(link)
    async with running(third) as third_reports:
        await third_reports.wait_for(lambda s: s.prefix == P1, what="P1 for the third")
        assert listener_of(third) is not listener  # a fresh socket, soliciting again
        assert listener_of(third).solicitations_sent == 1


TRACED_FRAMES = 25


def receiver_memory(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes held by allocations made on behalf of the receiver and the tracker: traced
    with their call stacks, so that what other threads of the test process (the shared
    control plane's helpers, the flood's sender) allocate meanwhile is not counted."""
    ours = snapshot.filter_traces(
        [
            tracemalloc.Filter(True, "*/dynamic_prefix/*", all_frames=True),
            tracemalloc.Filter(False, "*/testbed/*", all_frames=True),
        ]
    )
    return sum(stat.size for stat in ours.statistics("filename"))


IGNORED_PAIR_BYTES = 1024
"""Generous room for one remembered ignored (router, prefix) pair: its key, network and
reason take a few hundred bytes."""

_CONSUMER: contextvars.ContextVar[str] = contextvars.ContextVar("consumer", default="none")


@pytest.mark.netns
async def test_each_consumer_of_a_shared_socket_hears_in_its_own_context(
    link: Link, radvd: Radvd
) -> None:
    # what a consumer logs must name its own DynamicPrefix, not the socket opener's
    heard: dict[str, list[str]] = {"a": [], "b": []}
    listeners: dict[str, RaListener] = {}
    both_in = asyncio.Barrier(2)

    async def consume(label: str) -> None:
        _CONSUMER.set(label)
        async with RaListener.shared(link.node_ifname, pacing=FAST) as ear:
            listeners[label] = ear
            ear.subscribe(lambda _: heard[label].append(_CONSUMER.get()))
            async with asyncio.timeout(5):
                await both_in.wait()  # neither leaves before the other has subscribed
                while not heard[label]:
                    await asyncio.sleep(0.01)

    await asyncio.gather(consume("a"), consume("b"))
    assert listeners["a"] is listeners["b"]  # one socket, shared
    assert set(heard["a"]) == {"a"}
    assert set(heard["b"]) == {"b"}


@pytest.mark.netns
async def test_interface_down_and_up_solicits_again(link: Link, radvd: Radvd) -> None:
    source = source_on(link)
    async with running(source) as reports:
        await reports.wait_for(lambda s: s.prefix == P1, what="P1")
        listener = listener_of(source)

        await asyncio.to_thread(run_command, ["ip", "link", "set", link.node_ifname, "down"])
        await eventually(lambda: True if not listener.link_up else None, what="link down")
        await asyncio.to_thread(run_command, ["ip", "link", "set", link.node_ifname, "up"])
        await eventually(
            lambda: True if listener.accepted == 2 else None,
            what="the answer to a new solicitation",
        )

        assert listener.solicitations_sent == 2
        assert listener.reopened == 0
        assert [s.reason for s in reports.states] == ["Starting", "Acquired"]


@pytest.mark.netns
async def test_interface_deleted_and_recreated_is_reopened_and_solicited_again(
    link: Link, radvd: Radvd
) -> None:
    source = source_on(link)
    async with running(source) as reports:
        await reports.wait_for(lambda s: s.prefix == P1, what="P1")
        listener = listener_of(source)
        old_index = listener.ifindex

        await asyncio.to_thread(radvd.stop)
        await asyncio.to_thread(run_command, ["ip", "link", "del", link.node_ifname])
        await eventually(
            lambda: True if listener.ifindex is None else None, what="the socket closed"
        )
        new_index = await asyncio.to_thread(recreate_veth, link)
        mark = reports.mark()
        with Radvd(link, prefixes=[PrefixAd(P2)], min_interval=30, max_interval=40):
            state = await reports.wait_for(
                lambda s: s.prefix == P2, what="P2 on the new interface", since=mark
            )

    assert new_index != old_index
    assert listener.reopened == 1
    assert state.reason == "Changed"
    assert state.origin == str(link.router.link_local)


def flood_of_ras(router_a: IPv6Address, router_b: IPv6Address) -> list[Crafted]:
    """`FLOOD_SIZE` RAs: router A announcing P1 and router B P2 alternately (equal
    lifetimes), malformed ones, off-link ones (hop limit 64), and B announcing random
    global prefixes beside P2 (beyond the tracker's cap of live prefixes)."""
    rng = random.Random(4861)
    bad = [packet(name) for name in BAD_PACKETS]
    documentation = 0x2001_0DB8 << 96
    flood: list[Crafted] = []
    for index in range(FLOOD_SIZE):
        match index % 5:
            case 0:
                flood.append(Crafted(router_a, ra(P1)))
            case 1:
                flood.append(Crafted(router_b, ra(P2)))
            case 2:
                flood.append(Crafted(router_a, rng.choice(bad)))
            case 3:
                flood.append(Crafted(router_b, ra(P2), hop_limit=64))
            case _:
                random_prefix = IPv6Network((documentation | rng.getrandbits(32) << 64, 64))
                flood.append(Crafted(router_b, ra(P2, random_prefix)))
    return flood


@pytest.mark.netns
async def test_flood_of_crafted_ras_is_all_counted_in_bounded_memory_without_a_flap(
    link: Link,
) -> None:
    """Three floods as fast as one sender goes: every packet is read or counted as dropped
    by the kernel (receive buffer full), the first prefix stays current throughout, and
    the third leaves memory where it found it, but for what the tracker's bounded memory
    of ignored pairs took in."""
    router_a = add_router_address(link, "fe80::a")
    router_b = add_router_address(link, "fe80::b")
    flood = flood_of_ras(router_a, router_b)
    source = source_on(link)
    async with running(source) as reports:
        listener = listener_of(source)
        await asyncio.to_thread(send_from, link, [Crafted(router_a, ra(P1))])
        await reports.wait_for(lambda s: s.prefix == P1, what="P1 from router A")
        mark = reports.mark()

        async def flood_once() -> tuple[int, int, int]:
            """Send the flood and one last RA, which brings the kernel's drop count."""
            read_before = listener.received
            dropped_before = listener.drop_counts[ReceiveDropReason.RECEIVE_BUFFER_OVERFLOW]
            sent = await asyncio.to_thread(send_from, link, flood)
            sent += await asyncio.to_thread(send_from, link, [Crafted(router_a, ra(P1))])

            def counted() -> tuple[int, int] | None:
                read = listener.received - read_before
                dropped = (
                    listener.drop_counts[ReceiveDropReason.RECEIVE_BUFFER_OVERFLOW] - dropped_before
                )
                return (read, dropped) if read + dropped >= sent else None

            read, dropped = await eventually(counted, what="every packet counted", timeout=60)
            return sent, read, dropped

        floods = [await flood_once()]
        tracemalloc.start(TRACED_FRAMES)
        try:
            # traced from one flood earlier, so that entries the bounded memories replace
            # during the measured flood are counted as freed as well as allocated
            floods.append(await flood_once())
            before = receiver_memory(tracemalloc.take_snapshot())
            remembered_before = source.tracker.ignored_remembered
            floods.append(await flood_once())
            after = receiver_memory(tracemalloc.take_snapshot())
            # on a busy machine the kernel drops more, and the tracker's memory of ignored
            # prefixes may still be filling up during the measured flood
            filled = source.tracker.ignored_remembered - remembered_before
        finally:
            tracemalloc.stop()

    for number, (sent, read, dropped) in enumerate(floods, start=1):
        print(
            f"\nflood {number}: sent {sent}, read {read}, dropped by the kernel "
            f"(receive buffer full) {dropped}"
        )
        assert read + dropped == sent
    print(
        f"drops by reason: {dict(listener.drop_counts)}; last flood (traced): "
        f"{(after - before) / 1024:+.0f} KiB after"
    )
    # the prefix never changed: at most router A's refreshes, reported to the second
    assert {(s.prefix, s.reason) for s in reports.states[mark:]} <= {(P1, "Acquired")}
    assert all("lifetimes updated" in s.message for s in reports.states[mark:])
    assert source.state.prefix == P1
    assert listener.repeats > 0  # router A's copies were not passed on
    # Bounded by the tracker's caps (64 live pairs, 1024 remembered ignored pairs), not by
    # the number of packets: beyond what its memory of ignored pairs took in (nothing once
    # full), 10,000 more RAs kept would be MiBs. (Tracing only the last flood would count
    # the cache entries it replaced as new, about 1 MiB, but not the old ones freed.)
    print(f"ignored pairs remembered during it: {filled:+d}")
    assert source.tracker.ignored_remembered <= IGNORED_REMEMBERED
    assert after - before < 512 * 1024 + filled * IGNORED_PAIR_BYTES
    assert len(source.tracker.prefixes) == source.tracker.policy.max_prefixes


# --- failing clearly ------------------------------------------------------------------------


async def test_nonexistent_interface_is_a_source_error() -> None:
    source = RouterAdvertisementSource("dp-nosuch0", pacing=FAST)
    with pytest.raises(SourceError, match="interface dp-nosuch0 does not exist on this node"):
        await source.run(Reports())


def test_missing_cap_net_raw_is_a_source_error_that_says_so() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        unavailable("dropping CAP_NET_RAW needs root and util-linux's setpriv")
    code = (
        "import asyncio\n"
        "from dynamic_prefix.sources.router_advertisement import RouterAdvertisementSource\n"
        "asyncio.run(RouterAdvertisementSource('lo').run(print))\n"
    )
    result = subprocess.run(
        [
            *("setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw"),
            *(sys.executable, "-c", code),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "SourceError: listening for Router Advertisements on lo needs CAP_NET_RAW" in (
        result.stderr
    )


async def test_no_interface_and_no_default_route_is_a_source_error(tmp_path: Path) -> None:
    table = tmp_path / "ipv6_route"
    table.write_text(ROUTES.splitlines()[0] + "\n")
    source = RouterAdvertisementSource(None, route_table=table)

    with pytest.raises(SourceError, match="no IPv6 default route"):
        await source.run(Reports())


async def test_an_ra_whose_hop_limit_is_not_in_the_ancillary_data_is_dropped() -> None:
    """Without IPV6_HOPLIMIT the listener cannot tell an on-link RA (hop limit 255) from a
    forwarded one: it drops it as it drops a wrong hop limit. The kernel always adds the
    option here (IPV6_RECVHOPLIMIT is set), so this defensive path is fed the datagram
    directly; everything else in the datagram is a valid RA from a link-local router."""
    listener = RaListener("lo", pacing=FAST, loop=asyncio.get_running_loop())
    heard: list[object] = []
    listener.subscribe(heard.append)
    message = ra(P1)
    hop_limit_255 = (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("@I", 255))

    for ancillary in ([], [hop_limit_255]):
        listener._buffer[: len(message)] = message
        listener._receive(len(message), ancillary, 0, "fe80::1%lo")

    assert listener.drop_counts == {ReceiveDropReason.HOP_LIMIT: 1}
    assert len(heard) == 1  # the same datagram with its hop limit is taken
