"""Users' entries that conflict with what the operator writes: overlapping its range, or a
stale copy of its entries for a prefix that left the history. Kept, and reported; the
expected ranges are written out by hand."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network
from typing import Any

from dynamic_prefix.addressing import AddressRange
from dynamic_prefix.backends.base import Patch, Placement, Plan
from dynamic_prefix.backends.cilium import CIDR_GROUP, LB_IP_POOL
from dynamic_prefix.backends.list_field import ListFieldBackend, _same_as_lately
from dynamic_prefix.backends.metallb import IP_ADDRESS_POOL
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.model import api

NEW, OLD = IPv6Network("2001:db8:2::/64"), IPv6Network("2001:db8:1::/64")
RESOURCE = Resource("x", "v1", "pools", namespaced=False)


def ranged(prefix: IPv6Network, *, current: bool) -> Placement:
    """::f000:0:0:0-::ffff:ffff:ffff:ffff of the /64 (a /68)."""
    base = int(prefix.network_address)
    return Placement(prefix, current, address_range=AddressRange(
        IPv6Address(base | 0xF000 << 48), IPv6Address(base | (1 << 64) - 1)))  # fmt: skip


def pool(
    backend: ListFieldBackend, entries: list[Any], record: str | None = None
) -> dict[str, Any]:
    annotations = {api.ANNOTATION_NAME: "home"}
    if record is not None:
        annotations[backend.record_annotation] = record
    return {"metadata": {"name": "p", "resourceVersion": "3", "annotations": annotations},
            "spec": {backend.field: entries}}  # fmt: skip


def plan(backend: ListFieldBackend, entries: list[Any], **kwargs: Any) -> Plan:
    return backend.plan(RESOURCE, pool(backend, entries), [ranged(NEW, current=True)], **kwargs)


class TestOverlaps:
    def test_a_metallb_cidr_inside_the_operators_range_is_kept_and_reported(self) -> None:
        result = plan(IP_ADDRESS_POOL, ["2001:db8:2:0:f000::/72", "192.0.2.0/24"])

        (overlap,) = result.overlaps
        assert '"2001:db8:2:0:f000::/72" overlaps 2001:db8:2:0:f000::-2001:db8:2:0:ffff' in overlap
        (patch,) = result.actions
        assert isinstance(patch, Patch)
        assert patch.body["spec"]["addresses"][:2] == ["2001:db8:2:0:f000::/72", "192.0.2.0/24"]
        assert result.conflicts == result.overlaps

    def test_a_range_touching_the_first_address_overlaps_one_just_below_does_not(self) -> None:
        touching = plan(IP_ADDRESS_POOL, ["2001:db8:2::1-2001:db8:2:0:f000::"])
        below = plan(IP_ADDRESS_POOL, ["2001:db8:2::1-2001:db8:2:0:efff:ffff:ffff:ffff"])

        assert len(touching.overlaps) == 1
        assert below.overlaps == ()

    def test_cilium_blocks_are_judged_by_their_addresses(self) -> None:
        inside = {"start": "2001:db8:2:0:ffff::5", "stop": "2001:db8:2:0:ffff::9"}
        result = plan(LB_IP_POOL, [inside, {"cidr": "2001:db8:9::/64"}])
        assert len(result.overlaps) == 1
        assert "ffff::5" in result.overlaps[0]

    def test_a_cidr_group_hands_out_nothing_so_nothing_overlaps(self) -> None:
        assert plan(CIDR_GROUP, ["2001:db8:2:0:f000::/72"]).overlaps == ()


class TestStale:
    def test_the_rendering_of_a_retired_prefix_without_the_record_is_reported(self) -> None:
        stale = "2001:db8:1:0:f000::-2001:db8:1:0:ffff:ffff:ffff:ffff"
        result = plan(IP_ADDRESS_POOL, [stale], retired=[ranged(OLD, current=False)])

        (report,) = result.stale
        assert stale in report
        assert "left the history" in report
        (patch,) = result.actions
        assert isinstance(patch, Patch)
        assert stale in patch.body["spec"]["addresses"], "kept: it might be the user's"

    def test_without_retired_prefixes_it_is_the_users(self) -> None:
        stale = "2001:db8:1:0:f000::-2001:db8:1:0:ffff:ffff:ffff:ffff"
        assert plan(IP_ADDRESS_POOL, [stale]).stale == ()


def test_answers_are_remembered_for_the_very_same_arguments_only_and_a_few_at_a_time() -> None:
    """The identity memo in front of planning: one answer per set of argument objects,
    never an answer for a different object that merely looks alike, and the oldest of
    more than four forgotten."""
    calls: list[tuple[object, ...]] = []

    @_same_as_lately
    def planned(*args: object) -> tuple[object, ...]:
        calls.append(args)
        return args

    first, second = ("a",), ("a",)
    assert planned(first) is planned(first)
    assert len(calls) == 1
    planned(list(second))  # equal content, another object: computed again
    assert len(calls) == 2
    others = [(n,) for n in range(4)]
    for other in others:
        planned(other)
    planned(first)  # pushed out by four newer ones
    assert len(calls) == 7
    planned(others[-1], first)  # two arguments: another key
    assert len(calls) == 8
