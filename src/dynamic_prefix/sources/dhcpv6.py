"""The DHCPv6 prefix delegation source: a UDP shell around the sans-IO `PdClient`.

`Dhcpv6PdSource` loads (or creates and saves, before first use) the client's DUID and
IAID, binds the interface's link-local address port 546 with ``SO_BINDTODEVICE``, sends
the client's datagrams to ``ff02::1:2`` port 547 on that link, and re-arms one timer at
`PdClient.next_deadline`. Everything the protocol decides is decided in
`dynamic_prefix.protocols.dhcpv6_client`; this module only moves bytes, passes ``loop.time()``
and turns the client's events into `SourceState` reports with wall-clock deadlines
(``Soliciting``, ``LeaseAcquired``, ``Renewing`` once T1 passes, ``LeaseRenewed``,
``Rebinding`` once T2 passes, ``LeaseLost``...).

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
import hashlib
import json
import logging
import math
import os
import random
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Final

from dynamic_prefix.link import watch as link_watch
from dynamic_prefix.model import api
from dynamic_prefix.protocols.dhcpv6 import (
    HARDWARE_TYPE_ETHERNET,
    DuidLl,
    DuidType,
    MessageType,
    UnknownDuid,
    build_duid,
)
from dynamic_prefix.protocols.dhcpv6_client import (
    ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
    CLIENT_PORT,
    SERVER_PORT,
    SOL_MAX_DELAY,
    BindingRejected,
    ClientEvent,
    ClientState,
    ClientStopped,
    DelegationChanged,
    ExchangeTimedOut,
    Lease,
    LeaseAcquired,
    LeaseLost,
    LeaseReleased,
    LeaseRenewed,
    MessageDropped,
    NoPrefixAvailable,
    PdClient,
    PdClientConfig,
    RebindStarted,
    RenewStarted,
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

__all__ = [
    "DEFAULT_LINK_LOCAL_TIMEOUT",
    "DEFAULT_RELEASE_TIMEOUT",
    "Dhcpv6PdSource",
    "FileIdentityStore",
    "InMemoryIdentityStore",
    "InterfaceAddress",
    "new_identity",
    "parse_if_inet6",
    "usable_link_local",
]

log = logging.getLogger(__name__)

_BOUND_REASONS: Final[dict[type, str]] = {
    LeaseAcquired: "LeaseAcquired",
    LeaseRenewed: "LeaseRenewed",
    DelegationChanged: "PrefixChanged",  # the condition's reason, as for the RA sources
}

DEFAULT_LINK_LOCAL_TIMEOUT: Final = 10.0
"""How long to wait for a usable link-local address (duplicate address detection takes
about 1-2 s after link-up with the kernel's defaults)."""
DEFAULT_RELEASE_TIMEOUT: Final = 2.0
"""How long a stop waits for the server's Reply to the Release."""

_SYS_CLASS_NET = Path("/sys/class/net")
_PROC_IF_INET6 = Path("/proc/net/if_inet6")
_LINK_LOCAL = IPv6Network("fe80::/10")
_ARPHRD_ETHER = 1  # <linux/if_arp.h>; matches IANA hardware type 1 (Ethernet)
_ETHERNET_ADDRESS_LENGTH = 6
_RT_SCOPE_LINK = 0x20  # <linux/rtnetlink.h>, as /proc/net/if_inet6 shows it
# Address flags, <linux/if_addr.h>.
_IFA_F_OPTIMISTIC = 0x04
_IFA_F_DADFAILED = 0x08
_IFA_F_TENTATIVE = 0x40
_ADDRESS_POLL_INTERVAL = 0.05
_IF_INET6_FIELDS = 6  # address, ifindex, prefix length, scope, flags, name
_IF_INET6_ADDRESS_DIGITS = 32
_MAX_DATAGRAM = 65535
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)  # 25 on Linux
_SEND_FAILED = "send-failed"
_RECEIVE_FAILED = "receive-failed"
_WHAT = "the DHCPv6-PD client"  # how link_watch messages name this source


# --- Reading the interface -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    """One line of ``/proc/net/if_inet6``."""

    address: IPv6Address
    ifindex: int
    prefix_length: int
    scope: int
    flags: int
    ifname: str

    @property
    def usable(self) -> bool:
        """Bindable: duplicate address detection is over (or optimistic) and did not fail."""
        if self.flags & _IFA_F_DADFAILED:
            return False
        return not self.flags & _IFA_F_TENTATIVE or bool(self.flags & _IFA_F_OPTIMISTIC)


def parse_if_inet6(text: str) -> list[InterfaceAddress]:
    """The addresses in the text of ``/proc/net/if_inet6``; malformed lines are skipped."""
    found: list[InterfaceAddress] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != _IF_INET6_FIELDS or len(fields[0]) != _IF_INET6_ADDRESS_DIGITS:
            continue
        try:
            address = IPv6Address(int(fields[0], 16))
            ifindex, prefix_length, scope, flags = (int(field, 16) for field in fields[1:5])
        except ValueError:
            continue
        found.append(InterfaceAddress(address, ifindex, prefix_length, scope, flags, fields[5]))
    return found


def usable_link_local(addresses: list[InterfaceAddress], ifindex: int) -> IPv6Address | None:
    """The first usable link-local address on interface ``ifindex``, if any."""
    for entry in addresses:
        if (
            entry.ifindex == ifindex
            and entry.scope == _RT_SCOPE_LINK
            and entry.address in _LINK_LOCAL
            and entry.usable
        ):
            return entry.address
    return None


def new_identity(
    interface: str, *, hardware_type: int, link_layer_address: bytes
) -> Dhcpv6Identity:
    """A fresh identity for ``interface``: DUID-LL of its MAC, IAID from its name.

    The IAID is the first 32 bits of SHA-256 of the interface name, so it is the same on
    every node. An interface without an Ethernet address (a tunnel, WireGuard) gets a
    random DUID-UUID (RFC 8415 section 11.5) instead; either way the identity is stored
    and reused, so only its first creation depends on the interface.
    """
    iaid = int.from_bytes(hashlib.sha256(interface.encode()).digest()[:4], "big")
    if (
        hardware_type == _ARPHRD_ETHER
        and len(link_layer_address) == _ETHERNET_ADDRESS_LENGTH
        and any(link_layer_address)
    ):
        duid = build_duid(DuidLl(HARDWARE_TYPE_ETHERNET, link_layer_address))
    else:
        duid = build_duid(UnknownDuid(DuidType.UUID, uuid.uuid4().bytes))
    return Dhcpv6Identity(duid=duid, iaid=iaid)


# --- Identity stores -------------------------------------------------------------------


class InMemoryIdentityStore:
    """Keeps the identity in this object only (tests, one-off CLI runs)."""

    def __init__(self, identity: Dhcpv6Identity | None = None) -> None:
        self.identity = identity
        self.saves = 0

    async def load(self) -> Dhcpv6Identity | None:
        """The identity given or saved last."""
        return self.identity

    async def save(self, identity: Dhcpv6Identity) -> None:
        """Remember ``identity``."""
        self.identity = identity
        self.saves += 1


class FileIdentityStore:
    """Keeps the identity in a JSON file, ``{"duid": "<hex>", "iaid": <int>}``.

    Writes go to a temporary file renamed over the old one, so a crash never leaves half
    a file. An unreadable file is a `SourceError`, never silently replaced: a new DUID
    would lose the binding.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    async def load(self) -> Dhcpv6Identity | None:
        """The stored identity, or None if the file does not exist."""
        return await asyncio.to_thread(self._load)

    async def save(self, identity: Dhcpv6Identity) -> None:
        """Write ``identity`` atomically, creating the parent directory if needed."""
        await asyncio.to_thread(self._save, identity)

    def _load(self) -> Dhcpv6Identity | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"cannot read the DHCPv6 identity file {self.path}: {exc}") from exc
        try:
            data = json.loads(text)
            duid = bytes.fromhex(data["duid"])
            iaid = data["iaid"]
            if not isinstance(iaid, int) or isinstance(iaid, bool):
                raise TypeError(f"iaid is {type(iaid).__name__}, not an integer")
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(
                f"the DHCPv6 identity file {self.path} is not valid ({exc}); "
                'expected {"duid": "<hex>", "iaid": <integer>}'
            ) from exc
        return Dhcpv6Identity(duid=duid, iaid=iaid)

    def _save(self, identity: Dhcpv6Identity) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"duid": identity.duid.hex(), "iaid": identity.iaid}))
        os.replace(temporary, self.path)


# --- The source ------------------------------------------------------------------------


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _format(moment: dt.datetime | None) -> str:
    """A deadline for a message: RFC 3339 UTC to the second, or "forever"."""
    if moment is None:
        return "forever"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        self._state = SourceState(
            source=api.SOURCE_DHCPV6_PD,
            prefix=None,
            reason="Starting",
            message=f"not started yet on {interface}",
        )
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
        self._report: ReportCallback | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._server_addresses: dict[bytes, str] = {}
        self._last_sender = ""
        self._renews_unanswered = 0

    # The PrefixSource protocol.

    @property
    def name(self) -> str:
        """``dhcpv6-pd``."""
        return api.SOURCE_DHCPV6_PD

    @property
    def state(self) -> SourceState:
        """The latest state (also what was last reported)."""
        return self._state

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
        self._report = report
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
            loop.add_reader(self._socket.fileno(), self._on_readable)
            log.info(
                "DHCPv6 PD on %s from [%s%%%s]:%s as DUID %s IAID %s",
                self.interface,
                address,
                self.interface,
                CLIENT_PORT,
                identity.duid.hex(),
                identity.iaid,
            )
            self._set_state(
                replace(self._state, reason="Soliciting", message=self._soliciting(identity))
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
            identity = self._create_identity()
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

    def _create_identity(self) -> Dhcpv6Identity:
        directory = _SYS_CLASS_NET / self.interface
        try:
            hardware_type = int((directory / "type").read_text().strip())
            mac_text = (directory / "address").read_text().strip()
        except (OSError, ValueError) as exc:
            raise SourceError(
                f"cannot read the link-layer address of {self.interface}: {exc}"
            ) from exc
        try:
            mac = bytes.fromhex(mac_text.replace(":", ""))
        except ValueError:
            mac = b""
        return new_identity(self.interface, hardware_type=hardware_type, link_layer_address=mac)

    async def _wait_for_link_local(
        self, ifindex: int, loop: asyncio.AbstractEventLoop
    ) -> IPv6Address:
        deadline = loop.time() + self._link_local_timeout
        while True:
            if link_watch.interface_index(self.interface) != ifindex:
                raise self._went_away(ifindex, None)
            try:
                text = _PROC_IF_INET6.read_text()
            except FileNotFoundError:
                text = ""  # IPv6 disabled on the whole node
            address = usable_link_local(parse_if_inet6(text), ifindex)
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
            sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, self.interface.encode())
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
            self._last_sender = str(sender[0])
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
            self._on_events(events, loop.time(), self._wall_clock())

    def _count(self, reason: str) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1

    # Events to states.

    def _on_events(self, events: list[ClientEvent], now: float, wall_now: dt.datetime) -> None:
        def wall(deadline: float) -> dt.datetime | None:
            if math.isinf(deadline):
                return None
            return wall_now + dt.timedelta(seconds=deadline - now)

        for event in events:
            match event:
                case LeaseAcquired() | LeaseRenewed() | DelegationChanged():
                    self._server_addresses.setdefault(event.server_id, self._last_sender)
                    prefix = event.new if isinstance(event, DelegationChanged) else event.prefix
                    self._set_state(
                        SourceState(
                            source=api.SOURCE_DHCPV6_PD,
                            prefix=prefix,
                            preferred_until=wall(event.preferred_until),
                            valid_until=wall(event.valid_until),
                            origin=event.server_id.hex(),
                            reason=_BOUND_REASONS[type(event)],
                            message=self._bound_message(event),
                        )
                    )
                case RenewStarted(prefix=prefix, server_id=server_id):
                    self._renews_unanswered = 0
                    state = self._kept_deadlines(event, wall)
                    self._set_state(
                        replace(
                            state,
                            reason="Renewing",
                            message=(
                                f"renewing {prefix} with {self._server_name(server_id)} "
                                f"(T1 reached); valid until {_format(state.valid_until)}"
                            ),
                        )
                    )
                case ExchangeTimedOut(message_type=MessageType.RENEW, transmissions=sent):
                    self._renews_unanswered = sent
                case RebindStarted(prefix=prefix, server_id=server_id):
                    state = self._kept_deadlines(event, wall)
                    unanswered, self._renews_unanswered = self._renews_unanswered, 0
                    server = self._server_name(server_id)
                    why = (
                        f"no reply to {unanswered} Renew(s) from {server} by T2"
                        if unanswered
                        else f"T2 reached before a Renew to {server}"
                    )
                    self._set_state(
                        replace(
                            state,
                            reason="Rebinding",
                            message=(
                                f"{why}; rebinding {prefix} with any server; "
                                f"valid until {_format(state.valid_until)}"
                            ),
                        )
                    )
                case LeaseLost(prefix=prefix, reason=why):
                    self._set_state(
                        SourceState(
                            source=api.SOURCE_DHCPV6_PD,
                            prefix=None,
                            origin=self._state.origin,
                            reason="LeaseLost",
                            message=f"lease on {prefix} lost ({why}); soliciting again",
                        )
                    )
                case LeaseReleased(prefix=prefix, server_id=server_id):
                    self._set_state(
                        SourceState(
                            source=api.SOURCE_DHCPV6_PD,
                            prefix=None,
                            origin=server_id.hex(),
                            reason="LeaseReleased",
                            message=f"released {prefix} on stop",
                            released=frozenset({prefix}),
                        )
                    )
                case BindingRejected(prefix=prefix, message=text):
                    self._set_state(
                        replace(
                            self._state,
                            reason="BindingRejected",
                            message=(
                                f"the server no longer knows our binding for {prefix} "
                                f"(NoBinding: {text or 'no text'}); requesting a new one"
                            ),
                        )
                    )
                case NoPrefixAvailable(message=text, retry_at=retry_at):
                    self._set_state(
                        replace(
                            self._state,
                            reason="NoPrefixAvailable",
                            message=(
                                f"the server has no prefix for us (NoPrefixAvail: "
                                f"{text or 'no text'}); retrying in {retry_at - now:.0f} s"
                            ),
                        )
                    )
                case ExchangeTimedOut(message_type=kind, transmissions=sent):
                    log.info("%s unanswered after %s transmission(s)", kind.name, sent)
                case MessageDropped(reason=why, detail=detail):
                    log.debug(
                        "dropped a DHCPv6 message on %s: %s (%s)", self.interface, why, detail
                    )
                case ClientStopped(release_acknowledged=acknowledged):
                    if acknowledged is False:
                        log.warning("the server did not answer our Release")
                    if self._stopped is not None and not self._stopped.done():
                        self._stopped.set_result(None)

    def _kept_deadlines(
        self,
        event: RenewStarted | RebindStarted,
        wall: Callable[[float], dt.datetime | None],
    ) -> SourceState:
        """The state with ``event``'s prefix and deadlines; the reported deadlines are
        kept when they are the same facts, so they do not drift by microseconds."""
        state = self._state
        if state.prefix == event.prefix and state.origin == event.server_id.hex():
            return state
        return replace(
            state,
            prefix=event.prefix,
            preferred_until=wall(event.preferred_until),
            valid_until=wall(event.valid_until),
            origin=event.server_id.hex(),
        )

    def _server_name(self, server_id: bytes) -> str:
        server = f"DUID {server_id.hex()}"
        address = self._server_addresses.get(server_id)
        return f"{address} ({server})" if address else server

    def _bound_message(self, event: LeaseAcquired | LeaseRenewed | DelegationChanged) -> str:
        server = self._server_name(event.server_id)
        match event:
            case LeaseAcquired(prefix=prefix):
                return f"{prefix} delegated by {server}"
            case LeaseRenewed(prefix=prefix):
                return f"{prefix} renewed by {server}"
            case DelegationChanged(old=old, new=new):
                return f"delegated prefix changed from {old} to {new} by {server}"

    def _set_state(self, state: SourceState) -> None:
        if state == self._state:
            return
        self._state = state
        log.info("%s: %s (%s)", self.interface, state.reason, state.message)
        if self._report is not None:
            try:
                self._report(state)
            except Exception:
                log.exception("the report callback failed on %s", state)

    # Stopping.

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
        self._set_state(
            SourceState(
                source=api.SOURCE_DHCPV6_PD,
                prefix=None,
                origin=self._state.origin,
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
                message += f" until {_format(self._wall_clock() + left)}"
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
