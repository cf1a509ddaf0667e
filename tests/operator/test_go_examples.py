"""Every example DynamicPrefix of the Go operator's documentation and samples (their
fields and values, as its users have them in their clusters) is accepted unchanged: by
our validation, and by the real API server with our CRD (a dry-run create)."""

from __future__ import annotations

from ipaddress import IPv6Network
from typing import Any

import pytest

from dynamic_prefix.model import api
from dynamic_prefix.model.compute import compute
from dynamic_prefix.model.spec import DynamicPrefixSpec, validate_dynamic_prefix
from testbed.harness import Cluster
from tests.operator.operator_testkit import DP_PATH

RA = {"routerAdvertisement": {"interface": "eth0", "enabled": True}}
PD_56 = {"dhcpv6pd": {"interface": "eth0", "requestedPrefixLength": 56}}
SIMPLE_2 = {"mode": "simple", "maxPrefixHistory": 2}

EXAMPLES: dict[str, dict[str, Any]] = {
    # config/samples: the address-range mode, one range
    "home-ipv6": {"acquisition": RA, "transition": SIMPLE_2, "addressRanges": [
        {"name": "loadbalancers", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}]},
    # config/samples: three ranges
    "multi-range": {"acquisition": RA, "transition": SIMPLE_2, "addressRanges": [
        {"name": "lb-pool", "start": "::f000:0:0:0", "end": "::f0ff:0:0:0"},
        {"name": "metallb", "start": "::f100:0:0:0", "end": "::f1ff:0:0:0"},
        {"name": "egress", "start": "::ff00:0:0:0", "end": "::ff0f:0:0:0"}]},
    # config/samples: subnet mode from a /56 delegation, RA as the fallback
    "advanced-ipv6": {"acquisition": {**PD_56, **RA}, "transition": SIMPLE_2, "subnets": [
        {"name": "loadbalancers", "offset": 255, "prefixLength": 64},
        {"name": "dmz", "offset": 254, "prefixLength": 64}]},
    # config/samples: history of one
    "simple-test": {"acquisition": RA, "transition": {"mode": "simple", "maxPrefixHistory": 1},
                    "addressRanges": [{"name": "default", "start": "::f000:0:0:0",
                                       "end": "::f0ff:ffff:ffff:ffff"}]},
    # docs/prefix-acquisition-modes.md: the user guide's example
    "home-prefix": {"acquisition": RA, "addressRanges": [
        {"name": "loadbalancers", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}]},
    # docs: subnet mode announced over BGP with a community
    "advanced-bgp": {"acquisition": {**PD_56, **RA}, "subnets": [
        {"name": "loadbalancers", "offset": 255, "prefixLength": 64,
         "bgp": {"advertise": True, "community": "65001:100"}}]},
    # docs/design-bgp-subnet-advertisement.md
    "home-ipv6-bgp": {"acquisition": PD_56, "transition": SIMPLE_2, "subnets": [
        {"name": "loadbalancers", "offset": 255, "prefixLength": 64,
         "bgp": {"advertise": True, "community": "65001:42"}}]},
    # README: the HA transition
    "home-ha": {"acquisition": RA, "transition": {"mode": "ha", "maxPrefixHistory": 2},
                "addressRanges": [{"name": "loadbalancers", "start": "::f000:0:0:0",
                                   "end": "::ffff:ffff:ffff:ffff"}]},
    # its CRD's prefixFilter (no stored example uses it)
    "filtered": {"acquisition": {**PD_56, "prefixFilter": {
        "requireGlobalUnicast": True, "minPrefixLength": 48, "maxPrefixLength": 64}}},
}  # fmt: skip


def manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api.API_VERSION, "kind": api.KIND,
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "x"}},
            "spec": spec}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_go_operator_example_is_accepted_and_computes_what_it_says(
    cluster: Cluster, name: str
) -> None:
    obj = manifest(name, EXAMPLES[name])
    spec = validate_dynamic_prefix(obj)
    assert isinstance(spec, DynamicPrefixSpec), spec
    response = cluster.plane.request("POST", f"{DP_PATH}?dryRun=All", body=obj)
    assert response.status == 201, response.body
    if name == "advanced-ipv6":  # the values its comments state, for 2001:db8:1234::/56
        computed = compute(spec, IPv6Network("2001:db8:1234::/56"))
        assert [str(s.cidr) for s in computed.subnets] == [
            "2001:db8:1234:ff::/64", "2001:db8:1234:fe::/64"]  # fmt: skip
