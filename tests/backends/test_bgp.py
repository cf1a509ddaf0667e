"""The BGP plan (pure): what each speaker should read, and Calico's shared list merged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynamic_prefix.backends.base import PoolReference
from dynamic_prefix.backends.bgp import (
    ANNOTATION_ADVERTISED_CIDRS,
    CALICO_BGP_CONFIGURATION,
    CILIUM_ADVERTISEMENT,
    METALLB_ADVERTISEMENT,
    FedPool,
    OwnedObject,
    calico_change,
    is_ours,
    label_value,
    merge_diff,
    object_patch,
    owner_of,
    plan_announcements,
)
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.model.api import advertisement_name

SERVED = {
    CILIUM_ADVERTISEMENT.name: Resource("cilium.io", "v2", "ciliumbgpadvertisements",
                                        namespaced=False),
    METALLB_ADVERTISEMENT.name: Resource("metallb.io", "v1beta1", "bgpadvertisements",
                                         namespaced=True),
    CALICO_BGP_CONFIGURATION.name: Resource("projectcalico.org", "v3", "bgpconfigurations",
                                            namespaced=False),
}  # fmt: skip
SELECTOR = {"matchLabels": {"app": "web"}}


def dp(
    *subnets: dict[str, Any],
    current: str | None = "2001:db8:100::/56",
    history: tuple[str, ...] = (),
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if current is not None:
        status["currentPrefix"] = current
    if history:
        status["history"] = [{"prefix": p, "state": "draining"} for p in history]
    return {
        "metadata": {"name": "home", "uid": "u-1", "resourceVersion": "7"},
        "spec": {"acquisition": {"static": {"prefix": current or "2001:db8:100::/56"}},
                 "subnets": list(subnets)},
        "status": status,
    }  # fmt: skip


def subnet(name: str = "lb", offset: int = 255, **bgp: Any) -> dict[str, Any]:
    return {"name": name, "offset": offset, "prefixLength": 64,
            "bgp": {"advertise": True, "community": "65001:42", **bgp}}  # fmt: skip


def pool(backend: str, name: str, subnet_name: str = "lb", *, namespace: str | None = None,
         selector: Any = None, entries: tuple[str, ...] = ()) -> FedPool:  # fmt: skip
    return FedPool(backend, namespace, name, PoolReference("home", subnet=subnet_name),
                   selector, entries)  # fmt: skip


def test_nothing_is_planned_without_a_prefix_or_with_an_invalid_spec() -> None:
    assert plan_announcements(dp(subnet(), current=None), [], SERVED) is None
    broken = dp(subnet())
    broken["spec"]["subnets"][0]["prefixLength"] = 200
    assert plan_announcements(broken, [], SERVED) is None
    unannounced = plan_announcements(dp({"name": "lb", "prefixLength": 64}), [], SERVED)
    assert unannounced is not None
    assert not unannounced.wanted


def test_cilium_gets_one_advertisement_with_each_distinct_selector_and_the_community() -> None:
    other = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge"]}]}
    pools = [pool("cilium-lb-ip-pool", "a", selector=SELECTOR),
             pool("cilium-lb-ip-pool", "b", selector=SELECTOR),
             pool("cilium-lb-ip-pool", "c", selector=other),
             pool("cilium-cidr-group", "policy")]  # fmt: skip
    plan = plan_announcements(dp(subnet()), pools, SERVED)
    assert plan is not None
    assert plan.problems == ()
    [advert] = plan.objects
    assert advert.name == "dp-home-lb"
    assert advert.body["apiVersion"] == "cilium.io/v2"
    assert [a["selector"] for a in advert.body["spec"]["advertisements"]] == [SELECTOR, other]
    assert advert.body["spec"]["advertisements"][0] == {
        "advertisementType": "Service",
        "service": {"addresses": ["LoadBalancerIP"]},
        "selector": SELECTOR,
        "attributes": {"communities": {"standard": ["65001:42"]}},
    }
    metadata = advert.body["metadata"]
    assert metadata["labels"]["dynamic-prefix.io/name"] == "home"
    assert metadata["ownerReferences"][0]["uid"] == "u-1"


def test_a_cilium_pool_without_selector_is_a_problem_never_an_empty_selector() -> None:
    selectors: tuple[dict[str, Any] | None, ...] = (None, {}, {"matchLabels": {}})
    for selector in selectors:
        plan = plan_announcements(dp(subnet()), [pool("cilium-lb-ip-pool", "open",
                                                      selector=selector)], SERVED)  # fmt: skip
        assert plan is not None
        assert plan.objects == ()
        assert "cilium-lb-ip-pool open has no serviceSelector" in plan.problems[0]


def test_without_a_community_no_attributes_are_written() -> None:
    bare = subnet()
    del bare["bgp"]["community"]
    plan = plan_announcements(dp(bare), [pool("cilium-lb-ip-pool", "a", selector=SELECTOR),
                                         pool("metallb-ip-address-pool", "m", namespace="x")],
                              SERVED)  # fmt: skip
    assert plan is not None
    cilium, metallb = plan.objects
    assert "attributes" not in cilium.body["spec"]["advertisements"][0]
    assert "communities" not in metallb.body["spec"]


def test_metallb_gets_one_advertisement_per_namespace_naming_its_pools() -> None:
    pools = [pool("metallb-ip-address-pool", "b", namespace="one"),
             pool("metallb-ip-address-pool", "a", namespace="one"),
             pool("metallb-ip-address-pool", "c", namespace="two")]  # fmt: skip
    plan = plan_announcements(dp(subnet()), pools, SERVED)
    assert plan is not None
    assert [(o.namespace, o.body["spec"]["ipAddressPools"]) for o in plan.objects] == [
        ("one", ["a", "b"]), ("two", ["c"])]  # fmt: skip
    assert {o.body["spec"]["aggregationLengthV6"] for o in plan.objects} == {128}


@pytest.mark.parametrize(
    ("entries", "refused"),
    [
        (("2001:db8:100:ff::/64",), False),
        (("2001:db8:100:ff::/64", "192.0.2.0/24"), False),  # IPv4: aggregationLength's
        (("2001:db8:ffff:1::/72",), True),
        (("2001:db8:ffff::1-2001:db8:ffff::4",), True),  # a range: its CIDRs are /126, /128
        (("2001:db8:ffff::-2001:db8:ffff:0:ffff:ffff:ffff:ffff",), False),  # exactly a /64
        (("not an address",), False),  # reported by the pool's own verdict
    ],
)
def test_metallb_aggregation_to_the_subnet_refuses_narrower_entries(
    entries: tuple[str, ...], refused: bool
) -> None:
    plan = plan_announcements(dp(subnet(announce="subnet")),
                              [pool("metallb-ip-address-pool", "m", namespace="x",
                                    entries=entries)], SERVED)  # fmt: skip
    assert plan is not None
    if refused:
        assert plan.objects == ()
        assert "MetalLB refuses to aggregate to /64" in plan.problems[0]
    else:
        assert plan.objects[0].body["spec"]["aggregationLengthV6"] == 64


def test_calico_gets_the_subnet_of_every_prefix_in_use_and_retired_ones_named() -> None:
    body = dp(subnet(), history=("2001:db8:200::/56",))
    body["status"]["retiredPrefixes"] = ["2001:db8:300::/56"]
    plan = plan_announcements(body, [pool("calico-ip-pool", "t")], SERVED)
    assert plan is not None
    assert plan.calico_cidrs == ("2001:db8:100:ff::/64", "2001:db8:200:ff::/64")
    assert plan.calico_retired == ("2001:db8:300:ff::/64",)
    assert plan.advertised == (
        "Calico BGPConfiguration default: 2001:db8:100:ff::/64, 2001:db8:200:ff::/64",
    )


def test_a_speaker_not_served_and_a_subnet_without_pools_are_said() -> None:
    plan = plan_announcements(dp(subnet(), subnet("idle", offset=1)),
                              [pool("cilium-lb-ip-pool", "a", selector=SELECTOR)], {})  # fmt: skip
    assert plan is not None
    assert plan.objects == ()
    assert "does not serve CiliumBGPAdvertisement" in plan.problems[0]
    assert plan.waiting == (
        "subnet idle feeds no pool of Cilium, MetalLB or Calico (annotate one with "
        "dynamic-prefix.io/subnet: idle): nothing to announce",
    )


def test_names_and_labels_fit_kubernetes_limits() -> None:
    assert advertisement_name("home", "lb") == "dp-home-lb"
    long = advertisement_name("x" * 250, "lb")
    assert len(long) == 253
    assert long != advertisement_name("x" * 251, "lb")
    assert label_value("y" * 63) == "y" * 63
    assert len(label_value("y" * 64)) == 63
    assert label_value("y" * 64) != label_value("y" * 65)


def owned(spec: dict[str, Any]) -> OwnedObject:
    plan = plan_announcements(dp(subnet()), [pool("cilium-lb-ip-pool", "a", selector=SELECTOR)],
                              SERVED)  # fmt: skip
    assert plan is not None
    body = dict(plan.objects[0].body, spec=spec)
    return OwnedObject(METALLB_ADVERTISEMENT, "x", "dp-home-lb", body)


def test_object_patch_sets_our_fields_and_leaves_defaults_and_users_additions() -> None:
    desired = owned({"ipAddressPools": ["a"], "aggregationLengthV6": 128})
    observed = {
        "metadata": {**desired.body["metadata"], "resourceVersion": "5",
                     "labels": {**desired.body["metadata"]["labels"], "team": "net"}},
        "spec": {"ipAddressPools": ["a"], "aggregationLengthV6": 128, "aggregationLength": 32,
                 "peers": ["upstream"]},
    }  # fmt: skip
    assert object_patch(observed, desired) is None  # nothing of ours differs
    observed["spec"]["ipAddressPools"] = ["a", "b"]
    del observed["metadata"]["labels"]["dynamic-prefix.io/subnet"]
    observed["spec"]["communities"] = ["65001:9"]  # ours, from a community since removed
    assert object_patch(observed, desired) == {
        "metadata": {"labels": {"dynamic-prefix.io/subnet": "lb"}, "resourceVersion": "5"},
        "spec": {"ipAddressPools": ["a"], "communities": None},
    }


def test_merge_diff_removes_keys_that_go_and_replaces_lists() -> None:
    old = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}
    new = {"a": {"x": 1}, "b": [2], "d": 4}
    assert merge_diff(old, new) == {"a": {"y": None}, "b": [2], "c": None, "d": 4}


def test_ownership_by_label_or_by_owner_reference_to_the_dynamic_prefix() -> None:
    body = dp(subnet())
    ours = {"metadata": {"labels": {"app.kubernetes.io/managed-by": "dynamic-prefix-operator"},
                         "annotations": {"dynamic-prefix.io/name": "home"}}}  # fmt: skip
    go_made = {"metadata": {"ownerReferences": [
        {"apiVersion": "dynamic-prefix.io/v1alpha1", "kind": "DynamicPrefix", "name": "home",
         "uid": "u-1"}]}}  # fmt: skip
    users = {"metadata": {"name": "dp-home-lb"}}
    assert is_ours(ours)
    assert is_ours(go_made, body)
    assert not is_ours(go_made)  # without the DynamicPrefix to compare its uid with
    assert not is_ours(users, body)
    assert owner_of(ours) == owner_of(go_made) == "home"
    assert owner_of(users) is None


# --- Calico's shared BGPConfiguration -------------------------------------------------------


def config(entries: list[str], record: dict[str, list[str]] | None = None) -> dict[str, Any]:
    annotations = {} if record is None else {ANNOTATION_ADVERTISED_CIDRS: json.dumps(record)}
    return {
        "metadata": {"name": "default", "resourceVersion": "9", "annotations": annotations},
        "spec": {"asNumber": 64512, "serviceLoadBalancerIPs": [{"cidr": c} for c in entries]},
    }


def applied(before: dict[str, Any], patch: dict[str, Any] | None) -> tuple[list[str], Any]:
    """The CIDRs and the record after the patch (merge-patch semantics at this depth)."""
    if patch is None:
        entries = before["spec"]["serviceLoadBalancerIPs"]
        text = before["metadata"]["annotations"].get(ANNOTATION_ADVERTISED_CIDRS)
    else:
        entries = (patch.get("spec") or before["spec"]).get("serviceLoadBalancerIPs") or []
        text = patch["metadata"]["annotations"][ANNOTATION_ADVERTISED_CIDRS]
    return [e["cidr"] for e in entries], json.loads(text) if text else {}


def test_our_cidrs_join_the_users_and_follow_a_renumbering() -> None:
    users = ["10.96.0.0/24", "2001:db8:ffff::/64"]
    first = calico_change(config(users), "home", ["2001:db8:100:ff::/64"])
    cidrs, record = applied(config(users), first.patch)
    assert cidrs == [*users, "2001:db8:100:ff::/64"]
    assert record == {"home": ["2001:db8:100:ff::/64"]}
    assert first.patch is not None
    assert first.patch["metadata"]["resourceVersion"] == "9"  # optimistic concurrency

    after = config(cidrs, record)
    moved = calico_change(after, "home", ["2001:db8:200:ff::/64"])
    assert applied(after, moved.patch) == ([*users, "2001:db8:200:ff::/64"],
                                           {"home": ["2001:db8:200:ff::/64"]})  # fmt: skip
    assert calico_change(after, "home", ["2001:db8:100:ff::/64"]) == calico_change(None, "x", [])


def test_a_users_cidr_equal_to_ours_stays_theirs_and_other_prefixes_are_left() -> None:
    before = config(["2001:db8:100:ff::/64", "2001:db8:900:1::/64"],
                    {"other": ["2001:db8:900:1::/64"]})  # fmt: skip
    change = calico_change(before, "home", ["2001:db8:100:ff::/64"])
    cidrs, record = applied(before, change.patch)
    assert cidrs == ["2001:db8:100:ff::/64", "2001:db8:900:1::/64"]
    assert record == {"other": ["2001:db8:900:1::/64"]}  # not recorded as ours
    released = calico_change(config(cidrs, record), "home", [])
    assert released.patch is None  # the user's entry is not ours to remove


def test_release_removes_only_ours_and_a_shared_cidr_stays_for_the_other() -> None:
    shared = "2001:db8:100:ff::/64"
    before = config([shared, "2001:db8:ffff::/64"], {"home": [shared], "other": [shared]})
    change = calico_change(before, "home", [])
    assert applied(before, change.patch) == ([shared, "2001:db8:ffff::/64"], {"other": [shared]})
    alone = config([shared, "2001:db8:ffff::/64"], {"home": [shared]})
    change = calico_change(alone, "home", [])
    assert change.patch is not None
    assert change.patch["metadata"]["annotations"][ANNOTATION_ADVERTISED_CIDRS] is None
    assert applied(alone, change.patch)[0] == ["2001:db8:ffff::/64"]


def test_a_retired_cidr_written_back_by_a_stale_editor_is_removed() -> None:
    stale = config(["2001:db8:ffff::/64", "2001:db8:100:ff::/64"], {})
    change = calico_change(stale, "home", ["2001:db8:200:ff::/64"], ["2001:db8:100:ff::/64"])
    assert applied(stale, change.patch)[0] == ["2001:db8:ffff::/64", "2001:db8:200:ff::/64"]


def test_no_configuration_is_created_for_nothing_and_one_is_for_something() -> None:
    assert calico_change(None, "home", []).create is None
    made = calico_change(None, "home", ["2001:db8:100:ff::/64"]).create
    assert made is not None
    assert made["metadata"]["name"] == "default"
    assert made["spec"] == {"serviceLoadBalancerIPs": [{"cidr": "2001:db8:100:ff::/64"}]}


def test_an_unreadable_record_is_a_problem_and_nothing_is_written() -> None:
    broken = config(["2001:db8:ffff::/64"])
    broken["metadata"]["annotations"][ANNOTATION_ADVERTISED_CIDRS] = "{not json"
    change = calico_change(broken, "home", ["2001:db8:100:ff::/64"])
    assert (change.create, change.patch) == (None, None)
    assert change.problem is not None
    assert "unreadable" in change.problem


def patched(config_before: dict[str, Any], change: Any) -> dict[str, Any]:
    """The object after a create or merge patch (annotations and spec, one level deep)."""
    if change.create is not None:
        return {**change.create, "metadata": {**change.create["metadata"],
                                              "resourceVersion": "1"}}  # fmt: skip
    if change.patch is None:
        return config_before
    after: dict[str, Any] = json.loads(json.dumps(config_before))
    for key, value in change.patch["metadata"]["annotations"].items():
        if value is None:
            after["metadata"]["annotations"].pop(key, None)
        else:
            after["metadata"]["annotations"][key] = value
    for key, value in (change.patch.get("spec") or {}).items():
        if value is None:
            after["spec"].pop(key, None)
        else:
            after["spec"][key] = value
    return after


def adverts_of(config_now: dict[str, Any]) -> list[Any]:
    return list(config_now["spec"].get("prefixAdvertisements") or [])


def test_calico_routes_carry_the_community_through_prefix_advertisements() -> None:
    plan = plan_announcements(dp(subnet(), history=("2001:db8:200::/56",)),
                              [pool("calico-ip-pool", "t")], SERVED)  # fmt: skip
    assert plan is not None
    ours = dict(plan.calico_communities)
    assert ours == {"2001:db8:100:ff::/64": "65001:42", "2001:db8:200:ff::/64": "65001:42"}
    before = config(["2001:db8:ffff::/64"])
    users_advert = {"cidr": "2001:db8:ffff::/64", "communities": ["65000:1"]}
    before["spec"]["prefixAdvertisements"] = [users_advert]
    after = patched(before, calico_change(before, "home", plan.calico_cidrs, communities=ours))
    assert adverts_of(after) == [
        users_advert,
        {"cidr": "2001:db8:100:ff::/64", "communities": ["65001:42"]},
        {"cidr": "2001:db8:200:ff::/64", "communities": ["65001:42"]},
    ]
    assert calico_change(after, "home", plan.calico_cidrs, communities=ours).patch is None
    released = patched(after, calico_change(after, "home", []))
    assert adverts_of(released) == [users_advert]
    assert "dynamic-prefix.io/tagged-cidrs" not in released["metadata"]["annotations"]


def test_two_prefixes_tagging_calico_do_not_reorder_each_other_and_a_users_entry_stays() -> None:
    state = config([])
    users_advert = {"cidr": "2001:db8:300:ff::/64", "communities": ["no-export"]}
    state["spec"]["prefixAdvertisements"] = [users_advert]
    wants = {"a": "2001:db8:100:ff::/64", "b": "2001:db8:200:ff::/64"}
    for _ in range(2):
        for name, cidr in wants.items():
            state = patched(state, calico_change(state, name, [cidr],
                                                 communities={cidr: "65001:42"}))  # fmt: skip
    for name, cidr in wants.items():  # converged: no pass writes any more
        assert calico_change(state, name, [cidr], communities={cidr: "65001:42"}).patch is None
    # a CIDR of ours that the user tagged first: their entry stays, ours is not added
    mine = "2001:db8:300:ff::/64"
    state = patched(state, calico_change(state, "c", [mine], communities={mine: "65001:42"}))
    assert [a for a in adverts_of(state) if a["cidr"] == mine] == [users_advert]
    state = patched(state, calico_change(state, "c", []))
    assert users_advert in adverts_of(state)


def test_an_out_of_range_community_is_said_and_the_rest_still_served() -> None:
    body = dp(subnet(community="65536:1"), subnet("ok", offset=1))
    pools = [pool("cilium-lb-ip-pool", "a", selector=SELECTOR),
             pool("cilium-lb-ip-pool", "b", "ok", selector=SELECTOR)]  # fmt: skip
    plan = plan_announcements(body, pools, SERVED)  # the spec itself stays valid
    assert plan is not None
    assert [o.name for o in plan.objects] == ["dp-home-ok"]
    assert plan.problems == ("subnet lb: bgp.community 65536:1 is not a standard community "
                             "(each half is a 16-bit number, 0-65535): not announced",)  # fmt: skip
