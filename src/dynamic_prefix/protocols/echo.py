"""Sans-IO codec for ICMPv6 Echo Request and Echo Reply (RFC 4443 sections 4.1 and 4.2).

`doctor --probe` sends one Echo Request to all nodes on the link (ff02::1) and learns who
answers from which address. As with the Neighbor Discovery codec, the checksum is left at
zero for the kernel to fill on a raw ICMPv6 socket, and was verified by the kernel on
receipt.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

ICMPV6_ECHO_REQUEST: Final = 128
ICMPV6_ECHO_REPLY: Final = 129

_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence number


class EchoParseError(ValueError):
    """Not an Echo Reply."""


@dataclass(frozen=True, slots=True)
class Echo:
    """An Echo Request or Reply: the identifier and sequence tie a reply to its request."""

    identifier: int
    sequence: int
    data: bytes = b""


def build_echo_request(echo: Echo) -> bytes:
    """Encode an Echo Request with a zero checksum; ValueError if a field does not fit."""
    for name, value in (("identifier", echo.identifier), ("sequence", echo.sequence)):
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{name} {value} does not fit in 16 unsigned bits")
    return _HEADER.pack(ICMPV6_ECHO_REQUEST, 0, 0, echo.identifier, echo.sequence) + echo.data


def parse_echo_reply(data: bytes) -> Echo:
    """Decode an Echo Reply; raises `EchoParseError` and nothing else."""
    if len(data) < _HEADER.size:
        raise EchoParseError(f"{len(data)} octets; an Echo Reply has at least {_HEADER.size}")
    icmp_type, code, _checksum, identifier, sequence = _HEADER.unpack_from(data)
    if (icmp_type, code) != (ICMPV6_ECHO_REPLY, 0):
        raise EchoParseError(f"ICMPv6 type {icmp_type} code {code}, expected an Echo Reply")
    return Echo(identifier, sequence, data[_HEADER.size :])
