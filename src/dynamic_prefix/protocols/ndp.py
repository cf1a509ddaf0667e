"""Sans-IO codec for ICMPv6 Router Solicitations and Router Advertisements, and for the
Neighbor Solicitations and Advertisements `doctor --probe` uses.

Layouts: RFC 4861 (Neighbor Discovery) section 4.1 (Router Solicitation), 4.2 (Router
Advertisement), 4.3 and 4.4 (Neighbor Solicitation and Advertisement), 4.6 (options:
4.6.1 link-layer address, 4.6.2 prefix information, 4.6.4 MTU); RFC 4191 section 2.2
and 2.3 (router preference, Route Information option); RFC 8106 section 5.1 (RDNSS
option); RFC 6275 section 7.1 and 7.2 (home agent and router address flags); RFC 4389
section 4.1.3.3 (proxy flag).

A message is the ICMPv6 message, starting at the type byte, as a raw ``IPPROTO_ICMPV6``
socket hands it over. Each parser raises exactly `NdpParseError` for bad input, with a
`NdpDropReason` that names the check that failed. The checks are those of RFC 4861 section
6.1.1 and 6.1.2 that can be made on the message alone (ICMP code 0, length at least 8 or
16 octets, every option length non-zero and inside the message), plus a length check for
every option type this module knows and prefix lengths of at most 128.

Two deliberate departures from the letter of the RFCs:

- An option of a known type with a wrong length or a prefix length over 128 drops the
  whole message; RFC 4861 and RFC 4191 would ignore just that option. A router sending
  such options is broken or forged, and a counted drop is safer than half-using it.
- Fewer than 8 octets left after the last option (no option can be that short) are
  ``trailing-garbage``, even when they would start a well-formed option header.

Not checked here: the ICMPv6 checksum (the kernel verified it before the socket saw the
message; it is carried in the values, and builders write 0 there for the kernel to fill)
and the IP-level checks of section 6.1 (hop limit 255, link-local source address, arrival
interface) that the receiver makes from ancillary data. Their `NdpDropReason` members live
here too, so one counter labelled by reason covers every dropped packet.

Unknown option types are kept as `UnknownOption`, as RFC 4861 section 4.6 requires
receivers to skip what they do not recognise. Reserved fields and flags are ignored on
parse and written as zero, so ``build(parse(message))`` equals ``message`` (with a zero
checksum) whenever the sender zeroed them, the host bits after a prefix length are zero,
and each Route Information option uses the shortest length that holds its prefix.

This module frames the four messages; the option values, their wire form and the codec's
errors are in `dynamic_prefix.protocols.ndp_options`, re-exported here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Final

from dynamic_prefix.protocols.ndp_options import (
    INFINITE_LIFETIME,
    OPTION_UNIT,
    Mtu,
    NdpBuildError,
    NdpDropReason,
    NdpOption,
    NdpParseError,
    OptionType,
    PrefixInformation,
    RecursiveDnsServers,
    RouteInformation,
    RouterPreference,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    UnknownOption,
    build_options,
    check_field,
    parse_options,
    preference_bits,
    preference_of,
)

__all__ = [
    "ICMPV6_NEIGHBOR_ADVERTISEMENT",
    "ICMPV6_NEIGHBOR_SOLICITATION",
    "ICMPV6_ROUTER_ADVERTISEMENT",
    "ICMPV6_ROUTER_SOLICITATION",
    "INFINITE_LIFETIME",
    "OPTION_UNIT",
    "Mtu",
    "NdpBuildError",
    "NdpDropReason",
    "NdpOption",
    "NdpParseError",
    "NeighborAdvertisement",
    "NeighborSolicitation",
    "OptionType",
    "PrefixInformation",
    "RecursiveDnsServers",
    "RouteInformation",
    "RouterAdvertisement",
    "RouterPreference",
    "RouterSolicitation",
    "SourceLinkLayerAddress",
    "TargetLinkLayerAddress",
    "UnknownOption",
    "build_neighbor_advertisement",
    "build_neighbor_solicitation",
    "build_router_advertisement",
    "build_router_solicitation",
    "parse_neighbor_advertisement",
    "parse_router_advertisement",
    "parse_router_solicitation",
    "solicited_node_multicast",
]

ICMPV6_ROUTER_SOLICITATION: Final = 133
ICMPV6_ROUTER_ADVERTISEMENT: Final = 134
ICMPV6_NEIGHBOR_SOLICITATION: Final = 135
ICMPV6_NEIGHBOR_ADVERTISEMENT: Final = 136


# --- messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterAdvertisement:
    """An ICMPv6 Router Advertisement (type 134); times are as on the wire.

    ``router_lifetime`` is seconds, ``reachable_time`` and ``retrans_timer`` milliseconds,
    0 meaning "unspecified" for ``cur_hop_limit``, ``reachable_time`` and ``retrans_timer``.
    """

    cur_hop_limit: int = 0
    managed: bool = False
    other_config: bool = False
    home_agent: bool = False
    preference: RouterPreference = RouterPreference.MEDIUM
    proxy: bool = False
    router_lifetime: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0
    options: tuple[NdpOption, ...] = ()
    checksum: int = 0

    @property
    def prefix_information(self) -> tuple[PrefixInformation, ...]:
        """The Prefix Information options, in message order."""
        return tuple(option for option in self.options if isinstance(option, PrefixInformation))

    @property
    def source_link_layer_address(self) -> bytes | None:
        """The first Source Link-Layer Address option's address, if any."""
        for option in self.options:
            if isinstance(option, SourceLinkLayerAddress):
                return option.address
        return None

    @property
    def mtu(self) -> int | None:
        """The first MTU option's value, if any."""
        for option in self.options:
            if isinstance(option, Mtu):
                return option.mtu
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterSolicitation:
    """An ICMPv6 Router Solicitation (type 133)."""

    options: tuple[NdpOption, ...] = ()
    checksum: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighborSolicitation:
    """An ICMPv6 Neighbor Solicitation (type 135): who has ``target``?"""

    target: IPv6Address
    options: tuple[NdpOption, ...] = ()
    checksum: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighborAdvertisement:
    """An ICMPv6 Neighbor Advertisement (type 136): ``target`` is here."""

    target: IPv6Address
    router: bool = False
    solicited: bool = False
    override: bool = False
    options: tuple[NdpOption, ...] = ()
    checksum: int = 0

    @property
    def link_layer_address(self) -> bytes | None:
        """The target's link-layer address, if the advertisement carries it."""
        for option in self.options:
            if isinstance(option, TargetLinkLayerAddress):
                return option.address
        return None


def solicited_node_multicast(address: IPv6Address) -> IPv6Address:
    """ff02::1:ffXX:XXXX, where a Neighbor Solicitation for ``address`` is sent (RFC 4291
    2.7.1): every node listens on the group of each of its addresses."""
    return IPv6Address(int(IPv6Address("ff02::1:ff00:0")) | (int(address) & 0xFF_FFFF))


# --- wire layouts -------------------------------------------------------------------

_RA_HEADER = struct.Struct("!BBHBBHII")  # type, code, checksum, hop limit, flags, lifetimes
_RS_HEADER = struct.Struct("!BBHI")  # type, code, checksum, reserved
_NEIGHBOR_HEADER = struct.Struct("!BBHI16s")  # type, code, checksum, flags/reserved, target
_NA_ROUTER = 0x8000_0000
_NA_SOLICITED = 0x4000_0000
_NA_OVERRIDE = 0x2000_0000

_RA_MANAGED = 0x80
_RA_OTHER_CONFIG = 0x40
_RA_HOME_AGENT = 0x20
_RA_PROXY = 0x04


# --- parsing ------------------------------------------------------------------------


def parse_router_advertisement(data: bytes) -> RouterAdvertisement:
    """Decode a Router Advertisement; raises `NdpParseError` and nothing else."""
    if len(data) < _RA_HEADER.size:
        raise NdpParseError(
            NdpDropReason.TRUNCATED,
            f"{len(data)} octets; a Router Advertisement has at least {_RA_HEADER.size}",
        )
    (icmp_type, code, checksum, hop_limit, flags, router_lifetime, reachable, retrans) = (
        _RA_HEADER.unpack_from(data)
    )
    _check_type_and_code(icmp_type, code, ICMPV6_ROUTER_ADVERTISEMENT)
    return RouterAdvertisement(
        cur_hop_limit=hop_limit,
        managed=bool(flags & _RA_MANAGED),
        other_config=bool(flags & _RA_OTHER_CONFIG),
        home_agent=bool(flags & _RA_HOME_AGENT),
        preference=preference_of(flags),
        proxy=bool(flags & _RA_PROXY),
        router_lifetime=router_lifetime,
        reachable_time=reachable,
        retrans_timer=retrans,
        options=parse_options(data, _RA_HEADER.size),
        checksum=checksum,
    )


def parse_router_solicitation(data: bytes) -> RouterSolicitation:
    """Decode a Router Solicitation; raises `NdpParseError` and nothing else."""
    if len(data) < _RS_HEADER.size:
        raise NdpParseError(
            NdpDropReason.TRUNCATED,
            f"{len(data)} octets; a Router Solicitation has at least {_RS_HEADER.size}",
        )
    icmp_type, code, checksum, _reserved = _RS_HEADER.unpack_from(data)
    _check_type_and_code(icmp_type, code, ICMPV6_ROUTER_SOLICITATION)
    return RouterSolicitation(options=parse_options(data, _RS_HEADER.size), checksum=checksum)


def parse_neighbor_advertisement(data: bytes) -> NeighborAdvertisement:
    """Decode a Neighbor Advertisement; raises `NdpParseError` and nothing else."""
    if len(data) < _NEIGHBOR_HEADER.size:
        raise NdpParseError(
            NdpDropReason.TRUNCATED,
            f"{len(data)} octets; a Neighbor Advertisement has at least {_NEIGHBOR_HEADER.size}",
        )
    icmp_type, code, checksum, flags, target = _NEIGHBOR_HEADER.unpack_from(data)
    _check_type_and_code(icmp_type, code, ICMPV6_NEIGHBOR_ADVERTISEMENT)
    return NeighborAdvertisement(
        target=IPv6Address(target),
        router=bool(flags & _NA_ROUTER),
        solicited=bool(flags & _NA_SOLICITED),
        override=bool(flags & _NA_OVERRIDE),
        options=parse_options(data, _NEIGHBOR_HEADER.size),
        checksum=checksum,
    )


def _check_type_and_code(icmp_type: int, code: int, expected_type: int) -> None:
    if icmp_type != expected_type:
        raise NdpParseError(
            NdpDropReason.BAD_TYPE, f"ICMPv6 type {icmp_type}, expected {expected_type}"
        )
    if code != 0:
        raise NdpParseError(NdpDropReason.BAD_CODE, f"ICMPv6 code {code}, expected 0")


# --- building -----------------------------------------------------------------------


def build_router_advertisement(ra: RouterAdvertisement) -> bytes:
    """Encode a Router Advertisement with a zero checksum; `NdpBuildError` if it cannot."""
    check_field("cur_hop_limit", ra.cur_hop_limit, 8)
    check_field("router_lifetime", ra.router_lifetime, 16)
    check_field("reachable_time", ra.reachable_time, 32)
    check_field("retrans_timer", ra.retrans_timer, 32)
    flags = (
        (_RA_MANAGED if ra.managed else 0)
        | (_RA_OTHER_CONFIG if ra.other_config else 0)
        | (_RA_HOME_AGENT if ra.home_agent else 0)
        | preference_bits(ra.preference)
        | (_RA_PROXY if ra.proxy else 0)
    )
    header = _RA_HEADER.pack(
        ICMPV6_ROUTER_ADVERTISEMENT,
        0,
        0,
        ra.cur_hop_limit,
        flags,
        ra.router_lifetime,
        ra.reachable_time,
        ra.retrans_timer,
    )
    return header + build_options(ra.options)


def build_router_solicitation(rs: RouterSolicitation) -> bytes:
    """Encode a Router Solicitation with a zero checksum; `NdpBuildError` if it cannot."""
    return _RS_HEADER.pack(ICMPV6_ROUTER_SOLICITATION, 0, 0, 0) + build_options(rs.options)


def build_neighbor_solicitation(ns: NeighborSolicitation) -> bytes:
    """Encode a Neighbor Solicitation with a zero checksum; `NdpBuildError` if it cannot."""
    header = _NEIGHBOR_HEADER.pack(ICMPV6_NEIGHBOR_SOLICITATION, 0, 0, 0, ns.target.packed)
    return header + build_options(ns.options)


def build_neighbor_advertisement(na: NeighborAdvertisement) -> bytes:
    """Encode a Neighbor Advertisement with a zero checksum (tests play the neighbour)."""
    flags = (
        (_NA_ROUTER if na.router else 0)
        | (_NA_SOLICITED if na.solicited else 0)
        | (_NA_OVERRIDE if na.override else 0)
    )
    header = _NEIGHBOR_HEADER.pack(ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0, flags, na.target.packed)
    return header + build_options(na.options)
