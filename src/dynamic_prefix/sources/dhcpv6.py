"""The DHCPv6 prefix delegation source: a UDP shell around the sans-IO `PdClient`.

`Dhcpv6PdSource` loads (or creates and saves, before first use) the client's DUID and
IAID, binds the interface's link-local address port 546 with ``SO_BINDTODEVICE``, sends
the client's datagrams to ``ff02::1:2`` port 547 on that link, and re-arms one timer at
`PdClient.next_deadline`. Everything the protocol decides is decided in
`dynamic_prefix.protocols.dhcpv6_client`; this module only moves bytes and passes
``loop.time()``, and `LeaseReporter` (`dynamic_prefix.sources.dhcpv6_reports`) turns the
client's events into `SourceState` reports with wall-clock deadlines (``Soliciting``,
``LeaseAcquired``, ``Renewing`` once T1 passes, ``LeaseRenewed``, ``Rebinding`` once T2
passes, ``LeaseLost``...). The identity and its stores are in
`dynamic_prefix.sources.dhcpv6_identity`.

Stopping keeps the lease with the server: Kubernetes stops the operator on every rolling
update, drain and leader hand-over, and the next holder of the DUID and IAID (kept by the
identity store) must get the same prefix back rather than a renumbering. Only a source
whose ``release_on_stop`` is set by the time it is cancelled releases it, for a delegation
no longer wanted (its DynamicPrefix deleted, the source removed or changed). ``hint``
asks for a given prefix, the one held before a restart, in case the binding is gone.

The interface is watched while the client runs (`link_watch.wait_until_gone`). A missing
interface at start, or one deleted, renamed away or re-created while running, makes
`Dhcpv6PdSource.run` raise `InterfaceMissing`, nothing released, for the source manager
to start a new source when the interface is back.

Binding port 546 needs root or ``CAP_NET_BIND_SERVICE``; nothing else may hold the port
on the interface (a host DHCPv6 client such as dhcpcd, systemd-networkd or NetworkManager
usually does on the host's uplink).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import math
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network
from typing import Final

from dynamic_prefix.link import watch as link_watch
from dynamic_prefix.link.interfaces import read_if_inet6, usable_link_local
from dynamic_prefix.link.sockets import SO_BINDTODEVICE
from dynamic_prefix.model import api
from dynamic_prefix.protocols.dhcpv6_client import (
    ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
    CLIENT_PORT,
    SERVER_PORT,
    SOL_MAX_DELAY,
    ClientState,
    Lease,
    PdClient,
    PdClientConfig,
)
from dynamic_prefix.sources.base import (
    Dhcpv6Identity,
    IdentityStore,
    InterfaceMissing,
    ReportCallback,
    SourceError,
    SourceState,
    missing,
)
from dynamic_prefix.sources.dhcpv6_identity import (
    FileIdentityStore,
    InMemoryIdentityStore,
    identity_for_interface,
)
from dynamic_prefix.sources.dhcpv6_reports import LeaseReporter, format_deadline

# The identity stores are this source's API too (its identity_store).
__all__ = [
    "DEFAULT_LINK_LOCAL_TIMEOUT",
    "DEFAULT_RELEASE_TIMEOUT",
    "Dhcpv6PdSource",
    "FileIdentityStore",
    "InMemoryIdentityStore",
]

log = logging.getLogger(__name__)

DEFAULT_LINK_LOCAL_TIMEOUT: Final = 10.0
"""How long to wait for a usable link-local address (duplicate address detection takes
about 1-2 s after link-up with the kernel's defaults)."""
DEFAULT_RELEASE_TIMEOUT: Final = 2.0
"""How long a stop waits for the server's Reply to the Release."""

_ADDRESS_POLL_INTERVAL = 0.05
_MAX_DATAGRAM = 65535
_SEND_FAILED = "send-failed"
_RECEIVE_FAILED = "receive-failed"
_WHAT = "the DHCPv6-PD client"  # how link_watch messages name this source


# --- The source ------------------------------------------------------------------------


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Dhcpv6PdSource:
    """Requests a delegated prefix on ``interface`` and reports it (see the module docstring).

    ``release_on_stop`` is read when the source is cancelled: set it just before cancelling
    to give the delegation back (a Release, waiting up to ``release_timeout`` for the
    Reply); left False, the server keeps the binding for the next source with the same
    identity. ``hint`` is the prefix to ask for (ignored if its length is not
    ``requested_prefix_length``). ``solicit_max_delay`` is SOL_MAX_DELAY, the random
    wait of up to 1 s before the first Solicit (RFC 8415 section 18.2.1); 0 starts at
    once. ``wall_clock`` and ``rng`` are injectable for tests; monotonic time is always
    the running loop's ``time()``.
    """

    def __init__(
        self,
        interface: str,
        *,
        requested_prefix_length: int,
        identity_store: IdentityStore,
        release_on_stop: bool = False,
        hint: IPv6Network | None = None,
        solicit_max_delay: float = SOL_MAX_DELAY,
        link_local_timeout: float = DEFAULT_LINK_LOCAL_TIMEOUT,
        release_timeout: float = DEFAULT_RELEASE_TIMEOUT,
        wall_clock: Callable[[], dt.datetime] = _utc_now,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 1 <= requested_prefix_length <= 128:
            raise ValueError(f"requested prefix length {requested_prefix_length} is not 1-128")
        self.interface = interface
        self.requested_prefix_length = requested_prefix_length
        self.release_on_stop = release_on_stop
        self.hint = hint
        self._store = identity_store
        self._solicit_max_delay = solicit_max_delay
        self._link_local_timeout = link_local_timeout
        self._release_timeout = release_timeout
        self._wall_clock = wall_clock
        self._rng = rng
        self._reporter = LeaseReporter(interface, on_stopped=self._on_client_stopped)
        self._identity: Dhcpv6Identity | None = None
        self._drops: dict[str, int] = {}
        self._client: PdClient | None = None
        self._started = False
        # Set while running.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket: socket.socket | None = None
        self._ifindex = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._stopped: asyncio.Future[None] | None = None

    # The PrefixSource protocol.

    @property
    def name(self) -> str:
        """``dhcpv6-pd``."""
        return api.SOURCE_DHCPV6_PD

    @property
    def state(self) -> SourceState:
        """The latest state (also what was last reported)."""
        return self._reporter.state

    @property
    def identity(self) -> Dhcpv6Identity | None:
        """The DUID and IAID in use, once `run` has loaded or created them."""
        return self._identity

    @property
    def drop_counts(self) -> Mapping[str, int]:
        """Received datagrams that changed nothing, by reason: the client's `Dhcpv6DropReason`
        values, plus ``receive-failed`` for errors reading the socket and ``send-failed``
        for datagrams the kernel refused to send."""
        counts = dict(self._drops)
        if self._client is not None:
            for reason, count in self._client.drop_counts.items():
                counts[str(reason)] = counts.get(str(reason), 0) + count
        return counts

    async def run(self, report: ReportCallback) -> None:
        """Run until cancelled, then release the lease if ``release_on_stop`` is set by
        then (bounded by ``release_timeout``) and close the socket.

        Raises `InterfaceMissing` if the interface does not exist, or once it goes away
        (nothing released); `SourceError` if it cannot start otherwise: no link-local
        address, port 546 taken or not allowed, an unusable identity.
        """
        if self._started:
            raise RuntimeError("a Dhcpv6PdSource runs once; make a new one")
        self._started = True
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._reporter.report = report
        ifindex, identity, address = await self._prepare(loop)
        sock = self._socket
        assert sock is not None  # opened by _prepare
        self._ifindex = ifindex
        self._stopped = loop.create_future()
        client = PdClient(
            PdClientConfig(
                duid=identity.duid,
                iaid=identity.iaid,
                rng=self._rng,
                requested_prefix_length=self.requested_prefix_length,
                hint=self.hint,
                solicit_max_delay=self._solicit_max_delay,
            )
        )
        self._client = client
        # Its first look compares with ifindex: a change since then is seen too.
        gone = loop.create_task(
            link_watch.wait_until_gone(self.interface, ifindex),
            name=f"dhcpv6-pd link watch on {self.interface}",
        )
        try:
            loop.add_reader(sock.fileno(), self._on_readable)
            log.info(
                "DHCPv6 PD on %s from [%s%%%s]:%s as DUID %s IAID %s",
                self.interface,
                address,
                self.interface,
                CLIENT_PORT,
                identity.duid.hex(),
                identity.iaid,
            )
            self._reporter.set_state(
                replace(self.state, reason="Soliciting", message=self._soliciting(identity))
            )
            client.start(loop.time())
            self._pump()
            try:
                await self._until_gone(gone)
            except asyncio.CancelledError:
                await self._stop(client, loop, release=self.release_on_stop)
                raise
            raise self._interface_lost(client, loop, ifindex)
        finally:
            gone.cancel()
            self._close(loop)
            await asyncio.wait({gone})  # until its netlink socket is closed

    # Setup.

    async def _prepare(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[int, Dhcpv6Identity, IPv6Address]:
        """The interface's index, our identity, and the link-local address the socket
        (opened here) is bound to."""
        ifindex = link_watch.interface_index(self.interface)
        if ifindex is None:
            raise missing(self.interface, _WHAT)
        try:
            identity = await self._load_identity()
            address = await self._wait_for_link_local(ifindex, loop)
            self._socket = self._open_socket(ifindex, address)
        except InterfaceMissing:
            raise
        except SourceError as exc:  # e.g. no link-layer address, ENODEV: gone meanwhile?
            if link_watch.interface_index(self.interface) != ifindex:
                raise self._went_away(ifindex, None) from exc
            raise
        return ifindex, identity, address

    def _soliciting(self, identity: Dhcpv6Identity) -> str:
        wanted = f"a /{self.requested_prefix_length}"
        hint = self.hint
        if hint is not None and hint.prefixlen == self.requested_prefix_length:
            wanted = f"{hint}"
        elif hint is not None:
            log.info(
                "not asking for %s: the requested length is /%s", hint, self.requested_prefix_length
            )
        return (
            f"soliciting {wanted} on {self.interface} "
            f"as DUID {identity.duid.hex()}, IAID {identity.iaid}"
        )

    async def _load_identity(self) -> Dhcpv6Identity:
        identity = await self._store.load()
        if identity is None:
            identity = identity_for_interface(self.interface)
            await self._store.save(identity)
            log.info("created DHCPv6 identity DUID %s IAID %s", identity.duid.hex(), identity.iaid)
        try:
            PdClientConfig(duid=identity.duid, iaid=identity.iaid, rng=self._rng)
        except ValueError as exc:
            raise SourceError(f"the stored DHCPv6 identity is not usable: {exc}") from exc
        self._identity = identity
        if self.hint is None and identity.prefix is not None:
            self.hint = identity.prefix  # the delegation held before: ask for it again
        return identity

    async def _wait_for_link_local(
        self, ifindex: int, loop: asyncio.AbstractEventLoop
    ) -> IPv6Address:
        deadline = loop.time() + self._link_local_timeout
        while True:
            if link_watch.interface_index(self.interface) != ifindex:
                raise self._went_away(ifindex, None)
            address = usable_link_local(read_if_inet6(), ifindex)
            if address is not None:
                return address
            if loop.time() >= deadline:
                raise SourceError(
                    f"{self.interface} has no usable IPv6 link-local address after "
                    f"{self._link_local_timeout:g} s (is the link up, IPv6 enabled, "
                    "duplicate address detection finished?)"
                )
            await asyncio.sleep(_ADDRESS_POLL_INTERVAL)

    def _open_socket(self, ifindex: int, address: IPv6Address) -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.interface.encode())
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
            sock.bind((str(address), CLIENT_PORT, 0, ifindex))
        except OSError as exc:
            sock.close()
            raise self._socket_error(exc, address) from exc
        return sock

    def _socket_error(self, exc: OSError, address: IPv6Address) -> SourceError:
        where = f"[{address}%{self.interface}]:{CLIENT_PORT}"
        if exc.errno == errno.EADDRINUSE:
            return SourceError(
                f"UDP port {CLIENT_PORT} on {self.interface} is in use ({where}): is another "
                "DHCPv6 client (dhcpcd, systemd-networkd, NetworkManager) running on the host? "
                "Stop it from requesting a prefix on this interface, or let it delegate "
                "and use another prefix source"
            )
        if exc.errno == errno.EACCES:
            return SourceError(
                f"permission denied binding {where}: the DHCPv6 client needs root or "
                "CAP_NET_BIND_SERVICE (add NET_BIND_SERVICE to the container's capabilities)"
            )
        if exc.errno == errno.EPERM:
            return SourceError(
                f"permission denied binding a socket to {self.interface} (SO_BINDTODEVICE): "
                "needs root or CAP_NET_RAW"
            )
        return SourceError(f"cannot bind {where}: {exc.strerror or exc}")

    # Moving bytes and time.

    def _on_readable(self) -> None:
        sock, client, loop = self._socket, self._client, self._loop
        if sock is None or client is None or loop is None:
            return
        while True:
            try:
                data, sender = sock.recvfrom(_MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError as exc:
                self._count(_RECEIVE_FAILED)
                log.warning("receiving on %s failed: %s", self.interface, exc)
                break
            # Any source port: RFC 8415 fixes only the ports listened on (section 7.2).
            self._reporter.last_sender = str(sender[0])
            client.receive(data, loop.time())
        self._pump()

    def _on_timer(self) -> None:
        client, loop = self._client, self._loop
        self._timer = None
        if client is None or loop is None:
            return
        # The loop may fire a hair before the deadline (its clock resolution).
        client.advance(max(loop.time(), self._timer_at))
        self._pump()

    def _pump(self) -> None:
        client, loop, sock = self._client, self._loop, self._socket
        if client is None or loop is None or sock is None:
            return
        destination = (str(ALL_DHCP_RELAY_AGENTS_AND_SERVERS), SERVER_PORT, 0, self._ifindex)
        for datagram in client.datagrams_to_send():
            try:
                sock.sendto(datagram, destination)
            except OSError as exc:
                self._count(_SEND_FAILED)
                log.warning("sending on %s failed: %s", self.interface, exc)
        # The timer first: a failing report callback must not stall the client.
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = client.next_deadline()
        if deadline is not None:
            self._timer_at = deadline
            self._timer = loop.call_at(deadline, self._on_timer)
        events = client.next_events()
        if events:
            self._reporter.apply(events, loop.time(), self._wall_clock())

    def _count(self, reason: str) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1

    # Stopping.

    def _on_client_stopped(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    async def _until_gone(self, gone: asyncio.Task[None]) -> None:
        """Return when the interface has gone; a failed watch leaves the client running."""
        await asyncio.wait({gone})
        failure = gone.exception()
        if failure is None:
            return
        log.warning(
            "cannot watch %s any more (%s); the DHCPv6 client carries on without",
            self.interface,
            failure,
        )
        await asyncio.Event().wait()

    def _interface_lost(
        self, client: PdClient, loop: asyncio.AbstractEventLoop, ifindex: int
    ) -> InterfaceMissing:
        """Stop without a Release (the server keeps the binding) and say so."""
        lease = client.lease
        client.stop(loop.time(), release=False)
        self._pump()
        error = self._went_away(ifindex, lease)
        self._reporter.set_state(
            SourceState(
                source=api.SOURCE_DHCPV6_PD,
                prefix=None,
                origin=self.state.origin,
                reason="InterfaceMissing",
                message=str(error),
            )
        )
        return error

    def _went_away(self, ifindex: int, lease: Lease | None) -> InterfaceMissing:
        now_index = link_watch.interface_index(self.interface)
        how = "deleted or renamed" if now_index is None else f"re-created as index {now_index}"
        message = (
            f"interface {self.interface} went away ({how}); {_WHAT} starts again when it "
            "appears, with the same DUID and IAID"
        )
        if lease is not None and self._loop is not None:
            primary = lease.primary
            message += f"; the server keeps the lease on {primary.prefix}"
            if not math.isinf(primary.valid_until):
                left = dt.timedelta(seconds=primary.valid_until - self._loop.time())
                message += f" until {format_deadline(self._wall_clock() + left)}"
        return InterfaceMissing(self.interface, message)

    async def _stop(
        self, client: PdClient, loop: asyncio.AbstractEventLoop, *, release: bool
    ) -> None:
        client.stop(loop.time(), release=release)
        self._pump()
        if client.state is ClientState.RELEASING and self._stopped is not None:
            await asyncio.wait({self._stopped}, timeout=self._release_timeout)
            if not self._stopped.done():
                log.warning(
                    "no Reply to the Release within %g s; closing anyway", self._release_timeout
                )

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(sock.fileno())
            sock.close()
            self._socket = None
