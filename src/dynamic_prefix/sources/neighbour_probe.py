"""An active look at which addresses are in use on a link, for `doctor --probe`.

Two probes share one raw ICMPv6 socket bound to the interface:

- a Neighbor Solicitation for each given address (`doctor` asks for the first addresses
  of every reserved range, the ones load-balancer IPAMs hand out first): a node holding
  one answers with a Neighbor Advertisement, whatever else it ignores;
- one Echo Request to all nodes (ff02::1) from each of our global addresses: a node that
  answers multicast echo (Linux does by default) replies from one of its own global
  addresses, wherever in the /64 that is.

Only what answers is found: a device that ignores multicast echo and holds none of the
solicited addresses stays unseen. Answers from our own addresses are left out, and so
are Neighbor Advertisements that did not arrive with hop limit 255 (RFC 4861 7.1.2: they
were not sent on this link).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Final

from dynamic_prefix.link.interfaces import hardware_address
from dynamic_prefix.link.sockets import ICMP6_FILTER, SO_BINDTODEVICE, icmp6_filter_passing
from dynamic_prefix.protocols.echo import (
    ICMPV6_ECHO_REPLY,
    Echo,
    EchoParseError,
    build_echo_request,
    parse_echo_reply,
)
from dynamic_prefix.protocols.ndp import (
    ICMPV6_NEIGHBOR_ADVERTISEMENT,
    NdpParseError,
    NeighborSolicitation,
    SourceLinkLayerAddress,
    build_neighbor_solicitation,
    parse_neighbor_advertisement,
    solicited_node_multicast,
)
from dynamic_prefix.sources.base import SourceError

ALL_NODES: Final = IPv6Address("ff02::1")
NEIGHBOR_ADVERTISEMENT: Final = "neighbor advertisement"
ECHO_REPLY: Final = "echo reply"

_HOP_LIMIT = 255  # Neighbor Discovery messages must carry 255 (RFC 4861 7.1.1)
_PKTINFO = struct.Struct("=16sI")  # struct in6_pktinfo: source address, interface index
_HOP_LIMIT_VALUE = struct.Struct("=i")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_HOP_LIMIT_VALUE.size)
_SEND_GAP = 0.001  # a few hundred packets at most; spread a little so none is dropped


@dataclass(frozen=True, slots=True)
class Answer:
    """A node answered for ``address``: how we know, and its link-layer address if given."""

    address: IPv6Address
    how: str
    link_address: str | None = None


async def probe_link(
    interface: str,
    *,
    solicit: Sequence[IPv6Address],
    echo_from: Sequence[IPv6Address],
    wait: float,
) -> list[Answer]:
    """Send the probes, listen ``wait`` seconds, return every distinct answer.

    Raises `SourceError` if the interface is missing or raw sockets are not allowed.
    """
    try:
        ifindex = socket.if_nametoindex(interface)
    except OSError as error:
        raise SourceError(f"interface {interface} does not exist here") from error
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    except PermissionError as error:
        raise SourceError("probing needs CAP_NET_RAW (a raw ICMPv6 socket)") from error
    except OSError as error:
        raise SourceError(f"cannot open a raw ICMPv6 socket: {error.strerror}") from error
    with contextlib.closing(sock):
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        passing = icmp6_filter_passing(ICMPV6_ECHO_REPLY, ICMPV6_NEIGHBOR_ADVERTISEMENT)
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, passing)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, _HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        identifier = secrets.randbits(16)
        await _send(
            sock, ifindex, _mac(interface), solicit=solicit, echo_from=echo_from,
            identifier=identifier,
        )  # fmt: skip
        return await _collect(sock, set(solicit), set(echo_from), identifier, wait)


async def _send(
    sock: socket.socket,
    ifindex: int,
    mac: bytes | None,
    *,
    solicit: Sequence[IPv6Address],
    echo_from: Sequence[IPv6Address],
    identifier: int,
) -> None:
    options = (SourceLinkLayerAddress(mac),) if mac else ()
    for target in solicit:
        packet = build_neighbor_solicitation(NeighborSolicitation(target=target, options=options))
        _send_one(sock, packet, solicited_node_multicast(target), ifindex)
        await asyncio.sleep(_SEND_GAP)
    request = build_echo_request(Echo(identifier, 1, b"dynamic-prefix doctor"))
    for source in echo_from:
        _send_one(sock, request, ALL_NODES, ifindex, source=source)
        await asyncio.sleep(_SEND_GAP)


def _send_one(
    sock: socket.socket,
    packet: bytes,
    destination: IPv6Address,
    ifindex: int,
    *,
    source: IPv6Address | None = None,
) -> None:
    ancillary = []
    if source is not None:  # the source address the echo replies will be sent to
        info = _PKTINFO.pack(source.packed, ifindex)
        ancillary.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info))
    with contextlib.suppress(BlockingIOError):  # a full send buffer loses one probe
        sock.sendmsg([packet], ancillary, 0, (str(destination), 0, 0, ifindex))


async def _collect(
    sock: socket.socket,
    solicited: set[IPv6Address],
    ours: set[IPv6Address],
    identifier: int,
    wait: float,
) -> list[Answer]:
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[tuple[bytes, IPv6Address, int | None]] = asyncio.Queue()

    def readable() -> None:
        while True:
            try:
                data, ancillary, _flags, sender = sock.recvmsg(2048, _ANCILLARY_SIZE)
            except BlockingIOError:  # drained
                return
            except OSError:  # the interface went away: nothing more will come
                loop.remove_reader(sock.fileno())
                return
            source = IPv6Address(sender[0].partition("%")[0])
            arrived.put_nowait((data, source, _hop_limit(ancillary)))

    answers: dict[tuple[IPv6Address, str], Answer] = {}
    deadline = time.monotonic() + wait
    loop.add_reader(sock.fileno(), readable)
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    data, sender, hop_limit = await arrived.get()
            except TimeoutError:
                break
            answer = _answer(data, sender, hop_limit, solicited, identifier)
            if answer is not None and answer.address not in ours:
                answers.setdefault((answer.address, answer.how), answer)
    finally:
        loop.remove_reader(sock.fileno())
    return list(answers.values())


def _hop_limit(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if (level, kind) == (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT) and len(data) >= 4:
            return int(_HOP_LIMIT_VALUE.unpack_from(data)[0])
    return None


def _answer(
    data: bytes,
    sender: IPv6Address,
    hop_limit: int | None,
    solicited: set[IPv6Address],
    identifier: int,
) -> Answer | None:
    if data[:1] == bytes((ICMPV6_NEIGHBOR_ADVERTISEMENT,)):
        if hop_limit != _HOP_LIMIT:
            return None
        try:
            advert = parse_neighbor_advertisement(data)
        except NdpParseError:
            return None
        if advert.target not in solicited:
            return None
        mac = advert.link_layer_address
        return Answer(advert.target, NEIGHBOR_ADVERTISEMENT, mac.hex(":") if mac else None)
    try:
        reply = parse_echo_reply(data)
    except EchoParseError:
        return None
    if reply.identifier != identifier or sender.is_link_local:
        return None
    return Answer(sender, ECHO_REPLY)


def _mac(interface: str) -> bytes | None:
    try:
        return hardware_address(interface).ethernet
    except (OSError, ValueError):
        return None
