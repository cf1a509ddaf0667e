"""From the operator's objects to the home router's table, with real FRR and BIRD routers.

The operator runs against the real API server and writes its CiliumBGPAdvertisement and
MetalLB BGPAdvertisement for a subnet of the delegation. Cilium and MetalLB cannot run
here, so a BIRD speaker stands in for them: it announces what they would for those
objects, worked out below from their documented behaviour (Cilium: the LoadBalancer
addresses of the Services the advertisement's selector matches, with its standard
communities; MetalLB: the addresses of the named pools' Services, aggregated to
aggregationLengthV6, with its communities). The router runs the configuration the
README documents (docs/router/) unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from ipaddress import IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest

from testbed.bgp import Announcement, BgpRouter, BirdRouter, BirdSpeaker, FrrRouter, announce
from testbed.harness import Cluster, OperatorProcess, wait_for
from testbed.netns import Link
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    DP_PATH,
    METALLB_POOL,
    WAIT_SECONDS,
    create,
    create_dynamic_prefix,
    dynamic_prefix,
    new_tag,
)
from tests.operator.test_bgp import CILIUM_ADVERTS, metallb_adverts, wait_ready_says
from tests.requirements import needs_namespaces

DOCS = Path(__file__).parents[2] / "docs" / "router"
DELEGATED = "2001:db8:100::/56"  # what docs/router/*.conf accept subnets of
COMMUNITY = "65001:42"
SUBNET = {"name": "loadbalancers", "offset": 255, "prefixLength": 64,
          "bgp": {"advertise": True, "community": COMMUNITY}}  # fmt: skip

pytestmark = pytest.mark.netns


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector against labels (an empty selector is never written)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get(
            "values") or []  # fmt: skip
        present = key in labels
        if (operator == "In" and labels.get(key) not in values) or (
            operator == "NotIn" and present and labels[key] in values
        ):
            return False
        if (operator == "Exists" and not present) or (operator == "DoesNotExist" and present):
            return False
    return True


def ipv6_ingress(service: Mapping[str, Any]) -> list[IPv6Address]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    found = (ip_address(i["ip"]) for i in ingress if "ip" in i)
    return [a for a in found if isinstance(a, IPv6Address)]


def what_cilium_announces(advert: Mapping[str, Any], services: list[dict[str, Any]]
                          ) -> list[Announcement]:  # fmt: skip
    routes = []
    for entry in advert["spec"]["advertisements"]:
        assert entry["advertisementType"] == "Service"
        assert entry["service"]["addresses"] == ["LoadBalancerIP"]
        communities = ((entry.get("attributes") or {}).get("communities") or {}).get(
            "standard") or []  # fmt: skip
        for service in services:
            if matches(entry["selector"], service["metadata"].get("labels") or {}):
                routes += [announce(f"{a}/128", *communities) for a in ipv6_ingress(service)]
    return routes


def what_metallb_announces(advert: Mapping[str, Any], pools: Mapping[str, list[str]],
                           services: list[dict[str, Any]]) -> list[Announcement]:  # fmt: skip
    spec = advert["spec"]
    length = spec.get("aggregationLengthV6", 128)
    named = [ip_network(c) for p in spec["ipAddressPools"] for c in pools[p] if "-" not in c]
    routes: dict[IPv6Network, Announcement] = {}
    for service in services:
        for address in ipv6_ingress(service):
            if any(address in n for n in named):
                network = ip_network(f"{address}/{length}", strict=False)
                assert isinstance(network, IPv6Network)
                routes[network] = announce(network, *spec.get("communities") or [])
    return list(routes.values())


@pytest.fixture
def announced_by_the_cluster(
    cluster: Cluster, shared_operator: OperatorProcess, namespace: str
) -> Iterator[list[Announcement]]:
    """The operator's objects for a subnet of the documented delegation, and what Cilium
    and MetalLB would announce for them."""
    needs_namespaces()
    tag = new_tag()
    dp = f"routers-{tag}"
    create_dynamic_prefix(cluster, dynamic_prefix(dp, DELEGATED, ranges=(), subnets=[SUBNET]))
    cilium_pool = CILIUM_LB_POOL.manifest(f"web-{tag}", dp=dp, address_range=None,
                                          subnet="loadbalancers", entries=[])  # fmt: skip
    cilium_pool["spec"]["serviceSelector"] = {"matchLabels": {"app": f"web-{tag}"}}
    cluster.apply(cilium_pool)
    metallb_pool = f"mlb-{tag}"
    cluster.apply(METALLB_POOL.manifest(metallb_pool, dp=dp, address_range=None,
                                        subnet="loadbalancers", namespace=namespace,
                                        entries=[]))  # fmt: skip
    services = f"/api/v1/namespaces/{namespace}/services"
    addresses = {
        # selected by the Cilium pool's selector, inside the subnet: announced, accepted
        "web": ({"app": f"web-{tag}"}, "2001:db8:100:ff::ffff:0:2"),
        # selected, but an address the user pinned outside the delegation: Cilium announces
        # it with the community all the same; the router must turn it away
        "stray": ({"app": f"web-{tag}"}, "2001:db8:ffff::5"),
        # not selected, outside the pools: nobody announces it
        "db": ({"app": f"db-{tag}"}, "2001:db8:100:fe::9"),
        # MetalLB's pool holds the subnet: its /128, as aggregationLengthV6 128 says
        "metallb": ({"app": f"m-{tag}"}, "2001:db8:100:ff::ffff:0:3"),
    }
    for name, (labels, address) in addresses.items():
        create(cluster, services, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"{name}-{tag}", "namespace": namespace, "labels": labels},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        })  # fmt: skip
        cluster.patch(f"{services}/{name}-{tag}/status",
                      {"status": {"loadBalancer": {"ingress": [{"ip": address}]}}})  # fmt: skip
    try:
        wait_ready_says(cluster, dp, "True", "2 BGP advertisement(s) configured")
        name = f"dp-{dp}-loadbalancers"
        cilium = cluster.get(f"{CILIUM_ADVERTS}/{name}")
        metallb = cluster.get(f"{metallb_adverts(namespace)}/{name}")
        assert cilium is not None
        assert metallb is not None
        pool = wait_for(lambda: (cluster.get(METALLB_POOL.path(metallb_pool, namespace)) or {})
                        .get("spec", {}).get("addresses") or None,
                        timeout=WAIT_SECONDS, what="the MetalLB pool filled")  # fmt: skip
        listed = (cluster.get(services) or {}).get("items") or []
        ours = [s for s in listed if s["metadata"]["name"].endswith(tag)]
        yield [*what_cilium_announces(cilium, ours),
               *what_metallb_announces(metallb, {metallb_pool: pool}, ours)]  # fmt: skip
    finally:
        cluster.delete(f"{DP_PATH}/{dp}")
        cluster.delete(CILIUM_LB_POOL.path(f"web-{tag}"))
        cluster.delete(METALLB_POOL.path(metallb_pool, namespace))


@pytest.mark.parametrize("router_kind", ["frr", "bird"])
def test_the_documented_router_installs_what_the_cluster_announces_for_the_operators_objects(
    announced_by_the_cluster: list[Announcement], router_kind: str
) -> None:
    routes = announced_by_the_cluster
    # the stand-in speakers' view of the operator's objects, checked before use
    assert {(str(r.network), r.communities) for r in routes} == {
        ("2001:db8:100:ff:0:ffff:0:2/128", (COMMUNITY,)),
        ("2001:db8:ffff::5/128", (COMMUNITY,)),
        ("2001:db8:100:ff:0:ffff:0:3/128", (COMMUNITY,)),
    }
    config = (DOCS / f"{router_kind}.conf").read_text()
    with Link() as link:
        router: BgpRouter = FrrRouter(link, config) if router_kind == "frr" else BirdRouter(
            link, config)  # fmt: skip
        with router, BirdSpeaker(link, routes):
            router.wait_established()
            inside = {IPv6Network("2001:db8:100:ff::ffff:0:2/128"),
                      IPv6Network("2001:db8:100:ff::ffff:0:3/128")}  # fmt: skip
            router.wait_for_accepted(inside)
            router.wait_for_filtered({IPv6Network("2001:db8:ffff::5/128")})
            router.wait_for_kernel_routes(inside)
            assert router.accepted_routes() == inside
