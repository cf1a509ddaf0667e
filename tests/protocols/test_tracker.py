"""Prefix tracker on a manual clock: lifetimes, the filter, and the choice of current prefix."""

from __future__ import annotations

import math
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamic_prefix.protocols.ndp import INFINITE_LIFETIME, PrefixInformation, RouterAdvertisement
from dynamic_prefix.protocols.tracker import (
    IGNORED_REMEMBERED,
    TWO_HOURS,
    IgnoreReason,
    PrefixAcquired,
    PrefixChanged,
    PrefixDeprecated,
    PrefixExpired,
    PrefixIgnored,
    PrefixLifetimesUpdated,
    PrefixLost,
    PrefixObserved,
    PrefixTracker,
    PrefixWithdrawn,
    TrackedPrefix,
    TrackerEvent,
    TrackerPolicy,
    TrackerReport,
    TrackerReportReason,
    explain,
)

ROUTER_A = IPv6Address("fe80::a")
ROUTER_B = IPv6Address("fe80::b")
ROUTER_C = IPv6Address("fe80::c")
STRANGER = IPv6Address("fe80::bad")

GUA = IPv6Network("2001:db8:1::/64")
GUA_2 = IPv6Network("2001:db8:2::/64")
GUA_3 = IPv6Network("2001:db8:3::/64")
ULA = IPv6Network("fd12:3456:789a:1::/64")

START = 1000.0

TRUSTING = TrackerPolicy(trusted_routers=frozenset({ROUTER_A, ROUTER_B, ROUTER_C}))
"""Every router of these tests listed: RAs are authenticated, their word taken at once."""


def pio(
    prefix: IPv6Network,
    *,
    valid: int = 3600,
    preferred: int = 1800,
    autonomous: bool = True,
) -> PrefixInformation:
    return PrefixInformation(
        prefix=prefix,
        on_link=True,
        autonomous=autonomous,
        valid_lifetime=valid,
        preferred_lifetime=preferred,
    )


class Link:
    """A tracker listening on a link, with a manual clock that starts at `START`."""

    def __init__(self, policy: TrackerPolicy | None = None) -> None:
        self.tracker = PrefixTracker(policy or TrackerPolicy())
        self.now = START

    def advertise(self, router: IPv6Address, *prefixes: PrefixInformation) -> list[TrackerEvent]:
        ra = RouterAdvertisement(cur_hop_limit=64, router_lifetime=1800, options=prefixes)
        return self.tracker.observe_advertisement(ra, router=router, now=self.now)

    def wait(self, seconds: float) -> list[TrackerEvent]:
        self.now += seconds
        return self.tracker.advance(self.now)

    def wait_until(self, moment: float) -> list[TrackerEvent]:
        return self.wait(moment - self.now)

    @property
    def current_prefix(self) -> IPv6Network | None:
        current = self.tracker.current
        return None if current is None else current.prefix


def acquired(
    prefix: IPv6Network, source: IPv6Address | str, preferred_until: float, valid_until: float
) -> list[TrackerEvent]:
    """The two events of a first prefix: it is observed, then it becomes current."""
    return [
        PrefixObserved(
            prefix=prefix, source=source, preferred_until=preferred_until, valid_until=valid_until
        ),
        PrefixAcquired(
            prefix=prefix, source=source, preferred_until=preferred_until, valid_until=valid_until
        ),
    ]


# --- acquisition and refresh ---------------------------------------------------------


def test_empty_tracker_has_no_current_prefix_and_no_deadline() -> None:
    tracker = PrefixTracker(TrackerPolicy())

    assert tracker.current is None
    assert tracker.prefixes == ()
    assert tracker.next_deadline() is None
    assert tracker.advance(START) == []


def test_first_advertised_prefix_is_acquired_with_absolute_deadlines() -> None:
    link = Link()

    assert link.advertise(ROUTER_A, pio(GUA)) == acquired(GUA, ROUTER_A, 2800.0, 4600.0)
    assert link.tracker.current == TrackedPrefix(
        prefix=GUA,
        source=ROUTER_A,
        preferred_until=2800.0,
        valid_until=4600.0,
        last_announced=START,
        deprecated=False,
        stale=False,
    )
    assert link.tracker.prefixes == (link.tracker.current,)


def test_advertisement_without_prefix_information_acquires_nothing() -> None:
    link = Link()

    assert link.advertise(ROUTER_A) == []
    assert link.tracker.current is None


def test_router_zone_index_is_not_part_of_the_source() -> None:
    link = Link(TrackerPolicy(trusted_routers=frozenset({ROUTER_A})))

    events = link.advertise(IPv6Address("fe80::a%eth0"), pio(GUA))

    assert events == acquired(GUA, ROUTER_A, 2800.0, 4600.0)


def test_refresh_with_unchanged_lifetimes_reports_the_moved_deadlines_exactly() -> None:
    """No tolerance by default: status states deadlines to the second."""
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))

    for step in range(1, 4):
        link.now += 4
        assert link.advertise(ROUTER_A, pio(GUA)) == [
            PrefixLifetimesUpdated(
                prefix=GUA,
                source=ROUTER_A,
                preferred_until=2800.0 + 4 * step,
                valid_until=4600.0 + 4 * step,
            )
        ]


def test_a_router_counting_lifetimes_down_causes_no_report() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))

    for step in range(1, 20):
        link.now += 4
        assert (
            link.advertise(ROUTER_A, pio(GUA, valid=3600 - 4 * step, preferred=1800 - 4 * step))
            == []
        )

    current = link.tracker.current
    assert current is not None
    assert (current.preferred_until, current.valid_until) == (2800.0, 4600.0)


def test_lifetimes_update_is_reported_once_a_deadline_moved_beyond_the_tolerance() -> None:
    """The tolerance is a tenth of the remaining lifetime: 180 s of a 1800 s preferred one."""
    link = Link(TrackerPolicy(lifetime_tolerance=0.1))
    link.advertise(ROUTER_A, pio(GUA))

    events = []
    for _ in range(4):
        link.now += 60
        events.append(link.advertise(ROUTER_A, pio(GUA)))

    assert events == [
        [],
        [],
        [],  # 180 s: not beyond
        [
            PrefixLifetimesUpdated(
                prefix=GUA, source=ROUTER_A, preferred_until=3040.0, valid_until=4840.0
            )
        ],
    ]


def test_deadlines_moving_by_less_than_the_resolution_are_not_reported_near_the_end() -> None:
    """Kernel lifetimes are whole seconds: a deadline read again wobbles by up to one."""
    link = Link()
    link.tracker.observe_prefix(
        GUA, source="kernel", valid_lifetime=10, preferred_lifetime=0, now=link.now
    )
    link.now += 9.5

    events = link.tracker.observe_prefix(
        GUA, source="kernel", valid_lifetime=1, preferred_lifetime=0, now=link.now
    )

    assert events == []
    current = link.tracker.current
    assert current is not None
    assert current.valid_until == START + 10.5


def test_router_shortening_the_lifetimes_is_reported() -> None:
    link = Link(TRUSTING)
    link.advertise(ROUTER_A, pio(GUA, valid=86400, preferred=14400))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA, valid=600, preferred=300))

    assert events == [
        PrefixLifetimesUpdated(
            prefix=GUA, source=ROUTER_A, preferred_until=1304.0, valid_until=1604.0
        )
    ]


# --- change --------------------------------------------------------------------------


def test_router_announcing_a_new_prefix_instead_changes_the_prefix_at_once() -> None:
    """radvd after its configuration was rewritten and SIGHUP: the old prefix is left out."""
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA_2))

    assert events == [
        PrefixObserved(prefix=GUA_2, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0),
        PrefixChanged(
            old=GUA, new=GUA_2, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0
        ),
    ]
    left_out = link.tracker.prefixes[0]
    assert (left_out.prefix, left_out.stale, left_out.valid_until) == (GUA, True, 4600.0)


def test_prefix_left_out_by_one_router_but_announced_by_another_stays_current() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    link.advertise(ROUTER_B, pio(GUA))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA_2))

    assert events == [
        PrefixObserved(prefix=GUA_2, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0)
    ]
    assert link.current_prefix == GUA


def test_advertisement_without_prefix_information_leaves_no_prefix_stale() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    link.advertise(ROUTER_B, pio(GUA_2))

    link.advertise(ROUTER_A)

    assert [tracked.stale for tracked in link.tracker.prefixes] == [False, False]


def test_renumbering_with_the_old_prefix_deprecated_changes_the_prefix_at_once() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA, preferred=0), pio(GUA_2))

    assert events == [
        PrefixObserved(prefix=GUA_2, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0),
        PrefixDeprecated(GUA),
        PrefixChanged(
            old=GUA, new=GUA_2, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0
        ),
    ]


def test_challenger_within_the_switch_margin_does_not_replace_the_current_prefix() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, preferred=1800))

    link.advertise(ROUTER_B, pio(GUA_2, valid=7200, preferred=1800 + 1800))

    assert link.current_prefix == GUA


def test_challenger_preferred_longer_by_more_than_the_margin_replaces_the_current_prefix() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, preferred=1800))

    events = link.advertise(ROUTER_B, pio(GUA_2, valid=7200, preferred=1800 + 1801))

    assert events[-1] == PrefixChanged(
        old=GUA, new=GUA_2, source=ROUTER_B, preferred_until=4601.0, valid_until=8200.0
    )


def test_challenger_with_infinite_preferred_lifetime_replaces_a_finite_one() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))

    link.advertise(ROUTER_B, pio(GUA_2, valid=INFINITE_LIFETIME, preferred=INFINITE_LIFETIME))

    assert link.current_prefix == GUA_2


# --- several routers -----------------------------------------------------------------


def test_two_routers_alternating_with_equal_lifetimes_do_not_make_the_prefix_flap() -> None:
    link = Link()
    events: list[TrackerEvent] = []

    for _ in range(100):
        events += link.advertise(ROUTER_A, pio(GUA))
        assert link.current_prefix == GUA
        link.now += 2
        events += link.advertise(ROUTER_B, pio(GUA_2))
        assert link.current_prefix == GUA
        link.now += 2

    assert [type(event) for event in events if not isinstance(event, PrefixLifetimesUpdated)] == [
        PrefixObserved,
        PrefixAcquired,
        PrefixObserved,
    ]


@pytest.mark.parametrize("order", [(GUA, GUA_2), (GUA_2, GUA)], ids=["low-first", "high-first"])
def test_equal_prefixes_in_one_advertisement_choose_the_numerically_lowest(
    order: tuple[IPv6Network, IPv6Network],
) -> None:
    link = Link()

    link.advertise(ROUTER_A, *(pio(prefix) for prefix in order))

    assert link.current_prefix == GUA


def test_first_choice_prefers_the_longest_remaining_preferred_lifetime() -> None:
    link = Link()

    link.advertise(ROUTER_A, pio(GUA), pio(GUA_2, valid=7200, preferred=1801))

    assert link.current_prefix == GUA_2


def test_first_choice_on_equal_deadlines_prefers_the_most_recently_announced() -> None:
    link = Link(TRUSTING)
    link.advertise(ROUTER_C, pio(GUA, preferred=3000))
    link.advertise(ROUTER_A, pio(GUA_2, preferred=1800))  # preferred until 2800
    link.now = 1100
    link.advertise(ROUTER_B, pio(GUA_3, preferred=1700))  # preferred until 2800 too
    link.now = 1200

    events = link.advertise(ROUTER_C, pio(GUA, valid=0, preferred=0))

    assert events == [
        PrefixWithdrawn(GUA, ROUTER_C),
        PrefixChanged(
            old=GUA, new=GUA_3, source=ROUTER_B, preferred_until=2800.0, valid_until=4700.0
        ),
    ]


def test_first_choice_prefers_a_prefix_still_announced_over_a_stale_longer_lived_one() -> None:
    link = Link(TRUSTING)
    link.advertise(ROUTER_C, pio(GUA_3))  # current, preferred until 2800
    link.advertise(ROUTER_A, pio(GUA, preferred=3000))  # until 4000: within the margin
    link.now = 1004
    link.advertise(ROUTER_A, pio(GUA_2))  # GUA left out: stale; GUA_2 until 2804
    link.now = 1008

    events = link.advertise(ROUTER_C, pio(GUA_3, valid=0, preferred=0))

    assert events == [
        PrefixWithdrawn(GUA_3, ROUTER_C),
        PrefixChanged(
            old=GUA_3, new=GUA_2, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0
        ),
    ]


def test_prefix_announced_by_two_routers_takes_the_latest_deadlines_and_announcer() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, valid=7200, preferred=1800))
    link.now += 10
    link.advertise(ROUTER_B, pio(GUA, valid=3600, preferred=3000))

    current = link.tracker.current

    assert current is not None
    assert (current.source, current.preferred_until, current.valid_until) == (
        ROUTER_B,
        4010.0,
        8200.0,
    )


# --- withdrawal ----------------------------------------------------------------------


def test_valid_lifetime_zero_from_a_trusted_router_withdraws_the_current_prefix_at_once() -> None:
    link = Link(TRUSTING)
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0))

    assert events == [PrefixWithdrawn(GUA, ROUTER_A), PrefixLost(GUA)]
    assert link.tracker.current is None
    assert link.tracker.prefixes == ()
    assert link.tracker.next_deadline() is None


def test_withdrawal_next_to_a_new_prefix_changes_the_prefix() -> None:
    link = Link(TRUSTING)
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0), pio(GUA_2))

    assert events == [
        PrefixWithdrawn(GUA, ROUTER_A),
        PrefixObserved(prefix=GUA_2, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0),
        PrefixChanged(
            old=GUA, new=GUA_2, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0
        ),
    ]


def test_withdrawal_by_one_router_keeps_a_prefix_another_router_announces() -> None:
    link = Link(TRUSTING)
    link.advertise(ROUTER_A, pio(GUA))
    link.advertise(ROUTER_B, pio(GUA))
    link.now += 4

    assert link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0)) == []
    current = link.tracker.current
    assert current is not None
    assert (current.prefix, current.source) == (GUA, ROUTER_B)


def test_withdrawal_of_an_unknown_prefix_changes_nothing() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA), pio(GUA_2))

    assert link.advertise(ROUTER_B, pio(GUA_3, valid=0, preferred=0)) == []
    assert link.advertise(ROUTER_B, pio(GUA, valid=0, preferred=0)) == []
    assert [tracked.prefix for tracked in link.tracker.prefixes] == [GUA, GUA_2]
    assert link.current_prefix == GUA


def test_short_valid_lifetime_from_a_trusted_router_is_honoured_without_the_two_hour_rule() -> None:
    """RFC 4862 5.5.3 e) keeps two hours only for unauthenticated RAs."""
    link = Link(TRUSTING)
    link.advertise(ROUTER_A, pio(GUA, valid=86400, preferred=14400))

    link.advertise(ROUTER_A, pio(GUA, valid=60, preferred=30))

    assert link.tracker.next_deadline() == START + 30
    assert link.wait(60) == [PrefixExpired(GUA), PrefixLost(GUA)]


# --- deprecation ---------------------------------------------------------------------


def test_preferred_lifetime_zero_deprecates_the_prefix_at_once_and_it_stays_current() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA, preferred=0))

    assert events == [
        PrefixDeprecated(GUA),
        PrefixLifetimesUpdated(
            prefix=GUA, source=ROUTER_A, preferred_until=1004.0, valid_until=4604.0
        ),
    ]
    current = link.tracker.current
    assert current is not None
    assert (current.prefix, current.deprecated) == (GUA, True)


def test_repeated_deprecating_advertisements_emit_nothing_more() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, preferred=0))

    for step in range(1, 10):
        link.now += 4
        assert link.advertise(ROUTER_A, pio(GUA, valid=3600 - 4 * step, preferred=0)) == []


def test_new_prefix_announced_already_deprecated_is_acquired_and_deprecated() -> None:
    link = Link()

    events = link.advertise(ROUTER_A, pio(GUA, preferred=0))

    assert events == [
        PrefixObserved(prefix=GUA, source=ROUTER_A, preferred_until=START, valid_until=4600.0),
        PrefixDeprecated(GUA),
        PrefixAcquired(prefix=GUA, source=ROUTER_A, preferred_until=START, valid_until=4600.0),
    ]


def test_preferred_lifetime_running_out_deprecates_the_prefix() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))

    assert link.wait_until(2799.0) == []
    assert link.wait_until(2800.0) == [PrefixDeprecated(GUA)]
    assert link.current_prefix == GUA


def test_deprecated_current_prefix_is_replaced_by_a_preferred_one() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, preferred=100))
    link.advertise(ROUTER_B, pio(GUA_2))  # preferred 1700 s longer: within the margin
    assert link.current_prefix == GUA

    events = link.wait_until(1100.0)

    assert events == [
        PrefixDeprecated(GUA),
        PrefixChanged(
            old=GUA, new=GUA_2, source=ROUTER_B, preferred_until=2800.0, valid_until=4600.0
        ),
    ]


def test_deprecated_prefix_announced_preferred_again_reports_its_new_lifetimes() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, preferred=0))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA))

    assert events == [
        PrefixLifetimesUpdated(
            prefix=GUA, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0
        )
    ]
    current = link.tracker.current
    assert current is not None
    assert not current.deprecated


# --- expiry --------------------------------------------------------------------------


def test_prefix_expires_at_its_valid_lifetime_when_advertisements_stop() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))

    assert link.tracker.next_deadline() == 2800.0
    assert link.wait_until(2800.0) == [PrefixDeprecated(GUA)]
    assert link.tracker.next_deadline() == 4600.0
    assert link.wait_until(4599.5) == []
    assert link.wait_until(4600.0) == [PrefixExpired(GUA), PrefixLost(GUA)]
    assert link.tracker.current is None
    assert link.tracker.next_deadline() is None


def test_expiry_of_the_current_prefix_falls_back_to_one_still_valid() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    link.advertise(ROUTER_B, pio(GUA_2, valid=7200))

    assert link.wait_until(2800.0) == [PrefixDeprecated(GUA), PrefixDeprecated(GUA_2)]
    assert link.wait_until(4600.0) == [
        PrefixExpired(GUA),
        PrefixChanged(
            old=GUA, new=GUA_2, source=ROUTER_B, preferred_until=2800.0, valid_until=8200.0
        ),
    ]


def test_deadlines_that_passed_before_an_advertisement_are_processed_first() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, valid=60, preferred=60))
    link.now += 100

    events = link.advertise(ROUTER_A, pio(GUA_2))

    assert events == [
        PrefixExpired(GUA),
        PrefixObserved(prefix=GUA_2, source=ROUTER_A, preferred_until=2900.0, valid_until=4700.0),
        PrefixChanged(
            old=GUA, new=GUA_2, source=ROUTER_A, preferred_until=2900.0, valid_until=4700.0
        ),
    ]


def test_infinite_lifetimes_never_expire() -> None:
    link = Link()

    events = link.advertise(
        ROUTER_A, pio(GUA, valid=INFINITE_LIFETIME, preferred=INFINITE_LIFETIME)
    )

    assert events == acquired(GUA, ROUTER_A, math.inf, math.inf)
    assert link.tracker.next_deadline() is None
    assert link.wait(1e12) == []
    assert link.current_prefix == GUA


def test_infinite_valid_lifetime_with_finite_preferred_deprecates_but_never_expires() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, valid=INFINITE_LIFETIME, preferred=1800))

    assert link.tracker.next_deadline() == 2800.0
    assert link.wait_until(2800.0) == [PrefixDeprecated(GUA)]
    assert link.tracker.next_deadline() is None
    assert link.wait(1e12) == []


# --- next deadline and time ----------------------------------------------------------


def test_next_deadline_is_the_earliest_deprecation_or_expiry() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))  # deprecated at 2800, expires at 4600
    link.advertise(ROUTER_B, pio(GUA_2, valid=7200, preferred=100))  # 1100 and 8200

    deadlines = []
    while (deadline := link.tracker.next_deadline()) is not None:
        deadlines.append(deadline)
        link.wait_until(deadline)

    assert deadlines == [1100.0, 2800.0, 4600.0, 8200.0]
    assert link.tracker.prefixes == ()


def test_advancing_before_the_next_deadline_changes_nothing() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    before = link.tracker.current

    assert link.wait(1799.0) == []
    assert link.tracker.current == before


def test_time_going_backwards_is_taken_as_the_latest_time_seen() -> None:
    link = Link()
    link.tracker.advance(5000.0)

    events = link.tracker.observe_advertisement(
        RouterAdvertisement(options=(pio(GUA),)), router=ROUTER_A, now=10.0
    )

    assert events == acquired(GUA, ROUTER_A, 6800.0, 8600.0)


# --- the filter ----------------------------------------------------------------------


def test_ula_next_to_a_global_prefix_is_ignored_and_the_global_prefix_chosen() -> None:
    link = Link()

    events = link.advertise(ROUTER_A, pio(ULA, valid=86400, preferred=86400), pio(GUA))

    assert events == [
        PrefixIgnored(ULA, ROUTER_A, IgnoreReason.UNIQUE_LOCAL_NOT_ALLOWED),
        *acquired(GUA, ROUTER_A, 2800.0, 4600.0),
    ]


@pytest.mark.parametrize("allow_ula", [False, True], ids=["ula-refused", "ula-allowed"])
def test_ula_only_advertisement_does_not_replace_the_global_prefix(allow_ula: bool) -> None:
    """A router renegotiating its delegated prefix may announce only its ULA for a while."""
    link = Link(TrackerPolicy(allow_ula=allow_ula))
    link.advertise(ROUTER_A, pio(GUA))

    for _ in range(10):
        link.now += 4
        link.advertise(ROUTER_A, pio(ULA, valid=INFINITE_LIFETIME, preferred=INFINITE_LIFETIME))
        assert link.current_prefix == GUA

    link.now += 4
    link.advertise(ROUTER_A, pio(GUA))
    assert link.current_prefix == GUA


def test_ula_is_used_when_allowed_and_no_global_prefix_is_announced() -> None:
    link = Link(TrackerPolicy(allow_ula=True))

    assert link.advertise(ROUTER_A, pio(ULA)) == acquired(ULA, ROUTER_A, 2800.0, 4600.0)


def test_global_prefix_replaces_an_allowed_ula() -> None:
    link = Link(TrackerPolicy(allow_ula=True))
    link.advertise(ROUTER_A, pio(ULA, valid=INFINITE_LIFETIME, preferred=INFINITE_LIFETIME))

    events = link.advertise(ROUTER_B, pio(GUA))

    assert events[-1] == PrefixChanged(
        old=ULA, new=GUA, source=ROUTER_B, preferred_until=2800.0, valid_until=4600.0
    )


def test_advertisement_from_an_untrusted_router_is_ignored() -> None:
    link = Link(TrackerPolicy(trusted_routers=frozenset({ROUTER_A})))

    assert link.advertise(STRANGER, pio(GUA)) == [
        PrefixIgnored(GUA, STRANGER, IgnoreReason.UNTRUSTED_ROUTER)
    ]
    assert link.tracker.current is None
    assert link.advertise(ROUTER_A, pio(GUA_2)) == acquired(GUA_2, ROUTER_A, 2800.0, 4600.0)


def test_untrusted_router_cannot_withdraw_or_deprecate_the_prefix() -> None:
    link = Link(TrackerPolicy(trusted_routers=frozenset({ROUTER_A})))
    link.advertise(ROUTER_A, pio(GUA))

    link.advertise(STRANGER, pio(GUA, valid=0, preferred=0))
    link.advertise(STRANGER, pio(GUA, preferred=0))
    link.advertise(STRANGER, pio(GUA_2, valid=INFINITE_LIFETIME, preferred=INFINITE_LIFETIME))

    current = link.tracker.current
    assert current is not None
    assert (current.prefix, current.deprecated) == (GUA, False)


def test_ignored_prefix_is_reported_once_not_for_every_advertisement() -> None:
    link = Link(TrackerPolicy(trusted_routers=frozenset({ROUTER_A})))

    events = []
    for _ in range(10):
        events += link.advertise(STRANGER, pio(GUA))
        link.now += 4

    assert events == [PrefixIgnored(GUA, STRANGER, IgnoreReason.UNTRUSTED_ROUTER)]


def test_ignored_prefix_is_reported_again_when_its_reason_changes() -> None:
    link = Link()

    first = link.advertise(ROUTER_A, pio(GUA, valid=100, preferred=200))
    second = link.advertise(ROUTER_A, pio(GUA, autonomous=False))
    third = link.advertise(ROUTER_A, pio(GUA, autonomous=False))

    assert first == [PrefixIgnored(GUA, ROUTER_A, IgnoreReason.PREFERRED_EXCEEDS_VALID)]
    assert second == [PrefixIgnored(GUA, ROUTER_A, IgnoreReason.NOT_AUTONOMOUS)]
    assert third == []


def test_prefix_ignored_again_after_being_accepted_is_reported_again() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, autonomous=False))
    link.advertise(ROUTER_A, pio(GUA))

    events = link.advertise(ROUTER_A, pio(GUA, autonomous=False))

    assert events == [PrefixIgnored(GUA, ROUTER_A, IgnoreReason.NOT_AUTONOMOUS)]


@pytest.mark.parametrize(
    "prefix",
    [
        IPv6Network("fe80::/64"),
        IPv6Network("ff02::/64"),
        IPv6Network("ff00::/8"),
        IPv6Network("::1/128"),
        IPv6Network("::/128"),
        IPv6Network("::ffff:0:0/96"),
        IPv6Network("::/0"),
        IPv6Network("4000::/64"),
    ],
    ids=str,
)
def test_link_local_multicast_and_other_non_global_prefixes_are_never_accepted(
    prefix: IPv6Network,
) -> None:
    link = Link(TrackerPolicy(prefix_length=None, allow_ula=True))

    events = link.advertise(ROUTER_A, pio(prefix))

    assert events == [PrefixIgnored(prefix, ROUTER_A, IgnoreReason.NOT_GLOBAL_UNICAST)]
    assert link.tracker.current is None


@pytest.mark.parametrize("length", [48, 56, 63, 65, 80, 128])
def test_prefix_of_another_length_is_ignored_when_64_is_required(length: int) -> None:
    prefix = IPv6Network(f"2001:db8::/{length}")
    link = Link()

    events = link.advertise(ROUTER_A, pio(prefix))

    assert events == [PrefixIgnored(prefix, ROUTER_A, IgnoreReason.WRONG_PREFIX_LENGTH)]


def test_prefix_of_any_length_is_accepted_when_no_length_is_required() -> None:
    link = Link(TrackerPolicy(prefix_length=None))

    link.advertise(ROUTER_A, pio(IPv6Network("2001:db8::/56")))

    assert link.current_prefix == IPv6Network("2001:db8::/56")


def test_on_link_only_prefix_is_ignored_as_not_autonomous() -> None:
    link = Link()

    events = link.advertise(ROUTER_A, pio(GUA, autonomous=False))

    assert events == [PrefixIgnored(GUA, ROUTER_A, IgnoreReason.NOT_AUTONOMOUS)]


def test_preferred_lifetime_longer_than_valid_is_ignored_and_keeps_the_old_lifetimes() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA, valid=100, preferred=200))

    assert events == [PrefixIgnored(GUA, ROUTER_A, IgnoreReason.PREFERRED_EXCEEDS_VALID)]
    current = link.tracker.current
    assert current is not None
    assert (current.preferred_until, current.valid_until) == (2800.0, 4600.0)


def test_tracked_pairs_are_capped_and_known_ones_still_refresh() -> None:
    link = Link(TrackerPolicy(max_prefixes=2))

    events = link.advertise(ROUTER_A, pio(GUA), pio(GUA_2), pio(GUA_3))
    link.now += 4
    link.advertise(ROUTER_A, pio(GUA), pio(GUA_2), pio(GUA_3))

    assert PrefixIgnored(GUA_3, ROUTER_A, IgnoreReason.TOO_MANY_PREFIXES) in events
    assert [tracked.prefix for tracked in link.tracker.prefixes] == [GUA, GUA_2]
    assert [tracked.last_announced for tracked in link.tracker.prefixes] == [1004.0, 1004.0]


def test_remembered_ignored_prefixes_are_bounded_the_oldest_is_reported_again() -> None:
    link = Link(TrackerPolicy(trusted_routers=frozenset({ROUTER_A})))
    many = [
        IPv6Network((0x2001_0DB8_0000_0000 + i << 64, 64)) for i in range(IGNORED_REMEMBERED + 1)
    ]
    for prefix in many:
        link.advertise(STRANGER, pio(prefix))

    assert link.advertise(STRANGER, pio(many[-1])) == []
    assert link.advertise(STRANGER, pio(many[0])) == [
        PrefixIgnored(many[0], STRANGER, IgnoreReason.UNTRUSTED_ROUTER)
    ]


# --- sources other than Router Advertisements ----------------------------------------


def test_static_prefix_with_infinite_lifetimes_is_acquired_for_good() -> None:
    tracker = PrefixTracker(TrackerPolicy())

    events = tracker.observe_prefix(
        GUA, source="static", valid_lifetime=math.inf, preferred_lifetime=math.inf, now=START
    )

    assert events == acquired(GUA, "static", math.inf, math.inf)
    assert tracker.next_deadline() is None


def test_netlink_prefix_goes_through_the_same_filter() -> None:
    tracker = PrefixTracker(TrackerPolicy(trusted_routers=frozenset({ROUTER_A})))

    refused = tracker.observe_prefix(
        ULA, source="netlink:eth0", valid_lifetime=3600, preferred_lifetime=1800, now=START
    )
    accepted = tracker.observe_prefix(
        GUA,
        source="netlink:eth0",
        valid_lifetime=INFINITE_LIFETIME,
        preferred_lifetime=1800,
        now=START,
    )

    assert refused == [PrefixIgnored(ULA, "netlink:eth0", IgnoreReason.UNIQUE_LOCAL_NOT_ALLOWED)]
    assert accepted == acquired(GUA, "netlink:eth0", 2800.0, math.inf)


def test_negative_lifetime_is_a_caller_error() -> None:
    tracker = PrefixTracker(TrackerPolicy())

    with pytest.raises(ValueError, match="negative"):
        tracker.observe_prefix(
            GUA, source="static", valid_lifetime=-1, preferred_lifetime=0, now=START
        )


@pytest.mark.parametrize(
    "settings_",
    [
        {"prefix_length": 129},
        {"prefix_length": -1},
        {"trusted_routers": frozenset({IPv6Address("fe80::1%eth0")})},
        {"switch_margin": -1.0},
        {"lifetime_tolerance": 1.5},
        {"lifetime_resolution": -0.5},
        {"max_prefixes": 0},
    ],
)
def test_policy_refuses_settings_that_make_no_sense(settings_: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        TrackerPolicy(**settings_)  # type: ignore[arg-type]


# --- properties ----------------------------------------------------------------------

POOL = [GUA, GUA_2, GUA_3, ULA, IPv6Network("fe80::/64"), IPv6Network("2001:db8::/56")]
lifetime_values = st.sampled_from([0, 1, 30, 1800, 3600, INFINITE_LIFETIME])


@st.composite
def steps(draw: st.DrawFn) -> tuple[str, float, IPv6Address, tuple[PrefixInformation, ...]]:
    kind = draw(st.sampled_from(["advertise", "advertise", "advance"]))
    elapsed = draw(st.sampled_from([0.0, 1.0, 29.0, 30.0, 600.0, 1800.0, 4000.0]))
    router = draw(st.sampled_from([ROUTER_A, ROUTER_B, STRANGER]))
    prefixes = draw(
        st.lists(
            st.builds(
                pio,
                st.sampled_from(POOL),
                valid=lifetime_values,
                preferred=lifetime_values,
                autonomous=st.booleans(),
            ),
            max_size=3,
        )
    )
    return kind, elapsed, router, tuple(prefixes)


@settings(max_examples=300, deadline=None)
@given(st.lists(steps(), max_size=40), st.booleans())
def test_events_are_a_faithful_log_of_the_current_prefix(
    script: list[tuple[str, float, IPv6Address, tuple[PrefixInformation, ...]]],
    allow_ula: bool,
) -> None:
    """Whatever happens: the events replay to `current`, and the state stays consistent."""
    policy = TrackerPolicy(
        allow_ula=allow_ula, trusted_routers=frozenset({ROUTER_A, ROUTER_B}), max_prefixes=4
    )
    link = Link(policy)
    replayed: IPv6Network | None = None

    for kind, elapsed, router, prefixes in script:
        link.now += elapsed
        if kind == "advance":
            events = link.tracker.advance(link.now)
        else:
            events = link.advertise(router, *prefixes)
        for event in events:
            if isinstance(event, PrefixAcquired):
                assert replayed is None
                replayed = event.prefix
            elif isinstance(event, PrefixChanged):
                assert event.old == replayed
                assert event.new != event.old
                replayed = event.new
            elif isinstance(event, PrefixLost):
                assert event.prefix == replayed
                replayed = None

        live = link.tracker.prefixes
        assert link.current_prefix == replayed
        assert (replayed is None) == (live == ())
        assert replayed is None or replayed in {tracked.prefix for tracked in live}
        assert len(live) <= policy.max_prefixes
        assert all(tracked.valid_until > link.now for tracked in live)
        assert all(tracked.deprecated == (tracked.preferred_until <= link.now) for tracked in live)
        deadline = link.tracker.next_deadline()
        assert deadline is None or deadline > link.now


# --- explaining events for reports ----------------------------------------------------


def test_explain_reports_an_acquired_prefix() -> None:
    link = Link()
    events = link.advertise(ROUTER_A, pio(GUA))

    assert explain(events, link.tracker.current) == TrackerReport(
        TrackerReportReason.ACQUIRED, f"prefix {GUA} acquired from {ROUTER_A}"
    )


def test_explain_has_nothing_to_report_for_a_plain_refresh_or_an_ignored_prefix() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 4

    counted_down = pio(GUA, valid=3596, preferred=1796)  # the same deadlines
    assert explain(link.advertise(ROUTER_A, counted_down), link.tracker.current) is None
    assert explain(link.advertise(ROUTER_A, counted_down, pio(ULA)), link.tracker.current) is None
    assert explain([], None) is None


def test_explain_says_why_the_old_prefix_was_replaced() -> None:
    link = Link(TRUSTING)
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 4

    withdrawn = link.advertise(ROUTER_A, pio(GUA_2), pio(GUA, valid=0, preferred=0))
    report = explain(withdrawn, link.tracker.current)
    assert report == TrackerReport(
        TrackerReportReason.CHANGED,
        f"prefix changed from {GUA} to {GUA_2} (from {ROUTER_A}): {GUA} was withdrawn by "
        f"{ROUTER_A}",
    )

    stale = link.advertise(ROUTER_A, pio(GUA_3))
    report = explain(stale, link.tracker.current)
    assert report is not None
    assert report.reason is TrackerReportReason.CHANGED
    assert report.message.endswith(f"{GUA_2} is no longer announced, or {GUA_3} outlives it")


def test_explain_reports_withdrawal_and_expiry_of_the_last_prefix() -> None:
    link = Link(TRUSTING)
    link.advertise(ROUTER_A, pio(GUA))
    report = explain(link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0)), None)
    assert report is not None
    assert report.reason is TrackerReportReason.WITHDRAWN

    link.advertise(ROUTER_A, pio(GUA_2, valid=60, preferred=30))
    report = explain(link.wait(60), link.tracker.current)
    assert report is not None
    assert report.reason is TrackerReportReason.EXPIRED
    assert report.message.startswith(f"prefix {GUA_2} expired")


def test_explain_reports_deprecation_then_new_lifetimes_of_the_current_prefix() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, valid=600, preferred=60))

    deprecated = explain(link.wait(60), link.tracker.current)
    assert deprecated == TrackerReport(
        TrackerReportReason.DEPRECATED,
        f"prefix {GUA} from {ROUTER_A} is deprecated (its preferred lifetime ended)",
    )

    refreshed = explain(link.advertise(ROUTER_A, pio(GUA)), link.tracker.current)
    assert refreshed == TrackerReport(
        TrackerReportReason.ACQUIRED, f"prefix {GUA} from {ROUTER_A}, lifetimes updated"
    )


def test_explain_ignores_deprecation_of_a_prefix_that_is_not_current() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA), pio(GUA_2, valid=600, preferred=60))
    assert link.current_prefix == GUA

    events = link.wait(60)

    assert events == [PrefixDeprecated(GUA_2)]
    assert explain(events, link.tracker.current) is None


def test_explain_of_a_lost_prefix_without_a_known_cause() -> None:
    report = explain([PrefixLost(GUA)], None)
    assert report == TrackerReport(
        TrackerReportReason.LOST, f"prefix {GUA} is gone; no prefix left"
    )


def test_explain_judges_several_batches_as_one_change() -> None:
    link = Link(TRUSTING)
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 1
    events = link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0))
    events += link.advertise(ROUTER_A, pio(GUA_2))

    assert [type(event) for event in events if isinstance(event, PrefixLost | PrefixAcquired)] == [
        PrefixLost,
        PrefixAcquired,
    ]
    report = explain(events, link.tracker.current)
    assert report == TrackerReport(
        TrackerReportReason.CHANGED,
        f"prefix changed from {GUA} to {GUA_2} (from {ROUTER_A}): {GUA} was withdrawn by "
        f"{ROUTER_A}",
    )

    events = link.advertise(ROUTER_A, pio(GUA_3))
    events += link.advertise(ROUTER_A, pio(GUA))
    report = explain(events, link.tracker.current)
    assert report is not None
    assert report.message.startswith(f"prefix changed from {GUA_2} to {GUA} ")


def test_explain_of_a_prefix_lost_and_regained_in_one_batch_is_an_update() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))
    link.now += 1
    events = link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0))
    events += link.advertise(ROUTER_A, pio(GUA))

    assert explain(events, link.tracker.current) == TrackerReport(
        TrackerReportReason.ACQUIRED, f"prefix {GUA} from {ROUTER_A}, lifetimes updated"
    )


def test_explain_of_a_prefix_acquired_and_lost_in_one_batch_reports_nothing() -> None:
    link = Link(TRUSTING)
    events = link.advertise(ROUTER_A, pio(GUA))
    events += link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0))

    assert explain(events, link.tracker.current) is None


# --- the two-hour rule (RFC 4862 5.5.3 e) for unauthenticated RAs -------------------------


@pytest.mark.parametrize(
    ("advertised_valid", "received", "kept"),
    [
        # rule 1: more than two hours, or more than remains: taken as received
        (86400, 7201, 7201),
        (3600, 3601, 3601),
        # rule 2: at most two hours remain: the received lifetime is ignored
        (7200, 0, 7200),
        (7200, 7199, 7200),
        (3600, 0, 3600),
        (3600, 60, 3600),
        # rule 3: more than two hours remain and at most two are received: two hours
        (7201, 0, 7200),
        (7201, 7200, 7200),
        (86400, 0, 7200),
        (86400, 60, 7200),
    ],
)
def test_an_unauthenticated_ra_cannot_cut_the_valid_lifetime_below_two_hours(
    advertised_valid: int, received: int, kept: int
) -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, valid=advertised_valid, preferred=0))

    link.advertise(ROUTER_A, pio(GUA, valid=received, preferred=0))

    (tracked,) = link.tracker.prefixes
    assert tracked.valid_until == START + kept


def test_an_infinite_lifetime_cut_by_an_unauthenticated_ra_keeps_two_hours() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, valid=0xFFFFFFFF, preferred=0xFFFFFFFF))

    link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0))

    (tracked,) = link.tracker.prefixes
    assert (tracked.valid_until, tracked.deprecated) == (START + TWO_HOURS, True)


def test_an_unauthenticated_withdrawal_deprecates_at_once_and_changes_to_the_new_prefix() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, valid=86400, preferred=14400))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0), pio(GUA_2))

    assert PrefixWithdrawn(GUA, ROUTER_A) not in events
    assert PrefixDeprecated(GUA) in events
    assert events[-1] == PrefixChanged(
        old=GUA, new=GUA_2, source=ROUTER_A, preferred_until=2804.0, valid_until=4604.0
    )
    report = explain(events, link.tracker.current)
    assert report is not None
    assert report.message.endswith(f"{GUA} is deprecated")
    old = next(p for p in link.tracker.prefixes if p.prefix == GUA)
    assert (old.valid_until, old.deprecated) == (START + 4 + TWO_HOURS, True)
    # it leaves when its clamped valid lifetime ends, as an expiry, not before
    link.advertise(ROUTER_A, pio(GUA_2, valid=86400, preferred=14400))
    assert link.wait_until(START + 4 + TWO_HOURS - 1) == []
    assert link.wait(1) == [PrefixExpired(GUA)]


def test_a_trusted_router_withdraws_at_once_next_to_the_new_prefix() -> None:
    link = Link(TrackerPolicy(trusted_routers=frozenset({ROUTER_A})))
    link.advertise(ROUTER_A, pio(GUA, valid=86400, preferred=14400))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA, valid=0, preferred=0), pio(GUA_2))

    assert events[0] == PrefixWithdrawn(GUA, ROUTER_A)
    assert [p.prefix for p in link.tracker.prefixes] == [GUA_2]


def test_a_shortening_by_an_unauthenticated_router_is_reported_with_two_hours() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA, valid=86400, preferred=14400))
    link.now += 4

    events = link.advertise(ROUTER_A, pio(GUA, valid=600, preferred=300))

    assert events == [
        PrefixLifetimesUpdated(
            prefix=GUA, source=ROUTER_A, preferred_until=1304.0, valid_until=START + 4 + TWO_HOURS
        )
    ]


def test_a_prefix_from_a_label_source_is_taken_as_given() -> None:
    """The kernel has clamped its addresses already; a static prefix is the spec's word."""
    link = Link()
    link.tracker.observe_prefix(
        GUA, source="kernel", valid_lifetime=86400, preferred_lifetime=0, now=link.now
    )

    link.tracker.observe_prefix(
        GUA, source="kernel", valid_lifetime=60, preferred_lifetime=0, now=link.now
    )

    (tracked,) = link.tracker.prefixes
    assert tracked.valid_until == START + 60


def test_a_new_router_announcing_valid_lifetime_zero_adds_nothing() -> None:
    link = Link()
    link.advertise(ROUTER_A, pio(GUA))

    assert link.advertise(ROUTER_B, pio(GUA, valid=0, preferred=0)) == []
    (tracked,) = link.tracker.prefixes
    assert (tracked.valid_until, tracked.deprecated) == (4600.0, False)


def test_a_negative_valid_floor_is_refused() -> None:
    with pytest.raises(ValueError, match="valid floor"):
        TrackerPolicy(valid_floor=-1)
