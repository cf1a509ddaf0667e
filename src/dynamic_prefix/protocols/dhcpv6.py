"""DHCPv6 messages and the options a prefix-delegation client needs, as values and bytes.

Wire formats are those of RFC 8415: the client/server message layout (section 8), DUIDs
(section 11), option layouts (section 21) and the message, option and status code numbers
(section 24). `parse_message` and `build_message` are paired: ``parse_message(build_message
(m)) == m`` for every message the parser accepts. The parser is strict: every declared
length is checked against the bytes that are left, fixed-size options must have exactly
their size, IA_PD and IA Prefix options may only appear where RFC 8415 puts them (which also
bounds the nesting depth), and any bad input raises `Dhcpv6ParseError` and nothing else.
Options the client has no use for are kept as `UnknownOption` rather than rejected.

The builder encodes whatever fits each field, including values the parser refuses (a prefix
length of 200, an empty DUID), so that tests can make any packet; it raises
`Dhcpv6BuildError` only for a value that cannot be written at all.

This module frames messages and DUIDs; the option values and their wire form are in
`dynamic_prefix.protocols.dhcpv6_options`, re-exported here with the codec's errors.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import TypeVar

from dynamic_prefix.protocols.dhcpv6_options import (
    INFINITY,
    MAX_DUID_LENGTH,
    MIN_DUID_LENGTH,
    ClientIdOption,
    Dhcpv6BuildError,
    Dhcpv6ParseError,
    ElapsedTimeOption,
    IaPdOption,
    IaPrefixOption,
    Option,
    OptionCode,
    OptionRequestOption,
    ParseErrorReason,
    PreferenceOption,
    RapidCommitOption,
    ReconfigureAcceptOption,
    ServerIdOption,
    SolMaxRtOption,
    StatusCode,
    StatusCodeOption,
    UnknownOption,
    build_options,
    check_range,
    first_option,
    parse_options,
)

__all__ = [
    "DUID_TIME_EPOCH",
    "HARDWARE_TYPE_ETHERNET",
    "INFINITY",
    "ClientIdOption",
    "Dhcpv6BuildError",
    "Dhcpv6ParseError",
    "Duid",
    "DuidLl",
    "DuidLlt",
    "DuidType",
    "ElapsedTimeOption",
    "IaPdOption",
    "IaPrefixOption",
    "Message",
    "MessageType",
    "Option",
    "OptionCode",
    "OptionRequestOption",
    "ParseErrorReason",
    "PreferenceOption",
    "RapidCommitOption",
    "ReconfigureAcceptOption",
    "ServerIdOption",
    "SolMaxRtOption",
    "StatusCode",
    "StatusCodeOption",
    "UnknownDuid",
    "UnknownOption",
    "build_duid",
    "build_message",
    "parse_duid",
    "parse_message",
]

DUID_TIME_EPOCH = 946_684_800
"""Midnight UTC, 1 January 2000, in Unix seconds: DUID-LLT counts time from here."""

HARDWARE_TYPE_ETHERNET = 1
"""IANA ARP hardware type of Ethernet, the usual DUID-LL/DUID-LLT hardware type."""

_UINT16 = 0xFFFF
_UINT24 = 0xFFFFFF
_UINT32 = 0xFFFFFFFF
_U16 = struct.Struct("!H")


class MessageType(enum.IntEnum):
    """Client/server message types (RFC 8415 section 7.3); relay messages are not handled."""

    SOLICIT = 1
    ADVERTISE = 2
    REQUEST = 3
    CONFIRM = 4
    RENEW = 5
    REBIND = 6
    REPLY = 7
    RELEASE = 8
    DECLINE = 9
    RECONFIGURE = 10
    INFORMATION_REQUEST = 11


class DuidType(enum.IntEnum):
    """DUID types (RFC 8415 section 11.1)."""

    LLT = 1
    EN = 2
    LL = 3
    UUID = 4


_O = TypeVar("_O")


@dataclass(frozen=True, slots=True)
class Message:
    """A client/server message: type, 24-bit transaction id and options, in wire order."""

    msg_type: MessageType
    transaction_id: int
    options: tuple[Option, ...] = ()

    def find(self, kind: type[_O]) -> _O | None:
        """The first top-level option of type ``kind``."""
        return first_option(self.options, kind)

    def find_all(self, kind: type[_O]) -> tuple[_O, ...]:
        """Every top-level option of type ``kind``, in order."""
        return tuple(option for option in self.options if isinstance(option, kind))


# --- Parsing and building --------------------------------------------------------------


def parse_message(data: bytes) -> Message:
    """The message in ``data`` (one UDP payload); raises `Dhcpv6ParseError` if malformed."""
    if len(data) < 4:
        raise Dhcpv6ParseError(
            ParseErrorReason.TRUNCATED_HEADER, f"{len(data)} bytes, a message needs at least 4"
        )
    try:
        msg_type = MessageType(data[0])
    except ValueError:
        raise Dhcpv6ParseError(
            ParseErrorReason.UNKNOWN_MESSAGE_TYPE, f"message type {data[0]}"
        ) from None
    transaction_id = int.from_bytes(data[1:4], "big")
    return Message(msg_type, transaction_id, parse_options(data, 4, len(data)))


def build_message(message: Message) -> bytes:
    """The wire form of ``message``; raises `Dhcpv6BuildError` for unencodable values."""
    check_range(message.msg_type, 0xFF, "message type")
    check_range(message.transaction_id, _UINT24, "transaction id")
    return (
        bytes((message.msg_type,))
        + message.transaction_id.to_bytes(3, "big")
        + build_options(message.options)
    )


# --- DUIDs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DuidLlt:
    """DUID-LLT: hardware type, time (seconds since `DUID_TIME_EPOCH`, mod 2**32), address."""

    hardware_type: int
    time: int
    link_layer_address: bytes


@dataclass(frozen=True, slots=True)
class DuidLl:
    """DUID-LL: hardware type and link-layer address (for Ethernet, the MAC)."""

    hardware_type: int
    link_layer_address: bytes


@dataclass(frozen=True, slots=True)
class UnknownDuid:
    """Any other DUID type (DUID-EN, DUID-UUID, future ones), kept verbatim."""

    duid_type: int
    data: bytes


Duid = DuidLlt | DuidLl | UnknownDuid

_DUID_LLT_FIXED = struct.Struct("!HHI")
_DUID_LL_FIXED = struct.Struct("!HH")
_ETHERNET_ADDRESS_LENGTH = 6


def parse_duid(data: bytes) -> Duid:
    """The DUID in ``data``; raises `Dhcpv6ParseError` (reason ``BAD_DUID``) if malformed."""
    if not MIN_DUID_LENGTH <= len(data) <= MAX_DUID_LENGTH:
        raise Dhcpv6ParseError(
            ParseErrorReason.BAD_DUID,
            f"{len(data)} bytes, a DUID is {MIN_DUID_LENGTH} to {MAX_DUID_LENGTH} bytes",
        )
    duid_type = _U16.unpack_from(data, 0)[0]
    if duid_type == DuidType.LLT:
        if len(data) <= _DUID_LLT_FIXED.size:
            raise Dhcpv6ParseError(ParseErrorReason.BAD_DUID, "DUID-LLT without an address")
        _, hardware_type, time = _DUID_LLT_FIXED.unpack_from(data, 0)
        address = bytes(data[_DUID_LLT_FIXED.size :])
        _check_link_layer_address(hardware_type, address)
        return DuidLlt(hardware_type, time, address)
    if duid_type == DuidType.LL:
        if len(data) <= _DUID_LL_FIXED.size:
            raise Dhcpv6ParseError(ParseErrorReason.BAD_DUID, "DUID-LL without an address")
        _, hardware_type = _DUID_LL_FIXED.unpack_from(data, 0)
        address = bytes(data[_DUID_LL_FIXED.size :])
        _check_link_layer_address(hardware_type, address)
        return DuidLl(hardware_type, address)
    return UnknownDuid(duid_type, bytes(data[2:]))


def _check_link_layer_address(hardware_type: int, address: bytes) -> None:
    if hardware_type == HARDWARE_TYPE_ETHERNET and len(address) != _ETHERNET_ADDRESS_LENGTH:
        raise Dhcpv6ParseError(
            ParseErrorReason.BAD_DUID,
            f"Ethernet link-layer address of {len(address)} bytes, expected 6",
        )


def build_duid(duid: Duid) -> bytes:
    """The wire form of ``duid`` (what goes in a Client Identifier option)."""
    match duid:
        case DuidLlt(hardware_type=hardware_type, time=time, link_layer_address=address):
            check_range(hardware_type, _UINT16, "hardware type")
            check_range(time, _UINT32, "DUID time")
            encoded = _DUID_LLT_FIXED.pack(DuidType.LLT, hardware_type, time) + address
        case DuidLl(hardware_type=hardware_type, link_layer_address=address):
            check_range(hardware_type, _UINT16, "hardware type")
            encoded = _DUID_LL_FIXED.pack(DuidType.LL, hardware_type) + address
        case UnknownDuid(duid_type=duid_type, data=data):
            check_range(duid_type, _UINT16, "DUID type")
            encoded = _U16.pack(duid_type) + data
    if not MIN_DUID_LENGTH <= len(encoded) <= MAX_DUID_LENGTH:
        raise Dhcpv6BuildError(
            f"a DUID is {MIN_DUID_LENGTH} to {MAX_DUID_LENGTH} bytes, this one is {len(encoded)}"
        )
    return encoded
