"""The DynamicPrefix status as a pure function: current prefix, history, conditions, events.

Every test passes an explicit ``now``; nothing here reads a clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from ipaddress import IPv6Network
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamic_prefix.model import api
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import DynamicPrefixSpec, InvalidSpec, validate_dynamic_prefix
from dynamic_prefix.model.status import (
    BGP_ADVERTISEMENT_READY,
    DEGRADED,
    POOLS_SYNCED,
    PREFIX_ACQUIRED,
    READY,
    BgpSummary,
    PoolSummary,
    StatusEvent,
    StatusUpdate,
    format_time,
    next_deadline,
    next_status,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)

A = IPv6Network("2001:db8:0:a::/64")
B = IPv6Network("2001:db8:0:b::/64")
C = IPv6Network("2001:db8:0:c::/64")
D = IPv6Network("2001:db8:0:d::/64")

RANGES = [{"name": "loadbalancers", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}]
SUBNETS = [{"name": "services", "offset": 1, "prefixLength": 80}]


def dynamic_prefix(
    *, max_history: int | None = None, acquisition: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    """A DynamicPrefix object: RA on eth0, one address range, one subnet, as overridden."""
    body: dict[str, Any] = {
        "acquisition": acquisition or {"routerAdvertisement": {"interface": "eth0"}},
        "addressRanges": RANGES,
        "subnets": SUBNETS,
        **spec,
    }
    if max_history is not None:
        body["transition"] = {"maxPrefixHistory": max_history}
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "home-prefix", "generation": 1},
        "spec": body,
    }


def valid_spec(obj: Mapping[str, Any]) -> DynamicPrefixSpec:
    result = validate_dynamic_prefix(obj)
    assert not isinstance(result, InvalidSpec), str(result)
    return result


SPEC = valid_spec(dynamic_prefix())


def invalid_spec() -> InvalidSpec:
    result = validate_dynamic_prefix(
        dynamic_prefix(addressRanges=[{"name": "lb", "start": "::f000:0:0:0", "end": "::1"}])
    )
    assert isinstance(result, InvalidSpec)
    return result


def ra(
    prefix: IPv6Network | None,
    *,
    preferred: dt.datetime | None = None,
    valid: dt.datetime | None = None,
    reason: str = "",
    message: str = "",
) -> SourceState:
    """What the router-advertisement source reports."""
    return SourceState(
        api.SOURCE_ROUTER_ADVERTISEMENT,
        prefix,
        preferred_until=preferred,
        valid_until=valid,
        origin="fe80::1",
        reason=reason,
        message=message,
    )


def step(
    *,
    source: SourceState | None,
    previous: Mapping[str, Any] | None = None,
    spec: DynamicPrefixSpec | InvalidSpec = SPEC,
    pools: PoolSummary | None = None,
    generation: int | None = 1,
    now: dt.datetime = T0,
) -> StatusUpdate:
    return next_status(
        spec=spec,
        previous=previous or {},
        source=source,
        pools=pools,
        generation=generation,
        now=now,
    )


def rotate(
    prefixes: list[IPv6Network],
    *,
    spec: DynamicPrefixSpec = SPEC,
    valid: dt.timedelta | None = None,
    start: dt.datetime = T0,
) -> tuple[dict[str, Any], dt.datetime]:
    """The status after the source reported ``prefixes`` one per minute; and the last time."""
    status: dict[str, Any] = {}
    now = start
    for index, prefix in enumerate(prefixes):
        now = start + index * MINUTE
        source = ra(prefix, valid=None if valid is None else now + valid)
        status = step(source=source, previous=status, spec=spec, now=now).status
    return status, now


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    matches = [c for c in status.get("conditions", []) if c["type"] == kind]
    assert len(matches) == 1, f"expected one {kind} condition in {status.get('conditions')}"
    return dict(matches[0])


def has_condition(status: Mapping[str, Any], kind: str) -> bool:
    return any(c["type"] == kind for c in status.get("conditions", []))


def history_prefixes(status: Mapping[str, Any]) -> list[str]:
    return [entry["prefix"] for entry in status.get("history", [])]


def reasons(events: tuple[StatusEvent, ...]) -> list[tuple[str, str]]:
    return [(event.type, event.reason) for event in events]


PREFIX_FIELDS = (
    "currentPrefix",
    "prefixSource",
    "acquiredAt",
    "preferredUntil",
    "validUntil",
    "addressRanges",
    "subnets",
    "history",
)


def prefix_fields(status: Mapping[str, Any]) -> dict[str, Any]:
    return {key: status[key] for key in PREFIX_FIELDS if key in status}


# --- first acquisition -----------------------------------------------------------------


def test_first_prefix_becomes_current_with_its_source_lifetimes_and_acquisition_time() -> None:
    update = step(source=ra(A, preferred=T0 + HOUR, valid=T0 + DAY), now=T0)

    status = update.status
    assert status["currentPrefix"] == "2001:db8:0:a::/64"
    assert status["prefixSource"] == "router-advertisement"
    assert status["preferredUntil"] == "2024-05-01T13:00:00Z"
    assert status["validUntil"] == "2024-05-02T12:00:00Z"
    assert status["acquiredAt"] == "2024-05-01T12:00:00Z"
    assert "history" not in status
    assert "leaseExpiresAt" not in status


def test_first_prefix_computes_the_address_ranges_and_subnets_of_the_spec() -> None:
    status = step(source=ra(A)).status

    assert status["addressRanges"] == [
        {
            "name": "loadbalancers",
            "start": "2001:db8:0:a:f000::",
            "end": "2001:db8:0:a:ffff:ffff:ffff:ffff",
            "cidrs": ["2001:db8:0:a:f000::/68"],
            "cidr": "2001:db8:0:a:f000::/68",
        }
    ]
    assert status["subnets"] == [{"name": "services", "cidr": "2001:db8:0:a:1::/80"}]


def test_first_prefix_sets_prefix_acquired_true_and_tells_with_a_prefix_acquired_event() -> None:
    update = step(source=ra(A, reason="Acquired", message="prefix from fe80::1"))

    acquired = condition(update.status, PREFIX_ACQUIRED)
    assert (acquired["status"], acquired["reason"]) == ("True", "Acquired")
    assert acquired["message"] == "prefix from fe80::1"
    assert reasons(update.events) == [("Normal", "PrefixReceived")]
    assert "2001:db8:0:a::/64" in update.events[0].message
    assert "fe80::1" in update.events[0].message


def test_first_prefix_without_a_source_reason_is_reported_as_acquired() -> None:
    acquired = condition(step(source=ra(A)).status, PREFIX_ACQUIRED)

    assert acquired["reason"] == "Acquired"
    assert acquired["message"] == "prefix 2001:db8:0:a::/64 from router-advertisement"


def test_first_prefix_with_a_valid_spec_is_ready_and_not_degraded() -> None:
    status = step(source=ra(A), pools=PoolSummary(total=0, in_sync=0)).status

    assert condition(status, READY)["status"] == "True"
    assert condition(status, DEGRADED)["status"] == "False"


def test_conditions_are_listed_ready_first_in_a_fixed_order() -> None:
    status = step(source=ra(A), pools=PoolSummary(total=1, in_sync=1)).status

    assert [c["type"] for c in status["conditions"]] == [
        READY,
        PREFIX_ACQUIRED,
        POOLS_SYNCED,
        DEGRADED,
    ]


def test_infinite_lifetimes_are_left_out_of_status() -> None:
    status = step(source=ra(A, preferred=None, valid=None)).status

    assert "preferredUntil" not in status
    assert "validUntil" not in status


def test_dhcpv6_prefix_records_when_its_lease_expires() -> None:
    spec = valid_spec(dynamic_prefix(acquisition={"dhcpv6pd": {"interface": "wan0"}}, subnets=[]))
    delegated = IPv6Network("2001:db8:1200::/56")
    source = SourceState(
        api.SOURCE_DHCPV6_PD, delegated, preferred_until=T0 + HOUR, valid_until=T0 + 2 * HOUR
    )

    status = step(source=source, spec=spec).status

    assert status["prefixSource"] == "dhcpv6-pd"
    assert status["leaseExpiresAt"] == "2024-05-01T14:00:00Z"
    assert status["validUntil"] == "2024-05-01T14:00:00Z"


def test_lease_expiry_goes_away_when_the_prefix_no_longer_comes_from_dhcpv6() -> None:
    dhcp = SourceState(api.SOURCE_DHCPV6_PD, A, valid_until=T0 + DAY)
    first = step(source=dhcp).status

    status = step(source=ra(B, valid=T0 + DAY), previous=first, now=T0 + MINUTE).status

    assert "leaseExpiresAt" in first
    assert "leaseExpiresAt" not in status


def test_observed_generation_is_set_on_status_and_on_the_conditions_written() -> None:
    status = step(source=ra(A), pools=PoolSummary(1, 1), generation=7).status

    assert status["observedGeneration"] == 7
    assert {c["observedGeneration"] for c in status["conditions"]} == {7}


# --- rotation ------------------------------------------------------------------------------


def test_rotation_moves_the_old_prefix_into_history_with_when_it_was_deprecated() -> None:
    first = step(source=ra(A, valid=T0 + DAY), now=T0).status
    later = T0 + HOUR

    status = step(source=ra(B, valid=later + DAY), previous=first, now=later).status

    assert status["currentPrefix"] == "2001:db8:0:b::/64"
    assert status["history"] == [
        {
            "prefix": "2001:db8:0:a::/64",
            "state": "draining",
            "acquiredAt": "2024-05-01T12:00:00Z",
            "deprecatedAt": "2024-05-01T13:00:00Z",
            "validUntil": "2024-05-02T12:00:00Z",
        }
    ]
    assert status["acquiredAt"] == "2024-05-01T13:00:00Z"
    assert status["validUntil"] == "2024-05-02T13:00:00Z"


def test_rotation_tells_with_one_prefix_changed_event_naming_both_prefixes() -> None:
    first = step(source=ra(A)).status

    update = step(source=ra(B), previous=first, now=T0 + MINUTE)

    assert reasons(update.events) == [("Normal", "PrefixChanged"), ("Normal", "TransitionStarted")]
    assert "from 2001:db8:0:a::/64 to 2001:db8:0:b::/64" in update.events[0].message
    assert "transition from 2001:db8:0:a::/64 to 2001:db8:0:b::/64" in update.events[1].message


def test_rotation_recomputes_ranges_and_subnets_for_the_new_prefix() -> None:
    first = step(source=ra(A)).status

    status = step(source=ra(B), previous=first, now=T0 + MINUTE).status

    assert status["addressRanges"][0]["start"] == "2001:db8:0:b:f000::"
    assert status["subnets"] == [{"name": "services", "cidr": "2001:db8:0:b:1::/80"}]


def test_the_same_prefix_reported_again_keeps_its_acquisition_time_and_tells_nothing() -> None:
    first = step(source=ra(A, valid=T0 + DAY)).status

    update = step(source=ra(A, valid=T0 + 2 * DAY), previous=first, now=T0 + HOUR)

    assert update.status["acquiredAt"] == "2024-05-01T12:00:00Z"
    assert update.status["validUntil"] == "2024-05-03T12:00:00Z"
    assert update.events == ()


def test_history_lists_the_newest_previous_prefix_first() -> None:
    status, _ = rotate([A, B, C])

    assert status["currentPrefix"] == str(C)
    assert history_prefixes(status) == [str(B), str(A)]


def test_a_prefix_that_comes_back_is_current_and_not_listed_in_history() -> None:
    status, _ = rotate([A, B, A])

    assert status["currentPrefix"] == str(A)
    assert history_prefixes(status) == [str(B)]


def test_a_prefix_listed_twice_in_previous_history_is_listed_once() -> None:
    previous = {
        "currentPrefix": str(C),
        "history": [{"prefix": str(B)}, {"prefix": str(A)}, {"prefix": str(B)}],
    }

    status = step(source=ra(C), previous=previous, spec=valid_spec(dynamic_prefix(max_history=5)))

    assert history_prefixes(status.status) == [str(B), str(A)]


def test_unreadable_history_entries_are_dropped() -> None:
    previous = {
        "currentPrefix": str(C),
        "history": [{"prefix": "not a prefix"}, {"nothing": 1}, {"prefix": str(A)}],
    }

    status = step(source=ra(C), previous=previous).status

    assert history_prefixes(status) == [str(A)]


# --- history trimming ----------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 10])
def test_history_keeps_at_most_max_prefix_history_entries_the_newest(limit: int) -> None:
    spec = valid_spec(dynamic_prefix(max_history=limit))
    prefixes = [IPv6Network((0x20010DB8 << 96 | n << 64, 64)) for n in range(limit + 4)]

    status, _ = rotate(prefixes, spec=spec)

    assert history_prefixes(status) == [str(p) for p in reversed(prefixes[-limit - 1 : -1])]


def test_default_max_prefix_history_is_two() -> None:
    status, _ = rotate([A, B, C, D])

    assert history_prefixes(status) == [str(C), str(B)]


def test_lowering_max_prefix_history_trims_the_history_on_the_next_status() -> None:
    status, now = rotate([A, B, C, D], spec=valid_spec(dynamic_prefix(max_history=3)))

    trimmed = step(
        source=ra(D),
        previous=status,
        spec=valid_spec(dynamic_prefix(max_history=1)),
        now=now + MINUTE,
    )

    assert history_prefixes(status) == [str(C), str(B), str(A)]
    assert history_prefixes(trimmed.status) == [str(C)]


def test_history_entry_whose_valid_lifetime_ends_now_is_dropped() -> None:
    first = step(source=ra(A, valid=T0 + HOUR), now=T0).status
    second = step(source=ra(B), previous=first, now=T0 + MINUTE).status

    at_expiry = step(source=ra(B), previous=second, now=T0 + HOUR).status

    assert history_prefixes(second) == [str(A)]
    assert "history" not in at_expiry


def test_history_entry_is_kept_until_its_valid_lifetime_ends() -> None:
    first = step(source=ra(A, valid=T0 + HOUR), now=T0).status
    second = step(source=ra(B), previous=first, now=T0 + MINUTE).status

    just_before = step(source=ra(B), previous=second, now=T0 + HOUR - dt.timedelta(seconds=1))

    assert history_prefixes(just_before.status) == [str(A)]


def test_expired_history_is_dropped_without_a_new_report_from_the_source() -> None:
    first = step(source=ra(A, valid=T0 + HOUR), now=T0).status
    second = step(source=ra(B), previous=first, now=T0 + MINUTE).status

    status = step(source=None, previous=second, now=T0 + 2 * HOUR).status

    assert "history" not in status
    assert status["currentPrefix"] == str(B)


def test_an_old_prefix_already_expired_when_it_is_replaced_never_enters_history() -> None:
    first = step(source=ra(A, valid=T0 + MINUTE), now=T0).status

    status = step(source=ra(B), previous=first, now=T0 + HOUR).status

    assert "history" not in status


def test_history_entry_with_infinite_lifetime_never_expires() -> None:
    first = step(source=ra(A, valid=None), now=T0).status
    second = step(source=ra(B), previous=first, now=T0 + MINUTE).status

    century_later = step(source=ra(B), previous=second, now=T0 + 36500 * DAY).status

    assert second["history"] == [
        {
            "prefix": str(A),
            "state": "draining",
            "acquiredAt": "2024-05-01T12:00:00Z",
            "deprecatedAt": "2024-05-01T12:01:00Z",
        }
    ]
    assert history_prefixes(century_later) == [str(A)]


def test_next_deadline_is_the_earliest_valid_until_in_history() -> None:
    status = {
        "currentPrefix": str(D),
        "validUntil": "2024-05-01T12:30:00Z",  # the current prefix is not a history expiry
        "history": [
            {"prefix": str(C), "validUntil": "2024-05-03T00:00:00Z"},
            {"prefix": str(B)},
            {"prefix": str(A), "validUntil": "2024-05-02T00:00:00Z"},
        ],
    }

    assert next_deadline(status) == dt.datetime(2024, 5, 2, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"currentPrefix": str(B), "validUntil": "2024-05-02T00:00:00Z"},
        {"currentPrefix": str(B), "history": [{"prefix": str(A)}]},
        {"currentPrefix": str(B), "history": [{"prefix": str(A), "validUntil": "garbage"}]},
    ],
    ids=["empty", "no-history", "infinite-history", "unreadable-valid-until"],
)
def test_next_deadline_is_none_without_a_finite_history_lifetime(status: dict[str, Any]) -> None:
    assert next_deadline(status) is None


def test_next_deadline_of_a_computed_status_is_when_the_old_prefix_expires() -> None:
    first = step(source=ra(A, valid=T0 + 3 * HOUR), now=T0).status
    second = step(source=ra(B, valid=T0 + DAY), previous=first, now=T0 + MINUTE).status

    assert next_deadline(second) == T0 + 3 * HOUR


# --- the source loses its prefix -----------------------------------------------------------


def lost(reason: str = "Expired", message: str = "the prefix expired") -> SourceState:
    return ra(None, reason=reason, message=message)


def test_losing_the_prefix_keeps_current_prefix_ranges_and_history() -> None:
    before, now = rotate([A, B])

    status = step(source=lost(), previous=before, now=now + MINUTE).status

    assert prefix_fields(status) == prefix_fields(before)
    assert status["currentPrefix"] == str(B)


def test_losing_the_prefix_sets_prefix_acquired_false_with_the_sources_reason() -> None:
    before = step(source=ra(A)).status

    status = step(source=lost("Withdrawn", "router withdrew it"), previous=before).status

    acquired = condition(status, PREFIX_ACQUIRED)
    assert (acquired["status"], acquired["reason"]) == ("False", "Withdrawn")
    assert acquired["message"] == "router withdrew it"
    ready = condition(status, READY)
    assert (ready["status"], ready["reason"]) == ("False", "NoPrefix")


def test_losing_the_prefix_warns_once_when_prefix_acquired_flips() -> None:
    before = step(source=ra(A)).status

    flip = step(source=lost(), previous=before, now=T0 + MINUTE)
    again = step(source=lost(), previous=flip.status, now=T0 + 2 * MINUTE)

    assert reasons(flip.events) == [("Warning", "Expired")]
    assert "pools keep 2001:db8:0:a::/64" in flip.events[0].message
    assert again.events == ()


def test_a_source_without_a_reason_losing_its_prefix_says_no_prefix() -> None:
    before = step(source=ra(A)).status

    update = step(source=ra(None), previous=before)

    acquired = condition(update.status, PREFIX_ACQUIRED)
    assert (acquired["status"], acquired["reason"]) == ("False", "NoPrefix")
    assert reasons(update.events) == [("Warning", "PrefixLost")]


def test_a_starting_source_without_any_prefix_yet_does_not_warn() -> None:
    update = step(source=ra(None, reason="Starting", message="listening for RAs"))

    assert condition(update.status, PREFIX_ACQUIRED)["status"] == "False"
    assert "currentPrefix" not in update.status
    assert update.events == ()


def test_the_prefix_coming_back_after_a_loss_sets_prefix_acquired_true_again() -> None:
    synced = PoolSummary(1, 1)
    before = step(source=ra(A), pools=synced).status
    lost_status = step(source=lost(), previous=before, now=T0 + MINUTE).status

    status = step(source=ra(A), previous=lost_status, pools=synced, now=T0 + 2 * MINUTE).status

    assert condition(status, PREFIX_ACQUIRED)["status"] == "True"
    assert condition(status, READY)["status"] == "True"
    assert "history" not in status


# --- no report from the source yet ---------------------------------------------------------


def test_no_report_and_no_previous_status_leaves_prefix_acquired_unknown() -> None:
    update = step(source=None)

    acquired = condition(update.status, PREFIX_ACQUIRED)
    assert (acquired["status"], acquired["reason"]) == ("Unknown", "Pending")
    assert condition(update.status, POOLS_SYNCED)["status"] == "Unknown"
    assert condition(update.status, READY)["status"] == "False"
    assert "currentPrefix" not in update.status
    assert update.events == ()


def test_no_report_keeps_the_whole_previous_status() -> None:
    before = step(source=ra(A, valid=T0 + DAY), pools=PoolSummary(2, 2)).status

    update = step(source=None, previous=before, pools=PoolSummary(2, 2), now=T0 + HOUR)

    assert update.status == before
    assert update.events == ()


def test_no_report_keeps_a_previous_prefix_acquired_condition_as_it_was() -> None:
    before = step(source=lost(), now=T0).status

    status = step(source=None, previous=before, now=T0 + HOUR).status

    assert condition(status, PREFIX_ACQUIRED) == condition(before, PREFIX_ACQUIRED)


def test_a_new_dynamic_prefix_is_not_ready_before_its_pools_are_judged() -> None:
    """`kubectl wait --for=condition=Ready` must not return before the pools are written."""
    first = step(source=ra(A)).status  # the pools are being written: none judged yet

    pools = condition(first, POOLS_SYNCED)
    assert (pools["status"], pools["message"]) == ("Unknown", "the pools are being written")
    ready = condition(first, READY)
    assert (ready["status"], ready["reason"]) == ("False", "PoolsNotSynced")
    assert ready["message"] == "the pools are being written"

    judged = step(source=ra(A), previous=first, pools=PoolSummary(1, 1)).status
    assert condition(judged, READY)["status"] == "True"
    # later passes that judge nothing (a pool added, not yet written) keep the verdict
    kept = step(source=ra(A), previous=judged, now=T0 + MINUTE).status
    assert condition(kept, POOLS_SYNCED) == condition(judged, POOLS_SYNCED)
    assert condition(kept, READY)["status"] == "True"


def test_a_prefix_learnt_after_none_says_its_pools_are_being_written() -> None:
    waiting = step(source=None).status
    assert condition(waiting, POOLS_SYNCED)["message"] == "pools are synced once a prefix is known"

    learnt = step(source=ra(A), previous=waiting).status

    assert condition(learnt, POOLS_SYNCED)["message"] == "the pools are being written"
    assert condition(learnt, READY)["status"] == "False"


# --- BGP announcements ----------------------------------------------------------------------


def test_bgp_advertise_is_acted_on_and_named_in_status_without_a_warning() -> None:
    spec = validate_dynamic_prefix(
        {
            "spec": {
                "acquisition": {"static": {"prefix": "2001:db8:1::/48"}},
                "subnets": [
                    {"name": "bgp", "prefixLength": 72, "bgp": {"advertise": True}},
                    {"name": "quiet", "prefixLength": 72, "offset": 1},
                ],
            }
        }
    )
    assert isinstance(spec, DynamicPrefixSpec)
    update = next_status(spec=spec, previous={}, source=ra(A), pools=None, generation=1,
                         now=T0, name="home")  # fmt: skip
    assert not [e for e in update.events if e.reason == "SettingNotActedOn"]
    by_name = {s["name"]: s for s in update.status["subnets"]}
    assert by_name["bgp"]["bgpAdvertisement"] == "dp-home-bgp"  # the Go operator's name
    assert "bgpAdvertisement" not in by_name["quiet"]


def test_bgp_advertisement_ready_follows_the_summary_and_ready_with_it() -> None:
    def conditions(bgp: BgpSummary | None, previous: Mapping[str, Any] | None = None) -> Any:
        update = next_status(spec=SPEC, previous=previous or {}, source=ra(A),
                             pools=PoolSummary(1, 1), generation=1, now=T0, bgp=bgp)  # fmt: skip
        return update, {c["type"]: c for c in update.status["conditions"]}

    ready, by_type = conditions(BgpSummary(("CiliumBGPAdvertisement dp-x-lb",)))
    assert by_type["BGPAdvertisementReady"]["status"] == "True"
    assert by_type["BGPAdvertisementReady"]["reason"] == "AdvertisementsReady"
    assert "1 BGP advertisement(s) configured" in by_type["BGPAdvertisementReady"]["message"]
    assert by_type["Ready"]["status"] == "True"

    pending, by_type = conditions(BgpSummary((), ("subnet lb: no selector",)), ready.status)
    assert by_type["BGPAdvertisementReady"]["status"] == "False"
    assert by_type["BGPAdvertisementReady"]["reason"] == "AdvertisementsPending"
    assert by_type["Ready"]["reason"] == "BGPNotReady"
    assert [e.reason for e in pending.events if e.type == "Warning"] == ["AdvertisementsPending"]
    again, _ = conditions(BgpSummary((), ("subnet lb: no selector",)), pending.status)
    assert not [e for e in again.events if e.reason == "AdvertisementsPending"]  # said once

    waiting, by_type = conditions(BgpSummary(waiting=("subnet lb feeds no pool",)))
    assert by_type["BGPAdvertisementReady"]["status"] == "False"  # said in the condition,
    assert not [e for e in waiting.events if e.type == "Warning"]  # not warned about

    _, by_type = conditions(BgpSummary(wanted=False), pending.status)
    assert "BGPAdvertisementReady" not in by_type  # nothing asks to be announced
    assert by_type["Ready"]["status"] == "True"
    _, by_type = conditions(None, pending.status)
    assert by_type["BGPAdvertisementReady"]["status"] == "False"  # not judged: kept


def test_announcements_not_judged_yet_keep_a_new_dynamic_prefix_from_being_ready() -> None:
    """The first status of a DynamicPrefix whose subnet asks to be announced: the
    advertisement objects are being written, so Ready is not True yet."""
    spec = validate_dynamic_prefix(
        {"spec": {"acquisition": {"static": {"prefix": "2001:db8:1::/48"}},
                  "subnets": [{"name": "lb", "prefixLength": 64,
                               "bgp": {"advertise": True}}]}}
    )  # fmt: skip
    assert isinstance(spec, DynamicPrefixSpec)

    def step_bgp(bgp: BgpSummary | None, previous: Mapping[str, Any]) -> dict[str, Any]:
        return next_status(spec=spec, previous=previous, source=ra(A), pools=PoolSummary(1, 1),
                           generation=1, now=T0, bgp=bgp).status  # fmt: skip

    first = step_bgp(None, {})
    announced = condition(first, BGP_ADVERTISEMENT_READY)
    assert (announced["status"], announced["reason"]) == ("Unknown", "Pending")
    ready = condition(first, READY)
    assert (ready["status"], ready["reason"]) == ("False", "BGPNotReady")
    assert ready["message"] == "the BGP announcements are being written"

    done = step_bgp(BgpSummary(("CiliumBGPAdvertisement dp-x-lb",)), first)
    assert condition(done, READY)["status"] == "True"
    assert condition(step_bgp(None, done), READY)["status"] == "True"  # not judged: kept


# --- invalid spec --------------------------------------------------------------------------


def test_invalid_spec_is_degraded_and_not_ready_with_the_problems_in_the_message() -> None:
    invalid = invalid_spec()

    status = step(source=ra(A), spec=invalid).status

    degraded = condition(status, DEGRADED)
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert "spec.addressRanges[0]" in degraded["message"]
    assert degraded["message"] == str(invalid)
    ready = condition(status, READY)
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert condition(status, PREFIX_ACQUIRED)["status"] == "Unknown"


def test_invalid_spec_warns_with_an_invalid_spec_event() -> None:
    update = step(source=ra(A), spec=invalid_spec())

    assert reasons(update.events) == [("Warning", "InvalidSpec")]
    assert "spec.addressRanges[0]" in update.events[0].message


def test_invalid_spec_leaves_every_prefix_field_untouched() -> None:
    before, now = rotate([A, B])

    status = step(
        source=ra(C), previous=before, spec=invalid_spec(), generation=2, now=now + HOUR
    ).status

    assert prefix_fields(status) == prefix_fields(before)
    assert status["observedGeneration"] == 2


def test_invalid_spec_warns_once_per_generation() -> None:
    first = step(source=None, spec=invalid_spec(), generation=2)
    same = step(source=None, previous=first.status, spec=invalid_spec(), generation=2)
    edited = step(source=None, previous=same.status, spec=invalid_spec(), generation=3)

    assert len(first.events) == 1
    assert same.events == ()
    assert reasons(edited.events) == [("Warning", "InvalidSpec")]


def test_fixing_an_invalid_spec_clears_degraded() -> None:
    broken = step(source=None, spec=invalid_spec(), generation=2).status

    status = step(source=ra(A), previous=broken, generation=3, now=T0 + HOUR).status

    degraded = condition(status, DEGRADED)
    assert (degraded["status"], degraded["reason"]) == ("False", "AsExpected")
    assert degraded["lastTransitionTime"] == format_time(T0 + HOUR)
    assert status["currentPrefix"] == str(A)


# --- a prefix the spec does not fit --------------------------------------------------------


def test_a_prefix_too_long_for_the_ranges_is_degraded_prefix_does_not_fit() -> None:
    too_long = IPv6Network("2001:db8:0:a:1::/80")

    update = step(source=SourceState(api.SOURCE_STATIC, too_long))

    degraded = condition(update.status, DEGRADED)
    assert (degraded["status"], degraded["reason"]) == ("True", "PrefixDoesNotFit")
    assert degraded["message"].startswith(f"parts of the spec do not fit {too_long}: ")
    assert "spec.addressRanges[0]" in degraded["message"]
    assert "spec.subnets[0]" in degraded["message"]
    ready = condition(update.status, READY)
    assert (ready["status"], ready["reason"]) == ("False", "Degraded")
    assert update.status["currentPrefix"] == str(too_long)
    assert update.status["addressRanges"] == []
    assert ("Warning", "PrefixDoesNotFit") in reasons(update.events)


def test_a_delegated_prefix_shorter_than_requested_leaves_out_subnets_past_its_end() -> None:
    spec = valid_spec(
        dynamic_prefix(
            acquisition={"dhcpv6pd": {"interface": "wan0", "requestedPrefixLength": 56}},
            addressRanges=[],
            subnets=[
                {"name": "first", "offset": 0, "prefixLength": 64},
                {"name": "far", "offset": 20, "prefixLength": 64},
            ],
        )
    )
    delegated = IPv6Network("2001:db8:0:10::/60")

    update = step(source=SourceState(api.SOURCE_DHCPV6_PD, delegated), spec=spec)

    degraded = condition(update.status, DEGRADED)
    assert (degraded["status"], degraded["reason"]) == ("True", "PrefixDoesNotFit")
    assert degraded["message"] == (
        "parts of the spec do not fit 2001:db8:0:10::/60: spec.subnets[1] (far): offset 20 is "
        "past the last subnet: 2001:db8:0:10::/60 holds 16 /64 subnets (offsets 0 to 15); the "
        "other ranges and subnets are served"
    )
    assert update.status["subnets"] == [{"name": "first", "cidr": "2001:db8:0:10::/64"}]


def test_prefix_does_not_fit_warns_only_when_degraded_flips() -> None:
    too_long = SourceState(api.SOURCE_STATIC, IPv6Network("2001:db8:0:a:1::/80"))
    first = step(source=too_long)

    again = step(source=too_long, previous=first.status, now=T0 + HOUR)

    assert again.events == ()
    assert condition(again.status, DEGRADED)["lastTransitionTime"] == format_time(T0)


# --- PoolsSynced -----------------------------------------------------------------------------


def test_all_pools_in_sync_is_pools_synced_true_with_the_count() -> None:
    status = step(source=ra(A), pools=PoolSummary(total=3, in_sync=3)).status

    synced = condition(status, POOLS_SYNCED)
    assert (synced["status"], synced["reason"]) == ("True", "Synced")
    assert synced["message"] == "3/3 pools in sync"
    assert condition(status, READY)["status"] == "True"


def test_a_failing_pool_is_pools_synced_false_naming_it_and_not_ready() -> None:
    pools = PoolSummary(total=3, in_sync=2, failing=("CiliumLoadBalancerIPPool/lb: conflict",))

    status = step(source=ra(A), pools=pools).status

    synced = condition(status, POOLS_SYNCED)
    assert (synced["status"], synced["reason"]) == ("False", "SyncFailed")
    assert synced["message"] == "2/3 pools in sync: CiliumLoadBalancerIPPool/lb: conflict"
    ready = condition(status, READY)
    assert (ready["status"], ready["reason"]) == ("False", "PoolsNotSynced")


def test_pools_synced_message_names_at_most_five_failing_pools() -> None:
    failing = tuple(f"IPAddressPool/p{n}: conflict" for n in range(8))

    synced = condition(step(source=ra(A), pools=PoolSummary(8, 0, failing)).status, POOLS_SYNCED)

    assert "p4" in synced["message"]
    assert "p5" not in synced["message"]


def test_no_prefix_yet_leaves_pools_synced_unknown() -> None:
    status = step(source=ra(None, reason="Starting")).status

    assert condition(status, POOLS_SYNCED)["status"] == "Unknown"


# --- lastTransitionTime ----------------------------------------------------------------------


def test_same_condition_status_at_a_later_time_keeps_its_last_transition_time() -> None:
    first = step(source=ra(A), pools=PoolSummary(3, 3), now=T0).status

    later = step(source=ra(A), previous=first, pools=PoolSummary(3, 3), now=T0 + DAY).status

    for kind in (READY, PREFIX_ACQUIRED, POOLS_SYNCED, DEGRADED):
        assert condition(later, kind)["lastTransitionTime"] == "2024-05-01T12:00:00Z", kind


def test_a_new_reason_or_message_without_a_status_flip_keeps_last_transition_time() -> None:
    first = step(source=ra(A), pools=PoolSummary(3, 2, ("a: x",)), now=T0).status

    later = step(
        source=ra(B), previous=first, pools=PoolSummary(4, 1, ("b: y",)), now=T0 + HOUR
    ).status

    synced = condition(later, POOLS_SYNCED)
    assert synced["message"] == "1/4 pools in sync: b: y"
    assert synced["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    acquired = condition(later, PREFIX_ACQUIRED)
    assert acquired["message"] == "prefix 2001:db8:0:b::/64 from router-advertisement"
    assert acquired["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_a_status_flip_moves_last_transition_time_to_now() -> None:
    first = step(source=ra(A), pools=PoolSummary(3, 2), now=T0).status

    later = step(source=ra(A), previous=first, pools=PoolSummary(3, 3), now=T0 + HOUR).status

    assert condition(later, POOLS_SYNCED)["lastTransitionTime"] == "2024-05-01T13:00:00Z"
    assert condition(later, READY)["lastTransitionTime"] == "2024-05-01T13:00:00Z"
    assert condition(later, PREFIX_ACQUIRED)["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_conditions_of_other_types_in_previous_status_are_kept() -> None:
    custom = {
        "type": "Custom",
        "status": "True",
        "lastTransitionTime": "2020-01-01T00:00:00Z",
        "reason": "X",
        "message": "y",
    }

    status = step(source=ra(A), previous={"conditions": [custom]}).status

    assert condition(status, "Custom") == custom
    assert status["conditions"][-1] == custom


# --- idempotence -------------------------------------------------------------------------------


def test_the_same_inputs_give_the_same_status_and_events() -> None:
    previous, now = rotate([A, B], valid=DAY)
    inputs: dict[str, Any] = {
        "source": ra(C, preferred=now + HOUR, valid=now + DAY),
        "previous": previous,
        "pools": PoolSummary(3, 2, ("x: y",)),
        "now": now + HOUR,
    }

    assert step(**inputs) == step(**inputs)


@pytest.mark.parametrize("later", [dt.timedelta(0), MINUTE, HOUR])
def test_a_status_fed_back_with_the_same_report_is_unchanged_and_tells_nothing(
    later: dt.timedelta,
) -> None:
    previous, now = rotate([A, B], valid=DAY)
    source = ra(C, preferred=now + 2 * HOUR, valid=now + DAY)
    pools = PoolSummary(3, 3)
    first = step(source=source, previous=previous, pools=pools, now=now)

    second = step(source=source, previous=first.status, pools=pools, now=now + later)

    assert second.status == first.status
    assert second.events == ()


def test_next_status_does_not_modify_the_previous_status() -> None:
    previous, now = rotate([A, B], valid=DAY)
    snapshot = repr(previous)

    step(source=ra(C), previous=previous, pools=PoolSummary(1, 0), now=now + HOUR)

    assert repr(previous) == snapshot


# --- deprecation -------------------------------------------------------------------------------


def test_a_prefix_past_its_preferred_lifetime_is_reported_as_deprecated_once() -> None:
    first = step(source=ra(A, preferred=T0 + HOUR, valid=T0 + DAY), now=T0)

    deprecated = step(
        source=ra(A, preferred=T0 + HOUR, valid=T0 + DAY), previous=first.status, now=T0 + HOUR
    )
    still = step(
        source=ra(A, preferred=T0 + HOUR, valid=T0 + DAY),
        previous=deprecated.status,
        now=T0 + 2 * HOUR,
    )

    assert condition(first.status, PREFIX_ACQUIRED)["reason"] == "Acquired"
    acquired = condition(deprecated.status, PREFIX_ACQUIRED)
    assert (acquired["status"], acquired["reason"]) == ("True", "PrefixDeprecated")
    assert acquired["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert reasons(deprecated.events) == [("Warning", "PrefixDeprecated")]
    assert still.events == ()


def test_a_prefix_acquired_already_deprecated_is_told_both() -> None:
    update = step(source=ra(A, preferred=T0 - MINUTE, valid=T0 + HOUR), now=T0)

    assert reasons(update.events) == [
        ("Normal", "PrefixReceived"),
        ("Warning", "PrefixDeprecated"),
    ]


# --- properties ----------------------------------------------------------------------------------

ALPHABET = (A, B, C, D)


@given(
    reports=st.lists(st.sampled_from((*ALPHABET, None)), min_size=1, max_size=40),
    limit=st.integers(min_value=1, max_value=10),
)
def test_history_never_holds_the_current_prefix_nor_duplicates_nor_too_many(
    reports: list[IPv6Network | None], limit: int
) -> None:
    spec = valid_spec(dynamic_prefix(max_history=limit))
    status: dict[str, Any] = {}
    deprecated_order: list[IPv6Network] = []  # model: most recently replaced first
    current: IPv6Network | None = None
    for index, prefix in enumerate(reports):
        now = T0 + index * MINUTE
        source = ra(prefix) if prefix is not None else lost()
        status = step(source=source, previous=status, spec=spec, now=now).status
        if prefix is not None and prefix != current:
            if current is not None:
                deprecated_order = [current, *(p for p in deprecated_order if p != current)]
            current = prefix

        history = history_prefixes(status)
        assert status.get("currentPrefix") == (None if current is None else str(current))
        assert str(current) not in history
        assert len(history) == len(set(history))
        assert len(history) <= limit
        expected = [str(p) for p in deprecated_order if p != current][:limit]
        assert history == expected


def test_a_history_prefix_the_source_saw_withdrawn_leaves_at_once() -> None:
    old, new = IPv6Network("2001:db8:aa::/64"), IPv6Network("2001:db8:bb::/64")
    spec = validate_dynamic_prefix(
        {
            "apiVersion": "dynamic-prefix.io/v1alpha1",
            "kind": "DynamicPrefix",
            "metadata": {"name": "w"},
            "spec": {"acquisition": {"routerAdvertisement": {"interface": "eth0"}}},
        }
    )
    now = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    later = now + dt.timedelta(hours=1)
    first = next_status(
        spec=spec,
        previous={},
        source=SourceState("router-advertisement", old, valid_until=later),
        pools=None,
        generation=1,
        now=now,
    ).status
    changed = next_status(
        spec=spec,
        previous=first,
        source=SourceState("router-advertisement", new, valid_until=later),
        pools=None,
        generation=1,
        now=now,
    ).status
    assert [h["prefix"] for h in changed["history"]] == [str(old)]
    withdrawn = next_status(
        spec=spec,
        previous=changed,
        source=SourceState("router-advertisement", new, valid_until=later, gone=frozenset({old})),
        pools=None,
        generation=1,
        now=now,
    ).status
    assert "history" not in withdrawn
    assert withdrawn["currentPrefix"] == str(new)


# --- what the source knows of previous prefixes (withdrawal rules, exact deadlines) ------


def test_a_history_deadline_follows_what_the_source_knows_of_that_prefix() -> None:
    first = step(source=ra(A, valid=T0 + DAY), now=T0).status
    changed = step(source=ra(B, valid=T0 + DAY), previous=first, now=T0 + MINUTE).status
    clamped = T0 + MINUTE + 2 * HOUR  # an unauthenticated withdrawal: at most two hours

    source = SourceState(
        api.SOURCE_ROUTER_ADVERTISEMENT, B, valid_until=T0 + DAY, valid_until_of=((A, clamped),)
    )
    status = step(source=source, previous=changed, now=T0 + 2 * MINUTE).status

    assert status["history"][0]["validUntil"] == format_time(clamped)
    assert next_deadline(status) == clamped


def test_a_history_deadline_the_source_extends_is_extended_to_the_second() -> None:
    first = step(source=ra(A, valid=T0 + HOUR), now=T0).status
    changed = step(source=ra(B), previous=first, now=T0 + MINUTE).status
    refreshed = T0 + 3 * HOUR + dt.timedelta(seconds=1)

    source = SourceState(api.SOURCE_ROUTER_ADVERTISEMENT, B, valid_until_of=((A, refreshed),))
    status = step(source=source, previous=changed, now=T0 + 2 * MINUTE).status

    assert status["history"][0]["validUntil"] == "2024-05-01T15:00:01Z"


def test_prefix_changed_says_until_when_the_old_prefix_stays_in_the_pools() -> None:
    first = step(source=ra(A, valid=T0 + DAY), now=T0).status
    source = SourceState(
        api.SOURCE_ROUTER_ADVERTISEMENT,
        B,
        origin="fe80::1",
        valid_until_of=((A, T0 + 2 * HOUR),),
    )

    update = step(source=source, previous=first, now=T0 + MINUTE)

    (event,) = [e for e in update.events if e.reason == "PrefixChanged"]
    assert event.message.endswith(
        "2001:db8:0:a::/64 stays in the pools, deprecated, until 2024-05-01T14:00:00Z"
    )


def test_prefix_changed_says_the_old_prefix_leaves_now_when_a_trusted_router_withdrew_it() -> None:
    first = step(source=ra(A, valid=T0 + DAY), now=T0).status
    source = SourceState(api.SOURCE_ROUTER_ADVERTISEMENT, B, gone=frozenset({A}))

    update = step(source=source, previous=first, now=T0 + MINUTE)

    assert "history" not in update.status
    (event,) = [e for e in update.events if e.reason == "PrefixChanged"]
    assert "2001:db8:0:a::/64 was withdrawn" in event.message
    (completed,) = [e for e in update.events if e.reason == "TransitionCompleted"]
    assert completed.message.startswith("2001:db8:0:a::/64 is no longer in use")
    assert "leaves the pools now" in event.message
    assert "stays" not in event.message


def test_prefix_changed_says_the_old_prefix_leaves_now_when_its_lifetime_has_ended() -> None:
    first = step(source=ra(A, valid=T0 + dt.timedelta(seconds=30)), now=T0).status

    update = step(source=ra(B), previous=first, now=T0 + MINUTE)

    assert "history" not in update.status
    assert "leaves the pools now" in update.events[0].message


# --- released delegations ----------------------------------------------------------------


def pd(prefix: IPv6Network | None, **fields: Any) -> SourceState:
    return SourceState(api.SOURCE_DHCPV6_PD, prefix, origin="0001", **fields)


def test_a_released_current_prefix_leaves_status_and_pools_at_once() -> None:
    first = step(source=pd(A, valid_until=T0 + DAY), now=T0).status

    update = step(
        source=pd(None, reason="LeaseReleased", released=frozenset({A})),
        previous=first,
        now=T0 + MINUTE,
    )

    status = update.status
    for key in ("currentPrefix", "addressRanges", "subnets", "leaseExpiresAt", "history"):
        assert key not in status, key
    assert condition(status, PREFIX_ACQUIRED)["status"] == "False"
    assert condition(status, PREFIX_ACQUIRED)["reason"] == "LeaseReleased"
    assert reasons(update.events) == [("Normal", "PrefixReleased")]


def test_a_released_prefix_replaced_by_another_source_never_enters_the_history() -> None:
    first = step(source=pd(A, valid_until=T0 + DAY), now=T0).status

    update = step(
        source=dataclasses.replace(ra(B), released=frozenset({A})),
        previous=first,
        now=T0 + MINUTE,
    )

    assert update.status["currentPrefix"] == str(B)
    assert "history" not in update.status
    assert ("Normal", "PrefixReleased") in reasons(update.events)
    assert ("Normal", "PrefixReceived") in reasons(update.events)


def test_a_released_history_prefix_leaves_the_history() -> None:
    status, now = rotate([A, B], valid=DAY)
    assert history_prefixes(status) == [str(A)]

    update = step(source=dataclasses.replace(ra(B), released=frozenset({A})), previous=status,
                  now=now + MINUTE)  # fmt: skip

    assert "history" not in update.status


@pytest.mark.parametrize("reason", ["Starting", "Soliciting", "LeaseReleased"])
def test_routine_reasons_for_having_no_prefix_are_told_in_a_normal_event(reason: str) -> None:
    first = step(source=ra(A, valid=T0 + DAY), now=T0).status

    update = step(source=ra(None, reason=reason), previous=first, now=T0 + MINUTE)

    assert reasons(update.events) == [("Normal", reason)]


@pytest.mark.parametrize("reason", ["Expired", "Withdrawn", "LeaseLost", "InterfaceMissing"])
def test_losing_the_prefix_for_a_reason_a_human_must_see_is_a_warning(reason: str) -> None:
    first = step(source=ra(A, valid=T0 + DAY), now=T0).status

    update = step(source=ra(None, reason=reason), previous=first, now=T0 + MINUTE)

    assert reasons(update.events) == [("Warning", reason)]


# --- the prefix filter, on whatever source --------------------------------------------------


def test_a_prefix_the_filter_refuses_keeps_the_last_good_one_and_is_said_once() -> None:
    spec = validate_dynamic_prefix({"spec": {
        "acquisition": {"dhcpv6pd": {"interface": "eth0"},
                        "prefixFilter": {"minPrefixLength": 48, "maxPrefixLength": 56}},
    }})  # fmt: skip
    assert isinstance(spec, DynamicPrefixSpec)
    good = SourceState("dhcpv6-pd", IPv6Network("2001:db8:100::/56"), reason="LeaseAcquired")
    first = step(source=good, spec=spec)
    too_long = SourceState("dhcpv6-pd", IPv6Network("2001:db8:200::/60"), reason="LeaseAcquired")

    refused = step(source=too_long, previous=first.status, spec=spec)
    again = step(source=too_long, previous=refused.status, spec=spec)

    assert refused.status["currentPrefix"] == "2001:db8:100::/56", "the last good one stays"
    acquired = condition(refused.status, "PrefixAcquired")
    assert (acquired["status"], acquired["reason"]) == ("False", "PrefixRejected")
    assert "longer than prefixFilter.maxPrefixLength /56" in acquired["message"]
    (event,) = [e for e in refused.events if e.reason == "PrefixRejected"]
    assert event.type == "Warning"
    assert "dhcpv6-pd offered a prefix the filter refuses: 2001:db8:200::/60" in event.message
    assert "pools keep 2001:db8:100::/56" in event.message
    assert not [e for e in again.events if e.reason == "PrefixRejected"], "said once"


def test_a_unique_local_prefix_is_refused_unless_allowed() -> None:
    ula = SourceState("router-advertisement", IPv6Network("fd00:1::/64"), reason="Acquired")
    refused = step(source=ula)
    assert "currentPrefix" not in refused.status
    assert condition(refused.status, "PrefixAcquired")["reason"] == "PrefixRejected"
    (event,) = [e for e in refused.events if e.reason == "PrefixRejected"]
    assert "requireGlobalUnicast" in event.message
