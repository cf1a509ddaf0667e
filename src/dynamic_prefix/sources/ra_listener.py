"""The shared Router Advertisement listener: one raw ICMPv6 socket per interface.

`RaListener` owns one raw ``IPPROTO_ICMPV6`` socket per interface, shared by every
consumer on that interface (`RaListener.shared` counts references; the last one out
closes it). The kernel passes it Router Advertisements only (``ICMP6_FILTER``), with the
hop limit and arrival interface as ancillary data. Each RA goes through the checks of
RFC 4861 section 6.1.2 that need the IP header (hop limit 255, link-local source, the
right interface), then `dynamic_prefix.protocols.ndp`'s parser; every dropped datagram is
counted by reason (the codec's `NdpDropReason` or this module's `ReceiveDropReason`),
including those the kernel dropped because the receive buffer was full (``SO_RXQ_OVFL``).
Accepted RAs go to every consumer.

On start, and whenever the interface comes (back) up, the listener sends Router
Solicitations as RFC 4861 section 6.3.7 paces them (`SolicitationPacing`), so the first
prefix arrives within milliseconds rather than at the router's next periodic RA. It stops
soliciting once any valid RA arrived: unlike the RFC's host, which stops on an RA with a
non-zero router lifetime, it wants prefixes, not a default router. A route netlink socket
(``RTMGRP_LINK``) tells it when the interface goes down, up, away or is re-created with a
new index; it then reopens its socket (with backoff while that fails) and solicits again.

A consumer that joins a running listener is replayed the latest RA of each router heard,
with its arrival time, so it need not wait for the next periodic RA.

Needs ``CAP_NET_RAW`` and the node's network namespace (``hostNetwork: true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import errno
import logging
import random
import socket
import struct
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Final

from dynamic_prefix.link import watch as link_watch
from dynamic_prefix.link.interfaces import LinkFacts, read_link
from dynamic_prefix.link.rtnetlink import link_message_mentions
from dynamic_prefix.link.sockets import (
    ICMP6_FILTER,
    SO_BINDTODEVICE,
    SO_RCVBUFFORCE,
    SO_RXQ_OVFL,
    icmp6_filter_passing,
)
from dynamic_prefix.protocols.ndp import (
    NdpDropReason,
    NdpParseError,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    build_router_solicitation,
    parse_router_advertisement,
)
from dynamic_prefix.sources.base import SourceError, missing

__all__ = [
    "ALL_ROUTERS",
    "MAX_RTR_SOLICITATIONS",
    "MAX_RTR_SOLICITATION_DELAY",
    "RTR_SOLICITATION_INTERVAL",
    "DropReason",
    "RaListener",
    "ReceiveDropReason",
    "ReceivedAdvertisement",
    "SolicitationPacing",
]

log = logging.getLogger(__name__)


class ReceiveDropReason(enum.StrEnum):
    """Why the listener dropped an RA before or after the codec; values are metric labels
    (next to the codec's `NdpDropReason`)."""

    HOP_LIMIT = "hop-limit"
    NOT_LINK_LOCAL_SOURCE = "not-link-local-source"
    WRONG_INTERFACE = "wrong-interface"
    UNTRUSTED_ROUTER = "untrusted-router"
    RECEIVE_BUFFER_OVERFLOW = "receive-buffer-overflow"
    """The kernel dropped it because the socket's receive buffer was full."""


DropReason = NdpDropReason | ReceiveDropReason
"""Every reason an RA can be dropped for."""

# RFC 4861 section 10, host constants.
MAX_RTR_SOLICITATION_DELAY: Final = 1.0
RTR_SOLICITATION_INTERVAL: Final = 4.0
MAX_RTR_SOLICITATIONS: Final = 3

ALL_ROUTERS: Final = "ff02::2"
HOP_LIMIT: Final = 255
"""The only hop limit a genuine Neighbor Discovery message arrives with (section 6.1.2)."""

REMEMBERED_ROUTERS: Final = 16
"""How many routers' latest RA a listener keeps to replay to consumers that join later."""

REPEAT_WINDOW: Final = 1.0
"""An RA equal to the one a router sent less than this many seconds before is not passed
on (it is counted in ``repeats``): it would only move deadlines by less than the tracker's
resolution. Keeps a flood of copies cheap."""

_READ_BATCH = 256  # datagrams read per readiness callback before yielding to the loop
_PARSED_REMEMBERED = 64  # recent messages' parse results, reused for repeats (floods)
_PARSED_MAX_SIZE = 1500  # only messages up to this size are remembered
_SENDERS_REMEMBERED = 64
_MAX_MESSAGE = 65535
_RECEIVE_BUFFER = (
    1 << 20
)  # asked for; the kernel caps it at net.core.rmem_max without CAP_NET_ADMIN
_REOPEN_BACKOFF_INITIAL = 0.1
_REOPEN_BACKOFF_MAX = 5.0
_LINK_POLL_INTERVAL = 2.0  # only when link changes cannot be watched over netlink
_SEND_RETRY_INTERVAL = 0.2  # no usable source address yet (duplicate address detection)
_SEND_RETRIES = 50
_DOWN_ERRNOS: Final = frozenset({errno.ENETDOWN, errno.ENXIO, errno.ENODEV})
_MSG_TRUNC = int(socket.MSG_TRUNC)  # a plain int: IntFlag arithmetic is slow per packet
_U32 = struct.Struct("=I")
_PKTINFO_IFINDEX = struct.Struct("=16sI")  # struct in6_pktinfo
_ANCILLARY_SIZE = (
    socket.CMSG_SPACE(_U32.size)  # IPV6_HOPLIMIT
    + socket.CMSG_SPACE(_PKTINFO_IFINDEX.size)  # IPV6_PKTINFO
    + socket.CMSG_SPACE(_U32.size)  # SO_RXQ_OVFL
)
_RA_ONLY_FILTER: Final = icmp6_filter_passing(134)


# --- the shared listener ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SolicitationPacing:
    """How Router Solicitations are sent when the interface comes up (RFC 4861 6.3.7).

    The first goes after a random delay between 0 and ``max_delay`` seconds (0 in tests and
    benchmarks), then up to ``count`` in all, ``interval`` seconds apart, until an RA arrives.
    """

    max_delay: float = MAX_RTR_SOLICITATION_DELAY
    interval: float = RTR_SOLICITATION_INTERVAL
    count: int = MAX_RTR_SOLICITATIONS

    def __post_init__(self) -> None:
        if not self.max_delay >= 0 or not self.interval > 0 or self.count < 0:
            raise ValueError(
                f"unusable solicitation pacing: delay {self.max_delay}, interval "
                f"{self.interval}, count {self.count}"
            )


@dataclass(frozen=True, slots=True)
class ReceivedAdvertisement:
    """An RA that passed every check, from ``router`` (zone dropped) at loop time ``at``."""

    ra: RouterAdvertisement
    router: IPv6Address
    at: float


AdvertisementHandler = Callable[[ReceivedAdvertisement], None]

_shared: dict[tuple[asyncio.AbstractEventLoop, str], RaListener] = {}


class RaListener:
    """One raw ICMPv6 socket on one interface, read for every consumer on it.

    Get one with `RaListener.shared`. Counters are for the listener as a whole: every RA
    datagram read (``received``), those that passed the checks (``accepted``; of them,
    ``repeats`` were copies of their router's previous RA within `REPEAT_WINDOW` and not
    passed on), those dropped by `DropReason` (``drop_counts``, including
    ``receive-buffer-overflow`` for datagrams the kernel dropped before they could be
    read, as it counts them), and the Router Solicitations sent.
    """

    def __init__(
        self,
        interface: str,
        *,
        pacing: SolicitationPacing,
        loop: asyncio.AbstractEventLoop,
        rng: random.Random | None = None,
    ) -> None:
        self.interface = interface
        self.pacing = pacing
        self.drop_counts: Counter[DropReason] = Counter()
        self.received = 0
        self.accepted = 0
        self.solicitations_sent = 0
        self.repeats = 0
        self.reopened = 0
        """How many times the socket was opened again (the interface was re-created)."""
        self._loop = loop
        self._rng = rng or random.Random()
        self._socket: socket.socket | None = None
        self._ifindex: int | None = None
        self._link_up = False
        self._mac: bytes | None = None
        self._overflow_seen = 0
        self._buffer = bytearray(_MAX_MESSAGE)
        # Parsing is pure: a message seen again (routers repeat themselves, floods more
        # so) reuses its result. Both dicts are bounded, oldest entry out first.
        self._parsed: dict[bytes, RouterAdvertisement | NdpParseError] = {}
        self._senders: dict[str, tuple[IPv6Address, bool]] = {}  # -> router, link-local
        self._handlers: list[AdvertisementHandler] = []
        self._latest: OrderedDict[IPv6Address, ReceivedAdvertisement] = OrderedDict()
        self._heard = asyncio.Event()
        self._wake = asyncio.Event()
        self._watch: socket.socket | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._solicitor: asyncio.Task[None] | None = None
        self._failed: asyncio.Future[None] = loop.create_future()
        self._users = 0

    # --- sharing ------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def shared(
        cls,
        interface: str,
        *,
        pacing: SolicitationPacing | None = None,
        rng: random.Random | None = None,
    ) -> AsyncIterator[RaListener]:
        """The listener on ``interface`` in this event loop, opened by the first user.

        The first user's ``pacing`` applies. Raises `SourceError` when the interface does
        not exist or the process may not open raw sockets.
        """
        loop = asyncio.get_running_loop()
        key = (loop, interface)
        listener = _shared.get(key)
        if listener is None:
            listener = cls(interface, pacing=pacing or SolicitationPacing(), loop=loop, rng=rng)
            # started in an empty context: the socket serves every user, so its tasks and
            # callbacks must not carry the first user's context (e.g. its log tag)
            contextvars.Context().run(listener._start)
            _shared[key] = listener
        listener._users += 1
        try:
            yield listener
        finally:
            listener._users -= 1
            if listener._users == 0:
                if _shared.get(key) is listener:
                    del _shared[key]
                await listener._close()

    @property
    def ifindex(self) -> int | None:
        """The index of the interface the socket is bound to; None while it has none."""
        return self._ifindex if self._socket is not None else None

    @property
    def link_up(self) -> bool:
        """Whether the interface was up and running when last looked at."""
        return self._link_up

    def subscribe(self, handler: AdvertisementHandler) -> Callable[[], None]:
        """Call ``handler`` with every accepted RA, first replaying the latest of each
        router heard (oldest first); returns the function that unsubscribes.

        The handler runs in the subscriber's context (a copy taken now), not the shared
        socket's, so what it logs carries the subscriber's tag.
        """
        context = contextvars.copy_context()

        def bound(received: ReceivedAdvertisement) -> None:
            context.run(handler, received)

        self._handlers.append(bound)
        for received in list(self._latest.values()):
            bound(received)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.remove(bound)

        return unsubscribe

    async def wait(self) -> None:
        """Wait for ever; raise `SourceError` if the listener fails for good."""
        await asyncio.shield(self._failed)

    # --- life cycle ---------------------------------------------------------------------

    def _start(self) -> None:
        link = read_link(self.interface)
        if link is None:
            raise missing(self.interface, "listening for Router Advertisements")
        self._open_watch()  # before the socket: no change after opening goes unnoticed
        try:
            self._open(link)
        except SourceError:
            self._close_watch()
            raise
        except OSError as exc:
            self._close_watch()
            if exc.errno in _DOWN_ERRNOS:
                raise missing(self.interface, "listening for Router Advertisements") from exc
            raise SourceError(
                f"cannot open a raw ICMPv6 socket on {self.interface}: {exc.strerror or exc}"
            ) from exc
        self._supervisor = self._loop.create_task(
            self._supervise(), name=f"router-advertisement listener on {self.interface}"
        )

    async def _close(self) -> None:
        for task in (self._solicitor, self._supervisor):
            if task is not None:
                task.cancel()
                await asyncio.wait([task])  # not suppress(CancelledError): ours would go too
        self._close_socket()
        self._close_watch()
        if not self._failed.done():
            self._failed.cancel()

    def _open(self, link: LinkFacts) -> None:
        """Open, configure and register the raw socket; `SourceError` without permission."""
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        except PermissionError as exc:
            raise SourceError(
                f"listening for Router Advertisements on {self.interface} needs CAP_NET_RAW "
                "(a raw ICMPv6 socket): add NET_RAW to the container's securityContext."
                "capabilities, or use the netlink source, which needs no capability"
            ) from exc
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.interface.encode())
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _RA_ONLY_FILTER)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, link.ifindex)
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RECEIVE_BUFFER)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        except PermissionError as exc:
            sock.close()
            raise SourceError(
                f"binding a raw socket to {self.interface} needs CAP_NET_RAW: add NET_RAW "
                "to the container's securityContext.capabilities"
            ) from exc
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._ifindex = link.ifindex
        self._mac = link.mac
        self._overflow_seen = 0
        self._loop.add_reader(sock.fileno(), self._on_readable)
        log.info(
            "listening for Router Advertisements on %s (index %s)", self.interface, link.ifindex
        )

    def _close_socket(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()

    def _open_watch(self) -> None:
        try:
            watch = link_watch.open_link_events()
        except OSError as exc:
            log.warning(
                "cannot watch %s over netlink (%s); looking every %g s instead",
                self.interface,
                exc,
                _LINK_POLL_INTERVAL,
            )
            return
        self._watch = watch
        self._loop.add_reader(watch.fileno(), self._on_link_message)

    def _close_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            self._loop.remove_reader(watch.fileno())
            watch.close()

    # --- following the interface --------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = _REOPEN_BACKOFF_INITIAL
        try:
            while True:
                self._wake.clear()
                retry = self._reconcile()
                if retry:
                    timeout: float | None = backoff
                    backoff = min(backoff * 2, _REOPEN_BACKOFF_MAX)
                else:
                    backoff = _REOPEN_BACKOFF_INITIAL
                    timeout = None if self._watch is not None else _LINK_POLL_INTERVAL
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
        except Exception as exc:  # SourceError, or a bug: either way every consumer hears
            log.error("router advertisement listener on %s failed: %s", self.interface, exc)
            key = (self._loop, self.interface)
            if _shared.get(key) is self:
                del _shared[key]  # whoever comes next starts afresh
            self._stop_soliciting()
            self._close_socket()
            if not self._failed.done():
                self._failed.set_exception(exc)

    def _reconcile(self) -> bool:
        """Bring the socket and solicitations in line with the interface as it is now.

        Returns whether to try again soon (the socket could not be opened).
        """
        link = read_link(self.interface)
        if link is None:
            if self._socket is not None:
                log.warning("interface %s is gone; waiting for it to come back", self.interface)
                self._close_socket()
            self._stop_soliciting()
            self._link_up = False
            return False
        if self._socket is not None and link.ifindex != self._ifindex:
            log.warning(
                "interface %s was re-created (index %s, was %s); reopening",
                self.interface,
                link.ifindex,
                self._ifindex,
            )
            self._close_socket()
        if self._socket is None:
            try:
                self._open(link)
            except OSError as exc:
                log.warning("cannot reopen the socket on %s: %s", self.interface, exc)
                return True
            self.reopened += 1
            self._link_up = False  # a new socket solicits as on a new link
        was_up, self._link_up, self._mac = self._link_up, link.up, link.mac
        if link.up and not was_up:
            self._start_soliciting()
        elif not link.up:
            if was_up:
                log.info("interface %s is down", self.interface)
            self._stop_soliciting()
        return False

    def _on_link_message(self) -> None:
        watch = self._watch
        if watch is None:
            return
        while True:
            try:
                data = watch.recv(_MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError as exc:  # ENOBUFS: events were lost, so look anyway
                log.debug("link watch on %s: %s", self.interface, exc)
                self._wake.set()
                if exc.errno != errno.ENOBUFS:
                    return
                continue
            if link_message_mentions(data, self.interface, self._ifindex):
                self._wake.set()

    # --- soliciting ---------------------------------------------------------------------

    def _start_soliciting(self) -> None:
        self._stop_soliciting()
        self._heard.clear()
        self._solicitor = self._loop.create_task(
            self._solicit(), name=f"router solicitations on {self.interface}"
        )

    def _stop_soliciting(self) -> None:
        solicitor, self._solicitor = self._solicitor, None
        if solicitor is not None and solicitor is not asyncio.current_task():
            solicitor.cancel()

    async def _solicit(self) -> None:
        pacing = self.pacing
        delay = self._rng.uniform(0, pacing.max_delay)
        if delay > 0:
            await asyncio.sleep(delay)
        for _ in range(pacing.count):
            if self._heard.is_set():
                return
            for _attempt in range(_SEND_RETRIES):
                if self._send_solicitation() or self._socket is None:
                    break
                await asyncio.sleep(_SEND_RETRY_INTERVAL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pacing.interval):
                    await self._heard.wait()

    def _send_solicitation(self) -> bool:
        """Send one RS to all routers; whether it went (False: try again shortly)."""
        sock, ifindex = self._socket, self._ifindex
        if sock is None or ifindex is None:
            return False
        options = () if self._mac is None else (SourceLinkLayerAddress(self._mac),)
        message = build_router_solicitation(RouterSolicitation(options=options))
        try:
            sock.sendto(message, (ALL_ROUTERS, 0, 0, ifindex))
        except OSError as exc:
            if exc.errno in _DOWN_ERRNOS:
                self._wake.set()
            log.debug("router solicitation on %s not sent: %s", self.interface, exc)
            return False
        self.solicitations_sent += 1
        log.debug("router solicitation sent on %s", self.interface)
        return True

    # --- receiving ----------------------------------------------------------------------

    def _on_readable(self) -> None:
        sock = self._socket
        if sock is None:
            return
        buffers = [self._buffer]
        for _ in range(_READ_BATCH):
            try:
                size, ancillary, flags, address = sock.recvmsg_into(buffers, _ANCILLARY_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                log.debug("receiving on %s: %s", self.interface, exc)
                self._wake.set()
                return
            self._receive(size, ancillary, flags, address[0])

    def _receive(
        self,
        size: int,
        ancillary: list[tuple[int, int, bytes]],
        flags: int,
        sender: str,
    ) -> None:
        now = self._loop.time()
        self.received += 1
        hop_limit = -1
        arrival: int | None = None
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IPV6:
                if kind == socket.IPV6_HOPLIMIT:
                    (hop_limit,) = _U32.unpack_from(data)
                elif kind == socket.IPV6_PKTINFO:
                    _destination, arrival = _PKTINFO_IFINDEX.unpack_from(data)
            elif level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
                self._count_overflow(_U32.unpack_from(data)[0])
        if flags & _MSG_TRUNC:
            self._drop(NdpDropReason.TRUNCATED, sender, f"longer than {len(self._buffer)} octets")
            return
        if arrival is not None and arrival != self._ifindex:
            self._drop(ReceiveDropReason.WRONG_INTERFACE, sender, f"arrived on interface {arrival}")
            return
        if hop_limit != HOP_LIMIT:
            self._drop(ReceiveDropReason.HOP_LIMIT, sender, f"hop limit {hop_limit}")
            return
        router, link_local = self._router_address(sender)
        if not link_local:
            self._drop(ReceiveDropReason.NOT_LINK_LOCAL_SOURCE, sender, "not a link-local source")
            return
        parsed = self._parse(bytes(self._buffer[:size]))
        if isinstance(parsed, NdpParseError):
            self._drop(parsed.reason, sender, parsed.detail)
            return
        self.accepted += 1
        self._heard.set()
        latest = self._latest
        previous = latest.get(router)
        if (
            previous is not None
            and now - previous.at < REPEAT_WINDOW
            and (previous.ra is parsed or previous.ra == parsed)
        ):
            self.repeats += 1  # nothing new: the deadlines move by less than a second
            return
        received = ReceivedAdvertisement(parsed, router, now)
        latest[router] = received
        latest.move_to_end(router)
        if len(latest) > REMEMBERED_ROUTERS:
            latest.popitem(last=False)
        for handler in tuple(self._handlers):
            try:
                handler(received)
            except Exception:
                log.exception("a consumer of Router Advertisements on %s failed", self.interface)

    def _router_address(self, sender: str) -> tuple[IPv6Address, bool]:
        """The sender's address without its zone (``fe80::1%eth0``) and whether it is
        link-local, remembered."""
        known = self._senders.get(sender)
        if known is None:
            if len(self._senders) >= _SENDERS_REMEMBERED:
                del self._senders[next(iter(self._senders))]
            router = IPv6Address(sender.partition("%")[0])
            known = self._senders[sender] = (router, router.is_link_local)
        return known

    def _parse(self, message: bytes) -> RouterAdvertisement | NdpParseError:
        parsed = self._parsed.get(message)
        if parsed is None:
            try:
                parsed = parse_router_advertisement(message)
            except NdpParseError as exc:
                parsed = exc
            if len(message) <= _PARSED_MAX_SIZE:
                if len(self._parsed) >= _PARSED_REMEMBERED:
                    del self._parsed[next(iter(self._parsed))]
                self._parsed[message] = parsed
        return parsed

    def _drop(self, reason: DropReason, sender: str, detail: str) -> None:
        self.drop_counts[reason] += 1
        log.debug("dropped an RA from %s on %s: %s (%s)", sender, self.interface, reason, detail)

    def _count_overflow(self, total: int) -> None:
        """``total`` is the kernel's running count of datagrams dropped on this socket."""
        missed = (total - self._overflow_seen) & 0xFFFF_FFFF
        if missed:
            self._overflow_seen = total
            self.drop_counts[ReceiveDropReason.RECEIVE_BUFFER_OVERFLOW] += missed
            log.debug(
                "the kernel dropped %s RAs on %s: receive buffer full", missed, self.interface
            )
