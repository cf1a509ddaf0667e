"""DynamicPrefix validation: the user guide's YAML, the Go operator's fields, every bad input."""

from __future__ import annotations

import copy
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from dynamic_prefix.model import api
from dynamic_prefix.model.schema import Problem, check, with_defaults
from dynamic_prefix.model.spec import (
    Announce,
    Dhcpv6PdSpec,
    DynamicPrefixSpec,
    InvalidSpec,
    NetlinkSpec,
    RouterAdvertisementSpec,
    StaticSpec,
    TransitionMode,
    validate_dynamic_prefix,
)

EXAMPLE = Path(__file__).parents[2] / "src/dynamic_prefix/examples/home-prefix.yaml"

# Every field of the spec schema set to a value other than its default.
MAXIMAL: dict[str, Any] = {
    "apiVersion": "dynamic-prefix.io/v1alpha1",
    "kind": "DynamicPrefix",
    "metadata": {"name": "everything"},
    "spec": {
        "acquisition": {
            "routerAdvertisement": {
                "interface": "eth1",
                "enabled": True,
                "trustedRouters": ["fe80::1"],
            },
            "dhcpv6pd": {"interface": "wan0", "requestedPrefixLength": 60},
            "netlink": {"interface": "eth2"},
            "static": {"prefix": "fd00:1:2:3::/64"},
            "prefixFilter": {
                "requireGlobalUnicast": False,
                "minPrefixLength": 48,
                "maxPrefixLength": 64,
            },
        },
        "addressRanges": [{"name": "lb", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}],
        "subnets": [
            {
                "name": "bgp-lb",
                "offset": 0,
                "prefixLength": 80,
                "bgp": {"advertise": True, "community": "65001:100", "announce": "subnet"},
            }
        ],
        "transition": {"mode": "ha", "maxPrefixHistory": 5},
    },
}


def valid(obj: dict[str, Any]) -> DynamicPrefixSpec:
    result = validate_dynamic_prefix(obj)
    assert not isinstance(result, InvalidSpec), str(result)
    return result


def problems(obj: dict[str, Any]) -> list[str]:
    result = validate_dynamic_prefix(obj)
    assert isinstance(result, InvalidSpec), "expected the object to be refused"
    return [str(p) for p in result.problems]


def with_spec(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "t"},
            "spec": spec}  # fmt: skip


RA = {"routerAdvertisement": {"interface": "eth0"}}


# --- accepted ------------------------------------------------------------------------


def test_user_guide_example_is_accepted_unchanged() -> None:
    spec = valid(yaml.safe_load(EXAMPLE.read_text()))
    assert spec.acquisition.sources == (RouterAdvertisementSpec("eth0", frozenset()),)
    assert spec.acquisition.allow_unique_local is False
    (lb,) = spec.address_ranges
    assert (lb.name, lb.start_suffix, lb.end_suffix) == (
        "loadbalancers",
        0xF000 << 48,
        (1 << 64) - 1,
    )
    assert spec.subnets == ()
    assert spec.transition.mode is TransitionMode.SIMPLE
    assert spec.transition.max_prefix_history == 2


def test_every_schema_field_reaches_the_model() -> None:
    def leaves(schema: dict[str, Any], path: str) -> set[str]:
        if schema.get("type") == "object" and "properties" in schema:
            return set().union(*(leaves(s, f"{path}.{n}") for n, s in schema["properties"].items()))
        if schema.get("type") == "array" and schema["items"].get("type") == "object":
            return leaves(schema["items"], path + "[]")
        return {path}

    def present(value: Any, path: str) -> set[str]:
        if isinstance(value, dict):
            return set().union(*(present(v, f"{path}.{k}") for k, v in value.items()))
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return present(value[0], path + "[]")
        return {path}

    assert present(MAXIMAL["spec"], "spec") == leaves(api.spec_schema(), "spec"), (
        "MAXIMAL must set every spec field: a field added to the schema needs parsing and a test"
    )
    spec = valid(MAXIMAL)
    assert spec.acquisition.sources == (
        StaticSpec(IPv6Network("fd00:1:2:3::/64")),
        Dhcpv6PdSpec("wan0", 60),
        RouterAdvertisementSpec("eth1", frozenset({IPv6Address("fe80::1")})),
        NetlinkSpec("eth2"),
    )
    assert spec.acquisition.allow_unique_local is True
    (subnet,) = spec.subnets
    assert (subnet.name, subnet.offset, subnet.prefix_length) == ("bgp-lb", 0, 80)
    assert subnet.bgp is not None
    assert (subnet.bgp.advertise, subnet.bgp.community) == (True, "65001:100")
    assert subnet.bgp.announce is Announce.SUBNET
    assert spec.transition.mode is TransitionMode.HA
    assert spec.transition.max_prefix_history == 5


def test_go_operator_fields_are_accepted() -> None:
    spec = valid(
        with_spec(
            acquisition={
                "dhcpv6pd": {"interface": "eth0"},
                "routerAdvertisement": {"interface": "eth0"},
            },
            subnets=[{"name": "lb", "prefixLength": 64, "offset": 3, "bgp": {"advertise": True}}],
            transition={"mode": "simple", "maxPrefixHistory": 1},
        )
    )
    # DHCPv6-PD first, RA fallback; no length written: checked against the delegation
    assert spec.acquisition.primary == Dhcpv6PdSpec("eth0", 56, length_given=False)
    assert spec.subnets[0].offset == 3


def test_offsets_are_checked_against_a_delegation_length_only_when_one_is_written() -> None:
    """With no requestedPrefixLength the server may delegate a /48: offset 256 is valid
    then, and is judged against the delegation when it comes (Degraded otherwise)."""
    spec = valid(with_spec(acquisition={"dhcpv6pd": {"interface": "eth0"}},
                           subnets=[{"name": "s", "prefixLength": 64, "offset": 256}]))  # fmt: skip
    assert spec.subnets[0].offset == 256


def test_router_advertisement_without_interface_means_the_default_route_interface() -> None:
    spec = valid(with_spec(acquisition={"routerAdvertisement": {"enabled": True}}))
    assert spec.acquisition.primary == RouterAdvertisementSpec(None, frozenset())


def test_defaults_are_those_of_the_schema() -> None:
    defaulted = with_defaults(api.spec_schema(), {"acquisition": {"dhcpv6pd": {"interface": "x"}},
                                                  "subnets": [{"name": "a", "prefixLength": 64}],
                                                  "transition": {}})  # fmt: skip
    # no schema default: unset must stay unset (subnets are then judged at run time)
    assert "requestedPrefixLength" not in defaulted["acquisition"]["dhcpv6pd"]
    spec = valid(with_spec(acquisition={"dhcpv6pd": {"interface": "x"}}))
    assert spec.acquisition.primary == Dhcpv6PdSpec("x", 56, length_given=False)  # asked for
    assert defaulted["subnets"][0]["offset"] == 0
    assert defaulted["transition"] == {"mode": "simple", "maxPrefixHistory": 2}


def test_validation_does_not_modify_its_input() -> None:
    original = copy.deepcopy(MAXIMAL)
    validate_dynamic_prefix(MAXIMAL)
    assert original == MAXIMAL


def test_defaulting_copies_all_the_way_down() -> None:
    """with_defaults copies JSON data itself (faster than deepcopy) and anything else
    with deepcopy: nothing of the result is shared with its input."""

    class Odd:  # not JSON: what a caller's Mapping could hold
        def __init__(self) -> None:
            self.items = [1]

    spec: dict[str, Any] = {
        "acquisition": {"static": {"prefix": "2001:db8::/64"}},
        "addressRanges": [{"name": "a", "start": "::1", "end": "::2", "odd": Odd()}],
        "subnets": [{"name": "s", "prefixLength": 64, "flag": True, "n": 1.5}],
    }
    defaulted = with_defaults(api.spec_schema(), spec)
    assert defaulted["addressRanges"][0]["name"] == "a"
    assert defaulted["subnets"][0]["flag"] is True
    assert defaulted["subnets"][0]["n"] == 1.5
    defaulted["acquisition"]["static"]["prefix"] = "changed"
    defaulted["addressRanges"].append({})
    defaulted["addressRanges"][0]["odd"].items.append(2)
    assert spec["acquisition"]["static"]["prefix"] == "2001:db8::/64"
    assert len(spec["addressRanges"]) == 1
    assert spec["addressRanges"][0]["odd"].items == [1]


# --- refused -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"acquisition": {}}, "spec.acquisition: no prefix source is enabled"),
        (
            {"acquisition": {"routerAdvertisement": {"interface": "eth0", "enabled": False}}},
            "spec.acquisition: no prefix source is enabled",
        ),
        ({}, "spec.acquisition: is required"),
        (
            {"acquisition": RA, "addressRanges": [{"name": "a", "start": "::1"}]},
            "spec.addressRanges[0].end: is required",
        ),
        (
            {"acquisition": RA, "addressRanges": [{"name": "a", "start": "::zz", "end": "::1"}]},
            "spec.addressRanges[0].start: '::zz' is not a valid IPv6 address",
        ),
        (
            {"acquisition": RA, "addressRanges": [{"name": "a", "start": "::9", "end": "::1"}]},
            "spec.addressRanges[0]: start ::9 is after end ::1",
        ),
        (
            {
                "acquisition": RA,
                "addressRanges": [{"name": "a", "start": "::1:0:0:0:0", "end": "::1:0:0:0:1"}],
            },
            "spec.addressRanges[0].start: ::1:0:0:0:0 does not fit in the /64 that "
            "router-advertisement delivers: only the last 64 bits are free",
        ),
        (
            {
                "acquisition": RA,
                "addressRanges": [{"name": "Bad_Name", "start": "::1", "end": "::2"}],
            },
            "spec.addressRanges[0].name: 'Bad_Name' does not match",
        ),
        (
            {
                "acquisition": RA,
                "addressRanges": [
                    {"name": "a", "start": "::1", "end": "::2"},
                    {"name": "a", "start": "::3", "end": "::4"},
                ],
            },
            "spec.addressRanges[1]: duplicate entry with name='a' (see [0])",
        ),
        (
            {"acquisition": RA, "subnets": [{"name": "s", "prefixLength": 64, "offset": 1}]},
            "spec.subnets[0]: offset 1 is past the last subnet: the /64 that "
            "router-advertisement delivers holds 1 /64 subnet (offsets 0 to 0)",
        ),
        (
            {
                "acquisition": {"dhcpv6pd": {"interface": "eth0", "requestedPrefixLength": 56}},
                "subnets": [{"name": "s", "prefixLength": 48}],
            },
            "spec.subnets[0]: a /48 subnet cannot be carved from the /56 that dhcpv6-pd "
            "delivers: it is larger than the /56 it would come from",
        ),
        (
            {
                "acquisition": {"dhcpv6pd": {"interface": "eth0", "requestedPrefixLength": 56}},
                "subnets": [{"name": "s", "prefixLength": 64, "offset": 256}],
            },
            "spec.subnets[0]: offset 256 is past the last subnet",
        ),
        (
            {"acquisition": RA, "subnets": [{"name": "s", "prefixLength": 129}]},
            "spec.subnets[0].prefixLength: must be at most 128, got 129",
        ),
        (
            {"acquisition": RA, "subnets": [{"name": "s", "prefixLength": 64, "offset": -1}]},
            "spec.subnets[0].offset: must be at least 0, got -1",
        ),
        (
            {
                "acquisition": RA,
                "subnets": [{"name": "s", "prefixLength": 64, "bgp": {"community": "65001"}}],
            },
            "spec.subnets[0].bgp.community: '65001' does not match",
        ),
        (
            {
                "acquisition": RA,
                "subnets": [{"name": "s", "prefixLength": 64, "bgp": {"announce": "routes"}}],
            },
            "spec.subnets[0].bgp.announce: unsupported value 'routes': must be one of",
        ),
        (
            {"acquisition": {"dhcpv6pd": {"interface": "eth0", "requestedPrefixLength": 47}}},
            "spec.acquisition.dhcpv6pd.requestedPrefixLength: must be at least 48, got 47",
        ),
        (
            {"acquisition": {"dhcpv6pd": {}}},
            "spec.acquisition.dhcpv6pd.interface: is required",
        ),
        (
            {"acquisition": {"routerAdvertisement": {"interface": "eth0/1"}}},
            "spec.acquisition.routerAdvertisement.interface: 'eth0/1' does not match",
        ),
        (
            {
                "acquisition": {
                    "routerAdvertisement": {"interface": "eth0", "trustedRouters": ["2001:db8::1"]}
                }
            },
            "spec.acquisition.routerAdvertisement.trustedRouters[0]: 2001:db8::1 is not "
            "link-local; routers send RAs from fe80::/10",
        ),
        (
            {"acquisition": {"static": {"prefix": "2001:db8::1/64"}}},
            "spec.acquisition.static.prefix: '2001:db8::1/64' has host bits set",
        ),
        (
            {"acquisition": {"static": {"prefix": "fd00::/64"}}},
            "spec.acquisition.static.prefix: fd00::/64 is unique local; only global unicast "
            "prefixes are accepted (set prefixFilter.requireGlobalUnicast: false to allow ULA)",
        ),
        (
            {
                "acquisition": {
                    "static": {"prefix": "fe80::/64"},
                    "prefixFilter": {"requireGlobalUnicast": False},
                }
            },
            "spec.acquisition.static.prefix: fe80::/64 is link-local",
        ),
        (
            {
                "acquisition": {"static": {"prefix": "2001:db8::/80"}},
                "addressRanges": [{"name": "a", "start": "::f000:0:0:0", "end": "::ffff:0:0:0"}],
            },
            "spec.addressRanges[0].start: ::f000:0:0:0 does not fit in 2001:db8::/80",
        ),
        (
            {
                "acquisition": {
                    "static": {"prefix": "2001:db8::/80"},
                    "prefixFilter": {"maxPrefixLength": 64},
                }
            },
            "spec.acquisition.static.prefix: 2001:db8::/80 is longer than "
            "prefixFilter.maxPrefixLength /64",
        ),
        (
            {"acquisition": {**RA, "prefixFilter": {"minPrefixLength": 64, "maxPrefixLength": 56}}},
            "spec.acquisition.prefixFilter: minPrefixLength 64 is greater than maxPrefixLength 56",
        ),
        (
            {"acquisition": RA, "transition": {"mode": "fast"}},
            "spec.transition.mode: unsupported value 'fast': must be one of 'simple', 'ha'",
        ),
        (
            {"acquisition": RA, "transition": {"maxPrefixHistory": 0}},
            "spec.transition.maxPrefixHistory: must be at least 1, got 0",
        ),
        (
            {"acquisition": RA, "adressRanges": []},
            "spec.adressRanges: unknown field",
        ),
        (
            {"acquisition": {"routerAdvertisement": {"interface": "eth0", "enabled": "yes"}}},
            "spec.acquisition.routerAdvertisement.enabled: must be of type boolean, got string",
        ),
    ],
)
def test_bad_spec_is_refused_with_the_field_and_the_reason(
    spec: dict[str, Any], expected: str
) -> None:
    found = problems(with_spec(**spec))
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        with_spec(
            acquisition={"routerAdvertisement": {"interface": "eth0",
                                                 "trustedRouters": ["nonsense"]}},
            addressRanges=[{"name": "a", "start": "::zz", "end": "::yy"}],
            subnets=[{"name": "s", "prefixLength": 64, "offset": 7}],
        )
    )  # fmt: skip
    assert len(found) == 4, found


def test_wrong_kind_or_version_is_refused() -> None:
    obj = with_spec(acquisition=RA)
    assert problems({**obj, "apiVersion": "dynamic-prefix.io/v1"})[0].startswith(
        "apiVersion: must be"
    )
    assert problems({**obj, "kind": "Other"})[0].startswith("kind: must be DynamicPrefix")
    assert problems({**obj, "spec": "nonsense"}) == ["spec: must be of type object, got string"]


def test_schema_checker_refuses_keywords_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        check({"type": "string", "oneOf": []}, "x")


def test_problem_reads_as_path_then_message() -> None:
    assert str(Problem("spec.a", "is required")) == "spec.a: is required"
    assert str(Problem("", "bad")) == "bad"


# --- the memo ------------------------------------------------------------------------------


def test_an_equal_spec_in_another_object_is_answered_from_the_memo() -> None:
    """Each watch event brings a new dict of the same spec: checked once, the same answer."""
    first = validate_dynamic_prefix(copy.deepcopy(MAXIMAL))
    again = copy.deepcopy(MAXIMAL)
    again["metadata"] = {"name": "another", "resourceVersion": "7"}  # not part of the spec
    again["spec"] = dict(reversed(again["spec"].items()))  # the same fields, another order

    assert validate_dynamic_prefix(again) is first


def test_the_memo_tells_apart_what_the_schema_tells_apart() -> None:
    base = with_spec(acquisition={"static": {"prefix": "2001:db8:1::/64"}},
                     transition={"mode": "ha", "maxPrefixHistory": 2})  # fmt: skip
    assert valid(base).transition.max_prefix_history == 2
    changed = copy.deepcopy(base)
    changed["spec"]["transition"]["maxPrefixHistory"] = 3
    assert valid(changed).transition.max_prefix_history == 3
    as_text = copy.deepcopy(base)
    as_text["spec"]["transition"]["maxPrefixHistory"] = "2"  # a string is refused, not 2
    assert problems(as_text)
    as_bool = copy.deepcopy(base)
    as_bool["spec"]["transition"]["maxPrefixHistory"] = True  # JSON true is not 1
    assert problems(as_bool)
    wrong_kind = {**copy.deepcopy(base), "kind": "Other"}
    assert any("kind" in p for p in problems(wrong_kind))
    assert validate_dynamic_prefix(copy.deepcopy(base)) == valid(base)  # still the first


def test_a_refused_spec_is_refused_every_time_and_an_odd_value_is_still_checked() -> None:
    bad = with_spec(acquisition={"static": {"prefix": "2001:db8:1::1/64"}})
    assert problems(bad) == problems(copy.deepcopy(bad))
    odd = with_spec(acquisition={"static": {"prefix": IPv6Network("2001:db8:1::/64")}})
    assert problems(odd)  # not JSON, so not remembered: the schema still says why
    assert problems({"apiVersion": api.API_VERSION, "kind": api.KIND})  # no spec at all
