"""A Service's address in each prefix: suffix parsing, prefix + suffix inside the range or
subnet, refusals, and the suffix taken from the address a Service already has. Expected
addresses are written out by hand."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest

from dynamic_prefix.addressing import AddressRange
from dynamic_prefix.backends.base import Placement, PoolReference, ReferenceProblem
from dynamic_prefix.backends.service_addresses import (
    ANNOTATION_SERVICE_ADDRESS_RANGE,
    ANNOTATION_SERVICE_SUBNET,
    ANNOTATION_SUFFIX,
    ServiceReference,
    address_in,
    inferred_suffix,
    pinned_addresses,
)
from dynamic_prefix.model import api

NEW, OLD = IPv6Network("2001:db8:2::/64"), IPv6Network("2001:db8:1::/64")


def ranged(prefix: IPv6Network, *, current: bool) -> Placement:
    """Range ``::ffff:0:0:0``-``::ffff:ffff:ffff:ffff`` of a /64."""
    start = IPv6Address(int(prefix.network_address) | 0xFFFF_0000_0000_0000)
    end = IPv6Address(int(prefix.network_address) | 0xFFFF_FFFF_FFFF_FFFF)
    return Placement(prefix, current, address_range=AddressRange(start, end))


def subnet(delegated: str, cidr: str, *, current: bool) -> Placement:
    return Placement(IPv6Network(delegated), current, cidr=IPv6Network(cidr))


class TestReference:
    def test_a_service_opts_in_with_a_name_and_a_range_or_subnet(self) -> None:
        annotations = {
            api.ANNOTATION_NAME: "home",
            ANNOTATION_SERVICE_ADDRESS_RANGE: "lb",
            ANNOTATION_SUFFIX: "::ffff:0:0:2",
        }

        reference = ServiceReference.from_annotations(annotations)

        assert reference == ServiceReference(PoolReference("home", "lb"), 0xFFFF_0000_0000_0002)
        by_subnet = {api.ANNOTATION_NAME: "home", ANNOTATION_SERVICE_SUBNET: "services"}
        assert ServiceReference.from_annotations(by_subnet) == ServiceReference(
            PoolReference("home", None, "services")
        )

    @pytest.mark.parametrize(
        "annotations",
        [None, {}, {api.ANNOTATION_NAME: " "}, {ANNOTATION_SERVICE_ADDRESS_RANGE: "lb"}],
    )
    def test_without_a_dynamic_prefix_the_service_is_not_ours(
        self, annotations: dict[str, str] | None
    ) -> None:
        assert ServiceReference.from_annotations(annotations) is None

    @pytest.mark.parametrize(
        ("suffix", "says"),
        [("not-an-address", "not-an-address"), ("::", "zero"), ("10.0.0.1", "10.0.0.1")],
    )
    def test_a_suffix_that_is_no_interface_identifier_is_refused(
        self, suffix: str, says: str
    ) -> None:
        annotations = {
            api.ANNOTATION_NAME: "home",
            ANNOTATION_SERVICE_ADDRESS_RANGE: "lb",
            ANNOTATION_SUFFIX: suffix,
        }
        with pytest.raises(ReferenceProblem, match=says):
            ServiceReference.from_annotations(annotations)

    def test_a_name_alone_means_the_whole_prefix_and_pool_names_are_read_too(self) -> None:
        assert ServiceReference.from_annotations({api.ANNOTATION_NAME: "home"}) == (
            ServiceReference(PoolReference("home"))
        )
        pool_style = {api.ANNOTATION_NAME: "home", api.ANNOTATION_ADDRESS_RANGE: "lb"}
        assert ServiceReference.from_annotations(pool_style) == ServiceReference(
            PoolReference("home", "lb")
        )
        both = {**pool_style, ANNOTATION_SERVICE_ADDRESS_RANGE: "vip"}
        assert ServiceReference.from_annotations(both) == ServiceReference(
            PoolReference("home", "vip")
        )


class TestAddresses:
    def test_prefix_plus_suffix_in_every_prefix_current_first(self) -> None:
        placements = [ranged(NEW, current=True), ranged(OLD, current=False)]

        pinned = pinned_addresses(placements, 0xFFFF_0000_0000_0002)

        assert pinned == (IPv6Address("2001:db8:2:0:ffff::2"), IPv6Address("2001:db8:1:0:ffff::2"))

    def test_in_subnet_mode_the_suffix_is_added_to_the_subnet(self) -> None:
        placement = subnet("2001:db8:ab00::/56", "2001:db8:ab01::/64", current=True)

        assert address_in(placement, 0x2) == IPv6Address("2001:db8:ab01::2")

    def test_the_range_ends_themselves_are_inside(self) -> None:
        placement = ranged(NEW, current=True)

        assert address_in(placement, 0xFFFF_0000_0000_0000) == IPv6Address("2001:db8:2:0:ffff::")
        assert address_in(placement, 0xFFFF_FFFF_FFFF_FFFF) == IPv6Address(
            "2001:db8:2:0:ffff:ffff:ffff:ffff"
        )

    def test_a_suffix_just_outside_the_range_is_refused(self) -> None:
        with pytest.raises(ReferenceProblem, match="is outside 2001:db8:2:0:ffff::-"):
            address_in(ranged(NEW, current=True), 0xFFFE_FFFF_FFFF_FFFF)

    def test_a_suffix_with_bits_inside_the_prefix_is_refused(self) -> None:
        with pytest.raises(ReferenceProblem, match="bits inside the /64"):
            address_in(ranged(NEW, current=True), 1 << 64)
        placement = subnet("2001:db8:ab00::/56", "2001:db8:ab01::/64", current=True)
        with pytest.raises(ReferenceProblem, match="bits inside the /64"):
            address_in(placement, (1 << 64) | 2)


class TestInferredSuffix:
    def test_taken_from_the_ipv6_address_in_a_placement_newest_first(self) -> None:
        placements = [ranged(NEW, current=True), ranged(OLD, current=False)]
        addresses = ["192.0.2.7", "garbage", "2001:db8:1:0:ffff::9", "2001:db8:2:0:ffff::5"]

        assert inferred_suffix(placements, addresses) == 0xFFFF_0000_0000_0005

    def test_an_address_in_an_older_prefix_still_gives_its_suffix(self) -> None:
        placements = [ranged(NEW, current=True), ranged(OLD, current=False)]

        assert inferred_suffix(placements, ["2001:db8:1:0:ffff::9"]) == 0xFFFF_0000_0000_0009

    def test_none_when_no_address_is_in_a_placement(self) -> None:
        placements = [ranged(NEW, current=True)]

        assert inferred_suffix(placements, ["2001:db8:2::5", "2001:db8:9:0:ffff::1"]) is None
        assert inferred_suffix(placements, []) is None
