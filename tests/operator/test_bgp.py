"""Subnets announced over BGP: the objects each speaker reads, kept in step by the operator.

Against the real API server with test CRDs that state the upstream schemas and keep no
unknown field (testbed/crds/*-bgp*.yaml): a misspelt field would be pruned and the
comparisons below would fail. The router side is tested in tests/bgp.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from ipaddress import IPv6Network
from typing import Any

import pytest

from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.conftest import CRDS
from tests.operator.operator_testkit import (
    CALICO_POOL,
    CILIUM_LB_POOL,
    DP_PATH,
    METALLB_POOL,
    WAIT_SECONDS,
    condition,
    create_dynamic_prefix,
    dynamic_prefix,
    events_about,
    new_tag,
    set_prefix,
    status_of,
    wait_current,
)

CILIUM_ADVERTS = "/apis/cilium.io/v2/ciliumbgpadvertisements"
BGP_CONFIGURATIONS = "/apis/projectcalico.org/v3/bgpconfigurations"
CALICO_DEFAULT = f"{BGP_CONFIGURATIONS}/default"
COMMUNITY = "65001:42"
READY = "BGPAdvertisementReady"


def metallb_adverts(namespace: str) -> str:
    return f"/apis/metallb.io/v1beta1/namespaces/{namespace}/bgpadvertisements"


def announced(name: str = "lb", *, offset: int = 1, **bgp: Any) -> dict[str, Any]:
    """A /64 subnet with bgp.advertise and the community (``bgp`` overrides)."""
    settings = {"advertise": True, "community": COMMUNITY, **bgp}
    return {"name": name, "offset": offset, "prefixLength": 64, "bgp": settings}


def with_selector(pool: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    pool["spec"]["serviceSelector"] = {"matchLabels": labels}
    return pool


def wait_object(cluster: Cluster, path: str, want: Any = True, what: str = "") -> dict[str, Any]:
    """Wait until ``path`` exists and ``want(obj)`` holds (or exists, for True)."""

    def probe() -> dict[str, Any] | None:
        obj = cluster.get(path)
        if obj is None:
            return None
        return obj if want is True or want(obj) else None

    return wait_for(probe, timeout=WAIT_SECONDS, what=what or path)


def wait_gone(cluster: Cluster, path: str, what: str = "") -> None:
    wait_for(lambda: cluster.get(path) is None or None, timeout=WAIT_SECONDS,
             what=what or f"{path} deleted")  # fmt: skip


def wait_ready_says(cluster: Cluster, dp: str, status: str | None, text: str = "") -> None:
    """Wait until BGPAdvertisementReady has ``status`` (None: absent) and says ``text``."""

    def probe() -> bool | None:
        found = condition(cluster, dp, READY)
        if status is None:
            return found is None or None
        return (found is not None and found["status"] == status
                and text in found.get("message", "")) or None  # fmt: skip

    wait_for(probe, timeout=WAIT_SECONDS,
             what=f"{READY}={status} saying {text!r}: {condition(cluster, dp, READY)}")  # fmt: skip


def service_lb_cidrs(cluster: Cluster) -> list[str]:
    config = cluster.get(CALICO_DEFAULT) or {}
    return [e["cidr"] for e in (config.get("spec") or {}).get("serviceLoadBalancerIPs") or []]


def record(cluster: Cluster) -> dict[str, list[str]]:
    config = cluster.get(CALICO_DEFAULT) or {}
    text = (
        (config.get("metadata") or {})
        .get("annotations", {})
        .get("dynamic-prefix.io/advertised-cidrs")
    )
    return json.loads(text) if text else {}


def subnet_of(prefix56: str, offset: int = 1) -> str:
    """The ``offset``-th /64 of a /56, computed here."""
    return str(list(IPv6Network(prefix56).subnets(new_prefix=64))[offset])


@pytest.fixture(scope="module", autouse=True)
def bgp_crds(control_plane: ControlPlane) -> None:
    """The BGP kinds' test CRDs (also installed by `pool_crds`; applying again is a no-op)."""
    for name in ("cilium-bgp-v2.yaml", "metallb-bgp.yaml", "calico-bgp.yaml"):
        control_plane.kubectl("apply", "-f", str(CRDS / name))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")


@pytest.fixture
def cleanup(cluster: Cluster) -> Iterator[list[str]]:
    """Paths deleted after the test, last first."""
    paths: list[str] = []
    yield paths
    for path in reversed(paths):
        cluster.delete(path)


def test_cilium_and_metallb_advertisements_follow_the_spec_and_repair_user_edits(
    cluster: Cluster, shared_operator: OperatorProcess, namespace: str, cleanup: list[str]
) -> None:
    tag = new_tag()
    dp = f"bgp-{tag}"
    name = f"dp-{dp}-lb"
    prefix = "2001:db8:100::/56"
    obj = dynamic_prefix(dp, prefix, ranges=(), subnets=[announced()])
    created = create_dynamic_prefix(cluster, obj)
    cleanup.append(f"{DP_PATH}/{dp}")
    pool = CILIUM_LB_POOL.manifest(f"lb-{tag}", dp=dp, address_range=None, subnet="lb",
                                   entries=[])  # fmt: skip
    web = with_selector(pool, {"app": f"web-{tag}"})
    cluster.apply(web)
    cleanup.append(CILIUM_LB_POOL.path(f"lb-{tag}"))
    cluster.apply(METALLB_POOL.manifest(f"mlb-{tag}", dp=dp, address_range=None, subnet="lb",
                                        namespace=namespace, entries=[]))  # fmt: skip
    # deleted, not left in a namespace that stays Terminating (no controller-manager here)
    cleanup.append(METALLB_POOL.path(f"mlb-{tag}", namespace))

    cilium = wait_object(cluster, f"{CILIUM_ADVERTS}/{name}", what="the CiliumBGPAdvertisement")
    assert cilium["spec"] == {
        "advertisements": [
            {
                "advertisementType": "Service",
                "service": {"addresses": ["LoadBalancerIP"]},
                "selector": {"matchLabels": {"app": f"web-{tag}"}},
                "attributes": {"communities": {"standard": [COMMUNITY]}},
            }
        ]
    }
    labels = cilium["metadata"]["labels"]
    assert labels[api.ANNOTATION_NAME] == dp
    assert labels["dynamic-prefix.io/subnet"] == "lb"
    owner = cilium["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (api.KIND, dp,
                                                           created["metadata"]["uid"])  # fmt: skip
    metallb = wait_object(cluster, f"{metallb_adverts(namespace)}/{name}", what="MetalLB's")
    assert metallb["spec"] == {
        "ipAddressPools": [f"mlb-{tag}"],
        "aggregationLengthV6": 128,
        "communities": [COMMUNITY],
        "aggregationLength": 32,  # the CRD's default (IPv4), left alone, not fought over
    }
    wait_ready_says(cluster, dp, "True", "2 BGP advertisement(s) configured")
    _, metrics = shared_operator.http_get("/metrics")
    assert (
        f'dynamic_prefix_bgp_announcements{{dynamic_prefix="{dp}",state="configured"}} 2.0'
        in metrics
    )
    assert (
        f'dynamic_prefix_bgp_announcements{{dynamic_prefix="{dp}",state="pending"}} 0.0' in metrics
    )
    assert status_of(cluster, dp)["subnets"] == [
        {"name": "lb", "cidr": subnet_of(prefix), "bgpAdvertisement": name}
    ]
    assert events_about(cluster, dp, reason="AdvertisementsUpdated")

    # a user's edit of an object of ours is put right; a deleted one made again
    cluster.patch(f"{CILIUM_ADVERTS}/{name}", {"spec": {"advertisements": [
        {"advertisementType": "Service", "service": {"addresses": ["ClusterIP"]},
         "selector": {"matchLabels": {"app": "other"}}}]}})  # fmt: skip
    wait_object(cluster, f"{CILIUM_ADVERTS}/{name}", lambda o: o["spec"] == cilium["spec"],
                "the edited advertisement restored")  # fmt: skip
    cluster.delete(f"{metallb_adverts(namespace)}/{name}")
    wait_object(cluster, f"{metallb_adverts(namespace)}/{name}",
                lambda o: o["spec"] == metallb["spec"], "MetalLB's made again")  # fmt: skip

    # advertise off: both go, and the condition with them
    cluster.patch(f"{DP_PATH}/{dp}", {"spec": {"subnets": [announced(advertise=False)]}})
    wait_gone(cluster, f"{CILIUM_ADVERTS}/{name}")
    wait_gone(cluster, f"{metallb_adverts(namespace)}/{name}")
    wait_ready_says(cluster, dp, None)
    assert "bgpAdvertisement" not in status_of(cluster, dp)["subnets"][0]

    # on again, then the subnet removed from the spec
    cluster.patch(f"{DP_PATH}/{dp}", {"spec": {"subnets": [announced()]}})
    wait_object(cluster, f"{CILIUM_ADVERTS}/{name}", what="made again once advertised")
    cluster.patch(f"{DP_PATH}/{dp}", {"spec": {"subnets": [announced("other", offset=2)]}})
    wait_gone(cluster, f"{CILIUM_ADVERTS}/{name}", "deleted with its subnet")
    wait_gone(cluster, f"{metallb_adverts(namespace)}/{name}", "MetalLB's deleted with it")
    # the other subnet feeds no pool: said, and nothing is made for it
    wait_ready_says(cluster, dp, "False", "subnet other feeds no pool")
    assert cluster.get(f"{CILIUM_ADVERTS}/dp-{dp}-other") is None

    # back, then the DynamicPrefix deleted: its objects go with it
    cluster.patch(f"{DP_PATH}/{dp}", {"spec": {"subnets": [announced()]}})
    wait_object(cluster, f"{metallb_adverts(namespace)}/{name}", what="made again")
    cluster.delete(f"{DP_PATH}/{dp}")
    wait_gone(cluster, f"{DP_PATH}/{dp}", "the DynamicPrefix finalized")
    assert cluster.get(f"{CILIUM_ADVERTS}/{name}") is None
    assert cluster.get(f"{metallb_adverts(namespace)}/{name}") is None


def test_a_cilium_pool_without_a_selector_is_reported_and_announced_once_it_has_one(
    cluster: Cluster, shared_operator: OperatorProcess, cleanup: list[str]
) -> None:
    tag = new_tag()
    dp = f"bgp-open-{tag}"
    name = f"dp-{dp}-lb"
    create_dynamic_prefix(cluster, dynamic_prefix(dp, "2001:db8:200::/56", ranges=(),
                                                  subnets=[announced()]))  # fmt: skip
    cleanup.append(f"{DP_PATH}/{dp}")
    pool = CILIUM_LB_POOL.manifest(f"open-{tag}", dp=dp, address_range=None, subnet="lb",
                                   entries=[])  # fmt: skip
    cluster.apply(pool)
    cleanup.append(CILIUM_LB_POOL.path(f"open-{tag}"))

    wait_ready_says(cluster, dp, "False", f"open-{tag} has no serviceSelector")
    assert (condition(cluster, dp, READY) or {})["reason"] == "AdvertisementsPending"
    assert (condition(cluster, dp, "Ready") or {})["reason"] == "BGPNotReady"
    assert cluster.get(f"{CILIUM_ADVERTS}/{name}") is None  # never "every Service"
    wait_for(lambda: events_about(cluster, dp, reason="AdvertisementsPending"),
             timeout=WAIT_SECONDS, what="a Warning saying why")  # fmt: skip

    cluster.patch(CILIUM_LB_POOL.path(f"open-{tag}"),
                  {"spec": {"serviceSelector": {"matchExpressions": [
                      {"key": "tier", "operator": "In", "values": ["edge"]}]}}})  # fmt: skip
    advert = wait_object(cluster, f"{CILIUM_ADVERTS}/{name}", what="announced once selective")
    assert advert["spec"]["advertisements"][0]["selector"] == {
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge"]}]
    }
    wait_ready_says(cluster, dp, "True", "CiliumBGPAdvertisement " + name)


def test_metallb_announces_the_whole_subnet_when_asked_and_refuses_narrower_entries(
    cluster: Cluster, shared_operator: OperatorProcess, namespace: str, cleanup: list[str]
) -> None:
    tag = new_tag()
    dp = f"bgp-agg-{tag}"
    name = f"dp-{dp}-lb"
    obj = dynamic_prefix(dp, "2001:db8:300::/56", ranges=(),
                         subnets=[announced(announce="subnet")])  # fmt: skip
    create_dynamic_prefix(cluster, obj)
    cleanup.append(f"{DP_PATH}/{dp}")
    pool_name = f"agg-{tag}"
    cluster.apply(METALLB_POOL.manifest(pool_name, dp=dp, address_range=None, subnet="lb",
                                        namespace=namespace, entries=[]))  # fmt: skip
    cleanup.append(METALLB_POOL.path(pool_name, namespace))
    advert = wait_object(cluster, f"{metallb_adverts(namespace)}/{name}", what="MetalLB's")
    assert advert["spec"]["aggregationLengthV6"] == 64

    # a user's /72 in the same pool: MetalLB would refuse to aggregate it to /64
    narrow = "2001:db8:ffff:1::/72"
    cluster.patch(METALLB_POOL.path(pool_name, namespace),
                  {"spec": {"addresses": [narrow, subnet_of("2001:db8:300::/56")]}})  # fmt: skip
    wait_ready_says(cluster, dp, "False", f"{pool_name} ({narrow})")
    wait_gone(cluster, f"{metallb_adverts(namespace)}/{name}", "not announced as a /64")


def test_calico_cidrs_follow_three_renumberings_beside_the_users_and_another_prefix(
    cluster: Cluster, shared_operator: OperatorProcess, cleanup: list[str]
) -> None:
    tag = new_tag()
    users = ["2001:db8:ffff:e0::/64", "10.96.100.0/24"]
    config = cluster.get(CALICO_DEFAULT)
    if config is None:
        entries = [{"cidr": c} for c in users]
        cluster.apply({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                       "metadata": {"name": "default"},
                       "spec": {"serviceLoadBalancerIPs": entries}})  # fmt: skip
    else:
        entries = (config.get("spec") or {}).get("serviceLoadBalancerIPs") or []
        extra = [{"cidr": c} for c in users if c not in [e["cidr"] for e in entries]]
        cluster.patch(CALICO_DEFAULT, {"spec": {"serviceLoadBalancerIPs": entries + extra}})

    first, other = f"calico-{tag}", f"calico2-{tag}"
    prefixes = ["2001:db8:400::/56", "2001:db8:500::/56", "2001:db8:600::/56",
                "2001:db8:700::/56"]  # fmt: skip
    for dp, prefix in ((first, prefixes[0]), (other, "2001:db8:800::/56")):
        obj = dynamic_prefix(dp, prefix, ranges=(), subnets=[announced()], history=1)
        create_dynamic_prefix(cluster, obj)
        cleanup.append(f"{DP_PATH}/{dp}")
        cluster.apply(CALICO_POOL.manifest(f"t-{dp}", dp=dp, address_range=None, subnet="lb"))
        cleanup.append(CALICO_POOL.path(f"t-{dp}"))
    theirs = subnet_of("2001:db8:800::/56")

    universe = {*users, theirs, *(subnet_of(p) for p in prefixes)}

    def holds(*wanted: str) -> None:
        """serviceLoadBalancerIPs holds exactly ``wanted`` of this test's CIDRs, besides
        the users' and the other DynamicPrefix's (other tests may list more)."""
        want = sorted([*users, theirs, *wanted])
        wait_for(lambda: sorted(c for c in service_lb_cidrs(cluster) if c in universe) == want
                 or None, timeout=WAIT_SECONDS,
                 what=f"serviceLoadBalancerIPs {want}: {service_lb_cidrs(cluster)}")  # fmt: skip

    holds(subnet_of(prefixes[0]))
    wait_ready_says(cluster, first, "True", "Calico BGPConfiguration default")
    for index in range(1, 4):
        set_prefix(cluster, first, prefixes[index])
        wait_current(cluster, first, prefixes[index])
        # the current subnet and the one still in the history (maxPrefixHistory 1)
        holds(subnet_of(prefixes[index]), subnet_of(prefixes[index - 1]))
    assert record(cluster)[first] == [subnet_of(prefixes[3]), subnet_of(prefixes[2])]
    assert record(cluster)[other] == [theirs]
    # the community rides on Calico's routes too, so the router's filter takes them
    adverts = (cluster.get(CALICO_DEFAULT) or {})["spec"]["prefixAdvertisements"]
    tagged = {a["cidr"]: a["communities"] for a in adverts}
    for cidr in (subnet_of(prefixes[3]), subnet_of(prefixes[2]), theirs):
        assert tagged[cidr] == [COMMUNITY]
    assert subnet_of(prefixes[1]) not in tagged  # left the history with its CIDR

    cluster.delete(f"{DP_PATH}/{first}")
    wait_gone(cluster, f"{DP_PATH}/{first}", "the first DynamicPrefix finalized")
    holds()  # only the users' and the other DynamicPrefix's are left
    assert first not in record(cluster)
    adverts = (cluster.get(CALICO_DEFAULT) or {})["spec"]["prefixAdvertisements"]
    assert [a["cidr"] for a in adverts if a["cidr"] in universe] == [theirs]


def test_the_go_operators_advertisement_is_taken_over_and_a_users_namesake_left_alone(
    cluster: Cluster, shared_operator: OperatorProcess, cleanup: list[str]
) -> None:
    tag = new_tag()
    dp, taken = f"bgp-go-{tag}", f"bgp-taken-{tag}"
    created = create_dynamic_prefix(cluster, dynamic_prefix(dp, "2001:db8:500::/56", ranges=(),
                                                            subnets=[announced()]))  # fmt: skip
    create_dynamic_prefix(cluster, dynamic_prefix(taken, "2001:db8:600::/56", ranges=(),
                                                  subnets=[announced()]))  # fmt: skip
    cleanup += [f"{DP_PATH}/{dp}", f"{DP_PATH}/{taken}"]
    # what the Go operator left: its labels and controller reference, no selector
    go_made = {
        "apiVersion": "cilium.io/v2alpha1", "kind": "CiliumBGPAdvertisement",
        "metadata": {"name": f"dp-{dp}-lb", "labels": {
            "app.kubernetes.io/managed-by": "dynamic-prefix-operator",
            api.ANNOTATION_NAME: dp, "dynamic-prefix.io/subnet": "lb"},
            "ownerReferences": [{"apiVersion": api.API_VERSION, "kind": api.KIND, "name": dp,
                                 "uid": created["metadata"]["uid"], "controller": True,
                                 "blockOwnerDeletion": True}]},
        "spec": {"advertisements": [{"advertisementType": "Service",
                                     "service": {"addresses": ["LoadBalancerIP"]}}]},
    }  # fmt: skip
    cluster.apply(go_made)
    users = {
        "apiVersion": "cilium.io/v2", "kind": "CiliumBGPAdvertisement",
        "metadata": {"name": f"dp-{taken}-lb", "labels": {"team": "net"}},
        "spec": {"advertisements": [{"advertisementType": "PodCIDR"}]},
    }  # fmt: skip
    cluster.apply(users)
    cleanup.append(f"{CILIUM_ADVERTS}/dp-{taken}-lb")
    for name in (dp, taken):
        pool = CILIUM_LB_POOL.manifest(f"{name}-pool", dp=name, address_range=None,
                                       subnet="lb", entries=[])  # fmt: skip
        cluster.apply(with_selector(pool, {"app": name}))
        cleanup.append(CILIUM_LB_POOL.path(f"{name}-pool"))

    adopted = wait_object(
        cluster, f"{CILIUM_ADVERTS}/dp-{dp}-lb",
        lambda o: o["spec"]["advertisements"][0].get("selector") == {"matchLabels": {"app": dp}},
        "the Go operator's advertisement taken over and given the pool's selector",
    )  # fmt: skip
    assert adopted["metadata"]["annotations"][api.ANNOTATION_NAME] == dp
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    wait_ready_says(cluster, dp, "True", f"CiliumBGPAdvertisement dp-{dp}-lb")

    wait_ready_says(cluster, taken, "False", "was not made by the operator")
    left = cluster.get(f"{CILIUM_ADVERTS}/dp-{taken}-lb") or {}
    assert left["spec"] == users["spec"]
    assert left["metadata"]["labels"] == {"team": "net"}
