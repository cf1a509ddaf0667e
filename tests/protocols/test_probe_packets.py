"""Neighbor Solicitation/Advertisement and Echo packets used by `doctor --probe`.

The expected octets are written out by hand from RFC 4861 4.3/4.4 and RFC 4443 4.1/4.2.
"""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from dynamic_prefix.addressing import AddressRange
from dynamic_prefix.protocols.echo import Echo, EchoParseError, build_echo_request, parse_echo_reply
from dynamic_prefix.protocols.ndp import (
    NdpDropReason,
    NdpParseError,
    NeighborAdvertisement,
    NeighborSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    build_neighbor_advertisement,
    build_neighbor_solicitation,
    parse_neighbor_advertisement,
    solicited_node_multicast,
)

TARGET = IPv6Address("2001:db8:1:0:f000::3")
MAC = bytes.fromhex("020000000007")


def test_neighbor_solicitation_octets() -> None:
    packet = build_neighbor_solicitation(
        NeighborSolicitation(target=TARGET, options=(SourceLinkLayerAddress(MAC),))
    )
    assert packet == bytes.fromhex(
        "87 00 0000 00000000"  # type 135, code, checksum (kernel fills), reserved
        "20010db8 00010000 f0000000 00000003"  # target
        "01 01 020000000007"  # source link-layer address option, 1 unit
    )


def test_neighbor_advertisement_parses_flags_target_and_link_address() -> None:
    data = bytes.fromhex(
        "88 00 1234 60000000"  # type 136, checksum, flags S and O
        "20010db8 00010000 f0000000 00000003"
        "02 01 020000000007"  # target link-layer address option
    )
    advert = parse_neighbor_advertisement(data)
    assert advert == NeighborAdvertisement(
        target=TARGET,
        solicited=True,
        override=True,
        options=(TargetLinkLayerAddress(MAC),),
        checksum=0x1234,
    )
    assert advert.link_layer_address == MAC
    assert build_neighbor_advertisement(advert) == data[:2] + b"\0\0" + data[4:]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes.fromhex("88 00 0000 60000000"), NdpDropReason.TRUNCATED),
        (bytes.fromhex("87 00 0000 00000000") + TARGET.packed, NdpDropReason.BAD_TYPE),
        (bytes.fromhex("88 01 0000 00000000") + TARGET.packed, NdpDropReason.BAD_CODE),
        (
            bytes.fromhex("88 00 0000 00000000") + TARGET.packed + b"\2\0",
            NdpDropReason.TRAILING_GARBAGE,
        ),
        (
            bytes.fromhex("88 00 0000 00000000") + TARGET.packed + bytes(8),
            NdpDropReason.ZERO_LENGTH_OPTION,
        ),
    ],
)
def test_bad_neighbor_advertisements_are_refused_with_a_reason(
    data: bytes, reason: NdpDropReason
) -> None:
    with pytest.raises(NdpParseError) as caught:
        parse_neighbor_advertisement(data)
    assert caught.value.reason is reason


def test_solicited_node_multicast_keeps_the_low_24_bits() -> None:
    assert solicited_node_multicast(TARGET) == IPv6Address("ff02::1:ff00:3")
    assert solicited_node_multicast(IPv6Address("fe80::1234:5678")) == IPv6Address(
        "ff02::1:ff34:5678"
    )


def test_echo_request_octets_and_reply_parsing() -> None:
    assert build_echo_request(Echo(0xBEEF, 1, b"hi")) == bytes.fromhex("80 00 0000 beef 0001 6869")
    reply = parse_echo_reply(bytes.fromhex("81 00 abcd beef 0001 6869"))
    assert reply == Echo(0xBEEF, 1, b"hi")


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("81 00 0000 beef"),
        bytes.fromhex("80 00 0000 beef 0001"),
        bytes.fromhex("81 01 0000 beef 0001"),
    ],
)
def test_what_is_not_an_echo_reply_is_refused(data: bytes) -> None:
    with pytest.raises(EchoParseError):
        parse_echo_reply(data)


def test_echo_fields_must_fit() -> None:
    with pytest.raises(ValueError, match="identifier 65536"):
        build_echo_request(Echo(0x10000, 0))


def test_the_first_addresses_of_a_range() -> None:
    small = AddressRange(IPv6Address("2001:db8::f"), IPv6Address("2001:db8::11"))
    assert small.first(2) == (IPv6Address("2001:db8::f"), IPv6Address("2001:db8::10"))
    assert len(small.first(16)) == 3
    assert small.first(0) == ()
