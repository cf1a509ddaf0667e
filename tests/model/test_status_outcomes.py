"""The DynamicPrefix status in full: every condition's status, reason and message, the
retired prefixes and the ServicesSynced condition, for each situation `next_status`
tells apart. Written from the survivors of a mutation run (docs/mutation.md): the other
status tests check reasons and a few fields, these pin the whole outcome.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from ipaddress import IPv6Network
from typing import Any

import pytest

from dynamic_prefix.model import api
from dynamic_prefix.model.compute import compute
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import InvalidSpec, validate_dynamic_prefix
from dynamic_prefix.model.status import (
    DEGRADED,
    POOLS_SYNCED,
    PREFIX_ACQUIRED,
    READY,
    SERVICES_SYNCED,
    PoolSummary,
    StatusEvent,
    StatusUpdate,
    format_time,
    next_status,
)
from tests.model.test_status import (
    HOUR,
    MINUTE,
    SPEC,
    T0,
    A,
    B,
    C,
    D,
    dynamic_prefix,
    ra,
    step,
    valid_spec,
)

Outcome = tuple[str, str, str]


def conditions(status: Mapping[str, Any]) -> dict[str, Outcome]:
    """Each condition as (status, reason, message), by type."""
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def bare(prefix: IPv6Network | None, **fields: Any) -> SourceState:
    """A router-advertisement report without origin, reason or message."""
    return SourceState(api.SOURCE_ROUTER_ADVERTISEMENT, prefix, **fields)


def with_services(
    services: PoolSummary | None,
    *,
    previous: Mapping[str, Any] | None = None,
    pools: PoolSummary | None = None,
) -> StatusUpdate:
    return next_status(
        spec=SPEC,
        previous=previous or {},
        source=ra(A),
        pools=pools or PoolSummary(total=1, in_sync=1),
        generation=1,
        now=T0,
        services=services,
    )


# --- conditions, whole -----------------------------------------------------------------


def test_before_the_source_reports_every_condition_says_what_it_waits_for() -> None:
    update = step(source=None)

    assert conditions(update.status) == {
        READY: ("False", "NoPrefix", "no prefix is confirmed by the source"),
        PREFIX_ACQUIRED: ("Unknown", "Pending", "waiting for the prefix source"),
        POOLS_SYNCED: ("Unknown", "Pending", "pools are synced once a prefix is known"),
        DEGRADED: ("False", "AsExpected", "the spec is valid and fits the prefix"),
    }


def test_prefix_in_use_with_pools_in_sync_is_ready_naming_the_prefix() -> None:
    update = step(source=ra(A), pools=PoolSummary(total=2, in_sync=2))

    assert conditions(update.status)[READY] == ("True", "Ready", f"prefix {A} in use")
    assert conditions(update.status)[POOLS_SYNCED] == ("True", "Synced", "2/2 pools in sync")


def test_pools_failing_are_counted_and_the_first_five_named_one_per_clause() -> None:
    failing = tuple(f"IPPool/p{i}: refused" for i in range(7))

    update = step(source=ra(A), pools=PoolSummary(total=9, in_sync=2, failing=failing))

    assert conditions(update.status)[POOLS_SYNCED] == (
        "False",
        "SyncFailed",
        "2/9 pools in sync: " + "; ".join(failing[:5]),
    )
    assert conditions(update.status)[READY] == (
        "False",
        "PoolsNotSynced",
        "some pools are not in sync",
    )


def test_pools_failing_without_a_reason_are_only_counted() -> None:
    update = step(source=ra(A), pools=PoolSummary(total=1, in_sync=0))

    assert conditions(update.status)[POOLS_SYNCED] == ("False", "SyncFailed", "0/1 pools in sync")


def test_invalid_spec_lists_every_problem_in_degraded_and_ready() -> None:
    spec = validate_dynamic_prefix(
        dynamic_prefix(
            addressRanges=[
                {"name": "lb", "start": "::f000:0:0:0", "end": "::1"},
                {"name": "lb2", "start": "::f:0:0:0", "end": "::2"},
            ]
        )
    )
    assert isinstance(spec, InvalidSpec)
    assert len(spec.problems) == 2
    message = "; ".join(str(problem) for problem in spec.problems)

    update = step(source=None, spec=spec)

    assert conditions(update.status) == {
        READY: ("False", "InvalidSpec", "the spec is invalid: " + message),
        PREFIX_ACQUIRED: (
            "Unknown",
            "Pending",
            "no prefix is acquired while the spec is invalid",
        ),
        DEGRADED: ("True", "InvalidSpec", message),
    }
    assert update.events == (StatusEvent("Warning", "InvalidSpec", message),)


def test_prefix_the_spec_does_not_fit_lists_every_part_and_tells_it_once() -> None:
    too_long = IPv6Network("2001:db8:0:a:1::/80")
    problems = [str(problem) for problem in compute(SPEC, too_long).problems]
    assert len(problems) == 2
    message = f"parts of the spec do not fit {too_long}: " + "; ".join(problems)

    update = step(source=bare(too_long))

    assert conditions(update.status)[DEGRADED] == ("True", "PrefixDoesNotFit", message)
    assert conditions(update.status)[READY] == (
        "False",
        "Degraded",
        "the spec does not fit the prefix",
    )
    assert StatusEvent("Warning", "PrefixDoesNotFit", message) in update.events


def test_unchanged_condition_without_a_transition_time_gets_one_now() -> None:
    first = step(source=ra(A), pools=PoolSummary(total=1, in_sync=1)).status
    previous = {
        **first,
        "conditions": [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in first["conditions"]
        ],
    }

    later = T0 + HOUR
    update = step(source=ra(A), previous=previous, pools=PoolSummary(total=1, in_sync=1), now=later)

    stamp = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {c["type"]: c["lastTransitionTime"] for c in update.status["conditions"]} == {
        READY: stamp,
        PREFIX_ACQUIRED: stamp,
        POOLS_SYNCED: stamp,
        DEGRADED: stamp,
    }


def test_invalid_spec_is_told_when_degraded_flips_even_at_an_observed_generation() -> None:
    previous = step(source=ra(A), generation=3).status
    spec = validate_dynamic_prefix(
        dynamic_prefix(addressRanges=[{"name": "lb", "start": "::f000:0:0:0", "end": "::1"}])
    )
    assert isinstance(spec, InvalidSpec)

    update = step(source=ra(A), previous=previous, spec=spec, generation=3)

    assert [(e.type, e.reason) for e in update.events] == [("Warning", "InvalidSpec")]


def test_timestamps_are_written_in_utc_whatever_the_machine_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "IST-5:30")  # POSIX form: no zone database needed
    time.tzset()
    try:
        assert format_time(dt.datetime(2024, 5, 1, 16, 0, 0, tzinfo=dt.UTC)) == (
            "2024-05-01T16:00:00Z"
        )
    finally:
        monkeypatch.undo()
        time.tzset()


# --- ServicesSynced --------------------------------------------------------------------


def test_services_in_sync_are_counted_and_ready_stays_true() -> None:
    update = with_services(PoolSummary(total=3, in_sync=3))

    assert conditions(update.status)[SERVICES_SYNCED] == ("True", "Synced", "3/3 services in sync")
    assert conditions(update.status)[READY] == ("True", "Ready", f"prefix {A} in use")


def test_services_failing_make_ready_false_after_pools_and_name_the_services() -> None:
    update = with_services(PoolSummary(total=2, in_sync=1, failing=("Service/web: no address",)))

    assert conditions(update.status)[SERVICES_SYNCED] == (
        "False",
        "SyncFailed",
        "1/2 services in sync: Service/web: no address",
    )
    assert conditions(update.status)[READY] == (
        "False",
        "ServicesNotSynced",
        "some Services are not in sync",
    )


def test_services_condition_goes_when_no_service_opts_in_any_more() -> None:
    before = with_services(PoolSummary(total=1, in_sync=0)).status

    update = with_services(PoolSummary(total=0, in_sync=0), previous=before)

    assert SERVICES_SYNCED not in conditions(update.status)
    assert conditions(update.status)[READY] == ("True", "Ready", f"prefix {A} in use")


def test_no_service_opting_in_from_the_start_adds_no_services_condition() -> None:
    update = with_services(PoolSummary(total=0, in_sync=0))

    assert SERVICES_SYNCED not in conditions(update.status)


def test_services_not_summarised_leave_the_services_condition_as_it_was() -> None:
    before = with_services(PoolSummary(total=2, in_sync=1)).status

    update = with_services(None, previous=before)

    assert conditions(update.status)[SERVICES_SYNCED] == (
        "False",
        "SyncFailed",
        "1/2 services in sync",
    )
    assert conditions(update.status)[READY][1] == "ServicesNotSynced"


# --- retired prefixes --------------------------------------------------------------------


def test_retired_prefixes_are_those_leaving_use_then_the_earlier_ones_each_once() -> None:
    spec = valid_spec(dynamic_prefix(max_history=1))
    previous = {
        "currentPrefix": str(A),
        "history": [{"prefix": str(B)}],
        "retiredPrefixes": [str(C), "not a prefix", str(D), str(D)],
    }

    update = step(source=ra(C), previous=previous, spec=spec, now=T0 + MINUTE)

    # C is current again and A is its history: B leaves use, D was retired before.
    assert update.status["currentPrefix"] == str(C)
    assert update.status["history"][0]["prefix"] == str(A)
    assert update.status["retiredPrefixes"] == [str(B), str(D)]


def test_a_replaced_prefix_whose_lifetime_ended_is_retired_and_the_new_one_is_not() -> None:
    previous = {
        "currentPrefix": str(A),
        "validUntil": "2024-05-01T12:00:00Z",
        "retiredPrefixes": [str(B)],
    }

    update = step(source=ra(B), previous=previous, now=T0 + MINUTE)

    assert "history" not in update.status
    assert update.status["retiredPrefixes"] == [str(A)]


def test_retired_prefixes_are_bounded_newest_first() -> None:
    others = [IPv6Network(f"2001:db8:0:{i:x}0::/64") for i in range(1, 7)]
    previous = {
        "currentPrefix": str(A),
        "validUntil": "2024-05-01T12:00:00Z",
        "retiredPrefixes": [str(p) for p in others],
    }

    update = step(source=ra(B), previous=previous, now=T0 + MINUTE)

    assert update.status["retiredPrefixes"] == [str(A)] + [
        str(p) for p in others[: api.RETIRED_KEPT - 1]
    ]


# --- history -------------------------------------------------------------------------


def test_an_expired_history_entry_does_not_hide_the_older_ones() -> None:
    previous = {
        "currentPrefix": str(A),
        "history": [
            {"prefix": str(B), "validUntil": "2024-05-01T11:00:00Z"},
            {"prefix": str(C), "validUntil": "2024-05-02T12:00:00Z"},
        ],
    }

    update = step(source=ra(A), previous=previous)

    assert [entry["prefix"] for entry in update.status["history"]] == [str(C)]


# --- events, exact -------------------------------------------------------------------


def test_first_prefix_from_a_source_without_origin_names_only_the_source() -> None:
    update = step(source=bare(A))

    assert update.events == (
        StatusEvent("Normal", "PrefixReceived", f"prefix {A} acquired (router-advertisement)"),
    )


def test_change_without_a_known_deadline_says_the_old_prefix_stays_while_in_history() -> None:
    previous = step(source=bare(A)).status

    update = step(source=bare(B), previous=previous, now=T0 + MINUTE)

    assert update.events[0] == StatusEvent(
        "Normal",
        "PrefixChanged",
        f"prefix changed from {A} to {B} (router-advertisement); "
        f"{A} stays in the pools, deprecated, while it is in the history",
    )


def test_change_after_the_old_lifetime_ended_says_the_old_prefix_leaves_now() -> None:
    previous = step(source=bare(A, valid_until=T0 + MINUTE / 2)).status

    update = step(source=bare(B), previous=previous, now=T0 + MINUTE)

    assert update.events[0] == StatusEvent(
        "Normal",
        "PrefixChanged",
        f"prefix changed from {A} to {B} (router-advertisement); "
        f"{A} leaves the pools now (its valid lifetime ended, or the history is full)",
    )


def test_change_to_a_deprecated_prefix_is_told_before_the_deprecation() -> None:
    previous = step(source=ra(A)).status
    now = T0 + MINUTE

    update = step(source=ra(B, preferred=now), previous=previous, now=now)

    assert [(e.reason, e.message) for e in update.events] == [
        (
            "PrefixChanged",
            f"prefix changed from {A} to {B} (router-advertisement, from fe80::1); "
            f"{A} stays in the pools, deprecated, while it is in the history",
        ),
        ("TransitionStarted", f"transition from {A} to {B} started (transition.mode simple)"),
        ("PrefixDeprecated", f"prefix {B} is deprecated (preferred lifetime ended)"),
    ]


def test_lost_prefix_without_reason_or_message_says_the_pools_keep_it() -> None:
    previous = step(source=ra(A)).status

    update = step(source=bare(None), previous=previous, now=T0 + MINUTE)

    assert conditions(update.status)[PREFIX_ACQUIRED] == ("False", "NoPrefix", "no prefix")
    assert update.events == (
        StatusEvent(
            "Warning",
            "PrefixLost",
            f"the source has no prefix; pools keep {A} until a prefix is learnt again",
        ),
    )


def test_released_prefix_without_reason_or_message_says_the_delegation_ended() -> None:
    previous = step(source=ra(A)).status

    update = step(
        source=SourceState(api.SOURCE_DHCPV6_PD, None, released=frozenset({A})),
        previous=previous,
        now=T0 + MINUTE,
    )

    assert conditions(update.status)[PREFIX_ACQUIRED] == (
        "False",
        "LeaseReleased",
        f"{A} was released: the delegation ended",
    )
    assert update.events == (
        StatusEvent(
            "Normal",
            "PrefixReleased",
            f"{A} was released to the DHCPv6 server and leaves the pools now",
        ),
    )


def test_deadline_past_prefix_reported_by_a_source_reads_as_utc() -> None:
    east = dt.timezone(dt.timedelta(hours=2))
    valid = dt.datetime(2024, 5, 1, 16, 0, 0, tzinfo=east)

    update = step(source=ra(A, valid=valid))

    assert update.status["validUntil"] == "2024-05-01T14:00:00Z"


# --- prefixes the prefix filter refuses ------------------------------------------------

ULA_1 = IPv6Network("fd00:1::/64")
ULA_2 = IPv6Network("fd00:2::/64")


def rejected(prefix: IPv6Network) -> StatusEvent:
    why = SPEC.acquisition.refusal(prefix)
    assert why is not None
    return StatusEvent(
        "Warning",
        "PrefixRejected",
        f"router-advertisement offered a prefix the filter refuses: {why}",
    )


def test_each_different_refused_prefix_is_told_in_its_own_warning() -> None:
    first = step(source=ra(ULA_1))
    second = step(source=ra(ULA_2), previous=first.status, now=T0 + MINUTE)

    assert rejected(ULA_1) in first.events
    assert rejected(ULA_2) in second.events


def test_refused_prefix_after_the_kept_prefix_was_lost_is_told() -> None:
    bound = step(source=ra(A)).status
    lost = step(
        source=ra(None, reason="Expired", message="expired"), previous=bound, now=T0 + MINUTE
    )

    update = step(source=ra(ULA_1), previous=lost.status, now=T0 + 2 * MINUTE)

    assert rejected(ULA_1) in update.events
    assert update.status["currentPrefix"] == str(A)


def test_a_prefix_leaving_use_is_told_in_a_normal_transition_completed_event() -> None:
    previous = {"currentPrefix": str(A), "validUntil": "2024-05-01T12:00:00Z"}

    update = step(source=ra(B), previous=previous, now=T0 + MINUTE)

    assert (
        StatusEvent(
            "Normal",
            "TransitionCompleted",
            f"{A} is no longer in use: it left the pools and Services",
        )
        in update.events
    )
