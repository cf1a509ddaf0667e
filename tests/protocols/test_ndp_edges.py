"""NDP codec edges: written from the survivors of a mutation run (docs/mutation.md).
Each Neighbor Advertisement flag alone on the wire, and the field named when a Router
Advertisement cannot be encoded or a Neighbor Advertisement is too short.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv6Address

import pytest

from dynamic_prefix.protocols.ndp import (
    NdpBuildError,
    NdpParseError,
    NeighborAdvertisement,
    RouterAdvertisement,
    build_neighbor_advertisement,
    build_router_advertisement,
    parse_neighbor_advertisement,
    parse_router_advertisement,
    parse_router_solicitation,
)

TARGET = IPv6Address("2001:db8::3")


def flags_word(packet: bytes) -> int:
    (word,) = struct.unpack_from("!I", packet, 4)
    return int(word)


@pytest.mark.parametrize(
    ("router", "solicited", "override", "word"),
    [
        (False, False, False, 0),
        (True, False, False, 0x8000_0000),
        (False, True, False, 0x4000_0000),
        (False, False, True, 0x2000_0000),
        (True, True, True, 0xE000_0000),
    ],
)
def test_neighbor_advertisement_flags_are_the_top_three_bits_each_alone(
    router: bool, solicited: bool, override: bool, word: int
) -> None:
    advert = NeighborAdvertisement(
        target=TARGET, router=router, solicited=solicited, override=override
    )

    packet = build_neighbor_advertisement(advert)

    assert flags_word(packet) == word
    assert parse_neighbor_advertisement(packet) == advert


def test_neighbor_advertisement_shorter_than_its_header_says_how_long_it_is() -> None:
    with pytest.raises(NdpParseError) as error:
        parse_neighbor_advertisement(b"\x88\x00\x00\x00")

    assert error.value.detail == "4 octets; a Neighbor Advertisement has at least 24"


@pytest.mark.parametrize(
    ("parse", "data", "detail"),
    [
        (
            parse_router_advertisement,
            b"\x86\x00",
            "2 octets; a Router Advertisement has at least 16",
        ),
        (parse_router_solicitation, b"\x85\x00", "2 octets; a Router Solicitation has at least 8"),
        (parse_router_advertisement, bytes([135]) + bytes(15), "ICMPv6 type 135, expected 134"),
        (parse_router_advertisement, bytes([134, 1]) + bytes(14), "ICMPv6 code 1, expected 0"),
    ],
)
def test_malformed_router_messages_say_what_is_wrong(
    parse: Callable[[bytes], object], data: bytes, detail: str
) -> None:
    with pytest.raises(NdpParseError) as error:
        parse(data)

    assert error.value.detail == detail


@pytest.mark.parametrize(
    ("field", "value", "bits"),
    [
        ("cur_hop_limit", 256, 8),
        ("router_lifetime", 65536, 16),
        ("reachable_time", 1 << 32, 32),
        ("retrans_timer", 1 << 32, 32),
    ],
)
def test_router_advertisement_field_out_of_range_is_named(
    field: str, value: int, bits: int
) -> None:
    fields = {"cur_hop_limit": 64, "router_lifetime": 1800, field: value}
    ra = RouterAdvertisement(**fields)  # type: ignore[arg-type]

    with pytest.raises(
        NdpBuildError, match=f"^{field} {value} does not fit in {bits} unsigned bits$"
    ):
        build_router_advertisement(ra)
