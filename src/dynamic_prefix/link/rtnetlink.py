"""Route netlink numbers, and the messages decoded here rather than by pyroute2.

The RA listener reads raw link events (`link_message_mentions`) without pyroute2's cost
per message, and pyroute2 has no decoder for ``RTM_NEWPREFIX`` (`parse_prefix_message`).
Both parsers are pure: they take the octets of a netlink datagram.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv6Network
from typing import Final

# Multicast groups, <linux/rtnetlink.h>.
RTMGRP_LINK: Final = 0x1
"""Link changes: created, renamed, up, down, deleted."""
RTMGRP_IPV6_IFADDR: Final = 0x100
RTMGRP_IPV6_PREFIX: Final = 0x20000

# Message types, <linux/rtnetlink.h>.
RTM_NEWLINK: Final = 16
RTM_DELLINK: Final = 17
RTM_NEWADDR: Final = 20
RTM_DELADDR: Final = 21
RTM_NEWPREFIX: Final = 52

# Address scopes and flags, <linux/rtnetlink.h> and <linux/if_addr.h>; /proc/net/if_inet6
# shows the same values.
RT_SCOPE_UNIVERSE: Final = 0
"""The scope of a global address."""
RT_SCOPE_LINK: Final = 0x20
IFA_F_OPTIMISTIC: Final = 0x04
"""Usable during duplicate address detection (RFC 4429)."""
IFA_F_DADFAILED: Final = 0x08
IFA_F_TENTATIVE: Final = 0x40
"""Not usable as a source while duplicate address detection runs."""
IFA_F_PERMANENT: Final = 0x80
"""Configured by hand, not by SLAAC or DHCPv6."""

IFLA_IFNAME: Final = 3
"""The link attribute holding the interface name, <linux/if_link.h>."""
PREFIX_ADDRESS: Final = 1
PREFIX_CACHEINFO: Final = 2
"""Attributes of an ``RTM_NEWPREFIX``, <linux/rtnetlink.h>."""

# prefixmsg.prefix_flags holds the Prefix Information flags as on the wire (RFC 4861
# section 4.6.2): the kernel copies the option's flag octet, not the IF_PREFIX_* values.
PREFIX_ON_LINK: Final = 0x80
PREFIX_AUTONOMOUS: Final = 0x40

NLMSGHDR: Final = struct.Struct("=IHHII")  # length, type, flags, sequence, port
IFINFOMSG: Final = struct.Struct("=BxHiII")  # family, type, index, flags, change
PREFIXMSG: Final = struct.Struct("=BxxxiBBBx")  # family, pads, ifindex, type, length, flags, pad
RTATTR: Final = struct.Struct("=HH")  # length, type
PREFIX_CACHEINFO_LAYOUT: Final = struct.Struct("=II")  # preferred, valid


def _aligned(length: int) -> int:
    """Netlink messages and attributes are padded to 4 octets."""
    return (length + 3) & ~3


def link_message_mentions(data: bytes, interface: str, ifindex: int | None) -> bool:
    """Whether route netlink ``data`` holds a link message about ``interface``/``ifindex``.

    Also True when ``data`` cannot be understood: the caller then looks for itself.
    """
    name = interface.encode()
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, _flags, _sequence, _port = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            return True
        body = offset + NLMSGHDR.size
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= NLMSGHDR.size + IFINFOMSG.size:
            _family, _type, index, _ifflags, _change = IFINFOMSG.unpack_from(data, body)
            if index == ifindex:
                return True
            attribute = body + IFINFOMSG.size
            end = offset + length
            while attribute + RTATTR.size <= end:
                attribute_length, attribute_type = RTATTR.unpack_from(data, attribute)
                if attribute_length < RTATTR.size:
                    break
                if attribute_type == IFLA_IFNAME:
                    value = data[attribute + RTATTR.size : attribute + attribute_length]
                    if value.rstrip(b"\0") == name:
                        return True
                attribute += _aligned(attribute_length)
        offset += _aligned(length)
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixMessage:
    """An ``RTM_NEWPREFIX``: a Prefix Information option the kernel accepted from an RA.

    Lifetimes are seconds as the router sent them,
    `dynamic_prefix.protocols.ndp.INFINITE_LIFETIME` for ever.
    """

    ifindex: int
    prefix: IPv6Network
    on_link: bool
    autonomous: bool
    preferred_lifetime: int
    valid_lifetime: int


def parse_prefix_message(message: bytes) -> PrefixMessage | None:
    """Decode an ``RTM_NEWPREFIX`` netlink message (header included); None if malformed.

    Layout: ``struct nlmsghdr``, ``struct prefixmsg`` (12 octets, <linux/rtnetlink.h>),
    then attributes ``PREFIX_ADDRESS`` (16 octets) and ``PREFIX_CACHEINFO`` (preferred and
    valid lifetime, 32 bits each).
    """
    body = NLMSGHDR.size
    if len(message) < body + PREFIXMSG.size:
        return None
    family, ifindex, _type, length, flags = PREFIXMSG.unpack_from(message, body)
    if family != socket.AF_INET6 or length > 128:
        return None
    address: bytes | None = None
    lifetimes: tuple[int, int] | None = None
    offset = body + PREFIXMSG.size
    while offset + RTATTR.size <= len(message):
        attribute_length, attribute_type = RTATTR.unpack_from(message, offset)
        if attribute_length < RTATTR.size or offset + attribute_length > len(message):
            return None
        value = message[offset + RTATTR.size : offset + attribute_length]
        if attribute_type == PREFIX_ADDRESS and len(value) == 16:
            address = value
        elif attribute_type == PREFIX_CACHEINFO and len(value) == PREFIX_CACHEINFO_LAYOUT.size:
            preferred, valid = PREFIX_CACHEINFO_LAYOUT.unpack(value)
            lifetimes = (preferred, valid)
        offset += _aligned(attribute_length)
    if address is None or lifetimes is None:
        return None
    return PrefixMessage(
        ifindex=ifindex,
        prefix=IPv6Network((address, length), strict=False),
        on_link=bool(flags & PREFIX_ON_LINK),
        autonomous=bool(flags & PREFIX_AUTONOMOUS),
        preferred_lifetime=lifetimes[0],
        valid_lifetime=lifetimes[1],
    )
