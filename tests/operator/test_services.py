"""LoadBalancer Services moving with the prefix (``transition.mode: ha``), on the real API
server, with a running operator.

No load-balancer IPAM controller runs here: where a test needs a Service to have an
address, it writes ``status.loadBalancer.ingress`` the way Cilium LB-IPAM, MetalLB or
Calico would (the status subresource), and says so. Expected addresses are computed in
the test from the prefix and the suffix with `ipaddress`, not with the operator's code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network
from typing import Any

import pytest

from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    DP_PATH,
    RANGE,
    WAIT_SECONDS,
    changes_since,
    condition_message,
    dynamic_prefix,
    events_about,
    new_tag,
    patch_prefix,
    resource_version,
    set_prefix,
    wait_current,
    writes_to,
)

NAMESPACE = "default"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"
CILIUM, METALLB = "lbipam.cilium.io/ips", "metallb.io/loadBalancerIPs"
CALICO, TARGET = "projectcalico.org/loadBalancerIPs", "external-dns.alpha.kubernetes.io/target"
MANAGED_IPS, MANAGED_TARGETS = "dynamic-prefix.io/managed-ips", "dynamic-prefix.io/managed-targets"
SUFFIX = "::ffff:0:0:2"  # inside the range lb (::f000:0:0:0/68)


def address(prefix: str, suffix: str = SUFFIX) -> str:
    """prefix + suffix, computed here."""
    network = IPv6Network(prefix)
    return str(IPv6Address(int(network.network_address) | int(IPv6Address(suffix))))


def ha_prefix(name: str, prefix: str, *, history: int = 2) -> dict[str, Any]:
    obj = dynamic_prefix(name, prefix, history=history)
    obj["spec"]["transition"]["mode"] = "ha"
    return obj


def lb_service(
    name: str, annotations: dict[str, str], *, kind: str = "LoadBalancer"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
        "spec": {"type": kind, "ports": [{"port": 80, "protocol": "TCP"}]},
    }


def opted_in(dp: str, **more: str) -> dict[str, str]:
    return {"dynamic-prefix.io/name": dp, "dynamic-prefix.io/service-address-range": RANGE,
            **{k.replace("_", "-"): v for k, v in more.items()}}  # fmt: skip


def annotations_of(cluster: Cluster, name: str) -> dict[str, str]:
    obj = cluster.get(f"{SERVICES}/{name}") or {}
    found: dict[str, str] = obj.get("metadata", {}).get("annotations") or {}
    return found


def assign(cluster: Cluster, name: str, *ips: str) -> None:
    """What the Service's IPAM does: give it these addresses in its status."""
    ingress = [{"ip": ip} for ip in ips]
    cluster.patch(f"{SERVICES}/{name}/status", {"status": {"loadBalancer": {"ingress": ingress}}})


def wait_annotation(cluster: Cluster, name: str, key: str, value: str | None, what: str) -> None:
    wait_for(
        lambda: annotations_of(cluster, name).get(key) == value or None,
        timeout=WAIT_SECONDS,
        what=f"{what}: {key} of {name} == {value!r}",
    )


@pytest.fixture
def tag(cluster: Cluster) -> Iterator[str]:
    """A tag for the test's objects; its Services and DynamicPrefixes are deleted after."""
    value = new_tag()
    yield value
    for item in (cluster.get(SERVICES) or {}).get("items", []):
        if value in item["metadata"]["name"]:
            cluster.delete(f"{SERVICES}/{item['metadata']['name']}")


def test_services_of_every_ipam_follow_three_rotations(
    cluster: Cluster, shared_operator: OperatorProcess, tag: str
) -> None:
    dp = f"svc-{tag}"
    first, second, third, fourth = (f"2001:db8:{n}{tag[:2]}::/64" for n in range(1, 5))
    cluster.apply(ha_prefix(dp, first))
    cluster.apply(CILIUM_LB_POOL.manifest(f"pool-{tag}", dp=dp, entries=[]))
    cilium, inferred = f"cilium-{tag}", f"inferred-{tag}"
    metallb, calico = f"metallb-{tag}", f"calico-{tag}"
    cluster.apply(lb_service(cilium, opted_in(dp, **{"dynamic-prefix.io/suffix": SUFFIX},
                                               **{CILIUM: "192.0.2.7"})))  # fmt: skip
    cluster.apply(lb_service(inferred, opted_in(dp)))
    cluster.apply(lb_service(metallb, opted_in(dp, **{"dynamic-prefix.io/suffix": SUFFIX,
                                                     "dynamic-prefix.io/lb-provider": "metallb",
                                                     METALLB: "192.0.2.8"})))  # fmt: skip
    cluster.apply(
        lb_service(
            calico,
            opted_in(
                dp,
                **{"dynamic-prefix.io/suffix": SUFFIX, "dynamic-prefix.io/lb-provider": "calico"},
            ),
        )
    )
    metallb_inferred, calico_inferred = f"metallb-inferred-{tag}", f"calico-inferred-{tag}"
    cluster.apply(lb_service(metallb_inferred, opted_in(
        dp, **{"dynamic-prefix.io/lb-provider": "metallb"})))  # fmt: skip
    cluster.apply(lb_service(calico_inferred, opted_in(
        dp, **{"dynamic-prefix.io/lb-provider": "calico"})))  # fmt: skip
    # The inferred one has no suffix: Cilium (played by the test) gives it an address first.
    inferred_suffix = "::f000:0:0:4d2"
    assign(cluster, inferred, address(first, inferred_suffix))
    # MetalLB and Calico (played by the test) gave theirs an address of their own choosing
    other_suffix = "::f000:0:0:99"
    assign(cluster, metallb_inferred, address(first, other_suffix))
    assign(cluster, calico_inferred, address(first, other_suffix))

    wait_annotation(cluster, cilium, CILIUM, f"192.0.2.7,{address(first)}", "filled")
    wait_annotation(cluster, inferred, "dynamic-prefix.io/inferred-suffix", inferred_suffix,
                    "suffix recorded")  # fmt: skip
    wait_annotation(cluster, metallb, METALLB, f"192.0.2.8,{address(first)}", "filled")
    wait_annotation(cluster, calico, CALICO, json.dumps([address(first)]).replace(" ", ""),
                    "filled")  # fmt: skip

    in_use = [first]
    for prefix in (second, third, fourth):
        set_prefix(cluster, dp, prefix)
        in_use = [prefix, *in_use][:3]  # current + maxPrefixHistory 2
        wanted = ",".join(address(p) for p in in_use)
        wait_annotation(cluster, cilium, CILIUM, f"192.0.2.7,{wanted}", f"rotated to {prefix}")
        wait_annotation(cluster, cilium, TARGET, address(prefix), "DNS on the new address")
        wait_annotation(cluster, cilium, MANAGED_IPS, wanted, "the record")
        inferred_wanted = ",".join(address(p, inferred_suffix) for p in in_use)
        wait_annotation(cluster, inferred, CILIUM, inferred_wanted, "inferred suffix kept")
        # its IPAM has not given it the new address yet: DNS stays where it answers
        assert annotations_of(cluster, inferred)[TARGET] == address(in_use[1], inferred_suffix)
        assign(cluster, inferred, *(address(p, inferred_suffix) for p in in_use))
        wait_annotation(cluster, inferred, TARGET, address(prefix, inferred_suffix),
                        "DNS follows once assigned")  # fmt: skip
        # MetalLB and Calico take one IPv6 address per Service: the new one
        wait_annotation(cluster, metallb, METALLB, f"192.0.2.8,{address(prefix)}", "metallb")
        wait_annotation(cluster, calico, CALICO, f'["{address(prefix)}"]', "calico")
        wait_annotation(cluster, metallb_inferred, METALLB, address(prefix, other_suffix),
                        "metallb, inferred suffix")  # fmt: skip
        wait_annotation(cluster, calico_inferred, CALICO, f'["{address(prefix, other_suffix)}"]',
                        "calico, inferred suffix")  # fmt: skip
        for name in (metallb_inferred, calico_inferred):  # each IPAM moves it: DNS follows
            assign(cluster, name, address(prefix, other_suffix))
            wait_annotation(cluster, name, TARGET, address(prefix, other_suffix), "DNS")

    wait_for(
        lambda: "6/6 services in sync" in (condition_message(cluster, dp, "ServicesSynced") or ""),
        timeout=WAIT_SECONDS, what="ServicesSynced counts the six",
    )  # fmt: skip
    assert wait_event_on(cluster, dp, "ServicesUpdated")


def wait_event_on(cluster: Cluster, name: str, reason: str) -> dict[str, Any]:
    found = wait_for(
        lambda: events_about(cluster, name, namespace=NAMESPACE, reason=reason),
        timeout=WAIT_SECONDS, what=f"a {reason} event about {name}",
    )  # fmt: skip
    return found[0]


def test_a_service_written_between_changes_is_counted_once_in_the_next_event(
    cluster: Cluster, shared_operator: OperatorProcess, tag: str
) -> None:
    dp = f"once-{tag}"
    first, second = (f"2001:db8:{n}{tag[:2]}::/64" for n in (5, 6))
    other_suffix = "::ffff:0:0:3"
    cluster.apply(ha_prefix(dp, first))
    name = f"once-{tag}"
    cluster.apply(lb_service(name, opted_in(dp, **{"dynamic-prefix.io/suffix": SUFFIX})))
    wait_for(
        lambda: "1/1 services in sync" in (condition_message(cluster, dp, "ServicesSynced") or ""),
        timeout=WAIT_SECONDS, what="the Service served and counted",
    )  # fmt: skip
    # its user moves it to another suffix: the operator writes it on its own event...
    moved = {"metadata": {"annotations": {"dynamic-prefix.io/suffix": other_suffix}}}
    cluster.patch(f"{SERVICES}/{name}", moved)
    wait_annotation(cluster, name, CILIUM, address(first, other_suffix), "the new suffix")

    set_prefix(cluster, dp, second)  # ...and again in the change
    both = f"{address(second, other_suffix)},{address(first, other_suffix)}"
    wait_annotation(cluster, name, CILIUM, both, "rotated")

    assert wait_event_messages(cluster, dp, f"for prefix {second}:") == [
        f"1 Service(s) updated for prefix {second}: service/{NAMESPACE}/{name}"
    ]


def wait_event_messages(cluster: Cluster, name: str, fragment: str) -> list[str]:
    """The messages of the ServicesUpdated events about ``name`` that hold ``fragment``."""
    return wait_for(
        lambda: [e["message"] for e in events_about(cluster, name, namespace=NAMESPACE,
                                                    reason="ServicesUpdated")
                 if fragment in e["message"]],
        timeout=WAIT_SECONDS, what=f"a ServicesUpdated event about {name} with {fragment!r}",
    )  # fmt: skip


def test_user_entries_survive_fifty_rotations_and_every_release_is_exact(
    cluster: Cluster, shared_operator: OperatorProcess, tag: str
) -> None:
    dp, name = f"keep-{tag}", f"keep-{tag}"
    cluster.apply(ha_prefix(dp, f"2001:db8:{tag[:4]}::/64", history=1))
    user_ips, user_target = "192.0.2.9,2001:db8:ffff::5", "web.example.net"
    cluster.apply(
        lb_service(
            name,
            opted_in(
                dp, **{"dynamic-prefix.io/suffix": SUFFIX, CILIUM: user_ips, TARGET: user_target}
            ),
        )
    )
    prefixes = [f"2001:db8:{tag[:4]}:{n:x}::/64" for n in range(1, 51)]
    previous = f"2001:db8:{tag[:4]}::/64"
    wait_current(cluster, dp, previous)
    for prefix in prefixes:
        patch_prefix(cluster, dp, prefix)
        wanted = f"{user_ips},{address(prefix)},{address(previous)}"
        wait_annotation(cluster, name, CILIUM, wanted, f"rotation to {prefix}")
        wait_current(cluster, dp, prefix)
        previous = prefix
    assert annotations_of(cluster, name)[TARGET] == f"{user_target},{address(previous)}"
    assert annotations_of(cluster, name)["dynamic-prefix.io/last-sync"].endswith("Z")

    # skip-external-dns-update hands the target back: the user's entries, exactly
    cluster.patch(f"{SERVICES}/{name}",
                  {"metadata": {"annotations": {"dynamic-prefix.io/skip-external-dns-update":
                                                "true"}}})  # fmt: skip
    wait_annotation(cluster, name, TARGET, user_target, "target handed back")
    wait_annotation(cluster, name, MANAGED_TARGETS, None, "its record gone")

    # de-annotated: the operator's addresses go, the user's stay, byte for byte
    cluster.patch(f"{SERVICES}/{name}", {"metadata": {"annotations": {"dynamic-prefix.io/name":
                                                                     None}}})  # fmt: skip
    wait_annotation(cluster, name, CILIUM, user_ips, "released on de-annotation")
    wait_annotation(cluster, name, MANAGED_IPS, None, "record removed")
    assert "dynamic-prefix.io/last-sync" not in annotations_of(cluster, name)
    wait_event_on(cluster, name, "ServiceReleased")

    # opted in again, then the DynamicPrefix deleted: released again, exactly
    cluster.patch(
        f"{SERVICES}/{name}",
        {
            "metadata": {
                "annotations": {
                    "dynamic-prefix.io/name": dp,
                    "dynamic-prefix.io/skip-external-dns-update": None,
                }
            }
        },
    )
    wait_annotation(cluster, name, TARGET, f"{user_target},{address(previous)}", "served again")
    cluster.delete(f"{DP_PATH}/{dp}")
    wait_annotation(cluster, name, CILIUM, user_ips, "released on deletion")
    wait_annotation(cluster, name, TARGET, user_target, "target released on deletion")
    wait_for(lambda: cluster.get(f"{DP_PATH}/{dp}") is None, what="the DynamicPrefix gone")
    left = annotations_of(cluster, name)
    theirs = {"dynamic-prefix.io/name", "dynamic-prefix.io/service-address-range",
              "dynamic-prefix.io/suffix"}  # fmt: skip
    assert not [k for k in left if k.startswith("dynamic-prefix.io/") and k not in theirs], left


BAD = [
    ("not-an-address", {"dynamic-prefix.io/suffix": "not-an-address"}, "LoadBalancer",
     "not-an-address"),
    ("prefix-bits", {"dynamic-prefix.io/suffix": "1::ffff:0:0:2"}, "LoadBalancer",
     "bits inside the /64"),
    ("outside", {"dynamic-prefix.io/suffix": "::1"}, "LoadBalancer", "is outside"),
    ("no-range", {"dynamic-prefix.io/suffix": SUFFIX,
                  "dynamic-prefix.io/service-address-range": "nope"}, "LoadBalancer",
     "no address range named 'nope'"),
    ("cluster-ip", {"dynamic-prefix.io/suffix": SUFFIX}, "ClusterIP", "not LoadBalancer"),
]  # fmt: skip


def test_bad_input_is_warned_on_the_service_and_nothing_is_written(
    cluster: Cluster, shared_operator: OperatorProcess, tag: str
) -> None:
    dp, good = f"bad-{tag}", f"good-{tag}"
    prefix = f"2001:db8:{tag[:4]}::/64"
    cluster.apply(ha_prefix(dp, prefix))
    since = resource_version(cluster, f"{DP_PATH}/{dp}")
    names = []
    for label, extra, kind, _ in BAD:
        name = f"{label}-{tag}"
        names.append(name)
        cluster.apply(lb_service(name, {**opted_in(dp), CILIUM: "192.0.2.1", **extra}, kind=kind))
    cluster.apply(lb_service(good, opted_in(dp, **{"dynamic-prefix.io/suffix": SUFFIX})))

    wait_annotation(cluster, good, CILIUM, address(prefix), "the good one is served")
    for (_, _, _, says), name in zip(BAD, names, strict=True):
        event = wait_event_on(cluster, name, "InvalidReference")
        assert event["type"] == "Warning"
        assert says in event["message"], event["message"]
        assert annotations_of(cluster, name)[CILIUM] == "192.0.2.1"
        assert MANAGED_IPS not in annotations_of(cluster, name)
    assert writes_to(cluster, *names) == [], "nothing written to a bad Service"
    wait_for(
        lambda: "1/6 services in sync" in (condition_message(cluster, dp, "ServicesSynced") or ""),
        timeout=WAIT_SECONDS, what="ServicesSynced says which fail",
    )  # fmt: skip
    assert changes_since(cluster, DP_PATH, since, name=dp)
    _, metrics = shared_operator.http_get("/metrics")
    assert f'dynamic_prefix_services{{dynamic_prefix="{dp}",state="in_sync"}} 1.0' in metrics
    assert f'dynamic_prefix_services{{dynamic_prefix="{dp}",state="failing"}} 5.0' in metrics


def test_simple_mode_leaves_services_to_their_ipam_and_leaving_ha_releases(
    cluster: Cluster, shared_operator: OperatorProcess, tag: str
) -> None:
    dp, name = f"simple-{tag}", f"simple-{tag}"
    prefix = f"2001:db8:{tag[:4]}::/64"
    cluster.apply(dynamic_prefix(dp, prefix))
    cluster.apply(lb_service(name, opted_in(dp, **{"dynamic-prefix.io/suffix": SUFFIX,
                                                 CILIUM: "192.0.2.3"})))  # fmt: skip
    event = wait_event_on(cluster, name, "LeftToIpam")
    assert "transition.mode simple" in event["message"]
    assert annotations_of(cluster, name)[CILIUM] == "192.0.2.3"

    cluster.patch(f"{DP_PATH}/{dp}", {"spec": {"transition": {"mode": "ha"}}})
    wait_annotation(cluster, name, CILIUM, f"192.0.2.3,{address(prefix)}", "ha pins it")
    cluster.patch(f"{DP_PATH}/{dp}", {"spec": {"transition": {"mode": "simple"}}})
    wait_annotation(cluster, name, CILIUM, "192.0.2.3", "simple again: released")
    wait_annotation(cluster, name, TARGET, None, "the target too")


def test_a_pass_over_unchanged_services_writes_nothing(
    cluster: Cluster, shared_operator: OperatorProcess, tag: str
) -> None:
    dp, name = f"idle-{tag}", f"idle-web-{tag}"
    prefix = f"2001:db8:{tag[:4]}::/64"
    cluster.apply(ha_prefix(dp, prefix))
    cluster.apply(lb_service(name, opted_in(dp, **{"dynamic-prefix.io/suffix": SUFFIX})))
    wait_annotation(cluster, name, TARGET, address(prefix), "served")
    wait_for(
        lambda: "1/1 services in sync" in (condition_message(cluster, dp, "ServicesSynced") or ""),
        timeout=WAIT_SECONDS, what="ServicesSynced",
    )  # fmt: skip

    def service_writes() -> list[dict[str, Any]]:
        return [w for w in writes_to(cluster, name) if w["objectRef"].get("resource") == "services"]

    before = len(service_writes())
    # events that change nothing the operator renders: an unrelated annotation on both,
    # and the IPAM (played by the test) giving the Service the address it asked for
    cluster.patch(f"{SERVICES}/{name}", {"metadata": {"annotations": {"note": "touched"}}})
    cluster.patch(f"{DP_PATH}/{dp}", {"metadata": {"annotations": {"note": "touched"}}})
    assign(cluster, name, address(prefix))
    # a marker the operator must react to, to know it has seen the events before it
    marker = f"marker-{tag}"
    cluster.apply(lb_service(marker, opted_in(dp, **{"dynamic-prefix.io/suffix": "::ffff:0:0:3"})))
    wait_annotation(cluster, marker, CILIUM, address(prefix, "::ffff:0:0:3"), "marker served")
    after = service_writes()
    assert len(after) == before, [
        (w["verb"], w["objectRef"].get("resource"), w["objectRef"].get("subresource"))
        for w in after[before:]
    ]
