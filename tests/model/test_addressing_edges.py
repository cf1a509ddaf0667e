"""Edges of the prefix arithmetic that mutation testing found untested (docs/mutation.md).

Each test names the mutant it kills: an error message that says nothing, a bound off by
one at /0 or /128 or at the all-ones suffix, and the two `AddressRange` helpers the
addressing tests never called.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network

import pytest

from dynamic_prefix.addressing import (
    AddressError,
    AddressRange,
    carve_subnet,
    combine,
    parse_address,
    parse_prefix,
    suffix_of,
)

ALL_ONES = (1 << 128) - 1
EVERYTHING = IPv6Network("::/0")


@pytest.mark.parametrize("parse", [parse_address, parse_prefix])
def test_non_string_input_names_its_type(parse: Callable[[str], object]) -> None:
    with pytest.raises(AddressError, match=r"as a string, got int$"):
        parse(42)  # type: ignore[arg-type]


def test_all_ones_suffix_fills_the_whole_address_under_slash_0() -> None:
    assert combine(EVERYTHING, ALL_ONES) == IPv6Address(ALL_ONES)
    assert combine(EVERYTHING, 0) == IPv6Address(0)


@pytest.mark.parametrize("suffix", [-1, ALL_ONES + 1])
def test_suffix_outside_128_bits_is_refused_with_its_value(suffix: int) -> None:
    with pytest.raises(AddressError, match=rf"suffix {suffix} is not a 128-bit value"):
        combine(EVERYTHING, suffix)


def test_address_outside_the_prefix_is_named_with_the_prefix() -> None:
    with pytest.raises(AddressError, match=r"2001:db8:1::1 is not inside 2001:db8::/48"):
        suffix_of(IPv6Network("2001:db8::/48"), IPv6Address("2001:db8:1::1"))


@pytest.mark.parametrize(
    ("delegated", "length", "expected"),
    [
        ("::/0", 0, "::/0"),  # the shortest length there is: the delegation itself
        ("2001:db8::/48", 48, "2001:db8::/48"),
        ("2001:db8::/127", 128, "2001:db8::/128"),  # the longest
    ],
)
def test_subnet_lengths_0_and_128_can_be_carved(delegated: str, length: int, expected: str) -> None:
    assert carve_subnet(IPv6Network(delegated), offset=0, prefix_length=length) == IPv6Network(
        expected
    )


@pytest.mark.parametrize(
    ("delegated", "length", "holds"),
    [
        ("2001:db8::/64", 64, "holds 1 /64 subnet (offsets 0 to 0)"),
        ("2001:db8::/63", 64, "holds 2 /64 subnets (offsets 0 to 1)"),
        ("2001:db8::/62", 64, "holds 4 /64 subnets (offsets 0 to 3)"),
    ],
)
def test_offset_past_the_end_says_how_many_in_good_english(
    delegated: str, length: int, holds: str
) -> None:
    network = IPv6Network(delegated)
    count = 1 << (length - network.prefixlen)
    with pytest.raises(AddressError) as caught:
        carve_subnet(network, offset=count, prefix_length=length)
    assert holds in str(caught.value)


START = IPv6Address("2001:db8::10")
END = IPv6Address("2001:db8::12")
SMALL = AddressRange(START, END)


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, ()),
        (1, (START,)),
        (3, (START, START + 1, END)),
        (4, (START, START + 1, END)),  # fewer if the range is smaller
    ],
)
def test_first_addresses_of_a_range(count: int, expected: tuple[IPv6Address, ...]) -> None:
    assert SMALL.first(count) == expected


@pytest.mark.parametrize(
    ("value", "inside"),
    [
        (START - 1, False),
        (START, True),
        (END, True),
        (END + 1, False),
        (str(START), False),  # only addresses are in a range
        (int(START), False),
    ],
)
def test_range_holds_its_ends_and_nothing_past_them(value: object, inside: bool) -> None:
    assert (value in SMALL) is inside


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2001:db8::", "2001:db8::ff", "2001:db8::/120"),  # exactly one CIDR
        ("2001:db8::7", "2001:db8::8", "2001:db8::/124"),  # straddles a /125 boundary
        ("2001:db8::5", "2001:db8::5", "2001:db8::5/128"),  # one address
        ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"),  # everything
    ],
)
def test_enclosing_cidr_is_the_smallest_single_block_holding_both_ends(
    start: str, end: str, expected: str
) -> None:
    enclosing = AddressRange(IPv6Address(start), IPv6Address(end)).enclosing()

    assert enclosing == IPv6Network(expected)
    # Smallest: neither half of it holds both ends.
    if enclosing.prefixlen < 128:
        for half in enclosing.subnets(prefixlen_diff=1):
            assert not (IPv6Address(start) in half and IPv6Address(end) in half)
