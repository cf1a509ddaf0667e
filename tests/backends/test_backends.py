"""Pool backends as pure functions: what a pool should hold, and the plan that gets it there.

No cluster here: plans are applied to in-memory objects the way the API server applies a
JSON merge patch (RFC 7386), create and delete, so whole rotation sequences can be checked.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamic_prefix.backends.base import (
    Create,
    Delete,
    Patch,
    Placement,
    Plan,
    PoolReference,
    ReferenceProblem,
    resolve_placements,
)
from dynamic_prefix.backends.calico import IP_POOL, generated_name
from dynamic_prefix.backends.cilium import CIDR_GROUP, LB_IP_POOL
from dynamic_prefix.backends.list_field import Entry, ListFieldBackend
from dynamic_prefix.backends.metallb import IP_ADDRESS_POOL
from dynamic_prefix.backends.registry import BACKENDS, backend_for
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.model import api
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import InvalidSpec, validate_dynamic_prefix
from dynamic_prefix.model.status import next_status
from tests.merge_patch import merge_patch

A = IPv6Network("2001:db8:0:a::/64")
B = IPv6Network("2001:db8:0:b::/64")
C = IPv6Network("2001:db8:0:c::/64")
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

LB_RANGE = {"name": "loadbalancers", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}
TINY_RANGE = {"name": "tiny", "start": "::1", "end": "::6"}
SERVICES_SUBNET = {"name": "services", "offset": 1, "prefixLength": 80}

LOADBALANCERS = PoolReference("home-prefix", address_range="loadbalancers")


def nth_prefix(n: int) -> IPv6Network:
    """The n-th /64 of 2001:db8::/32, for long rotation sequences."""
    return IPv6Network((0x20010DB8 << 96 | n << 64, 64))


def dynamic_prefix(
    current: IPv6Network | None = None,
    history: Sequence[IPv6Network] = (),
    *,
    max_history: int = 2,
) -> dict[str, Any]:
    """A DynamicPrefix as the API server returns it: RA on eth0, two ranges, one subnet."""
    obj: dict[str, Any] = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "home-prefix", "generation": 1},
        "spec": {
            "acquisition": {"routerAdvertisement": {"interface": "eth0"}},
            "addressRanges": [LB_RANGE, TINY_RANGE],
            "subnets": [SERVICES_SUBNET],
            "transition": {"maxPrefixHistory": max_history},
        },
    }
    status: dict[str, Any] = {}
    if current is not None:
        status["currentPrefix"] = str(current)
    if history:
        status["history"] = [{"prefix": str(prefix)} for prefix in history]
    if status:
        obj["status"] = status
    return obj


def rotated(obj: Mapping[str, Any], prefix: IPv6Network, *, now: dt.datetime) -> dict[str, Any]:
    """The DynamicPrefix after its source reported ``prefix`` (status by `next_status`)."""
    spec = validate_dynamic_prefix(obj)
    assert not isinstance(spec, InvalidSpec), str(spec)
    update = next_status(
        spec=spec,
        previous=obj.get("status") or {},
        source=SourceState(api.SOURCE_ROUTER_ADVERTISEMENT, prefix),
        pools=None,
        generation=1,
        now=now,
    )
    return {**obj, "status": update.status}


# --- list-field pools: Cilium LB pool, Cilium CIDR group, MetalLB ------------------------------


def lb_range_bounds(prefix: IPv6Network) -> tuple[str, str]:
    """First and last address of the ``loadbalancers`` range in ``prefix``."""
    start = IPv6Address(int(prefix.network_address) | 0xF000 << 48)
    return str(start), str(prefix.broadcast_address)


@dataclass(frozen=True)
class ListKind:
    """A pool kind holding a list of entries, with entries a user would write in it."""

    backend: ListFieldBackend
    resource: Resource
    namespace: str | None
    user_entries: tuple[Entry, ...]  # an IPv4 block, another IPv4 form, static IPv6, a CIDR
    malformed: tuple[Entry, ...]
    lb_range: Callable[[IPv6Network], Entry]  # how the loadbalancers range is written

    @property
    def field(self) -> str:
        return self.backend.field

    @property
    def record(self) -> str:
        return self.backend.record_annotation


CILIUM_LB_POOL = ListKind(
    backend=LB_IP_POOL,
    resource=Resource("cilium.io", "v2", "ciliumloadbalancerippools", namespaced=False),
    namespace=None,
    user_entries=(
        {"cidr": "192.0.2.0/24"},
        {"start": "198.51.100.10", "stop": "198.51.100.20"},
        {"cidr": "2001:db8:ffff::10/128"},
        {"cidr": "2001:db8:0:a:abcd::/80"},
    ),
    malformed=({"cidr": "not-a-cidr"}, {"start": "2001:db8::zz"}, {"stop": "::1"}, "a string"),
    lb_range=lambda p: dict(zip(("start", "stop"), lb_range_bounds(p), strict=True)),
)
CILIUM_CIDR_GROUP = ListKind(
    backend=CIDR_GROUP,
    resource=Resource("cilium.io", "v2alpha1", "ciliumcidrgroups", namespaced=False),
    namespace=None,
    user_entries=(
        "192.0.2.0/24",
        "198.51.100.0/25",
        "2001:db8:ffff::10/128",
        "2001:db8:0:a:abcd::/80",
    ),
    malformed=("not-a-cidr", 42, {"cidr": "2001:db8::/64"}),
    lb_range=lambda p: f"{lb_range_bounds(p)[0]}/68",
)
METALLB_POOL = ListKind(
    backend=IP_ADDRESS_POOL,
    resource=Resource("metallb.io", "v1beta1", "ipaddresspools", namespaced=True),
    namespace="metallb-system",
    user_entries=(
        "192.0.2.0/24",
        "198.51.100.10-198.51.100.20",
        "2001:db8:ffff::10/128",
        "2001:db8:0:a:abcd::/80",
    ),
    malformed=("2001:db8::1-banana", "not-a-cidr", {"cidr": "2001:db8::/64"}),
    lb_range=lambda p: "-".join(lb_range_bounds(p)),
)
LIST_KINDS = [
    pytest.param(CILIUM_LB_POOL, id="cilium-lb-ip-pool"),
    pytest.param(CILIUM_CIDR_GROUP, id="cilium-cidr-group"),
    pytest.param(METALLB_POOL, id="metallb-ip-address-pool"),
]


def pool(
    kind: ListKind,
    entries: Sequence[Entry] = (),
    *,
    record: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A pool annotated for the loadbalancers range, holding ``entries``."""
    metadata: dict[str, Any] = {
        "name": "lb-pool",
        "resourceVersion": "41",
        "annotations": {
            api.ANNOTATION_NAME: "home-prefix",
            api.ANNOTATION_ADDRESS_RANGE: "loadbalancers",
            "example.com/owner": "alice",
            **(annotations or {}),
        },
    }
    if kind.namespace is not None:
        metadata["namespace"] = kind.namespace
    if record is not None:
        metadata["annotations"][kind.record] = record
    return {"metadata": metadata, "spec": {kind.field: list(entries)}}


def plan(kind: ListKind, obj: Mapping[str, Any], placements: Sequence[Placement] | None) -> Plan:
    return kind.backend.plan(kind.resource, obj, placements)


def applied(obj: Mapping[str, Any], result: Plan) -> dict[str, Any]:
    """``obj`` after the plan's actions: list-field backends only ever patch the pool."""
    updated = copy.deepcopy(dict(obj))
    for action in result.actions:
        assert isinstance(action, Patch), action
        assert action.name == obj["metadata"]["name"]
        updated = merge_patch(updated, action.body)
    return updated


def only_patch(result: Plan) -> Patch:
    """The one action of a list-field plan that writes."""
    assert len(result.actions) == 1, result.actions
    patch = result.actions[0]
    assert isinstance(patch, Patch)
    return patch


def entries(obj: Mapping[str, Any], kind: ListKind) -> list[Entry]:
    return list((obj.get("spec") or {}).get(kind.field) or [])


def record_of(obj: Mapping[str, Any], kind: ListKind) -> Any:
    text = (obj["metadata"].get("annotations") or {}).get(kind.record)
    return None if text is None else json.loads(text)


def placements_for(
    current: IPv6Network | None,
    history: Sequence[IPv6Network] = (),
    reference: PoolReference = LOADBALANCERS,
) -> tuple[Placement, ...]:
    return resolve_placements(reference, dynamic_prefix(current, history))


def synced(
    kind: ListKind, user: Sequence[Entry], placements: Sequence[Placement]
) -> dict[str, Any]:
    """A pool the operator already filled for ``placements``."""
    return applied(pool(kind, user), plan(kind, pool(kind, user), placements))


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_empty_pool_is_filled_with_the_current_prefix_and_the_record(kind: ListKind) -> None:
    result = plan(kind, pool(kind), placements_for(A))

    patch = only_patch(result)
    assert (patch.resource, patch.name, patch.namespace) == (
        kind.resource,
        "lb-pool",
        kind.namespace,
    )
    assert patch.body == {
        "metadata": {
            "resourceVersion": "41",
            "annotations": {kind.record: json.dumps([kind.lb_range(A)])},
        },
        "spec": {kind.field: [kind.lb_range(A)]},
    }
    assert result.problems == ()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param(
            CILIUM_LB_POOL,
            {"start": "2001:db8:0:a:f000::", "stop": "2001:db8:0:a:ffff:ffff:ffff:ffff"},
            id="cilium-lb-ip-pool",
        ),
        pytest.param(CILIUM_CIDR_GROUP, "2001:db8:0:a:f000::/68", id="cilium-cidr-group"),
        pytest.param(
            METALLB_POOL,
            "2001:db8:0:a:f000::-2001:db8:0:a:ffff:ffff:ffff:ffff",
            id="metallb-ip-address-pool",
        ),
    ],
)
def test_an_address_range_is_written_in_the_pool_kinds_own_form(
    kind: ListKind, expected: Entry
) -> None:
    filled = applied(pool(kind), plan(kind, pool(kind), placements_for(A)))

    assert entries(filled, kind) == [expected]


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_filling_keeps_the_other_annotations_of_the_pool(kind: ListKind) -> None:
    filled = applied(pool(kind), plan(kind, pool(kind), placements_for(A)))

    annotations = filled["metadata"]["annotations"]
    assert annotations[api.ANNOTATION_NAME] == "home-prefix"
    assert annotations[api.ANNOTATION_ADDRESS_RANGE] == "loadbalancers"
    assert annotations["example.com/owner"] == "alice"


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_rotation_keeps_old_and_new_newest_first_after_the_users_entries(kind: ListKind) -> None:
    user = kind.user_entries
    before = synced(kind, user, placements_for(A))

    after = applied(before, plan(kind, before, placements_for(B, [A])))

    assert entries(after, kind) == [*user, kind.lb_range(B), kind.lb_range(A)]
    assert record_of(after, kind) == [kind.lb_range(B), kind.lb_range(A)]


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_a_prefix_leaving_the_history_leaves_the_pool(kind: ListKind) -> None:
    before = synced(kind, kind.user_entries, placements_for(B, [A]))

    after = applied(before, plan(kind, before, placements_for(C, [B])))

    assert entries(after, kind) == [*kind.user_entries, kind.lb_range(C), kind.lb_range(B)]


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_user_entries_are_preserved_exactly_and_in_their_order(kind: ListKind) -> None:
    mine = kind.lb_range(A)
    user = list(kind.user_entries)
    # the operator's entry sits between the user's, as an earlier version may have left it
    observed = [user[0], mine, *user[1:]]
    before = pool(kind, observed, record=json.dumps([mine]))

    after = applied(before, plan(kind, before, placements_for(B, [A])))

    assert entries(after, kind)[: len(user)] == user
    assert entries(after, kind)[len(user) :] == [kind.lb_range(B), mine]


@pytest.mark.parametrize("kind", LIST_KINDS)
@pytest.mark.parametrize("limit", [1, 2, 10])
def test_hundred_rotations_leave_the_pool_as_big_as_one_rotation(
    kind: ListKind, limit: int
) -> None:
    dp = dynamic_prefix(max_history=limit)
    obj = pool(kind, kind.user_entries)
    for n in range(100):
        dp = rotated(dp, nth_prefix(n), now=T0 + dt.timedelta(minutes=n))
        obj = applied(obj, plan(kind, obj, resolve_placements(LOADBALANCERS, dp)))

    in_use = [nth_prefix(n) for n in range(99, 99 - limit - 1, -1)]
    assert entries(obj, kind) == [*kind.user_entries, *(kind.lb_range(p) for p in in_use)]
    assert len(entries(obj, kind)) == len(kind.user_entries) + 1 + limit
    assert record_of(obj, kind) == [kind.lb_range(p) for p in in_use]


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_release_removes_only_the_operators_entries_and_the_record(kind: ListKind) -> None:
    before = synced(kind, kind.user_entries, placements_for(B, [A]))

    result = plan(kind, before, None)
    after = applied(before, result)

    assert only_patch(result).body["metadata"]["annotations"] == {kind.record: None}
    assert entries(after, kind) == list(kind.user_entries)
    assert kind.record not in after["metadata"]["annotations"]
    assert after["metadata"]["annotations"]["example.com/owner"] == "alice"


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_release_of_a_pool_the_operator_never_wrote_makes_no_actions(kind: ListKind) -> None:
    assert plan(kind, pool(kind, kind.user_entries), None).in_sync


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_an_entry_identical_to_a_desired_one_is_adopted_not_duplicated(kind: ListKind) -> None:
    # e.g. written by the Go operator, which left no record of ours
    before = pool(kind, [kind.user_entries[0], kind.lb_range(A), kind.user_entries[1]])

    after = applied(before, plan(kind, before, placements_for(A)))

    assert entries(after, kind) == [kind.user_entries[0], kind.user_entries[1], kind.lb_range(A)]
    assert record_of(after, kind) == [kind.lb_range(A)]


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_an_adopted_entry_already_in_place_only_gets_recorded(kind: ListKind) -> None:
    before = pool(kind, [*kind.user_entries, kind.lb_range(A)])

    result = plan(kind, before, placements_for(A))

    assert only_patch(result).body["spec"][kind.field] == entries(before, kind)
    assert record_of(applied(before, result), kind) == [kind.lb_range(A)]


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_malformed_user_entries_are_kept_in_place_and_reported(kind: ListKind) -> None:
    observed = [kind.user_entries[0], *kind.malformed, kind.user_entries[1]]
    before = pool(kind, observed)

    result = plan(kind, before, placements_for(A))
    after = applied(before, result)

    assert entries(after, kind) == [*observed, kind.lb_range(A)]
    assert len(result.problems) == len(kind.malformed)
    for index, (entry, problem) in enumerate(zip(kind.malformed, result.problems, strict=True)):
        assert problem.startswith(f"spec.{kind.field}[{index + 1}] {json.dumps(entry)}: ")
        assert problem.endswith("; kept")


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_malformed_entries_are_reported_even_when_nothing_is_written(kind: ListKind) -> None:
    before = synced(kind, [*kind.user_entries, kind.malformed[0]], placements_for(A))

    result = plan(kind, before, placements_for(A))

    assert result.in_sync
    assert len(result.problems) == 1


def go_record(kind: ListKind, entries: list[Any]) -> str:
    """A record as the Go operator writes it: comma-separated, blocks as cidr=/range=."""

    def key(entry: Any) -> str:
        if isinstance(entry, str):
            return entry
        if "cidr" in entry:
            return f"cidr={entry['cidr']}"
        return f"range={entry['start']}-{entry['stop']}"

    return ",".join(key(entry) for entry in entries)


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_a_pool_written_by_the_go_operator_is_taken_over_with_its_record(kind: ListKind) -> None:
    """Its record says which entries are its: the one of a prefix that left the history
    goes, the user's stay, and the record is rewritten in ours (no warning)."""
    left = kind.lb_range(C)  # the Go operator's, for a prefix no longer in use
    before = pool(kind, [*kind.user_entries, kind.lb_range(A), left],
                  record=go_record(kind, [kind.lb_range(A), left]))  # fmt: skip

    result = plan(kind, before, placements_for(A))
    after = applied(before, result)

    assert result.problems == ()
    assert entries(after, kind) == [*kind.user_entries, kind.lb_range(A)]
    assert record_of(after, kind) == [kind.lb_range(A)]


@pytest.mark.parametrize("kind", LIST_KINDS)
@pytest.mark.parametrize("garbage", ["not json", '{"cidr": "x"}', "42"])
def test_a_garbage_record_is_reported_and_owns_nothing(kind: ListKind, garbage: str) -> None:
    stale = kind.lb_range(C)  # the operator's once, but the record cannot say so
    before = pool(kind, [*kind.user_entries, stale], record=garbage)

    result = plan(kind, before, placements_for(A))
    after = applied(before, result)

    assert any(
        kind.record in problem and "neither a JSON list nor the Go operator's" in problem
        for problem in result.problems
    )
    assert entries(after, kind) == [*kind.user_entries, stale, kind.lb_range(A)]
    assert record_of(after, kind) == [kind.lb_range(A)]


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_a_pool_already_in_sync_needs_no_actions(kind: ListKind) -> None:
    placements = placements_for(B, [A])
    before = synced(kind, kind.user_entries, placements)

    result = plan(kind, before, placements)

    assert result.in_sync
    assert result.actions == ()
    assert result.problems == ()


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_a_user_removing_an_operator_entry_gets_it_back(kind: ListKind) -> None:
    before = synced(kind, kind.user_entries, placements_for(B, [A]))
    edited = merge_patch(before, {"spec": {kind.field: entries(before, kind)[:-1]}})

    after = applied(edited, plan(kind, edited, placements_for(B, [A])))

    assert entries(after, kind) == entries(before, kind)


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_a_pool_whose_field_is_not_a_list_is_left_alone_and_reported(kind: ListKind) -> None:
    before = pool(kind)
    before["spec"][kind.field] = {"oops": True}

    result = plan(kind, before, placements_for(A))

    assert result.in_sync
    assert result.problems == (f"spec.{kind.field} is not a list; the pool is left alone",)


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_a_pool_without_spec_is_filled(kind: ListKind) -> None:
    before = pool(kind)
    del before["spec"]

    after = applied(before, plan(kind, before, placements_for(A)))

    assert entries(after, kind) == [kind.lb_range(A)]


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_empty_placements_keep_the_users_entries(kind: ListKind) -> None:
    before = pool(kind, kind.user_entries)

    assert plan(kind, before, ()).in_sync


@pytest.mark.parametrize("kind", LIST_KINDS)
def test_empty_placements_never_remove_the_operators_entries(kind: ListKind) -> None:
    # () is what resolve_placements returns while the status has no prefix (new or
    # re-created DynamicPrefix, status lost in a restore); only None means release
    before = synced(kind, kind.user_entries, placements_for(B, [A]))

    result = plan(kind, before, ())

    assert result.in_sync, f"would write {entries(applied(before, result), kind)}"


# --- what each kind renders ------------------------------------------------------------------


def test_a_range_in_a_cidr_group_is_its_exact_cidrs_never_a_wider_block() -> None:
    tiny = PoolReference("home-prefix", address_range="tiny")

    result = plan(CILIUM_CIDR_GROUP, pool(CILIUM_CIDR_GROUP), placements_for(A, reference=tiny))

    assert entries(applied(pool(CILIUM_CIDR_GROUP), result), CILIUM_CIDR_GROUP) == [
        "2001:db8:0:a::1/128",
        "2001:db8:0:a::2/127",
        "2001:db8:0:a::4/127",
        "2001:db8:0:a::6/128",
    ]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param(
            CILIUM_LB_POOL,
            [{"start": "2001:db8:0:a::1", "stop": "2001:db8:0:a::6"}],
            id="cilium-lb-ip-pool",
        ),
        pytest.param(METALLB_POOL, ["2001:db8:0:a::1-2001:db8:0:a::6"], id="metallb"),
    ],
)
def test_a_range_in_a_range_capable_pool_is_one_entry(kind: ListKind, expected: Entry) -> None:
    tiny = PoolReference("home-prefix", address_range="tiny")

    result = plan(kind, pool(kind), placements_for(A, reference=tiny))

    assert entries(applied(pool(kind), result), kind) == expected


@pytest.mark.parametrize(
    ("kind", "subnet", "whole"),
    [
        pytest.param(
            CILIUM_LB_POOL,
            {"cidr": "2001:db8:0:a:1::/80"},
            {"cidr": "2001:db8:0:a::/64"},
            id="cilium-lb-ip-pool",
        ),
        pytest.param(
            CILIUM_CIDR_GROUP, "2001:db8:0:a:1::/80", "2001:db8:0:a::/64", id="cilium-cidr-group"
        ),
        pytest.param(METALLB_POOL, "2001:db8:0:a:1::/80", "2001:db8:0:a::/64", id="metallb"),
    ],
)
def test_subnets_and_whole_prefixes_are_written_as_cidrs(
    kind: ListKind, subnet: Entry, whole: Entry
) -> None:
    services = PoolReference("home-prefix", subnet="services")
    everything = PoolReference("home-prefix")

    by_subnet = plan(kind, pool(kind), placements_for(A, reference=services))
    by_prefix = plan(kind, pool(kind), placements_for(A, reference=everything))

    assert entries(applied(pool(kind), by_subnet), kind) == [subnet]
    assert entries(applied(pool(kind), by_prefix), kind) == [whole]


# --- pool references ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (None, None),
        ({}, None),
        ({"unrelated": "x"}, None),
        ({api.ANNOTATION_NAME: ""}, None),
        ({api.ANNOTATION_NAME: "   "}, None),
        ({api.ANNOTATION_ADDRESS_RANGE: "loadbalancers"}, None),
        ({api.ANNOTATION_NAME: "home-prefix"}, PoolReference("home-prefix")),
        ({api.ANNOTATION_NAME: " home-prefix \n"}, PoolReference("home-prefix")),
        (
            {api.ANNOTATION_NAME: "home-prefix", api.ANNOTATION_ADDRESS_RANGE: "loadbalancers"},
            PoolReference("home-prefix", address_range="loadbalancers"),
        ),
        (
            {api.ANNOTATION_NAME: "home-prefix", api.ANNOTATION_SUBNET: " services "},
            PoolReference("home-prefix", subnet="services"),
        ),
        (
            {api.ANNOTATION_NAME: "home-prefix", api.ANNOTATION_ADDRESS_RANGE: " "},
            PoolReference("home-prefix"),
        ),
        (
            {
                api.ANNOTATION_NAME: "home-prefix",
                api.ANNOTATION_ADDRESS_RANGE: "loadbalancers",
                api.ANNOTATION_SUBNET: "services",
            },
            PoolReference("home-prefix", address_range="loadbalancers", subnet="services"),
        ),
    ],
)
def test_pool_reference_is_read_from_the_annotations(
    annotations: dict[str, str] | None, expected: PoolReference | None
) -> None:
    assert PoolReference.from_annotations(annotations) == expected


@pytest.mark.parametrize(
    ("reference", "described"),
    [
        (PoolReference("home-prefix", address_range="loadbalancers"), "home-prefix/loadbalancers"),
        (PoolReference("home-prefix", subnet="services"), "home-prefix/services"),
        (PoolReference("home-prefix"), "home-prefix/(whole prefix)"),
    ],
)
def test_pool_reference_describes_itself_for_messages(
    reference: PoolReference, described: str
) -> None:
    assert reference.describe() == described


def test_placements_are_the_range_in_every_prefix_in_use_newest_first() -> None:
    placements = placements_for(C, [B, A])

    assert [(p.prefix, p.current) for p in placements] == [(C, True), (B, False), (A, False)]
    assert [str(p.address_range.start) for p in placements if p.address_range] == [
        "2001:db8:0:c:f000::",
        "2001:db8:0:b:f000::",
        "2001:db8:0:a:f000::",
    ]


def test_placements_of_a_subnet_and_of_the_whole_prefix_are_cidrs() -> None:
    by_subnet = placements_for(B, [A], PoolReference("home-prefix", subnet="services"))
    whole = placements_for(B, [A], PoolReference("home-prefix"))

    assert [p.cidrs() for p in by_subnet] == [
        (IPv6Network("2001:db8:0:b:1::/80"),),
        (IPv6Network("2001:db8:0:a:1::/80"),),
    ]
    assert [p.cidrs() for p in whole] == [(B,), (A,)]


def test_no_current_prefix_yet_means_no_placements() -> None:
    assert placements_for(None) == ()


def test_naming_both_a_range_and_a_subnet_is_a_reference_problem() -> None:
    both = PoolReference("home-prefix", address_range="loadbalancers", subnet="services")

    with pytest.raises(ReferenceProblem, match="both an address range"):
        placements_for(A, reference=both)


def test_an_unknown_range_is_a_reference_problem_naming_the_available_ones() -> None:
    missing = PoolReference("home-prefix", address_range="nope")

    with pytest.raises(ReferenceProblem) as problem:
        placements_for(A, reference=missing)

    assert str(problem.value) == (
        "DynamicPrefix home-prefix has no address range named 'nope' (it has: loadbalancers, tiny)"
    )


def test_an_unknown_subnet_is_a_reference_problem_naming_the_available_ones() -> None:
    with pytest.raises(ReferenceProblem, match=r"no subnet named 'nope' \(it has: services\)"):
        placements_for(A, reference=PoolReference("home-prefix", subnet="nope"))


def test_an_invalid_dynamic_prefix_is_a_reference_problem() -> None:
    broken = dynamic_prefix(A)
    broken["spec"]["acquisition"] = {}

    with pytest.raises(ReferenceProblem, match="DynamicPrefix home-prefix is invalid: "):
        resolve_placements(LOADBALANCERS, broken)


# --- Calico: a pool per CIDR, made from the user's template --------------------------------------

CALICO = Resource("projectcalico.org", "v3", "ippools", namespaced=False)
TEMPLATE_SPEC: dict[str, Any] = {
    "cidr": "fd00:0:0:ffff::/64",
    "blockSize": 122,
    "ipipMode": "Never",
    "vxlanMode": "Never",
    "natOutgoing": False,
    "nodeSelector": "all()",
    "allowedUses": ["Workload"],
}
WHOLE_PREFIX = PoolReference("home-prefix")


def template(name: str = "ipv6-pool", **spec: Any) -> dict[str, Any]:
    """The user's IPPool, annotated to follow the whole prefix."""
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "IPPool",
        "metadata": {
            "name": name,
            "resourceVersion": "7",
            "labels": {"team": "net"},
            "annotations": {api.ANNOTATION_NAME: "home-prefix"},
        },
        "spec": {**TEMPLATE_SPEC, **spec},
    }


def calico_plan(
    pool_: Mapping[str, Any],
    placements: Sequence[Placement] | None,
    cluster: Mapping[str, Mapping[str, Any]],
) -> Plan:
    return IP_POOL.plan(CALICO, pool_, placements, generated=list(cluster.values()))


def calico_apply(cluster: Mapping[str, dict[str, Any]], result: Plan) -> dict[str, dict[str, Any]]:
    """The generated pools after the plan, as the API server would hold them."""
    pools = copy.deepcopy(dict(cluster))
    for action in result.actions:
        assert action.resource == CALICO
        if isinstance(action, Create):
            name = action.body["metadata"]["name"]
            assert name not in pools, f"create of existing {name}"
            pools[name] = copy.deepcopy(action.body)
            pools[name]["metadata"]["resourceVersion"] = "1"
        elif isinstance(action, Delete):
            assert action.name in pools, f"delete of missing {action.name}"
            del pools[action.name]
        else:
            assert action.name in pools, f"patch of missing {action.name}"
            pools[action.name] = merge_patch(pools[action.name], action.body)
    return pools


def whole(
    current: IPv6Network | None, history: Sequence[IPv6Network] = ()
) -> tuple[Placement, ...]:
    return placements_for(current, history, WHOLE_PREFIX)


def target_name(action: Create | Patch | Delete) -> str:
    return str(action.body["metadata"]["name"]) if isinstance(action, Create) else action.name


def calico_synced(placements: Sequence[Placement]) -> dict[str, dict[str, Any]]:
    return calico_apply({}, calico_plan(template(), placements, {}))


def disabled_by_cidr(cluster: Mapping[str, Mapping[str, Any]]) -> dict[str, bool]:
    return {p["spec"]["cidr"]: p["spec"]["disabled"] for p in cluster.values()}


def test_calico_new_prefix_creates_a_pool_with_the_template_settings_and_its_cidr() -> None:
    result = calico_plan(template(), whole(A), {})

    assert len(result.actions) == 1
    create = result.actions[0]
    assert isinstance(create, Create)
    assert create.body == {
        "apiVersion": "projectcalico.org/v3",
        "kind": "IPPool",
        "metadata": {
            "name": "ipv6-pool-2001-db8-0-a---64",
            "labels": {"team": "net", api.LABEL_GENERATED_FROM: "ipv6-pool"},
            "annotations": {
                api.ANNOTATION_GENERATED_FROM: "ipv6-pool",
                f"{api.GROUP}/note": "made by the dynamic prefix operator from the IPPool "
                "named in generated-from; edit that pool instead",
            },
        },
        "spec": {**TEMPLATE_SPEC, "cidr": "2001:db8:0:a::/64", "disabled": False},
    }


def test_calico_pools_of_history_prefixes_are_disabled_and_the_current_one_enabled() -> None:
    before = calico_synced(whole(A))

    result = calico_plan(template(), whole(B, [A]), before)
    after = calico_apply(before, result)

    assert disabled_by_cidr(after) == {str(A): True, str(B): False}
    patches = [a for a in result.actions if isinstance(a, Patch)]
    assert [p.name for p in patches] == ["ipv6-pool-2001-db8-0-a---64"]
    assert "cidr" not in patches[0].body["spec"]
    assert patches[0].body["metadata"] == {"resourceVersion": "1"}


def test_calico_template_is_never_written() -> None:
    tpl = template()
    cluster: dict[str, dict[str, Any]] = {}
    touched: list[str] = []
    for placements in (whole(A), whole(B, [A]), whole(C, [B, A]), None):
        result = calico_plan(tpl, placements, cluster)
        touched += [target_name(action) for action in result.actions]
        cluster = calico_apply(cluster, result)

    assert touched
    assert "ipv6-pool" not in touched
    assert tpl == template()


def test_calico_pool_whose_prefix_left_the_history_is_deleted() -> None:
    before = calico_synced(whole(B, [A]))

    result = calico_plan(template(), whole(C, [B]), before)

    deletes = [a for a in result.actions if isinstance(a, Delete)]
    assert [(d.name, d.namespace) for d in deletes] == [("ipv6-pool-2001-db8-0-a---64", None)]
    assert disabled_by_cidr(calico_apply(before, result)) == {str(B): True, str(C): False}


def test_calico_release_deletes_every_generated_pool() -> None:
    before = calico_synced(whole(C, [B, A]))

    result = calico_plan(template(), None, before)

    assert all(isinstance(a, Delete) for a in result.actions)
    assert calico_apply(before, result) == {}


def test_calico_generated_pools_in_sync_need_no_actions() -> None:
    placements = whole(C, [B, A])

    assert calico_plan(template(), placements, calico_synced(placements)).in_sync


def test_calico_edited_cidr_of_a_generated_pool_means_delete_then_create() -> None:
    before = calico_synced(whole(A))
    name = "ipv6-pool-2001-db8-0-a---64"
    before[name]["spec"]["cidr"] = "2001:db8:0:99::/64"

    result = calico_plan(template(), whole(A), before)

    delete, create = result.actions
    assert isinstance(delete, Delete)
    assert delete.name == name
    assert isinstance(create, Create)
    assert create.body["metadata"]["name"] == name
    assert create.body["spec"]["cidr"] == str(A)
    assert calico_apply(before, result)[name]["spec"]["cidr"] == str(A)


def test_calico_template_settings_edited_later_reach_the_generated_pools() -> None:
    before = calico_synced(whole(B, [A]))

    result = calico_plan(template(natOutgoing=True), whole(B, [A]), before)
    after = calico_apply(before, result)

    assert all(isinstance(a, Patch) for a in result.actions)
    assert {p["spec"]["natOutgoing"] for p in after.values()} == {True}
    assert calico_plan(template(natOutgoing=True), whole(B, [A]), after).in_sync


def test_calico_a_setting_removed_from_the_template_converges() -> None:
    tpl = template()
    before = calico_synced(whole(A))
    del tpl["spec"]["nodeSelector"]

    after = calico_apply(before, calico_plan(tpl, whole(A), before))

    assert calico_plan(tpl, whole(A), after).in_sync


def test_calico_a_disabled_template_only_keeps_its_own_placeholder_cidr_unused() -> None:
    cluster = calico_apply({}, calico_plan(template(disabled=True), whole(B, [A]), {}))

    assert disabled_by_cidr(cluster) == {str(A): True, str(B): False}


def test_calico_a_cidr_equal_to_the_templates_own_is_not_generated() -> None:
    result = calico_plan(template(cidr=str(B)), whole(B, [A]), {})

    created = [a.body["spec"]["cidr"] for a in result.actions if isinstance(a, Create)]
    assert created == [str(A)]


def test_calico_a_range_becomes_one_pool_per_exact_cidr() -> None:
    tiny = placements_for(A, reference=PoolReference("home-prefix", address_range="tiny"))

    cluster = calico_apply({}, calico_plan(template(blockSize=128), tiny, {}))

    assert sorted(p["spec"]["cidr"] for p in cluster.values()) == [
        "2001:db8:0:a::1/128",
        "2001:db8:0:a::2/127",
        "2001:db8:0:a::4/127",
        "2001:db8:0:a::6/128",
    ]


def test_calico_cidrs_smaller_than_a_block_are_left_out_and_said() -> None:
    """Calico refuses a pool smaller than its blockSize (122 for IPv6 when unset)."""
    tiny = placements_for(A, reference=PoolReference("home-prefix", address_range="tiny"))

    plan = calico_plan(template(), tiny, {})
    assert plan.actions == ()
    (said,) = plan.unsupported
    assert "4 CIDR(s) of the range are smaller than the template's blockSize /122" in said
    assert plan.conflicts == plan.unsupported
    fits = calico_plan(template(blockSize=127), tiny, {})
    assert [a.body["spec"]["cidr"] for a in fits.actions if isinstance(a, Create)] == [
        "2001:db8:0:a::2/127", "2001:db8:0:a::4/127"]  # fmt: skip
    assert "2001:db8:0:a::1/128, 2001:db8:0:a::6/128" in fits.unsupported[0]


@pytest.mark.parametrize("limit", [1, 2, 10])
def test_calico_hundred_rotations_leave_one_pool_per_prefix_in_use(limit: int) -> None:
    dp = dynamic_prefix(max_history=limit)
    cluster: dict[str, dict[str, Any]] = {}
    for n in range(100):
        dp = rotated(dp, nth_prefix(n), now=T0 + dt.timedelta(minutes=n))
        cluster = calico_apply(
            cluster, calico_plan(template(), resolve_placements(WHOLE_PREFIX, dp), cluster)
        )

    expected = {str(nth_prefix(99)): False}
    expected |= {str(nth_prefix(n)): True for n in range(99 - limit, 99)}
    assert disabled_by_cidr(cluster) == expected


def test_calico_empty_placements_keep_nothing_generated_when_nothing_was() -> None:
    assert calico_plan(template(), (), {}).in_sync


def test_calico_empty_placements_never_delete_generated_pools() -> None:
    before = calico_synced(whole(B, [A]))

    result = calico_plan(template(), (), before)

    assert result.in_sync, result.actions


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL_CHARS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize("name", ["p", "ipv6-pool", "a" * 63, "x" + "-y" * 31])
@pytest.mark.parametrize(
    "cidr",
    [A, IPv6Network("2001:db8:0:a:f000::/68"), IPv6Network("2001:db8::6/128"),
     IPv6Network("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), IPv6Network("::/0")],
)  # fmt: skip
def test_calico_generated_names_are_valid_object_names(name: str, cidr: IPv6Network) -> None:
    generated = generated_name(name, cidr)

    assert len(generated) <= 253
    assert DNS_LABEL_CHARS.match(generated), generated
    assert generated.startswith(name)


@given(
    name=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
    first=st.integers(min_value=0, max_value=(1 << 128) - 1),
    second=st.integers(min_value=0, max_value=(1 << 128) - 1),
    length=st.integers(min_value=0, max_value=128),
)
def test_calico_generated_names_are_valid_and_distinct_per_cidr(
    name: str, first: int, second: int, length: int
) -> None:
    one = IPv6Network((first, length), strict=False)
    other = IPv6Network((second, 128))

    assert DNS_LABEL_CHARS.match(generated_name(name, one))
    assert len(generated_name(name, one)) <= 253
    assert (generated_name(name, one) == generated_name(name, other)) == (one == other)


def test_calico_generated_name_of_a_long_dotted_template_is_a_valid_subdomain() -> None:
    cut = 253 - len("-2001-db8-0-a---64")  # how much of the template name is kept
    head = ".".join(["a" * 62, "a" * 62, "a" * 62, "a" * 45])
    name = head + "." + "b" * 10  # 245 characters, labels of at most 63: a valid name

    generated = generated_name(name, A)

    assert len(head) + 1 == cut
    assert len(name) <= 253
    assert DNS_SUBDOMAIN.match(name)
    assert DNS_SUBDOMAIN.match(generated), generated


def test_calico_generated_pool_labels_are_valid_for_a_long_template_name() -> None:
    name = "ipv6-pool-" + "x" * 70

    result = calico_plan(template(name), whole(A), {})

    create = result.actions[0]
    assert isinstance(create, Create)
    value = create.body["metadata"]["labels"][api.LABEL_GENERATED_FROM]
    assert len(value) <= 63
    assert LABEL_VALUE.match(value)


# --- registry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "plural", "backend"),
    [
        ("cilium.io", "ciliumloadbalancerippools", LB_IP_POOL),
        ("cilium.io", "ciliumcidrgroups", CIDR_GROUP),
        ("metallb.io", "ipaddresspools", IP_ADDRESS_POOL),
        ("projectcalico.org", "ippools", IP_POOL),
    ],
)
def test_registry_finds_the_backend_of_each_pool_kind(
    group: str, plural: str, backend: object
) -> None:
    assert backend_for(group, plural) is backend


@pytest.mark.parametrize(
    ("group", "plural"),
    [("cilium.io", "ippools"), ("metallb.io", "bgppeers"), ("", "services")],
)
def test_registry_knows_no_backend_for_other_kinds(group: str, plural: str) -> None:
    assert backend_for(group, plural) is None


def test_registry_backends_have_distinct_names_and_kinds() -> None:
    assert len({b.name for b in BACKENDS}) == len(BACKENDS) == 5
    assert {(b.group, b.kind) for b in BACKENDS} == {
        ("cilium.io", "CiliumLoadBalancerIPPool"),
        ("cilium.io", "CiliumCIDRGroup"),
        ("metallb.io", "IPAddressPool"),
        ("projectcalico.org", "IPPool"),
        ("crd.projectcalico.org", "IPPool"),  # watched only, to warn
    }
    assert {v for b in BACKENDS if b.group == "cilium.io" for v in b.versions} == {
        "v2",
        "v2alpha1",
    }


def test_an_operator_block_written_back_with_its_keys_reordered_is_still_the_operators() -> None:
    """A user's tool (or a `kubectl edit`) may write a Cilium block back as
    ``{"stop": ..., "start": ...}``: the same entry, so the operator still owns it and
    releases it, and a user entry reordered is still the user's."""
    kind = CILIUM_LB_POOL
    ours = kind.lb_range(A)
    assert isinstance(ours, dict)
    assert len(ours) > 1  # a start/stop block: key order can differ
    reordered = dict(reversed(list(ours.items())))
    assert list(reordered) != list(ours)
    recorded = json.dumps([ours])
    before = pool(kind, [*kind.user_entries, reordered], record=recorded)

    released = applied(before, plan(kind, before, None))
    unchanged = plan(kind, before, placements_for(A))

    assert entries(released, kind) == list(kind.user_entries)  # released: it was ours
    assert unchanged.in_sync  # already there: nothing written, no duplicate added


def test_calico_creates_and_enables_the_new_pool_before_disabling_or_deleting_old_ones() -> None:
    """Never a moment with nothing allocatable: the order of the actions is the order they
    are sent in."""
    template = {"metadata": {"name": "lb"}, "spec": {"cidr": "fd00::/64", "blockSize": 122}}
    resource = Resource("projectcalico.org", "v3", "ippools", namespaced=False)

    def pools(placements: list[Placement]) -> list[dict[str, Any]]:
        plan = IP_POOL.plan(resource, template, placements)
        return [a.body for a in plan.actions if isinstance(a, Create)]

    def cidr(prefix: str, n: int) -> IPv6Network:
        return IPv6Network(f"{prefix}:{n:x}::/80")

    first = [Placement(A, True, cidr=cidr("2001:db8:0:a", 1))]
    generated = pools(first)
    second = [Placement(B, True, cidr=cidr("2001:db8:0:b", 1)),
              Placement(A, False, cidr=cidr("2001:db8:0:a", 1))]  # fmt: skip
    plan = IP_POOL.plan(resource, template, second, generated=generated)
    kinds = [(type(a).__name__, a.body["spec"].get("disabled")) if not isinstance(a, Delete)
             else ("Delete", None) for a in plan.actions]  # fmt: skip
    assert kinds == [("Create", False), ("Patch", True)]

    third = [Placement(C, True, cidr=cidr("2001:db8:0:c", 1))]  # the others left the history
    made = pools(second)[:1]
    plan = IP_POOL.plan(resource, template, third, generated=[*generated, *made])
    assert [type(a).__name__ for a in plan.actions] == ["Create", "Delete", "Delete"]
