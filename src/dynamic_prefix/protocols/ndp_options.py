"""Neighbor Discovery options as values, and the wire form of an option list.

The lower layer of the NDP codec (option layouts of RFC 4861 section 4.6, RFC 4191 section
2.3 and RFC 8106 section 5.1): `dynamic_prefix.protocols.ndp` frames the four messages on
top of it and re-exports every public name defined here, so import them from there. The
codec's errors live here because option parsing and building are the first to raise them;
`NdpDropReason` also names the message-level and receiver checks, so one counter covers
every dropped packet.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import Final, TypeAlias

__all__ = [
    "INFINITE_LIFETIME",
    "OPTION_UNIT",
    "Mtu",
    "NdpBuildError",
    "NdpDropReason",
    "NdpOption",
    "NdpParseError",
    "OptionType",
    "PrefixInformation",
    "RecursiveDnsServers",
    "RouteInformation",
    "RouterPreference",
    "SourceLinkLayerAddress",
    "TargetLinkLayerAddress",
    "UnknownOption",
    "build_options",
    "check_field",
    "parse_options",
    "preference_bits",
    "preference_of",
]

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


# --- wire layouts -------------------------------------------------------------------

_OPTION_HEADER_SIZE = 2  # type, length
_PREFIX_INFORMATION = struct.Struct("!BBBBIII16s")  # 32 octets: 4 units
_MTU = struct.Struct("!BBHI")  # type, length, reserved, MTU: 1 unit
_ROUTE_INFORMATION = struct.Struct("!BBBBI")  # type, length, prefix length, flags, lifetime
_RDNSS = struct.Struct("!BBHI")  # type, length, reserved, lifetime

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


def preference_of(flags: int) -> RouterPreference:
    """The Prf field in the flags octet of an RA or a Route Information option (RFC 4191)."""
    return _PREFERENCES[(flags >> _PREFERENCE_SHIFT) & _PREFERENCE_MASK]


def preference_bits(preference: RouterPreference) -> int:
    """``preference`` shifted to where `preference_of` reads it."""
    return preference << _PREFERENCE_SHIFT


# --- parsing ------------------------------------------------------------------------


def parse_options(data: bytes, offset: int) -> tuple[NdpOption, ...]:
    """The options from ``offset`` to the end of ``data``; raises `NdpParseError`."""
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
        preference=preference_of(flags),
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


def check_field(name: str, value: int, bits: int) -> None:
    """Raise `NdpBuildError` unless ``value`` fits an unsigned field of ``bits`` bits."""
    if not 0 <= value < (1 << bits):
        raise NdpBuildError(f"{name} {value} does not fit in {bits} unsigned bits")


def build_options(options: tuple[NdpOption, ...]) -> bytes:
    """The wire form of an option list, in order; raises `NdpBuildError`."""
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
            check_field("valid_lifetime", option.valid_lifetime, 32)
            check_field("preferred_lifetime", option.preferred_lifetime, 32)
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
            check_field("mtu", mtu, 32)
            return _MTU.pack(OptionType.MTU, _MTU.size // OPTION_UNIT, 0, mtu)
        case RouteInformation():
            check_field("route_lifetime", option.route_lifetime, 32)
            units = _route_information_units(option.prefix.prefixlen)
            prefix_octets = (units - 1) * OPTION_UNIT
            head = _ROUTE_INFORMATION.pack(
                OptionType.ROUTE_INFORMATION,
                units,
                option.prefix.prefixlen,
                preference_bits(option.preference),
                option.route_lifetime,
            )
            return head + option.prefix.network_address.packed[:prefix_octets]
        case RecursiveDnsServers():
            check_field("lifetime", option.lifetime, 32)
            if not option.servers:
                raise NdpBuildError("an RDNSS option needs at least one server")
            units = 1 + 2 * len(option.servers)
            if units > _MAX_OPTION_UNITS:
                raise NdpBuildError(f"{len(option.servers)} servers do not fit in one option")
            head = _RDNSS.pack(OptionType.RDNSS, units, 0, option.lifetime)
            return head + b"".join(server.packed for server in option.servers)
        case UnknownOption(type=option_type, data=data):
            check_field("option type", option_type, 8)
            return _with_header(option_type, data)
