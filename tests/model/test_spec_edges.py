"""DynamicPrefix validation at its edges: written from the survivors of a mutation run
(docs/mutation.md). Exact problems (path and message) for inputs the other spec tests
only checked as invalid, both ends of the prefix filter and of an address range, and the
small helpers the controller relies on.
"""

from __future__ import annotations

from ipaddress import IPv6Network
from typing import Any

import pytest

from dynamic_prefix.model import api
from dynamic_prefix.model.schema import Problem
from dynamic_prefix.model.spec import (
    DynamicPrefixSpec,
    InvalidSpec,
    NetlinkSpec,
    StaticSpec,
    expected_prefix_length,
    source_name,
    validate_dynamic_prefix,
)

GOOD_RANGE = {"name": "lb", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}


def dynamic_prefix(acquisition: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "edges"},
        "spec": {"acquisition": acquisition, "addressRanges": [GOOD_RANGE], **spec},
    }


def valid(obj: dict[str, Any]) -> DynamicPrefixSpec:
    result = validate_dynamic_prefix(obj)
    assert isinstance(result, DynamicPrefixSpec), str(result)
    return result


def problems(obj: Any) -> tuple[Problem, ...]:
    result = validate_dynamic_prefix(obj)
    assert isinstance(result, InvalidSpec)
    return result.problems


def filtered(**prefix_filter: Any) -> dict[str, Any]:
    return dynamic_prefix(
        {"routerAdvertisement": {"interface": "eth0"}, "prefixFilter": prefix_filter}
    )


# --- whole-object problems -----------------------------------------------------------


def test_an_object_that_is_not_a_mapping_is_one_problem_without_a_path() -> None:
    assert problems(["not", "a", "mapping"]) == (Problem("", "a DynamicPrefix must be a mapping"),)


def test_an_object_without_spec_is_one_problem_at_spec() -> None:
    assert problems({"apiVersion": api.API_VERSION, "kind": api.KIND}) == (
        Problem("spec", "is required"),
    )


def test_invalid_spec_reads_as_its_problems_joined() -> None:
    invalid = InvalidSpec((Problem("spec.a", "is wrong"), Problem("", "so is this")))

    assert str(invalid) == "spec.a: is wrong; so is this"


# --- the prefix filter ---------------------------------------------------------------


def test_prefix_filter_accepts_both_of_its_length_bounds_and_refuses_beyond() -> None:
    acquisition = valid(filtered(minPrefixLength=56, maxPrefixLength=60)).acquisition

    assert acquisition.accepts(IPv6Network("2001:db8::/56"))
    assert acquisition.accepts(IPv6Network("2001:db8::/60"))
    assert acquisition.refusal(IPv6Network("2001:db8::/52")) == (
        "2001:db8::/52 is shorter than prefixFilter.minPrefixLength /56"
    )
    assert not acquisition.accepts(IPv6Network("2001:db8::/64"))


def test_prefix_filter_with_equal_bounds_accepts_exactly_that_length() -> None:
    acquisition = valid(filtered(minPrefixLength=56, maxPrefixLength=56)).acquisition

    assert acquisition.accepts(IPv6Network("2001:db8::/56"))
    assert not acquisition.accepts(IPv6Network("2001:db8::/55"))
    assert not acquisition.accepts(IPv6Network("2001:db8::/57"))


def test_prefix_filter_refusing_a_unique_local_prefix_says_how_to_accept_it() -> None:
    acquisition = valid(filtered()).acquisition

    assert acquisition.refusal(IPv6Network("fd00:1::/64")) == (
        "fd00:1::/64 is unique local; set prefixFilter.requireGlobalUnicast: false to accept it"
    )


def test_static_unique_local_prefix_allowed_but_too_short_is_refused_for_its_length() -> None:
    obj = dynamic_prefix(
        {
            "static": {"prefix": "fd00:1::/48"},
            "prefixFilter": {"requireGlobalUnicast": False, "minPrefixLength": 56},
        }
    )

    assert problems(obj) == (
        Problem(
            "spec.acquisition.static.prefix",
            "fd00:1::/48 is shorter than prefixFilter.minPrefixLength /56",
        ),
    )


def test_static_link_local_prefix_with_ula_allowed_names_both_usable_classes() -> None:
    obj = dynamic_prefix(
        {"static": {"prefix": "fe80::/64"}, "prefixFilter": {"requireGlobalUnicast": False}}
    )

    assert problems(obj) == (
        Problem(
            "spec.acquisition.static.prefix",
            "fe80::/64 is link-local; only global unicast or unique local prefixes can be used",
        ),
    )


def test_no_source_enabled_names_every_kind_of_source() -> None:
    obj = dynamic_prefix({"routerAdvertisement": {"interface": "eth0", "enabled": False}})

    assert problems(obj) == (
        Problem(
            "spec.acquisition",
            "no prefix source is enabled: set one of routerAdvertisement, dhcpv6pd, "
            "netlink or static",
        ),
    )


def test_every_unreadable_trusted_router_is_reported_with_its_index() -> None:
    obj = dynamic_prefix(
        {"routerAdvertisement": {"interface": "eth0", "trustedRouters": ["nope", "fe80::1", "x"]}}
    )

    found = problems(obj)

    assert [p.path for p in found] == [
        "spec.acquisition.routerAdvertisement.trustedRouters[0]",
        "spec.acquisition.routerAdvertisement.trustedRouters[2]",
    ]
    assert all(p.message for p in found)
    assert "nope" in found[0].message


# --- address ranges ------------------------------------------------------------------


def test_address_range_of_one_address_is_valid_and_keeps_its_texts() -> None:
    one = {"name": "one", "start": "::f000:0:0:1", "end": "::f000:0:0:1"}

    spec = valid(
        dynamic_prefix({"routerAdvertisement": {"interface": "eth0"}}, addressRanges=[one])
    )

    (address_range,) = spec.address_ranges
    assert (address_range.start, address_range.end) == ("::f000:0:0:1", "::f000:0:0:1")
    assert address_range.start_suffix == address_range.end_suffix


def test_address_range_end_that_does_not_fit_is_reported_at_end() -> None:
    wide = {"name": "wide", "start": "::f000:0:0:0", "end": "::1:0:0:0:0"}

    found = problems(
        dynamic_prefix({"routerAdvertisement": {"interface": "eth0"}}, addressRanges=[wide])
    )

    assert [p.path for p in found] == ["spec.addressRanges[0].end"]


def test_unreadable_range_does_not_hide_a_later_range_that_does_not_fit() -> None:
    ranges = [
        {"name": "bad", "start": "not a suffix", "end": "::1"},
        {"name": "wide", "start": "::1:0:0:0:0", "end": "::1:0:0:0:1"},
    ]

    found = problems(
        dynamic_prefix({"routerAdvertisement": {"interface": "eth0"}}, addressRanges=ranges)
    )

    assert [p.path for p in found] == [
        "spec.addressRanges[0].start",
        "spec.addressRanges[1].start",
        "spec.addressRanges[1].end",
    ]


# --- helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "name", "length"),
    [
        (StaticSpec(IPv6Network("2001:db8::/56")), api.SOURCE_STATIC, 56),
        (NetlinkSpec("eth0"), api.SOURCE_NETLINK, 64),
    ],
)
def test_source_name_and_expected_length(
    source: StaticSpec | NetlinkSpec, name: str, length: int
) -> None:
    assert source_name(source) == name
    assert expected_prefix_length(source) == length
