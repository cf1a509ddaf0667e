"""The prefix tracker against a naive reference model of its rules (`tracker_oracle`).

Both are driven by the same generated Router Advertisement sequences: several routers,
listed as trusted or not (and no list at all, where the two-hour rule applies), the
autonomous flag on and off, global, unique local and other prefixes, lifetimes that cut,
extend and withdraw, and time advancing past preferred and valid deadlines. After every
step the live prefixes (deadlines, deprecated, stale) and the current prefix must agree.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network
from typing import TypeAlias

from hypothesis import given, settings
from hypothesis import strategies as st

from dynamic_prefix.protocols.ndp import INFINITE_LIFETIME, PrefixInformation, RouterAdvertisement
from dynamic_prefix.protocols.tracker import PrefixTracker, TrackerPolicy
from tests.protocols.tracker_oracle import OraclePrefix, OracleTracker

ROUTER_A = IPv6Address("fe80::a")
ROUTER_B = IPv6Address("fe80::b")
STRANGER = IPv6Address("fe80::bad")
ROUTERS = (ROUTER_A, ROUTER_B, STRANGER)

GUA_1 = IPv6Network("2001:db8:1::/64")
GUA_2 = IPv6Network("2001:db8:2::/64")
GUA_3 = IPv6Network("2001:db8:3::/64")
POOL = (
    # Usable ones more often, so that several compete for current.
    GUA_1,
    GUA_1,
    GUA_2,
    GUA_2,
    GUA_3,
    IPv6Network("fd12:3456:789a:1::/64"),
    IPv6Network("fd12:3456:789a:2::/64"),
    IPv6Network("fe80::/64"),
    IPv6Network("2001:db8::/56"),
)
LIFETIMES = (0, 1, 30, 1800, 3600, 7200, 7201, 10000, INFINITE_LIFETIME)
ELAPSED = (0.0, 1.0, 29.0, 30.0, 1800.0, 1801.0, 3600.0, 7200.0, 7201.0)

Step: TypeAlias = tuple[float, IPv6Address | None, tuple[PrefixInformation, ...]]
"""Seconds to wait, then an RA from a router with these options (None: just advance)."""


@st.composite
def prefix_options(draw: st.DrawFn) -> PrefixInformation:
    valid = draw(st.sampled_from(LIFETIMES))
    # Mostly preferred <= valid (usable), sometimes anything (ignored, 5.5.3 c).
    preferred = draw(
        st.one_of(
            st.sampled_from([lifetime for lifetime in LIFETIMES if lifetime <= valid]),
            st.sampled_from(LIFETIMES),
        )
    )
    return PrefixInformation(
        prefix=draw(st.sampled_from(POOL)),
        on_link=True,
        autonomous=draw(st.sampled_from([True, True, True, False])),
        valid_lifetime=valid,
        preferred_lifetime=preferred,
    )


steps = st.tuples(
    st.sampled_from(ELAPSED),
    st.one_of(st.none(), st.sampled_from(ROUTERS), st.sampled_from(ROUTERS)),
    st.lists(prefix_options(), max_size=4).map(tuple),
)


def tracker_state(tracker: PrefixTracker) -> dict[IPv6Network, OraclePrefix]:
    return {
        tracked.prefix: OraclePrefix(
            prefix=tracked.prefix,
            preferred_until=tracked.preferred_until,
            valid_until=tracked.valid_until,
            last_announced=tracked.last_announced,
            deprecated=tracked.deprecated,
            stale=tracked.stale,
        )
        for tracked in tracker.prefixes
    }


@settings(max_examples=400, deadline=None)
@given(
    script=st.lists(steps, max_size=30),
    trusted=st.sampled_from([frozenset(), frozenset({ROUTER_A, ROUTER_B})]),
    allow_ula=st.booleans(),
    max_prefixes=st.sampled_from([3, 64]),
)
def test_tracker_agrees_with_the_reference_model(
    script: list[Step],
    trusted: frozenset[IPv6Address],
    allow_ula: bool,
    max_prefixes: int,
) -> None:
    policy = TrackerPolicy(trusted_routers=trusted, allow_ula=allow_ula, max_prefixes=max_prefixes)
    tracker = PrefixTracker(policy)
    oracle = OracleTracker(trusted_routers=trusted, allow_ula=allow_ula, max_prefixes=max_prefixes)
    now = 1000.0
    for elapsed, router, options in script:
        now += elapsed
        if router is None:
            tracker.advance(now)
            oracle.advance(now)
        else:
            ra = RouterAdvertisement(cur_hop_limit=64, router_lifetime=1800, options=options)
            tracker.observe_advertisement(ra, router=router, now=now)
            oracle.advertise(router, options, now)

        assert tracker_state(tracker) == oracle.live()
        current = tracker.current
        assert (None if current is None else current.prefix) == oracle.current
