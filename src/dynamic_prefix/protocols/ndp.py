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
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import Final, TypeAlias

ICMPV6_ROUTER_SOLICITATION: Final = 133
ICMPV6_ROUTER_ADVERTISEMENT: Final = 134
ICMPV6_NEIGHBOR_SOLICITATION: Final = 135
ICMPV6_NEIGHBOR_ADVERTISEMENT: Final = 136

INFINITE_LIFETIME: Final = 0xFFFF_FFFF
"""A valid or preferred lifetime of all ones means "for ever" (RFC 4861 section 4.6.2)."""

OPTION_UNIT: Final = 8
"""Option lengths count units of 8 octets, header included."""


class OptionType(enum.IntEnum):
    """Neighbor Discovery option types this codec decodes; any other is an `UnknownOption`."""

    SOURCE_LINK_LAYER_ADDRESS = 1
    TARGET_LINK_LAYER_ADDRESS = 2
    PREFIX_INFORMATION = 3
    MTU = 5
    ROUTE_INFORMATION = 24
    RDNSS = 25


class RouterPreference(enum.IntEnum):
    """The 2-bit Prf field (RFC 4191 section 2.1); RESERVED is received as written."""

    MEDIUM = 0b00
    HIGH = 0b01
    RESERVED = 0b10
    LOW = 0b11


class NdpDropReason(enum.StrEnum):
    """Why the codec refused a received Neighbor Discovery message; values are metric
    labels. (What a receiver refuses before the codec, such as a hop limit below 255, is
    the receiver's own `ReceiveDropReason`.)"""

    TRUNCATED = "truncated"
    BAD_TYPE = "bad-type"
    BAD_CODE = "bad-code"
    ZERO_LENGTH_OPTION = "zero-length-option"
    OPTION_OVERFLOW = "option-overflow"
    BAD_OPTION_LENGTH = "bad-option-length"
    BAD_PREFIX_LENGTH = "bad-prefix-length"
    TRAILING_GARBAGE = "trailing-garbage"


class NdpParseError(ValueError):
    """A message that is not a well-formed Router Solicitation or Advertisement."""

    def __init__(self, reason: NdpDropReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class NdpBuildError(ValueError):
    """A value that cannot be encoded (a field out of range, a misaligned option body)."""


# --- values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceLinkLayerAddress:
    """The sender's link-layer address; for Ethernet, the 6-octet MAC address."""

    address: bytes


@dataclass(frozen=True, slots=True)
class TargetLinkLayerAddress:
    """The target's link-layer address (known type, not expected in an RS or RA)."""

    address: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixInformation:
    """A prefix on the link (on_link, flag L) usable for SLAAC (autonomous, flag A).

    Lifetimes are seconds; `INFINITE_LIFETIME` means for ever. With ``router_address`` (R)
    set the prefix field holds the router's whole address; only its prefix is kept here.
    """

    prefix: IPv6Network
    on_link: bool
    autonomous: bool
    valid_lifetime: int
    preferred_lifetime: int
    router_address: bool = False


@dataclass(frozen=True, slots=True)
class Mtu:
    """The link MTU the router advertises."""

    mtu: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteInformation:
    """A more-specific route through this router, with its preference and lifetime."""

    prefix: IPv6Network
    preference: RouterPreference
    route_lifetime: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecursiveDnsServers:
    """DNS resolvers, usable for ``lifetime`` seconds (`INFINITE_LIFETIME`: for ever)."""

    lifetime: int
    servers: tuple[IPv6Address, ...]


@dataclass(frozen=True, slots=True)
class UnknownOption:
    """An option this codec does not decode: its type and the octets after the header.

    Builders accept any type here, so tests can craft malformed known options with it.
    """

    type: int
    data: bytes


NdpOption: TypeAlias = (
    SourceLinkLayerAddress
    | TargetLinkLayerAddress
    | PrefixInformation
    | Mtu
    | RouteInformation
    | RecursiveDnsServers
    | UnknownOption
)


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
_OPTION_HEADER_SIZE = 2  # type, length
_PREFIX_INFORMATION = struct.Struct("!BBBBIII16s")  # 32 octets: 4 units
_MTU = struct.Struct("!BBHI")  # type, length, reserved, MTU: 1 unit
_ROUTE_INFORMATION = struct.Struct("!BBBBI")  # type, length, prefix length, flags, lifetime
_RDNSS = struct.Struct("!BBHI")  # type, length, reserved, lifetime

_RA_MANAGED = 0x80
_RA_OTHER_CONFIG = 0x40
_RA_HOME_AGENT = 0x20
_RA_PROXY = 0x04
_PREFERENCE_SHIFT = 3  # Prf occupies bits 0x18 of the RA and Route Information flags
_PREFERENCE_MASK = 0b11
_PREFERENCES: Final = tuple(RouterPreference(bits) for bits in range(4))
_PI_ON_LINK = 0x80
_PI_AUTONOMOUS = 0x40
_PI_ROUTER_ADDRESS = 0x20

_ADDRESS_OCTETS = 16
_ADDRESS_BITS = 128
_MAX_OPTION_UNITS = 0xFF


def _network(raw: bytes, prefix_length: int) -> IPv6Network:
    """The prefix of ``prefix_length`` bits at the start of ``raw``; later bits ignored."""
    bits = int.from_bytes(raw.ljust(_ADDRESS_OCTETS, b"\0"), "big")
    host_bits = _ADDRESS_BITS - prefix_length
    return IPv6Network(((bits >> host_bits) << host_bits, prefix_length))


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
        preference=_PREFERENCES[(flags >> _PREFERENCE_SHIFT) & _PREFERENCE_MASK],
        proxy=bool(flags & _RA_PROXY),
        router_lifetime=router_lifetime,
        reachable_time=reachable,
        retrans_timer=retrans,
        options=_parse_options(data, _RA_HEADER.size),
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
    return RouterSolicitation(options=_parse_options(data, _RS_HEADER.size), checksum=checksum)


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
        options=_parse_options(data, _NEIGHBOR_HEADER.size),
        checksum=checksum,
    )


def _check_type_and_code(icmp_type: int, code: int, expected_type: int) -> None:
    if icmp_type != expected_type:
        raise NdpParseError(
            NdpDropReason.BAD_TYPE, f"ICMPv6 type {icmp_type}, expected {expected_type}"
        )
    if code != 0:
        raise NdpParseError(NdpDropReason.BAD_CODE, f"ICMPv6 code {code}, expected 0")


def _parse_options(data: bytes, offset: int) -> tuple[NdpOption, ...]:
    options: list[NdpOption] = []
    end = len(data)
    while offset < end:
        if end - offset < OPTION_UNIT:
            raise NdpParseError(
                NdpDropReason.TRAILING_GARBAGE,
                f"{end - offset} octets at offset {offset} are too short for any option",
            )
        option_type = data[offset]
        units = data[offset + 1]
        if units == 0:
            raise NdpParseError(
                NdpDropReason.ZERO_LENGTH_OPTION,
                f"option type {option_type} at offset {offset} has length 0",
            )
        option_end = offset + units * OPTION_UNIT
        if option_end > end:
            raise NdpParseError(
                NdpDropReason.OPTION_OVERFLOW,
                f"option type {option_type} at offset {offset} claims {units * OPTION_UNIT} "
                f"octets, only {end - offset} are left",
            )
        decode = _OPTION_DECODERS.get(option_type)
        if decode is None:
            options.append(
                UnknownOption(option_type, data[offset + _OPTION_HEADER_SIZE : option_end])
            )
        else:
            options.append(decode(data, offset, units))
        offset = option_end
    return tuple(options)


def _bad_length(name: str, offset: int, units: int, expected: str) -> NdpParseError:
    return NdpParseError(
        NdpDropReason.BAD_OPTION_LENGTH,
        f"{name} option at offset {offset} has length {units}, expected {expected}",
    )


def _decode_source_lla(data: bytes, offset: int, units: int) -> NdpOption:
    return SourceLinkLayerAddress(data[offset + _OPTION_HEADER_SIZE : offset + units * OPTION_UNIT])


def _decode_target_lla(data: bytes, offset: int, units: int) -> NdpOption:
    return TargetLinkLayerAddress(data[offset + _OPTION_HEADER_SIZE : offset + units * OPTION_UNIT])


def _decode_prefix_information(data: bytes, offset: int, units: int) -> NdpOption:
    if units * OPTION_UNIT != _PREFIX_INFORMATION.size:
        raise _bad_length("Prefix Information", offset, units, "4")
    _type, _length, prefix_length, flags, valid, preferred, _reserved, raw_prefix = (
        _PREFIX_INFORMATION.unpack_from(data, offset)
    )
    if prefix_length > _ADDRESS_BITS:
        raise NdpParseError(
            NdpDropReason.BAD_PREFIX_LENGTH,
            f"Prefix Information option at offset {offset} has prefix length {prefix_length}",
        )
    return PrefixInformation(
        prefix=_network(raw_prefix, prefix_length),
        on_link=bool(flags & _PI_ON_LINK),
        autonomous=bool(flags & _PI_AUTONOMOUS),
        valid_lifetime=valid,
        preferred_lifetime=preferred,
        router_address=bool(flags & _PI_ROUTER_ADDRESS),
    )


def _decode_mtu(data: bytes, offset: int, units: int) -> NdpOption:
    if units * OPTION_UNIT != _MTU.size:
        raise _bad_length("MTU", offset, units, "1")
    _type, _length, _reserved, mtu = _MTU.unpack_from(data, offset)
    return Mtu(mtu)


def _route_information_units(prefix_length: int) -> int:
    """The shortest Route Information option length, in units, that holds the prefix."""
    if prefix_length == 0:
        return 1
    return 2 if prefix_length <= 64 else 3


def _decode_route_information(data: bytes, offset: int, units: int) -> NdpOption:
    if units > 3:
        raise _bad_length("Route Information", offset, units, "1, 2 or 3")
    _type, _length, prefix_length, flags, lifetime = _ROUTE_INFORMATION.unpack_from(data, offset)
    if prefix_length > _ADDRESS_BITS:
        raise NdpParseError(
            NdpDropReason.BAD_PREFIX_LENGTH,
            f"Route Information option at offset {offset} has prefix length {prefix_length}",
        )
    if units < _route_information_units(prefix_length):
        raise _bad_length(
            "Route Information",
            offset,
            units,
            f"at least {_route_information_units(prefix_length)} for a /{prefix_length}",
        )
    prefix_start = offset + _ROUTE_INFORMATION.size
    raw_prefix = data[prefix_start : offset + units * OPTION_UNIT]
    return RouteInformation(
        prefix=_network(raw_prefix, prefix_length),
        preference=_PREFERENCES[(flags >> _PREFERENCE_SHIFT) & _PREFERENCE_MASK],
        route_lifetime=lifetime,
    )


def _decode_rdnss(data: bytes, offset: int, units: int) -> NdpOption:
    if units < 3 or units % 2 == 0:
        raise _bad_length("RDNSS", offset, units, "an odd number of at least 3")
    _type, _length, _reserved, lifetime = _RDNSS.unpack_from(data, offset)
    first = offset + _RDNSS.size
    end = offset + units * OPTION_UNIT
    servers = tuple(
        IPv6Address(data[start : start + _ADDRESS_OCTETS])
        for start in range(first, end, _ADDRESS_OCTETS)
    )
    return RecursiveDnsServers(lifetime=lifetime, servers=servers)


_OPTION_DECODERS: Final[dict[int, Callable[[bytes, int, int], NdpOption]]] = {
    OptionType.SOURCE_LINK_LAYER_ADDRESS: _decode_source_lla,
    OptionType.TARGET_LINK_LAYER_ADDRESS: _decode_target_lla,
    OptionType.PREFIX_INFORMATION: _decode_prefix_information,
    OptionType.MTU: _decode_mtu,
    OptionType.ROUTE_INFORMATION: _decode_route_information,
    OptionType.RDNSS: _decode_rdnss,
}


# --- building -----------------------------------------------------------------------


def build_router_advertisement(ra: RouterAdvertisement) -> bytes:
    """Encode a Router Advertisement with a zero checksum; `NdpBuildError` if it cannot."""
    _check_field("cur_hop_limit", ra.cur_hop_limit, 8)
    _check_field("router_lifetime", ra.router_lifetime, 16)
    _check_field("reachable_time", ra.reachable_time, 32)
    _check_field("retrans_timer", ra.retrans_timer, 32)
    flags = (
        (_RA_MANAGED if ra.managed else 0)
        | (_RA_OTHER_CONFIG if ra.other_config else 0)
        | (_RA_HOME_AGENT if ra.home_agent else 0)
        | (ra.preference << _PREFERENCE_SHIFT)
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
    return header + _build_options(ra.options)


def build_router_solicitation(rs: RouterSolicitation) -> bytes:
    """Encode a Router Solicitation with a zero checksum; `NdpBuildError` if it cannot."""
    return _RS_HEADER.pack(ICMPV6_ROUTER_SOLICITATION, 0, 0, 0) + _build_options(rs.options)


def build_neighbor_solicitation(ns: NeighborSolicitation) -> bytes:
    """Encode a Neighbor Solicitation with a zero checksum; `NdpBuildError` if it cannot."""
    header = _NEIGHBOR_HEADER.pack(ICMPV6_NEIGHBOR_SOLICITATION, 0, 0, 0, ns.target.packed)
    return header + _build_options(ns.options)


def build_neighbor_advertisement(na: NeighborAdvertisement) -> bytes:
    """Encode a Neighbor Advertisement with a zero checksum (tests play the neighbour)."""
    flags = (
        (_NA_ROUTER if na.router else 0)
        | (_NA_SOLICITED if na.solicited else 0)
        | (_NA_OVERRIDE if na.override else 0)
    )
    header = _NEIGHBOR_HEADER.pack(ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0, flags, na.target.packed)
    return header + _build_options(na.options)


def _check_field(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise NdpBuildError(f"{name} {value} does not fit in {bits} unsigned bits")


def _build_options(options: tuple[NdpOption, ...]) -> bytes:
    return b"".join(_build_option(option) for option in options)


def _with_header(option_type: int, body: bytes) -> bytes:
    size = _OPTION_HEADER_SIZE + len(body)
    if size % OPTION_UNIT:
        raise NdpBuildError(
            f"option type {option_type}: {len(body)} octets after the header; "
            f"the option must be a multiple of {OPTION_UNIT} octets (header included)"
        )
    units = size // OPTION_UNIT
    if units > _MAX_OPTION_UNITS:
        raise NdpBuildError(f"option type {option_type} is longer than 255 units")
    return bytes((option_type, units)) + body


def _build_option(option: NdpOption) -> bytes:
    match option:
        case SourceLinkLayerAddress(address=address):
            return _with_header(OptionType.SOURCE_LINK_LAYER_ADDRESS, address)
        case TargetLinkLayerAddress(address=address):
            return _with_header(OptionType.TARGET_LINK_LAYER_ADDRESS, address)
        case PrefixInformation():
            _check_field("valid_lifetime", option.valid_lifetime, 32)
            _check_field("preferred_lifetime", option.preferred_lifetime, 32)
            flags = (
                (_PI_ON_LINK if option.on_link else 0)
                | (_PI_AUTONOMOUS if option.autonomous else 0)
                | (_PI_ROUTER_ADDRESS if option.router_address else 0)
            )
            return _PREFIX_INFORMATION.pack(
                OptionType.PREFIX_INFORMATION,
                _PREFIX_INFORMATION.size // OPTION_UNIT,
                option.prefix.prefixlen,
                flags,
                option.valid_lifetime,
                option.preferred_lifetime,
                0,
                option.prefix.network_address.packed,
            )
        case Mtu(mtu=mtu):
            _check_field("mtu", mtu, 32)
            return _MTU.pack(OptionType.MTU, _MTU.size // OPTION_UNIT, 0, mtu)
        case RouteInformation():
            _check_field("route_lifetime", option.route_lifetime, 32)
            units = _route_information_units(option.prefix.prefixlen)
            prefix_octets = (units - 1) * OPTION_UNIT
            head = _ROUTE_INFORMATION.pack(
                OptionType.ROUTE_INFORMATION,
                units,
                option.prefix.prefixlen,
                option.preference << _PREFERENCE_SHIFT,
                option.route_lifetime,
            )
            return head + option.prefix.network_address.packed[:prefix_octets]
        case RecursiveDnsServers():
            _check_field("lifetime", option.lifetime, 32)
            if not option.servers:
                raise NdpBuildError("an RDNSS option needs at least one server")
            units = 1 + 2 * len(option.servers)
            if units > _MAX_OPTION_UNITS:
                raise NdpBuildError(f"{len(option.servers)} servers do not fit in one option")
            head = _RDNSS.pack(OptionType.RDNSS, units, 0, option.lifetime)
            return head + b"".join(server.packed for server in option.servers)
        case UnknownOption(type=option_type, data=data):
            _check_field("option type", option_type, 8)
            return _with_header(option_type, data)
