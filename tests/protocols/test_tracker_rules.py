"""The tracker's rules at their edges: written from the survivors of a mutation run
(docs/mutation.md), each naming the behaviour the other tracker tests left open.

The pure rules of `tracker_policy` (`deadline_moved`, `two_hour_rule`) are called
directly where the state machine cannot reach an edge (a remaining lifetime below one
second); the rest go through `PrefixTracker`.
"""

from __future__ import annotations

import math
from ipaddress import IPv6Address, IPv6Network

import pytest

from dynamic_prefix.protocols.tracker import (
    IGNORED_REMEMBERED,
    TWO_HOURS,
    IgnoreReason,
    PrefixAcquired,
    PrefixChanged,
    PrefixIgnored,
    PrefixLifetimesUpdated,
    PrefixTracker,
    PrefixWithdrawn,
    TrackerPolicy,
)
from dynamic_prefix.protocols.tracker_policy import deadline_moved, two_hour_rule
from tests.protocols.test_tracker import GUA, GUA_2, ROUTER_A, START, STRANGER, Link, pio

GUA_A = IPv6Network("2001:db8:a::/64")
GUA_B = IPv6Network("2001:db8:b::/64")
GUA_C = IPv6Network("2001:db8:c::/64")

# --- the policy's own checks ---------------------------------------------------------


def test_policy_prefix_length_out_of_range_names_the_length() -> None:
    with pytest.raises(ValueError, match="prefix length 129 is not between 0 and 128"):
        TrackerPolicy(prefix_length=129)


def test_policy_trusted_routers_with_a_zone_are_refused_and_named() -> None:
    with pytest.raises(ValueError, match=r"compared without zone: fe80::a%eth0, fe80::b%eth1$"):
        TrackerPolicy(
            trusted_routers=frozenset({IPv6Address("fe80::b%eth1"), IPv6Address("fe80::a%eth0")})
        )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"switch_margin": -1.0}, "switch margin -1.0 is negative"),
        ({"lifetime_tolerance": 1.5}, r"lifetime tolerance 1.5 is not in \[0, 1\]"),
        ({"lifetime_resolution": -1.0}, "lifetime resolution -1.0 is negative"),
        ({"max_prefixes": 0}, "max prefixes 0 is less than 1"),
        ({"valid_floor": -1.0}, "valid floor -1.0 is negative"),
    ],
)
def test_policy_out_of_range_setting_is_refused_and_named(
    setting: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TrackerPolicy(**setting)  # type: ignore[arg-type]


# --- deadline_moved ------------------------------------------------------------------


def test_deadline_moved_from_the_past_into_the_future_is_reported() -> None:
    # A current prefix deprecated (reported preferred deadline passed) and preferred again.
    assert deadline_moved(5.0, 100.0, 10.0, 0.0, 1.0)


def test_deadlines_both_in_the_past_count_as_equal_even_when_one_is_now() -> None:
    assert not deadline_moved(10.0, 5.0, 10.0, 0.0, 1.0)
    assert not deadline_moved(5.0, 10.0, 10.0, 0.0, 1.0)


def test_deadline_moved_to_or_from_infinity_is_reported_whatever_the_tolerance() -> None:
    for tolerance in (0.0, 0.5, 1.0):
        assert deadline_moved(100.0, math.inf, 10.0, tolerance, 1.0)
        assert deadline_moved(math.inf, 100.0, 10.0, tolerance, 1.0)


def test_deadline_moved_tolerance_scales_with_what_remains_below_one_second() -> None:
    # 0.5 s remain: a full tolerance allows 0.5 s, so a move of 0.7 s is reported.
    assert deadline_moved(11.2, 10.5, 10.0, 1.0, 0.0)
    # The new deadline already passed: nothing remains, only the resolution counts.
    assert deadline_moved(10.5, 9.8, 10.0, 1.0, 0.0)


# --- two_hour_rule -------------------------------------------------------------------


def test_two_hour_rule_keeps_a_remaining_lifetime_below_one_second() -> None:
    assert two_hour_rule(0.0, 0.5, TWO_HOURS) == 0.5


def test_two_hour_rule_never_leaves_a_negative_lifetime() -> None:
    assert two_hour_rule(0.0, -3.0, TWO_HOURS) == 0.0


# --- a prefix whose deprecation is undone --------------------------------------------


def test_deprecated_current_prefix_preferred_again_reports_its_new_deadlines() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, valid=7200, preferred=60))
    link.wait(120)  # deprecated; the reported preferred deadline is in the past

    # The valid deadline stays where it was: only the preferred one moved.
    events = link.advertise(ROUTER_A, pio(GUA, valid=7200 - 120, preferred=600))

    assert [e for e in events if isinstance(e, PrefixLifetimesUpdated)] == [
        PrefixLifetimesUpdated(
            prefix=GUA,
            source=ROUTER_A,
            preferred_until=link.now + 600,
            valid_until=START + 7200,
        )
    ]


# --- observe_prefix ------------------------------------------------------------------


def test_observed_prefix_with_valid_lifetime_zero_is_withdrawn_not_refused() -> None:
    tracker = PrefixTracker(TrackerPolicy())
    tracker.observe_prefix(
        GUA, source="netlink", valid_lifetime=3600, preferred_lifetime=1800, now=START
    )

    events = tracker.observe_prefix(
        GUA, source="netlink", valid_lifetime=0, preferred_lifetime=0, now=START + 1
    )

    assert PrefixWithdrawn(GUA, "netlink") in events
    assert tracker.current is None


def test_observed_prefix_with_a_lifetime_under_one_second_is_taken() -> None:
    tracker = PrefixTracker(TrackerPolicy())

    events = tracker.observe_prefix(
        GUA, source="netlink", valid_lifetime=0.5, preferred_lifetime=0.25, now=START
    )

    assert events[-1] == PrefixAcquired(
        prefix=GUA, source="netlink", preferred_until=START + 0.25, valid_until=START + 0.5
    )


def test_observed_prefix_from_a_router_address_drops_its_zone_and_checks_trust() -> None:
    tracker = PrefixTracker(TrackerPolicy(trusted_routers=frozenset({ROUTER_A})))

    events = tracker.observe_prefix(
        GUA,
        source=IPv6Address("fe80::a%eth0"),
        valid_lifetime=3600,
        preferred_lifetime=1800,
        now=START,
    )
    refused = tracker.observe_prefix(
        GUA_2,
        source=IPv6Address("fe80::bad%eth0"),
        valid_lifetime=3600,
        preferred_lifetime=1800,
        now=START,
    )

    assert events[-1] == PrefixAcquired(
        prefix=GUA, source=ROUTER_A, preferred_until=START + 1800, valid_until=START + 3600
    )
    assert refused == [PrefixIgnored(GUA_2, STRANGER, IgnoreReason.UNTRUSTED_ROUTER)]


# --- remembered ignored pairs --------------------------------------------------------


def many_prefixes(count: int) -> list[IPv6Network]:
    return [IPv6Network((0x2001_0DB8_0000_0000 + i << 64, 64)) for i in range(count)]


def test_exactly_the_remembered_number_of_ignored_pairs_are_all_kept() -> None:
    link = Link(TrackerPolicy(trusted_routers=frozenset({ROUTER_A})))
    many = many_prefixes(IGNORED_REMEMBERED)
    for prefix in many:
        link.advertise(STRANGER, pio(prefix))

    assert link.tracker.ignored_remembered == IGNORED_REMEMBERED
    assert link.advertise(STRANGER, pio(many[0])) == []


def test_ignored_pair_whose_reason_changes_is_remembered_as_the_newest() -> None:
    policy = TrackerPolicy(trusted_routers=frozenset({ROUTER_A}), prefix_length=64)
    link = Link(policy)
    many = many_prefixes(IGNORED_REMEMBERED)
    for prefix in many:  # not autonomous: ignored for that reason
        link.advertise(ROUTER_A, pio(prefix, autonomous=False))
    # The oldest pair is ignored again for another reason, then one more pair comes.
    changed = link.advertise(ROUTER_A, pio(many[0], valid=60, preferred=120))
    link.advertise(ROUTER_A, pio(IPv6Network("2001:db8:ffff::/64"), autonomous=False))

    assert changed == [PrefixIgnored(many[0], ROUTER_A, IgnoreReason.PREFERRED_EXCEEDS_VALID)]
    # The second oldest was dropped, not the pair whose reason changed.
    assert link.advertise(ROUTER_A, pio(many[0], valid=60, preferred=120)) == []
    assert link.advertise(ROUTER_A, pio(many[1], autonomous=False)) == [
        PrefixIgnored(many[1], ROUTER_A, IgnoreReason.NOT_AUTONOMOUS)
    ]


# --- choosing among prefixes ---------------------------------------------------------


def test_first_choice_among_deprecated_prefixes_ignores_their_past_preferred_deadlines() -> None:
    # Step 4 ties for deprecated prefixes, so step 5 (most recently announced) decides.
    tracker = PrefixTracker(TrackerPolicy())
    tracker.observe_prefix(GUA_C, source="c", valid_lifetime=500, preferred_lifetime=500, now=0)
    tracker.observe_prefix(GUA_A, source="a", valid_lifetime=9000, preferred_lifetime=100, now=10)
    tracker.observe_prefix(GUA_B, source="b", valid_lifetime=9000, preferred_lifetime=30, now=20)

    events = tracker.advance(600)  # C expired; A and B both deprecated

    assert [e for e in events if isinstance(e, PrefixChanged)] == [
        PrefixChanged(old=GUA_C, new=GUA_B, source="b", preferred_until=50, valid_until=9020)
    ]


def test_first_choice_between_nested_prefixes_takes_the_shorter_one() -> None:
    # Step 6 compares the address, then the length: the lower (shorter) prefix wins.
    wide, narrow = IPv6Network("2001:db8::/56"), IPv6Network("2001:db8::/64")
    link = Link(TrackerPolicy(prefix_length=None))

    events = link.advertise(ROUTER_A, pio(narrow), pio(wide))

    assert [e.prefix for e in events if isinstance(e, PrefixAcquired)] == [wide]


# --- the pair limit ------------------------------------------------------------------


def test_withdrawal_of_an_unknown_prefix_at_the_pair_limit_is_not_reported() -> None:
    link = Link(TrackerPolicy(max_prefixes=1))
    link.advertise(ROUTER_A, pio(GUA))

    assert link.advertise(ROUTER_A, pio(GUA), pio(GUA_2, valid=0, preferred=0)) == []


def test_new_pair_with_a_one_second_lifetime_at_the_pair_limit_is_ignored() -> None:
    link = Link(TrackerPolicy(max_prefixes=1))
    link.advertise(ROUTER_A, pio(GUA))

    events = link.advertise(ROUTER_A, pio(GUA), pio(GUA_2, valid=1, preferred=1))

    assert PrefixIgnored(GUA_2, ROUTER_A, IgnoreReason.TOO_MANY_PREFIXES) in events
    assert [p.prefix for p in link.tracker.prefixes] == [GUA]
