"""What an opted-in Service should carry, per IPAM: pinned addresses in every prefix in use,
the DNS target on the current one, ownership records, users' entries kept, and release.
Expected annotations are written out by hand."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network, ip_address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamic_prefix.addressing import AddressRange
from dynamic_prefix.backends.base import Patch, Placement, PoolReference, ReferenceProblem
from dynamic_prefix.backends.service import (
    ANNOTATION_INFERRED_SUFFIX,
    ANNOTATION_LB_PROVIDER,
    ANNOTATION_MANAGED_IPS,
    ANNOTATION_MANAGED_TARGETS,
    ANNOTATION_SKIP_DNS,
    DNS_TARGET,
    Ipam,
    ServiceInputs,
    WaitingForAddress,
    address_text,
    canonical,
    choose_ipam,
    plan_service,
)
from dynamic_prefix.backends.service_addresses import ServiceReference
from dynamic_prefix.model import api

NEW, OLD = IPv6Network("2001:db8:2::/64"), IPv6Network("2001:db8:1::/64")
NEW_IP, OLD_IP = "2001:db8:2:0:ffff::2", "2001:db8:1:0:ffff::2"
CILIUM, METALLB = "lbipam.cilium.io/ips", "metallb.io/loadBalancerIPs"
METALLB_OLD, CALICO = "metallb.universe.tf/loadBalancerIPs", "projectcalico.org/loadBalancerIPs"
SUFFIX = {api.ANNOTATION_NAME: "home", "dynamic-prefix.io/service-address-range": "lb",
          "dynamic-prefix.io/suffix": "::ffff:0:0:2"}  # fmt: skip


def ranged(prefix: IPv6Network, *, current: bool) -> Placement:
    start = IPv6Address(int(prefix.network_address) | 0xFFFF_0000_0000_0000)
    end = IPv6Address(int(prefix.network_address) | 0xFFFF_FFFF_FFFF_FFFF)
    return Placement(prefix, current, address_range=AddressRange(start, end))


BOTH = (ranged(NEW, current=True), ranged(OLD, current=False))


def service(
    annotations: dict[str, str], *, ingress: tuple[str, ...] = (), kind: str = "LoadBalancer"
) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "apps", "resourceVersion": "7",
                     "annotations": annotations},
        "spec": {"type": kind},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}},
    }  # fmt: skip


def plan(
    svc: dict[str, Any], *, ipam: Ipam = Ipam.CILIUM, ha: bool = True,
    placements: tuple[Placement, ...] = BOTH,
) -> dict[str, str | None]:  # fmt: skip
    """The annotation changes the plan makes ({} when none)."""
    annotations = svc["metadata"]["annotations"]
    reference = ServiceReference.from_annotations(annotations)
    result = plan_service(svc, reference, ServiceInputs(placements, ha, ipam))
    if not result.actions:
        return {}
    (action,) = result.actions
    assert isinstance(action, Patch)
    assert action.body["metadata"]["resourceVersion"] == "7"
    changes: dict[str, str | None] = action.body["metadata"]["annotations"]
    return changes


def applied(svc: dict[str, Any], changes: dict[str, str | None]) -> dict[str, Any]:
    annotations = dict(svc["metadata"]["annotations"])
    for name, value in changes.items():
        if value is None:
            annotations.pop(name, None)
        else:
            annotations[name] = value
    return {**svc, "metadata": {**svc["metadata"], "annotations": annotations}}


class TestCilium:
    def test_new_and_old_addresses_are_pinned_and_dns_gets_the_new_one(self) -> None:
        changes = plan(service({**SUFFIX, CILIUM: "192.0.2.7"}))

        assert changes == {
            CILIUM: f"192.0.2.7,{NEW_IP},{OLD_IP}",
            ANNOTATION_MANAGED_IPS: f"{NEW_IP},{OLD_IP}",
            DNS_TARGET: NEW_IP,
            ANNOTATION_MANAGED_TARGETS: NEW_IP,
        }

    def test_a_second_pass_writes_nothing(self) -> None:
        first = service({**SUFFIX, DNS_TARGET: "web.example.net"})
        second = applied(first, plan(first))

        assert second["metadata"]["annotations"][DNS_TARGET] == f"web.example.net,{NEW_IP}"
        assert plan(second) == {}

    def test_a_rotation_replaces_only_the_operators_entries(self) -> None:
        old = applied(service({**SUFFIX}), plan(service(SUFFIX), placements=BOTH[1:]))
        old = applied(old, {CILIUM: f"192.0.2.7,2001:db8:ffff::5,{OLD_IP}"})

        changes = plan(old)

        assert changes[CILIUM] == f"192.0.2.7,2001:db8:ffff::5,{NEW_IP},{OLD_IP}"
        assert changes[DNS_TARGET] == NEW_IP

    def test_with_a_record_a_users_pin_equal_to_ours_stays_the_users(self) -> None:
        """The record says what is ours: an address the user pinned by hand before opting
        in is kept and never recorded, so no later rotation or release takes it away."""
        svc = service({**SUFFIX, CILIUM: f"{NEW_IP}", ANNOTATION_MANAGED_IPS: ""})
        changes = plan(svc)

        assert changes[CILIUM] == f"{NEW_IP},{OLD_IP}"
        assert changes[ANNOTATION_MANAGED_IPS] == OLD_IP
        released = plan_service(applied(svc, changes), None, None)
        (patch,) = released.actions
        assert isinstance(patch, Patch)
        assert patch.body["metadata"]["annotations"][CILIUM] == NEW_IP

    def test_an_entry_equal_to_ours_is_adopted_not_duplicated(self) -> None:
        # how a Service written by the Go operator (no record) is taken over
        changes = plan(service({**SUFFIX, CILIUM: "2001:DB8:2:0:FFFF::2"}))

        assert changes[CILIUM] == f"{NEW_IP},{OLD_IP}"


class TestSuffix:
    def test_without_a_suffix_it_is_taken_from_the_ipams_address_and_recorded(self) -> None:
        annotations = {api.ANNOTATION_NAME: "home",
                       "dynamic-prefix.io/service-address-range": "lb"}  # fmt: skip
        svc = service(annotations, ingress=("2001:db8:2:0:ffff::abcd",))

        changes = plan(svc)

        assert changes[ANNOTATION_INFERRED_SUFFIX] == "::ffff:0:0:abcd"
        assert changes[CILIUM] == "2001:db8:2:0:ffff::abcd,2001:db8:1:0:ffff::abcd"

    def test_the_recorded_suffix_stays_when_the_ipam_gives_another_address(self) -> None:
        annotations = {api.ANNOTATION_NAME: "home",
                       "dynamic-prefix.io/service-address-range": "lb",
                       ANNOTATION_INFERRED_SUFFIX: "::ffff:0:0:abcd"}  # fmt: skip
        svc = service(annotations, ingress=("2001:db8:2:0:ffff::9",))

        assert plan(svc)[CILIUM] == "2001:db8:2:0:ffff::abcd,2001:db8:1:0:ffff::abcd"

    def test_no_suffix_and_no_address_yet_waits(self) -> None:
        annotations = {api.ANNOTATION_NAME: "home",
                       "dynamic-prefix.io/service-address-range": "lb"}  # fmt: skip
        with pytest.raises(WaitingForAddress, match="has not assigned an address"):
            plan(service(annotations, ingress=("2001:db8:7::1",)))

    def test_a_users_suffix_replaces_the_recorded_one(self) -> None:
        svc = service({**SUFFIX, ANNOTATION_INFERRED_SUFFIX: "::ffff:0:0:abcd"})

        changes = plan(svc)

        assert changes[ANNOTATION_INFERRED_SUFFIX] is None
        assert changes[CILIUM] == f"{NEW_IP},{OLD_IP}"


class TestOnePerFamily:
    def test_metallb_gets_the_new_address_only_beside_a_users_ipv4(self) -> None:
        changes = plan(service({**SUFFIX, METALLB: "192.0.2.7"}), ipam=Ipam.METALLB)

        assert changes[METALLB] == f"192.0.2.7,{NEW_IP}"
        assert changes[ANNOTATION_MANAGED_IPS] == NEW_IP

    def test_metallbs_older_annotation_is_written_where_the_service_uses_it(self) -> None:
        changes = plan(service({**SUFFIX, METALLB_OLD: "192.0.2.7"}), ipam=Ipam.METALLB)

        assert changes[METALLB_OLD] == f"192.0.2.7,{NEW_IP}"
        assert METALLB not in changes

    def test_calico_reads_a_json_list(self) -> None:
        changes = plan(service({**SUFFIX, CALICO: '["192.0.2.7"]'}), ipam=Ipam.CALICO)

        assert changes[CALICO] == f'["192.0.2.7","{NEW_IP}"]'

    def test_a_users_own_ipv6_cannot_sit_beside_ours(self) -> None:
        svc = service({**SUFFIX, METALLB: "2001:db8:ffff::5"})
        with pytest.raises(ReferenceProblem, match="one address per family"):
            plan(svc, ipam=Ipam.METALLB)

    def test_an_ipv4_only_service_cannot_take_an_ipv6_address_there(self) -> None:
        svc = service(SUFFIX)
        svc["spec"]["ipFamilies"] = ["IPv4"]
        with pytest.raises(ReferenceProblem, match="make it dual-stack"):
            plan(svc, ipam=Ipam.METALLB)
        svc["spec"]["ipFamilies"] = ["IPv4", "IPv6"]
        assert plan(svc, ipam=Ipam.METALLB)[METALLB] == NEW_IP

    def test_an_unreadable_calico_list_is_left_alone_and_said(self) -> None:
        svc = service({**SUFFIX, CALICO: "192.0.2.7,"})
        result = plan_service(
            svc, ServiceReference.from_annotations(SUFFIX), ServiceInputs(BOTH, True, Ipam.CALICO)
        )
        assert "not a JSON list" in result.problems[0]
        (action,) = result.actions
        assert isinstance(action, Patch)
        assert CALICO not in action.body["metadata"]["annotations"]


class TestDns:
    def test_the_target_waits_until_the_ipam_assigned_the_new_address(self) -> None:
        svc = service({**SUFFIX, DNS_TARGET: OLD_IP, ANNOTATION_MANAGED_TARGETS: OLD_IP},
                      ingress=(OLD_IP,))  # fmt: skip
        assert DNS_TARGET not in plan(svc)

        assigned = service(svc["metadata"]["annotations"], ingress=(OLD_IP, NEW_IP))
        assert plan(assigned)[DNS_TARGET] == NEW_IP

    def test_skip_hands_the_target_back(self) -> None:
        svc = service({**SUFFIX, ANNOTATION_SKIP_DNS: "true",
                       DNS_TARGET: f"web.example.net,{NEW_IP}",
                       ANNOTATION_MANAGED_TARGETS: NEW_IP})  # fmt: skip
        changes = plan(svc)

        assert changes[DNS_TARGET] == "web.example.net"
        assert changes[ANNOTATION_MANAGED_TARGETS] is None


class TestRelease:
    def test_release_removes_exactly_what_the_operator_wrote(self) -> None:
        served = applied(
            service({**SUFFIX, CILIUM: "192.0.2.7", DNS_TARGET: "web.example.net"}),
            plan(service({**SUFFIX, CILIUM: "192.0.2.7", DNS_TARGET: "web.example.net"})),
        )
        result = plan_service(served, None, None)
        (action,) = result.actions
        assert isinstance(action, Patch)

        assert action.body["metadata"]["annotations"] == {
            CILIUM: "192.0.2.7",
            DNS_TARGET: "web.example.net",
            ANNOTATION_MANAGED_IPS: None,
            ANNOTATION_MANAGED_TARGETS: None,
        }

    def test_an_annotation_left_empty_is_removed(self) -> None:
        served = applied(service(SUFFIX), plan(service(SUFFIX)))
        changes = plan(served, ha=False)  # mode simple: Services are left to their IPAM

        assert changes == {CILIUM: None, DNS_TARGET: None, ANNOTATION_MANAGED_IPS: None,
                           ANNOTATION_MANAGED_TARGETS: None}  # fmt: skip

    def test_nothing_recorded_nothing_released(self) -> None:
        svc = service({CILIUM: "2001:db8:2:0:ffff::2", DNS_TARGET: "x.example.net"})
        assert plan_service(svc, None, None).actions == ()


class TestRefusals:
    def test_a_service_that_is_not_a_load_balancer_is_refused(self) -> None:
        with pytest.raises(ReferenceProblem, match="of type ClusterIP, not LoadBalancer"):
            plan(service(SUFFIX, kind="ClusterIP"))

    def test_a_suffix_outside_the_range_is_refused(self) -> None:
        svc = service({**SUFFIX, "dynamic-prefix.io/suffix": "::1"})
        with pytest.raises(ReferenceProblem, match="outside"):
            plan(svc)

    def test_no_prefix_yet_writes_nothing(self) -> None:
        assert plan(service(SUFFIX), placements=()) == {}


class TestWhichIpam:
    def test_the_explicit_provider_wins(self) -> None:
        chosen = choose_ipam({ANNOTATION_LB_PROVIDER: "metallb"}, ["cilium-lb-ip-pool"])
        assert chosen is Ipam.METALLB

    def test_the_pools_of_the_range_tell_it(self) -> None:
        assert choose_ipam({}, ["calico-ip-pool", "calico-ip-pool"]) is Ipam.CALICO
        assert choose_ipam({}, ["metallb-ip-address-pool", "cilium-cidr-group"]) is Ipam.METALLB

    def test_pools_of_one_ipam_decide_even_over_an_annotation_the_operator_wrote(
        self,
    ) -> None:
        """A Service that opted in before its MetalLB pool was annotated got Cilium's: it
        moves to MetalLB's once the pool says so (and Cilium's entries are handed back)."""
        assert choose_ipam({CILIUM: "2001:db8::1"}, ["metallb-ip-address-pool"]) is Ipam.METALLB

    def test_the_ipam_annotation_the_service_carries_decides_where_pools_cannot(self) -> None:
        """How a Service the Go operator wrote (lbipam.cilium.io/ips) is taken over where
        pools of two IPAMs share the range."""
        both = ["cilium-lb-ip-pool", "metallb-ip-address-pool"]
        assert choose_ipam({CILIUM: "2001:db8::1"}, both) is Ipam.CILIUM
        assert choose_ipam({METALLB_OLD: "192.0.2.1"}, both) is Ipam.METALLB
        with pytest.raises(ReferenceProblem):
            choose_ipam({CILIUM: "x", METALLB: "y"}, both)

    def test_no_pool_means_cilium_as_in_the_go_operator(self) -> None:
        assert choose_ipam({}, []) is Ipam.CILIUM

    def test_pools_of_two_ipams_need_the_annotation(self) -> None:
        with pytest.raises(ReferenceProblem, match=ANNOTATION_LB_PROVIDER):
            choose_ipam({}, ["cilium-lb-ip-pool", "metallb-ip-address-pool"])

    def test_an_unknown_provider_is_refused(self) -> None:
        with pytest.raises(ReferenceProblem, match="'kube-vip' is not one of"):
            choose_ipam({ANNOTATION_LB_PROVIDER: "kube-vip"}, [])


def test_a_reference_reads_like_a_pools() -> None:
    reference = ServiceReference.from_annotations(SUFFIX)
    assert reference == ServiceReference(PoolReference("home", "lb"), 0xFFFF_0000_0000_0002)


@settings(max_examples=400)
@given(st.one_of(st.ip_addresses(v=6), st.ip_addresses(v=4)), st.booleans())
def test_canonical_text_is_what_ipaddress_writes(address: Any, upper: bool) -> None:
    """The C library's text (for speed) is the standard library's, but for IPv4-mapped
    IPv6 addresses, where each has its own RFC 5952 form (and no prefix of ours is one)."""
    text = str(address).upper() if upper else str(address)
    expected = str(ip_address(text))
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        assert ip_address(canonical(text)) == address
        return
    assert canonical(f" {text} ") == expected
    if isinstance(address, IPv6Address):
        assert address_text(address) == expected


@pytest.mark.parametrize("text", ["dns.example.org", "2001:db8::1%eth0", "1.2.3", "", "::g"])
def test_what_is_not_an_address_is_kept_as_written(text: str) -> None:
    assert canonical(f"{text} ") == text
