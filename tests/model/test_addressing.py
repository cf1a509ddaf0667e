"""Prefix arithmetic: suffixes, ranges, exact CIDR covers, subnets, classification."""

from __future__ import annotations

import itertools
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamic_prefix.addressing import (
    AddressClass,
    AddressError,
    AddressRange,
    address_range,
    carve_subnet,
    classify,
    combine,
    parse_address,
    parse_prefix,
    parse_suffix,
    range_from_cidrs,
    subnet_count,
    suffix_of,
)

ALL_ONES = (1 << 128) - 1


# --- parsing -------------------------------------------------------------------------


def test_a_prefix_parsed_again_is_the_same_and_a_refused_one_is_refused_again() -> None:
    """parse_prefix remembers what it parsed: a status names the same prefixes each pass."""
    assert parse_prefix("2001:db8:1::/64") is parse_prefix("2001:db8:1::/64")
    for _ in range(2):
        with pytest.raises(AddressError, match="host bits set"):
            parse_prefix("2001:db8:1::1/64")
    with pytest.raises(AddressError, match="as a string"):
        parse_prefix(["2001:db8:1::/64"])  # type: ignore[arg-type]  # unhashable: no memo


def test_a_suffix_parsed_again_is_the_same_and_a_refused_one_is_refused_again() -> None:
    """parse_suffix remembers what it parsed: each spec check reads the same range ends."""
    assert parse_suffix("::f000:0:0:0") == parse_suffix(" ::f000:0:0:0") == 0xF000 << 48
    for _ in range(2):
        with pytest.raises(AddressError, match="not a valid IPv6 address"):
            parse_suffix("::g")
        with pytest.raises(AddressError, match="is a prefix"):
            parse_suffix("::1/64")
    with pytest.raises(AddressError, match="as a string"):
        parse_suffix(["::1"])  # type: ignore[arg-type]  # unhashable: no memo
    with pytest.raises(AddressError, match="as a string"):
        parse_suffix(1)  # type: ignore[arg-type]  # an int is no suffix text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2001:db8:abcd:1::/64", IPv6Network("2001:db8:abcd:1::/64")),
        ("2001:db8:abcd::/56", IPv6Network("2001:db8:abcd::/56")),
        ("2001:db8:ab00::/40", IPv6Network("2001:db8:ab00::/40")),
        ("2001:db8:abcd:10::/60", IPv6Network("2001:db8:abcd:10::/60")),
        (" 2001:DB8::/32 ", IPv6Network("2001:db8::/32")),
    ],
)
def test_prefix_parses_in_any_rfc4291_form(text: str, expected: IPv6Network) -> None:
    assert parse_prefix(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2001:db8::1/64", "host bits set; the prefix is 2001:db8::/64"),
        ("2001:db8::", "no prefix length"),
        ("2001:db8::/129", "longer than 128"),
        ("2001:db8::/x", "is not a number"),
        ("2001:db8::/-1", "is not a number"),
        ("10.0.0.0/8", "not a valid IPv6 address"),
        ("2001:db8:::/64", "not a valid IPv6 address"),
        ("fe80::%eth0/64", "zone index"),
    ],
)
def test_malformed_prefix_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=message.replace("(", r"\(")):
        parse_prefix(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("::f000:0:0:0/64", "is a prefix"),
        ("::gggg", "not a valid IPv6 address"),
        ("", "not a valid IPv6 address"),
        ("fe80::1%eth0", "zone index"),
    ],
)
def test_malformed_address_is_refused(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        parse_address(text)


def test_non_string_input_is_refused_not_crashed() -> None:
    with pytest.raises(AddressError, match="as a string"):
        parse_address(42)  # type: ignore[arg-type]
    with pytest.raises(AddressError, match="as a string"):
        parse_prefix(None)  # type: ignore[arg-type]


# --- combining prefix and suffix -----------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "suffix", "expected"),
    [
        ("2001:db8:abcd:1::/64", "::f000:0:0:0", "2001:db8:abcd:1:f000::"),
        ("2001:db8:abcd:1::/64", "::ffff:ffff:ffff:ffff", "2001:db8:abcd:1:ffff:ffff:ffff:ffff"),
        ("2001:db8:abcd::/56", "::ff:0:0:0:1", "2001:db8:abcd:ff::1"),
        ("2001:db8:abc0::/44", "::f:ffff:0:0:0:0", "2001:db8:abcf:ffff::"),
        ("2001:db8:ab00::/40", "::ff:ffff:0:0:0:0", "2001:db8:abff:ffff::"),
        ("2001:db8:abcd:4::/62", "::3:0:0:0:5", "2001:db8:abcd:7::5"),
        ("2001:db8:abcd:1:8000::/65", "::7fff:0:0:1", "2001:db8:abcd:1:ffff::1"),
        ("2001:db8:abcd:1::/112", "::ffff", "2001:db8:abcd:1::ffff"),
        ("2001:db8::1/128", "::", "2001:db8::1"),
    ],
)
def test_suffix_fills_exactly_the_host_bits(prefix: str, suffix: str, expected: str) -> None:
    assert combine(parse_prefix(prefix), parse_suffix(suffix)) == IPv6Address(expected)


@pytest.mark.parametrize(
    ("prefix", "suffix"),
    [
        ("2001:db8:abcd:1::/64", "::1:0:0:0:0"),  # bit 63 is inside the /64
        ("2001:db8:abcd:4::/62", "::4:0:0:0:0"),  # /62 leaves only two bits of the 4th group
        ("2001:db8::/32", "2001::"),  # a whole address is not a suffix
        ("2001:db8:abcd:1::/112", "::1:0"),
        ("2001:db8::1/128", "::1"),
    ],
)
def test_suffix_with_bits_inside_the_prefix_is_refused(prefix: str, suffix: str) -> None:
    with pytest.raises(AddressError, match="does not fit"):
        combine(parse_prefix(prefix), parse_suffix(suffix))


@given(st.integers(0, 128), st.integers(0, ALL_ONES), st.integers(0, ALL_ONES))
def test_combine_and_suffix_of_are_inverse(length: int, network: int, suffix: int) -> None:
    prefix = IPv6Network((network, length), strict=False)
    host = suffix & ((1 << (128 - length)) - 1)
    address = combine(prefix, host)
    assert address in prefix
    assert suffix_of(prefix, address) == host


# --- ranges and their exact CIDR covers ----------------------------------------------


def test_user_guide_range_is_one_slash_68() -> None:
    placed = address_range(
        parse_prefix("2001:db8:abcd:1::/64"),
        start_suffix=parse_suffix("::f000:0:0:0"),
        end_suffix=parse_suffix("::ffff:ffff:ffff:ffff"),
    )
    assert placed.cidrs() == (IPv6Network("2001:db8:abcd:1:f000::/68"),)
    assert placed.size == 1 << 60


@pytest.mark.parametrize(
    ("start", "end", "cidrs"),
    [
        ("::1", "::1", ["2001:db8::1/128"]),
        ("::1", "::2", ["2001:db8::1/128", "2001:db8::2/128"]),
        ("::0", "::ff", ["2001:db8::/120"]),
        ("::10", "::2f", ["2001:db8::10/124", "2001:db8::20/124"]),
        (
            "::1",
            "::6",
            ["2001:db8::1/128", "2001:db8::2/127", "2001:db8::4/127", "2001:db8::6/128"],
        ),
        ("::e000:0:0:0", "::efff:ffff:ffff:ffff", ["2001:db8:0:0:e000::/68"]),
    ],
)
def test_range_is_covered_exactly_never_widened(start: str, end: str, cidrs: list[str]) -> None:
    placed = address_range(
        parse_prefix("2001:db8::/64"),
        start_suffix=parse_suffix(start),
        end_suffix=parse_suffix(end),
    )
    assert [str(c) for c in placed.cidrs()] == cidrs


def test_start_after_end_is_refused() -> None:
    with pytest.raises(AddressError, match="after"):
        address_range(parse_prefix("2001:db8::/64"), start_suffix=5, end_suffix=4)
    with pytest.raises(AddressError, match="after its end"):
        AddressRange(IPv6Address("2001:db8::5"), IPv6Address("2001:db8::4"))


def test_range_that_does_not_fit_the_prefix_is_refused() -> None:
    with pytest.raises(AddressError, match="does not fit"):
        address_range(
            parse_prefix("2001:db8::/80"),
            start_suffix=parse_suffix("::f000:0:0:0"),
            end_suffix=parse_suffix("::ffff:ffff:ffff:ffff"),
        )


@st.composite
def ranges(draw: st.DrawFn) -> AddressRange:
    start = draw(st.integers(0, ALL_ONES))
    # sizes spread over every magnitude, not only huge ones
    size_bits = draw(st.integers(0, 128))
    end = min(ALL_ONES, start + draw(st.integers(0, (1 << size_bits) - 1)))
    return AddressRange(IPv6Address(start), IPv6Address(end))


@given(ranges())
def test_range_to_cidrs_to_range_round_trips(placed: AddressRange) -> None:
    assert range_from_cidrs(placed.cidrs()) == placed


@given(ranges())
def test_cidrs_cover_the_range_exactly_without_overlap(placed: AddressRange) -> None:
    cidrs = placed.cidrs()
    assert sum(c.num_addresses for c in cidrs) == placed.size
    ordered = sorted(cidrs, key=lambda c: int(c.network_address))
    assert ordered[0].network_address == placed.start
    assert ordered[-1].broadcast_address == placed.end
    for before, after in itertools.pairwise(ordered):
        assert int(before.broadcast_address) + 1 == int(after.network_address)
    assert len(cidrs) <= 2 * 128  # the minimal cover of any range has at most 2 per bit


def fewest_blocks(first: int, last: int) -> int:
    """The fewest aligned power-of-two blocks whose union is exactly ``first`` .. ``last``,
    by brute force: CIDR blocks nest or are disjoint, so a fewest cover is a tiling, and
    ``fewest[x]`` is one block starting at ``x`` plus the fewest tiling the rest."""
    stop = last + 1
    fewest = {stop: 0}
    for x in range(last, first - 1, -1):
        choices = []
        size = 1  # a larger block is aligned only if this one is, fits only if this one does
        while x % size == 0 and x + size <= stop:
            choices.append(1 + fewest[x + size])
            size *= 2
        fewest[x] = min(choices)
    return fewest[first]


def test_fewest_blocks_counts_by_hand() -> None:
    assert fewest_blocks(0, 0) == 1
    assert fewest_blocks(0, 255) == 1
    assert fewest_blocks(1, 254) == 14  # 1, 2/127, 4/126, ..., 128/... and back down
    assert fewest_blocks(3, 4) == 2


SMALL = IPv6Network("2001:db8::ff00/122")  # 64 addresses: every range is checked


def test_cidrs_are_the_fewest_for_every_range_inside_a_slash_122() -> None:
    base = int(SMALL.network_address)
    for first, last in itertools.combinations_with_replacement(range(SMALL.num_addresses), 2):
        placed = AddressRange(IPv6Address(base + first), IPv6Address(base + last))
        assert len(placed.cidrs()) == fewest_blocks(base + first, base + last), placed


@given(st.integers(0, (1 << 120) - 1), st.integers(0, 255), st.integers(0, 255))
def test_cidrs_are_the_fewest_inside_any_slash_120(network: int, a: int, b: int) -> None:
    base = network << 8
    first, last = base + min(a, b), base + max(a, b)
    placed = AddressRange(IPv6Address(first), IPv6Address(last))
    assert len(placed.cidrs()) == fewest_blocks(first, last)


def test_cidrs_with_a_gap_or_overlap_are_not_a_range() -> None:
    with pytest.raises(AddressError, match="not adjacent"):
        range_from_cidrs([IPv6Network("2001:db8::/127"), IPv6Network("2001:db8::4/127")])
    with pytest.raises(AddressError, match="not adjacent"):
        range_from_cidrs([IPv6Network("2001:db8::/126"), IPv6Network("2001:db8::2/127")])
    with pytest.raises(AddressError, match="no CIDRs"):
        range_from_cidrs([])


# --- subnets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delegated", "offset", "length", "expected"),
    [
        ("2001:db8:abcd::/56", 0, 64, "2001:db8:abcd::/64"),
        ("2001:db8:abcd::/56", 1, 64, "2001:db8:abcd:1::/64"),
        ("2001:db8:abcd::/56", 255, 64, "2001:db8:abcd:ff::/64"),
        ("2001:db8:abcd::/56", 3, 60, "2001:db8:abcd:30::/60"),
        ("2001:db8:ab00::/40", 0x1FF, 56, "2001:db8:ab01:ff00::/56"),
        ("2001:db8:abcd:1::/64", 0, 64, "2001:db8:abcd:1::/64"),
        ("2001:db8:abcd:1::/64", 2, 120, "2001:db8:abcd:1::200/120"),
        ("2001:db8:abcd:4::/62", 3, 64, "2001:db8:abcd:7::/64"),
        ("2001:db8:abcd::/56", 1, 57, "2001:db8:abcd:80::/57"),
    ],
)
def test_subnet_is_the_offset_th_of_its_length(
    delegated: str, offset: int, length: int, expected: str
) -> None:
    subnet = carve_subnet(parse_prefix(delegated), offset=offset, prefix_length=length)
    assert subnet == IPv6Network(expected)


def test_offset_past_the_last_subnet_is_refused_with_the_count() -> None:
    with pytest.raises(AddressError, match=r"holds 256 /64 subnets \(offsets 0 to 255\)"):
        carve_subnet(parse_prefix("2001:db8:abcd::/56"), offset=256, prefix_length=64)


def test_subnet_larger_than_the_delegation_is_refused() -> None:
    with pytest.raises(AddressError, match="larger than the /56"):
        carve_subnet(parse_prefix("2001:db8:abcd::/56"), offset=0, prefix_length=48)


def test_negative_offset_and_impossible_length_are_refused() -> None:
    with pytest.raises(AddressError, match="negative"):
        carve_subnet(parse_prefix("2001:db8:abcd::/56"), offset=-1, prefix_length=64)
    with pytest.raises(AddressError, match="between 0 and 128"):
        carve_subnet(parse_prefix("2001:db8:abcd::/56"), offset=0, prefix_length=129)


@given(st.integers(40, 64), st.integers(0, 24), st.data())
def test_subnets_tile_the_delegation_without_overlap(
    delegated_length: int, extra: int, data: st.DataObject
) -> None:
    delegated = IPv6Network(("2001:db8::", delegated_length), strict=False)
    length = min(128, delegated_length + extra)
    count = subnet_count(delegated, length)
    first = data.draw(st.integers(0, count - 1))
    second = data.draw(st.integers(0, count - 1))
    a = carve_subnet(delegated, offset=first, prefix_length=length)
    b = carve_subnet(delegated, offset=second, prefix_length=length)
    assert a.subnet_of(delegated)
    assert b.subnet_of(delegated)
    assert (a == b) == (first == second)
    assert a.overlaps(b) == (first == second)


# --- classification ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2001:db8:abcd:1::/64", AddressClass.GLOBAL_UNICAST),
        ("2a00::/12", AddressClass.GLOBAL_UNICAST),
        ("3fff:ffff::/32", AddressClass.GLOBAL_UNICAST),
        ("fd12:3456:789a:1::/64", AddressClass.UNIQUE_LOCAL),
        ("fc00::/7", AddressClass.UNIQUE_LOCAL),
        ("fe80::/64", AddressClass.LINK_LOCAL),
        ("febf:ffff::/32", AddressClass.LINK_LOCAL),
        ("ff02::/16", AddressClass.MULTICAST),
        ("::1/128", AddressClass.LOOPBACK),
        ("::/128", AddressClass.UNSPECIFIED),
        ("::ffff:192.0.2.0/120", AddressClass.IPV4_MAPPED),
        ("::/0", AddressClass.RESERVED),
        ("4000::/3", AddressClass.RESERVED),
        ("fec0::/10", AddressClass.RESERVED),  # deprecated site-local
        ("1fff::/16", AddressClass.RESERVED),
        ("::/2", AddressClass.RESERVED),  # straddles 2000::/3 and the blocks below it
    ],
)
def test_prefix_class(value: str, expected: AddressClass) -> None:
    assert classify(IPv6Network(value)) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2001:db8::1", AddressClass.GLOBAL_UNICAST),
        ("fe80::1", AddressClass.LINK_LOCAL),
        ("fd00::1", AddressClass.UNIQUE_LOCAL),
        ("ff02::1", AddressClass.MULTICAST),
        ("::", AddressClass.UNSPECIFIED),
        ("::1", AddressClass.LOOPBACK),
        ("::ffff:10.0.0.1", AddressClass.IPV4_MAPPED),
    ],
)
def test_address_class(value: str, expected: AddressClass) -> None:
    assert classify(IPv6Address(value)) is expected
