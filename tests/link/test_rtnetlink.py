"""The route netlink messages decoded by hand, as the kernel sends them."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv6Network

import pytest

from dynamic_prefix.link.rtnetlink import (
    PrefixMessage,
    link_message_mentions,
    parse_prefix_message,
)

P1 = IPv6Network("2001:db8:1::/64")


def prefix_message(
    *, ifindex: int = 7, length: int = 64, flags: int = 0xC0, attributes: bytes | None = None
) -> bytes:
    """An RTM_NEWPREFIX as the kernel sends it: nlmsghdr, prefixmsg, attributes.

    The flags are the Prefix Information option's octet (L 0x80, A 0x40), as captured.
    """
    if attributes is None:
        address = IPv6Network("2001:db8:1::/64").network_address.packed
        attributes = struct.pack("=HH", 20, 1) + address + struct.pack("=HHII", 12, 2, 1800, 3600)
    body = struct.pack("=BxxxiBBBx", socket.AF_INET6, ifindex, 3, length, flags) + attributes
    return struct.pack("=IHHII", 16 + len(body), 52, 0, 0, 0) + body


def test_prefix_message_as_captured_from_the_kernel_is_decoded() -> None:
    # prefixmsg of an RTM_NEWPREFIX for an on-link-only /64 on interface 257.
    captured = bytes.fromhex("0a 000000 01010000 03 40 80 00")  # family, pads, index, type, /64, L
    message = prefix_message(ifindex=257, flags=0x80)
    assert message[16:28] == captured
    decoded = parse_prefix_message(message)
    assert decoded is not None
    assert (decoded.ifindex, decoded.on_link, decoded.autonomous) == (257, True, False)


def test_prefix_message_is_decoded() -> None:
    assert parse_prefix_message(prefix_message()) == PrefixMessage(
        ifindex=7,
        prefix=P1,
        on_link=True,
        autonomous=True,
        preferred_lifetime=1800,
        valid_lifetime=3600,
    )


@pytest.mark.parametrize(
    "message",
    [
        prefix_message()[:20],  # cut in the prefixmsg
        prefix_message(length=129),
        prefix_message(attributes=struct.pack("=HH", 20, 1) + bytes(16)),  # no lifetimes
        prefix_message(attributes=struct.pack("=HH", 40, 1) + bytes(16)),  # overlong
        prefix_message(attributes=struct.pack("=HH", 2, 1)),  # shorter than its header
    ],
    ids=["truncated", "length-129", "no-cacheinfo", "attribute-overflow", "attribute-too-short"],
)
def test_malformed_prefix_message_is_none(message: bytes) -> None:
    assert parse_prefix_message(message) is None


def link_message(*, kind: int = 16, index: int = 9, name: bytes | None = b"eth0\0") -> bytes:
    """An RTM_NEWLINK (16) or RTM_DELLINK (17): nlmsghdr, ifinfomsg, maybe IFLA_IFNAME."""
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 1, index, 0, 0)
    if name is not None:
        attribute = struct.pack("=HH", 4 + len(name), 3) + name
        body += attribute + bytes(-len(attribute) % 4)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_a_link_message_mentions_its_interface_by_index_or_by_name() -> None:
    assert link_message_mentions(link_message(), "eth0", None)
    assert link_message_mentions(link_message(kind=17, name=None), "eth1", 9)
    assert not link_message_mentions(link_message(), "eth1", 8)
    assert not link_message_mentions(link_message(kind=20), "eth0", 9)  # an address message


def test_every_message_of_a_datagram_is_looked_at() -> None:
    datagram = link_message(index=3, name=b"lo\0") + link_message(index=9, name=b"eth0\0")
    assert link_message_mentions(datagram, "eth0", None)


def test_a_link_message_not_understood_counts_as_mentioning_it() -> None:
    assert link_message_mentions(link_message()[:-4], "eth1", 8)  # cut short
