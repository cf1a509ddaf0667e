"""What the router's DHCPv6 pool may use, given the ranges the operator reserves."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from dynamic_prefix.addressing import address_range, parse_prefix, parse_suffix
from dynamic_prefix.model.compute import ComputedRange, dhcpv6_pool_outside, odhcpd_host_id_bits

PREFIX = parse_prefix("2001:db8:abcd:1::/64")


def ranges(*spans: tuple[str, str]) -> tuple[ComputedRange, ...]:
    return tuple(
        ComputedRange(
            f"r{index}",
            address_range(PREFIX, start_suffix=parse_suffix(start), end_suffix=parse_suffix(end)),
        )
        for index, (start, end) in enumerate(spans)
    )


def shown(span: tuple[int, int] | None) -> tuple[str, str] | None:
    return None if span is None else (str(IPv6Address(span[0])), str(IPv6Address(span[1])))


@pytest.mark.parametrize(
    ("spans", "pool"),
    [
        # the user guide: reserve the top sixteenth, the router keeps the rest
        ((("::f000:0:0:0", "::ffff:ffff:ffff:ffff"),), ("::1", "::efff:ffff:ffff:ffff")),
        # a range at the bottom: the pool goes above it
        ((("::1", "::ffff"),), ("::1:0", "::ffff:ffff:ffff:ffff")),
        # in the middle: the larger side wins (below, by 255 addresses)
        ((("::8000:0:0:0", "::8000:0:0:ff"),), ("::1", "::7fff:ffff:ffff:ffff")),
        ((("::7000:0:0:0", "::7fff:ffff:ffff:ffff"),), ("::8000:0:0:0", "::ffff:ffff:ffff:ffff")),
        # two ranges: the widest gap between or around them
        (
            (("::1000:0:0:0", "::1fff:ffff:ffff:ffff"), ("::f000:0:0:0", "::ffff:ffff:ffff:ffff")),
            ("::2000:0:0:0", "::efff:ffff:ffff:ffff"),
        ),
        # everything but suffix 0 (the Subnet-Router anycast address) is reserved
        ((("::1", "::ffff:ffff:ffff:ffff"),), None),
    ],
)
def test_dhcpv6_pool_is_the_widest_span_clear_of_every_range(
    spans: tuple[tuple[str, str], ...], pool: tuple[str, str] | None
) -> None:
    assert shown(dhcpv6_pool_outside(ranges(*spans))) == pool


@pytest.mark.parametrize(
    ("spans", "bits"),
    [
        # the user guide's top sixteenth: anything up to 63 bits (the default 12 is fine)
        ((("::f000:0:0:0", "::ffff:ffff:ffff:ffff"),), 63),
        ((("::8000:0:0:0", "::8000:0:0:ff"),), 63),
        ((("::7fff:ffff:ffff:ffff", "::ffff:ffff:ffff:ffff"),), 62),
        # the lowest range decides
        ((("::f000:0:0:0", "::ffff:0:0:0"), ("::1:0", "::1:ff")), 16),
        # just above odhcpd's smallest host-ID space (::0 to ::fff)
        ((("::1000", "::1fff"),), 12),
        # inside it: no setting of odhcpd keeps clear
        ((("::fff", "::1fff"),), None),
        ((("::1", "::ff"),), None),
    ],
)
def test_odhcpd_host_id_length_stays_below_the_lowest_range(
    spans: tuple[tuple[str, str], ...], bits: int | None
) -> None:
    assert odhcpd_host_id_bits(ranges(*spans)) == bits


def test_a_range_reports_the_go_operators_single_cidr_which_may_be_wider() -> None:
    """status.addressRanges[].cidr (compatibility): the smallest CIDR holding the range;
    the pools hold the exact `cidrs`."""
    from ipaddress import IPv6Address

    from dynamic_prefix.addressing import AddressRange

    exact = AddressRange(
        IPv6Address("2001:db8::f000:0:0:0"), IPv6Address("2001:db8::ffff:ffff:ffff:ffff")
    )
    wider = AddressRange(IPv6Address("2001:db8::1"), IPv6Address("2001:db8::6"))
    single = AddressRange(IPv6Address("2001:db8::5"), IPv6Address("2001:db8::5"))

    assert str(exact.enclosing()) == "2001:db8:0:0:f000::/68"
    assert str(wider.enclosing()) == "2001:db8::/125"
    assert str(single.enclosing()) == "2001:db8::5/128"
