"""The netlink source: the prefix of the addresses the kernel itself configured by SLAAC.

`NetlinkSource` needs no raw socket and no capability, only the node's network namespace
and a kernel that accepts Router Advertisements on the interface (``accept_ra`` 1, or 2
when forwarding, and ``autoconf`` 1). Over route netlink (pyroute2's asyncio API) it
dumps the interface's addresses at start, then follows ``RTM_NEWADDR``/``RTM_DELADDR``,
``RTM_NEWPREFIX`` and link events.

A SLAAC address here is a global, non-permanent (``IFA_F_PERMANENT`` clear) /64 that did
not fail duplicate address detection: the kernel's public ``mngtmpaddr`` address and any
temporary ones beside it (DHCPv6 addresses are /128 and static ones permanent). Their
/64 is fed to the same `PrefixTracker` as the other sources, with source ``kernel`` and
the longest remaining preferred and valid lifetimes among the addresses in it (from
``IFA_CACHEINFO``).

Withdrawal. The kernel applies RFC 4862's two-hour rule (section 5.5.3 e): a prefix that
the router withdraws with valid lifetime 0 keeps its address, deprecated, for up to two
more hours, since the kernel cannot tell a genuine router from any host on the link. This
source follows the kernel's addresses, so it keeps such a prefix exactly as long (the
Router Advertisement source does the same unless ``trustedRouters`` is set).
``RTM_NEWPREFIX`` (the router's Prefix Information as the kernel accepted it, decoded
by `dynamic_prefix.link.rtnetlink` since pyroute2 has no decoder) only tells that an
address is on its way. When the kernel deletes the last address in a prefix (the
interface went down or away, or someone deleted it) the prefix is withdrawn; when it
deletes it at its valid lifetime, it expires.

Reporting. One RA makes the kernel send several messages, the new address a few
milliseconds after the rest (from a work queue). Reports wait until 5 ms have passed
without news and no announced prefix's address is still due (at most 250 ms), so a
renumbering is one ``Changed`` report rather than ``Withdrawn`` then ``Acquired``; this
costs the netlink source a few milliseconds of latency over the raw-socket source.

Limits, from the kernel: it configures at most ``max_addresses`` (16 by default)
addresses per interface, and withdrawn prefixes keep theirs for up to two hours, so
after many renumberings in a row it stops making addresses (and this source stops seeing
new prefixes) until old ones expire. The Router Advertisement source has no such limit.
Reading pyroute2's socket from the event loop (its asyncio transport) delivers each
message as it arrives; selecting on its file descriptor with the synchronous API does
not (it buffers, and events arrive one RA late).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, Final

from pyroute2 import AsyncIPRoute

from dynamic_prefix.link import watch as link_watch
from dynamic_prefix.link.interfaces import IPV6_CONF, read_ipv6_settings
from dynamic_prefix.link.rtnetlink import (
    IFA_F_DADFAILED,
    IFA_F_PERMANENT,
    RT_SCOPE_UNIVERSE,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWPREFIX,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_PREFIX,
    RTMGRP_LINK,
    PrefixMessage,
    parse_prefix_message,
)
from dynamic_prefix.model import api
from dynamic_prefix.protocols.ndp import INFINITE_LIFETIME
from dynamic_prefix.protocols.tracker import PrefixTracker, TrackerEvent, TrackerPolicy
from dynamic_prefix.sources.base import ReportCallback, SourceState, missing
from dynamic_prefix.sources.tracking import TrackerReporter

__all__ = [
    "KERNEL",
    "NetlinkSource",
    "kernel_ra_problems",
]

log = logging.getLogger(__name__)

KERNEL: Final = "kernel"
"""The tracker source (and reported origin) of every prefix this source learns."""

SLAAC_PREFIX_LENGTH: Final = 64

_EXPIRY_SLACK = 2.0
"""An address the kernel deletes this close to its valid deadline expired (lifetimes come
in whole seconds and the kernel checks them on a coarse timer)."""
_SETTLE = 0.005
"""How long reports wait for more netlink messages: one RA makes the kernel send several
(an address, a prefix, another address), and they are reported together."""
_ADDRESS_WAIT = 0.1
"""How long a report waits for the address of a prefix just announced (the kernel sends
the prefix at once, the new address from a work queue a few milliseconds later)."""
_MAX_HOLD = 0.25
"""The longest a report is held back for more messages."""
_RESTART_BACKOFF_INITIAL = 0.1
_RESTART_BACKOFF_MAX = 10.0
_RA_SETTINGS = ("accept_ra", "autoconf", "forwarding")


# --- the source ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Address:
    """A SLAAC address the kernel holds: its /64 and absolute deadlines (loop time)."""

    prefix: IPv6Network
    preferred_until: float
    valid_until: float


def _deadline(lifetime: int, now: float) -> float:
    return math.inf if lifetime >= INFINITE_LIFETIME else now + lifetime


def _remaining(deadline: float, now: float) -> float:
    return math.inf if deadline == math.inf else max(deadline - now, 0.0)


def _slaac_address(message: Any, now: float) -> tuple[IPv6Address, _Address | None] | None:
    """An address message's address and, if it is a usable SLAAC address, its record.

    None when the message is not about an IPv6 global address at all.
    """
    if message.get("family") != socket.AF_INET6 or message.get("scope") != RT_SCOPE_UNIVERSE:
        return None
    text = message.get("IFA_ADDRESS") or message.get("IFA_LOCAL")
    if not isinstance(text, str):
        return None
    address = IPv6Address(text)
    flags = message.get("IFA_FLAGS")
    if not isinstance(flags, int):
        flags = int(message.get("flags") or 0)
    length = message.get("prefixlen")
    if flags & (IFA_F_PERMANENT | IFA_F_DADFAILED) or length != SLAAC_PREFIX_LENGTH:
        return address, None
    cacheinfo = message.get("IFA_CACHEINFO") or {}
    preferred = int(cacheinfo.get("ifa_preferred", INFINITE_LIFETIME))
    valid = int(cacheinfo.get("ifa_valid", INFINITE_LIFETIME))
    return address, _Address(
        prefix=IPv6Network((int(address), SLAAC_PREFIX_LENGTH), strict=False),
        preferred_until=_deadline(preferred, now),
        valid_until=_deadline(valid, now),
    )


def _raw(message: Any) -> bytes:
    """The undecoded octets of a pyroute2 message, header included."""
    data = message.data
    offset = int(message.offset)
    length = int(message["header"]["length"])
    return bytes(data[offset : offset + length])


def kernel_ra_problems(interface: str, sysctl: Path = IPV6_CONF) -> list[str]:
    """Why the kernel would not configure SLAAC addresses on ``interface``, if it can tell."""
    settings = read_ipv6_settings(interface, _RA_SETTINGS, sysctl)
    if settings is None:
        return []
    accept_ra, autoconf, forwarding = (settings[name] for name in _RA_SETTINGS)
    problems = []
    if accept_ra == 0 or (accept_ra == 1 and forwarding):
        problems.append(
            f"the kernel ignores Router Advertisements on {interface} (accept_ra={accept_ra}, "
            f"forwarding={forwarding}; set accept_ra=2 on a router)"
        )
    if autoconf == 0:
        problems.append(f"SLAAC is off on {interface} (autoconf=0)")
    return problems


class NetlinkSource:
    """The prefix of the kernel's SLAAC addresses on ``interface``."""

    def __init__(
        self,
        interface: str,
        *,
        policy: TrackerPolicy | None = None,
        wall_clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.interface = interface
        self._reporter = TrackerReporter(
            source=api.SOURCE_NETLINK,
            interface=interface,
            tracker=PrefixTracker(policy or TrackerPolicy()),
            wall_clock=wall_clock,
        )
        self._ifindex: int | None = None
        self._addresses: dict[IPv6Address, _Address] = {}
        self._expected: dict[IPv6Network, float] = {}  # prefix -> until when its address is
        self._loop: asyncio.AbstractEventLoop | None = None
        self.restarts = 0
        """How many times the netlink socket was reopened after an error."""

    @property
    def name(self) -> str:
        """``netlink``."""
        return api.SOURCE_NETLINK

    @property
    def state(self) -> SourceState:
        """The latest state (also what was last reported)."""
        return self._reporter.state

    @property
    def tracker(self) -> PrefixTracker:
        """The tracker this source feeds (for inspection)."""
        return self._reporter.tracker

    async def run(self, report: ReportCallback) -> None:
        """Follow the interface until cancelled; `InterfaceMissing` if it does not exist."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._ifindex = link_watch.interface_index(self.interface)
        if self._ifindex is None:
            raise missing(self.interface, "following the kernel's SLAAC addresses")
        reporter = self._reporter
        reporter.start(loop, report)
        problems = kernel_ra_problems(self.interface)
        for problem in problems:
            log.warning("netlink source: %s", problem)
        reporter.set_state(
            reason="Starting",
            message=f"following the kernel's SLAAC addresses on {self.interface}"
            + "".join(f"; {problem}" for problem in problems),
        )
        backoff = _RESTART_BACKOFF_INITIAL
        try:
            while True:
                try:
                    await self._follow()
                except Exception as exc:  # pyroute2 raises a variety; start over
                    log.warning(
                        "netlink source on %s: %s; resynchronising in %g s",
                        self.interface,
                        exc,
                        backoff,
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _RESTART_BACKOFF_MAX)
                self.restarts += 1
        finally:
            reporter.stop()

    async def _follow(self) -> None:
        """Open a socket, take in the addresses there are, then every change."""
        ipr = AsyncIPRoute()
        try:
            await ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_PREFIX)
            await self._resynchronise(ipr)
            pending: list[TrackerEvent] = []
            held_since = 0.0
            flush_at: float | None = None
            while True:
                try:
                    async with asyncio.timeout_at(flush_at):
                        batch = [message async for message in ipr.get()]
                except TimeoutError:
                    self._reporter.apply(pending)
                    pending, flush_at = [], None
                    continue
                if not batch:
                    raise ConnectionError("the netlink socket was closed")
                events = self._take(batch)
                if events:
                    now = self._now()
                    if not pending:
                        held_since = now
                    pending += events
                    flush_at = min(self._quiet_after(now), held_since + _MAX_HOLD)
        finally:
            with contextlib.suppress(Exception):
                ipr.close()

    async def _resynchronise(self, ipr: Any) -> None:
        """Replace what is known with a fresh dump (events may have been lost)."""
        now = self._now()
        ifindex = link_watch.interface_index(self.interface)
        addresses: dict[IPv6Address, _Address] = {}
        if ifindex is not None:
            async for message in await ipr.addr("dump", family=socket.AF_INET6, index=ifindex):
                if message.get("index") != ifindex:
                    continue
                found = _slaac_address(message, now)
                if found is not None and found[1] is not None:
                    addresses[found[0]] = found[1]
        self._ifindex = ifindex
        touched = {record.prefix for record in self._addresses.values()}
        touched |= {record.prefix for record in addresses.values()}
        self._addresses = addresses
        events: list[TrackerEvent] = []
        for prefix in sorted(touched):
            events += self._feed(prefix, now)
        self._reporter.apply(events)
        log.debug(
            "netlink source on %s (index %s): %s SLAAC addresses",
            self.interface,
            ifindex,
            len(addresses),
        )

    def _take(self, batch: list[Any]) -> list[TrackerEvent]:
        """Apply one datagram's messages to the tracker; return its events."""
        now = self._now()
        events: list[TrackerEvent] = []
        for message in batch:
            kind = message["header"]["type"]
            if kind in (RTM_NEWADDR, RTM_DELADDR):
                if message.get("index") == self._ifindex:
                    events += self._take_address(message, deleted=kind == RTM_DELADDR, now=now)
            elif kind == RTM_NEWPREFIX:
                prefix_message = parse_prefix_message(_raw(message))
                if prefix_message is not None and prefix_message.ifindex == self._ifindex:
                    events += self._take_prefix(prefix_message, now)
            elif kind in (RTM_NEWLINK, RTM_DELLINK):
                events += self._take_link(message, deleted=kind == RTM_DELLINK, now=now)
        return events

    def _quiet_after(self, now: float) -> float:
        """When pending events can be reported: soon, unless an address is still due."""
        for prefix, until in list(self._expected.items()):
            if until <= now:
                del self._expected[prefix]
        return max([now + _SETTLE, *self._expected.values()])

    def _take_address(self, message: Any, *, deleted: bool, now: float) -> list[TrackerEvent]:
        found = _slaac_address(message, now)
        if found is None:
            return []
        address, record = found
        previous = self._addresses.pop(address, None)
        if record is not None and not deleted:
            self._addresses[address] = record
            self._expected.pop(record.prefix, None)
        prefixes = {r.prefix for r in (previous, record) if r is not None}
        events: list[TrackerEvent] = []
        for prefix in sorted(prefixes):
            events += self._feed(prefix, now)
        return events

    def _take_prefix(self, message: PrefixMessage, now: float) -> list[TrackerEvent]:
        prefix = message.prefix
        held = any(record.prefix == prefix for record in self._addresses.values())
        if message.valid_lifetime == 0:
            if held:
                log.info(
                    "netlink source: a router withdrew %s on %s; the kernel keeps its "
                    "addresses, deprecated, for up to two hours (RFC 4862 5.5.3 e), and so "
                    "does this source",
                    prefix,
                    self.interface,
                )
            return []
        if not held and message.autonomous and prefix.prefixlen == SLAAC_PREFIX_LENGTH:
            self._expected[prefix] = now + _ADDRESS_WAIT  # the kernel is making one
        return []

    def _take_link(self, message: Any, *, deleted: bool, now: float) -> list[TrackerEvent]:
        index = message.get("index")
        if message.get("IFLA_IFNAME") != self.interface and index != self._ifindex:
            return []
        if deleted:
            if index != self._ifindex:
                return []
            log.warning("netlink source: interface %s is gone", self.interface)
            self._ifindex = None
        elif index != self._ifindex:
            log.info("netlink source: interface %s is back (index %s)", self.interface, index)
            self._ifindex = index
        else:
            return []
        gone = {record.prefix for record in self._addresses.values()}
        self._addresses.clear()
        events: list[TrackerEvent] = []
        for prefix in sorted(gone):
            events += self._feed(prefix, now)
        return events

    def _feed(self, prefix: IPv6Network, now: float) -> list[TrackerEvent]:
        """Tell the tracker what the kernel's addresses now say about ``prefix``."""
        records = [record for record in self._addresses.values() if record.prefix == prefix]
        tracker = self.tracker
        if not records:
            live = next((p for p in tracker.prefixes if p.prefix == prefix), None)
            if live is None:
                return []
            if live.valid_until - now <= _EXPIRY_SLACK:
                return tracker.advance(max(now, live.valid_until))
            return tracker.observe_prefix(
                prefix, source=KERNEL, valid_lifetime=0, preferred_lifetime=0, now=now
            )
        preferred_until = max(record.preferred_until for record in records)
        valid_until = max(record.valid_until for record in records)
        return tracker.observe_prefix(
            prefix,
            source=KERNEL,
            valid_lifetime=_remaining(valid_until, now),
            preferred_lifetime=min(_remaining(preferred_until, now), _remaining(valid_until, now)),
            now=now,
        )

    def _now(self) -> float:
        if self._loop is None:
            raise RuntimeError("the netlink source is not running")
        return self._loop.time()
