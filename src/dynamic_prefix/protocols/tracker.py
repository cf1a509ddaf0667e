"""The prefix tracker: which prefixes are on the link, and which one is current.

A pure state machine. Sources feed it what they observe (`PrefixTracker.observe_advertisement`
for a parsed Router Advertisement, `PrefixTracker.observe_prefix` for netlink or a static
prefix) with the current monotonic time in seconds; it returns events named as facts,
and `PrefixTracker.next_deadline` says when `PrefixTracker.advance` must be called next.

Lifetimes (RFC 4862 section 5.5.3). Every (source, prefix) pair has absolute preferred and
valid deadlines, set from the lifetimes of its latest announcement; a prefix's deadlines
are the latest over its sources. A lifetime of 0xffffffff is infinite and its deadline is
`math.inf` (never None). Preferred lifetime 0 makes the prefix deprecated at once; valid
lifetime 0 from an authenticated source withdraws it from that source at once
(`PrefixWithdrawn` when no source still announces it).

The two-hour rule (RFC 4862 5.5.3 e). An unauthenticated Router Advertisement may not cut
a prefix's remaining valid lifetime below `TrackerPolicy.valid_floor` (two hours): a
received valid lifetime longer than two hours, or longer than what remains, is taken;
otherwise, if at most two hours remain, the remaining lifetime is kept; else two hours
remain. The preferred lifetime is taken as received, so a withdrawal deprecates the
prefix at once (a renumbering moves services to the new prefix, RFC 9096) and the old one
stays, deprecated, until its clamped valid lifetime ends (`PrefixExpired`). Without the
rule any host on the link could make the operator drop a prefix from every pool with one
forged RA. An RA counts as authenticated when `TrackerPolicy.trusted_routers` is set:
only listed routers are heard then, and their word is taken at once. Prefixes given to
`PrefixTracker.observe_prefix` with a label as source (static, the kernel's addresses,
which the kernel has already clamped) are taken as given. A prefix whose preferred
lifetime exceeds its valid lifetime is ignored (5.5.3 c).

Filter. Only prefixes SLAAC hosts use count: from a Router Advertisement, those with the
autonomous flag (A) set (5.5.3 a); on-link-only prefixes (L without A, the addresses then
come from DHCPv6) are ignored with reason ``not-autonomous``. The prefix must be global
unicast, or unique local when `TrackerPolicy.allow_ula` is set; link-local, multicast and
all other classes never count. Its length must be `TrackerPolicy.prefix_length` (unless
None), and an IPv6Address source must be in `TrackerPolicy.trusted_routers` (unless
empty). A rejected prefix yields `PrefixIgnored` once per (source, prefix), again only if
the reason changes (the latest `IGNORED_REMEMBERED` pairs are remembered). At most
`TrackerPolicy.max_prefixes` (source, prefix) pairs are kept; further new ones are
ignored (``too-many-prefixes``) so a flood cannot grow memory.

Stale prefixes. A prefix is stale when every source that announces it has since sent a
Router Advertisement with Prefix Information options but without this prefix: radvd
after its configuration was rewritten, or a router after a flash renumbering (RFC 8978).
A stale prefix stays live until its deadlines pass (hosts keep such addresses too), but
loses the choice below to one still announced. An RA without any Prefix Information
option says nothing about prefixes and makes none stale; prefixes given to
`PrefixTracker.observe_prefix` never go stale. Limitation: a router that spreads its
prefixes over several RAs (RFC 4861 section 6.2.3 allows it when they do not fit in one;
radvd and odhcpd never do) would make its prefixes stale in turn, and the current prefix
would flip between them.

Choosing the current prefix. With no current prefix (or when it has gone) the best live
prefix is chosen by, in order:

1. preferred before deprecated;
2. global unicast before unique local;
3. still announced before stale;
4. the latest preferred deadline (longest remaining preferred lifetime; all deprecated
   prefixes tie here);
5. the most recently announced;
6. the numerically lowest prefix.

Hysteresis: a current prefix stays current unless a challenger beats it at step 1, 2 or
3, or both are preferred and the challenger's preferred deadline is later than the
current one's by more than `TrackerPolicy.switch_margin` seconds (default 1800, the
largest MaxRtrAdvInterval RFC 4861 section 6.2.1 allows). Steps 5 and 6 never displace
it, nor do later deadlines that come only from announcing later: two routers announcing
different prefixes with equal lifetimes at alternating times do not make it flap.
Changing the prefix rewrites every load-balancer pool, so it happens only for a reason;
step 2 keeps a preferred global prefix current through a ULA-only RA even when ULAs are
allowed.

Reporting. `PrefixAcquired`, `PrefixChanged` and `PrefixLost` report the current prefix
itself. Refreshing RAs move the current prefix's deadlines a little every time; rather
than an event per RA, `PrefixLifetimesUpdated` is emitted when a deadline moved by more
than `TrackerPolicy.lifetime_resolution` (default 1 s: lifetimes are whole seconds on the
wire and in the kernel) and by more than `TrackerPolicy.lifetime_tolerance` of the
lifetime remaining (default 0: status states deadlines exactly, since a previous prefix
leaves the pools at the deadline recorded for it), relative to the deadline last
reported; deadlines both in the past count as equal. A router whose RAs count lifetimes
down causes no report; one that repeats the same lifetimes moves the deadlines, and is
reported, once per RA. Which
source announced last is not a reason to report.

Time must not go backwards; a ``now`` earlier than one already seen is taken as the
latest seen.

What a source reports. `explain` turns one batch of events into a `TrackerReport`, the
condition reason and a sentence for a consumer of the current prefix.

The parts: `dynamic_prefix.protocols.tracker_policy` (the policy, why a prefix is
ignored, and the rules the policy parameterises), `dynamic_prefix.protocols.tracker_events`
(the prefixes and events reported), `dynamic_prefix.protocols.tracker_report` (`explain`)
and this module, the state machine, which re-exports them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from ipaddress import IPv6Address, IPv6Network
from typing import Final

from dynamic_prefix.addressing import AddressClass, classify
from dynamic_prefix.protocols.ndp import INFINITE_LIFETIME, RouterAdvertisement
from dynamic_prefix.protocols.tracker_events import (
    PrefixAcquired,
    PrefixChanged,
    PrefixDeprecated,
    PrefixExpired,
    PrefixIgnored,
    PrefixLifetimesUpdated,
    PrefixLost,
    PrefixObserved,
    PrefixWithdrawn,
    TrackedPrefix,
    TrackerEvent,
)
from dynamic_prefix.protocols.tracker_policy import (
    TWO_HOURS,
    IgnoreReason,
    Rank,
    Source,
    TrackerPolicy,
    deadline_moved,
    displaces,
    two_hour_rule,
    unscoped,
)
from dynamic_prefix.protocols.tracker_report import TrackerReport, TrackerReportReason, explain

__all__ = [
    "IGNORED_REMEMBERED",
    "TWO_HOURS",
    "IgnoreReason",
    "PrefixAcquired",
    "PrefixChanged",
    "PrefixDeprecated",
    "PrefixExpired",
    "PrefixIgnored",
    "PrefixLifetimesUpdated",
    "PrefixLost",
    "PrefixObserved",
    "PrefixTracker",
    "PrefixWithdrawn",
    "Source",
    "TrackedPrefix",
    "TrackerEvent",
    "TrackerPolicy",
    "TrackerReport",
    "TrackerReportReason",
    "explain",
]


IGNORED_REMEMBERED: Final = 1024
"""How many ignored (source, prefix) pairs are remembered to avoid repeating events."""


# --- the state machine --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Announcement:
    """One source's latest announcement of a prefix."""

    preferred_until: float
    valid_until: float
    announced_at: float
    stale: bool = False


@dataclass(slots=True)
class _LivePrefix:
    """A prefix with at least one live announcement (the tracker's only mutable record).

    The aggregates over its announcements are kept up to date by `refresh`, which every
    change of ``announcements`` is followed by, so that choosing among many prefixes for
    every RA stays cheap; ``rank`` is the cached `_rank` (None: to be computed).
    """

    prefix: IPv6Network
    global_unicast: bool
    announcements: dict[Source, _Announcement] = field(default_factory=dict)
    deprecated: bool = False
    preferred_until: float = -math.inf
    valid_until: float = -math.inf
    earliest_valid: float = math.inf  # the first announcement to run out
    last_announced: float = -math.inf
    stale: bool = False
    rank: Rank | None = None

    def refresh(self) -> None:
        """Recompute the aggregates after ``announcements`` changed."""
        announcements = self.announcements.values()
        self.preferred_until = max(a.preferred_until for a in announcements)
        self.valid_until = max(a.valid_until for a in announcements)
        self.earliest_valid = min(a.valid_until for a in announcements)
        self.last_announced = max(a.announced_at for a in announcements)
        self.stale = all(a.stale for a in announcements)
        self.rank = None


class PrefixTracker:
    """Every trusted (source, prefix) with its deadlines, and the current prefix."""

    def __init__(self, policy: TrackerPolicy) -> None:
        self._policy = policy
        self._live: dict[IPv6Network, _LivePrefix] = {}
        self._pairs = 0  # (source, prefix) announcements kept, over all live prefixes
        self._fresh: dict[Source, set[IPv6Network]] = {}  # pairs not stale, by source
        self._next_deadline = math.inf  # as of the latest _settle
        self._current: IPv6Network | None = None
        # (preferred_until, valid_until) of the current prefix when last reported.
        self._reported: tuple[float, float] = (math.nan, math.nan)
        self._ignored: dict[tuple[Source, IPv6Network], IgnoreReason] = {}
        self._now = -math.inf
        # No announcement runs out before this (a lower bound: expiry checks are skipped
        # until then, and recompute it).
        self._earliest_valid = math.inf

    @property
    def policy(self) -> TrackerPolicy:
        """The policy the tracker was made with."""
        return self._policy

    @property
    def current(self) -> TrackedPrefix | None:
        """The current prefix as of the latest time seen, or None."""
        return None if self._current is None else self._view(self._current)

    @property
    def prefixes(self) -> tuple[TrackedPrefix, ...]:
        """Every live prefix, in numeric order."""
        return tuple(self._view(prefix) for prefix in sorted(self._live, key=_numeric_order))

    @property
    def ignored_remembered(self) -> int:
        """How many ignored (router, prefix) pairs are remembered (at most
        `IGNORED_REMEMBERED`)."""
        return len(self._ignored)

    def next_deadline(self) -> float | None:
        """When `advance` must next be called: a prefix expires or is deprecated then."""
        deadline = self._next_deadline
        return None if deadline == math.inf else deadline

    def advance(self, now: float) -> list[TrackerEvent]:
        """Process the deadlines that have passed by ``now``."""
        now = self._tick(now)
        events = self._expire(now)
        self._settle(events, now)
        return events

    def observe_advertisement(
        self, ra: RouterAdvertisement, *, router: IPv6Address, now: float
    ) -> list[TrackerEvent]:
        """Take in every Prefix Information option of a Router Advertisement from ``router``.

        The receiver has already checked hop limit, source and interface; the router's
        zone, if any, is dropped.
        """
        now = self._tick(now)
        events = self._expire(now)
        source = unscoped(router)
        prefix_options = ra.prefix_information
        for option in prefix_options:
            self._take(
                events,
                option.prefix,
                source,
                valid_lifetime=_seconds(option.valid_lifetime),
                preferred_lifetime=_seconds(option.preferred_lifetime),
                autonomous=option.autonomous,
                now=now,
            )
        if prefix_options:
            self._mark_stale(source, {option.prefix for option in prefix_options})
        self._settle(events, now)
        return events

    def observe_prefix(
        self,
        prefix: IPv6Network,
        *,
        source: Source,
        valid_lifetime: float,
        preferred_lifetime: float,
        now: float,
    ) -> list[TrackerEvent]:
        """Take in a prefix from a source that is not a Router Advertisement.

        Lifetimes are seconds; `INFINITE_LIFETIME` or `math.inf` means for ever. The same
        filter applies, except the autonomous flag that only RAs carry.
        """
        if valid_lifetime < 0 or preferred_lifetime < 0:
            raise ValueError(
                f"lifetimes must not be negative: valid {valid_lifetime}, "
                f"preferred {preferred_lifetime}"
            )
        now = self._tick(now)
        events = self._expire(now)
        if isinstance(source, IPv6Address):
            source = unscoped(source)
        self._take(
            events,
            prefix,
            source,
            valid_lifetime=_seconds(valid_lifetime),
            preferred_lifetime=_seconds(preferred_lifetime),
            autonomous=True,
            now=now,
        )
        self._settle(events, now)
        return events

    # --- steps ----------------------------------------------------------------------

    def _tick(self, now: float) -> float:
        self._now = max(self._now, now)
        return self._now

    def _expire(self, now: float) -> list[TrackerEvent]:
        events: list[TrackerEvent] = []
        if now < self._earliest_valid:
            return events
        earliest = math.inf
        for prefix, live in list(self._live.items()):
            if live.earliest_valid <= now:
                announcements = live.announcements
                for source, announcement in list(announcements.items()):
                    if announcement.valid_until <= now:
                        del announcements[source]
                        self._forget_pair(source, prefix)
                if not announcements:
                    del self._live[prefix]
                    events.append(PrefixExpired(prefix))
                    continue
                live.refresh()
            earliest = min(earliest, live.earliest_valid)
        self._earliest_valid = earliest
        return events

    def _take(
        self,
        events: list[TrackerEvent],
        prefix: IPv6Network,
        source: Source,
        *,
        valid_lifetime: float,
        preferred_lifetime: float,
        autonomous: bool,
        now: float,
    ) -> None:
        """Filter one announcement, apply the two-hour rule, then withdraw or record it."""
        live = self._live.get(prefix)
        is_new = live is None or source not in live.announcements
        reason = self._rejection(
            prefix,
            source,
            is_live=live is not None,
            autonomous=autonomous,
            valid_lifetime=valid_lifetime,
            preferred_lifetime=preferred_lifetime,
            adds_pair=is_new and valid_lifetime > 0,
        )
        key = (source, prefix)
        if reason is not None:
            self._remember_ignored(events, key, reason)
            return
        self._ignored.pop(key, None)
        if live is not None and not is_new and not self._policy.authenticates(source):
            remaining = live.announcements[source].valid_until - now
            valid_lifetime = two_hour_rule(valid_lifetime, remaining, self._policy.valid_floor)
            preferred_lifetime = min(preferred_lifetime, valid_lifetime)
        if valid_lifetime == 0:
            if live is not None and not is_new:
                self._withdraw(events, live, source)
            return
        announcement = _Announcement(
            preferred_until=now + preferred_lifetime,
            valid_until=now + valid_lifetime,
            announced_at=now,
        )
        self._record(events, live, prefix, source, announcement, is_new=is_new)

    def _withdraw(self, events: list[TrackerEvent], live: _LivePrefix, source: Source) -> None:
        """``source`` announced valid lifetime 0 for a prefix it announced before."""
        prefix = live.prefix
        del live.announcements[source]
        self._forget_pair(source, prefix)
        if live.announcements:
            live.refresh()
        else:
            del self._live[prefix]
            events.append(PrefixWithdrawn(prefix, source))

    def _record(
        self,
        events: list[TrackerEvent],
        live: _LivePrefix | None,
        prefix: IPv6Network,
        source: Source,
        announcement: _Announcement,
        *,
        is_new: bool,
    ) -> None:
        """Keep ``announcement`` as ``source``'s latest for ``prefix``, which may be new."""
        if live is None:
            live = self._live[prefix] = _LivePrefix(
                prefix=prefix, global_unicast=classify(prefix) is AddressClass.GLOBAL_UNICAST
            )
            events.append(
                PrefixObserved(
                    prefix=prefix,
                    source=source,
                    preferred_until=announcement.preferred_until,
                    valid_until=announcement.valid_until,
                )
            )
        if is_new:
            self._pairs += 1
        self._fresh.setdefault(source, set()).add(prefix)
        live.announcements[source] = announcement
        live.refresh()
        self._earliest_valid = min(self._earliest_valid, announcement.valid_until)

    def _forget_pair(self, source: Source, prefix: IPv6Network) -> None:
        self._pairs -= 1
        fresh = self._fresh.get(source)
        if fresh is not None:
            fresh.discard(prefix)
            if not fresh:
                del self._fresh[source]

    def _mark_stale(self, source: Source, announced: set[IPv6Network]) -> None:
        fresh = self._fresh.get(source)
        if fresh is None:
            return
        for prefix in fresh - announced:
            live = self._live[prefix]
            live.announcements[source] = replace(live.announcements[source], stale=True)
            live.refresh()
            fresh.discard(prefix)
        if not fresh:
            del self._fresh[source]

    def _rejection(
        self,
        prefix: IPv6Network,
        source: Source,
        *,
        is_live: bool,
        autonomous: bool,
        valid_lifetime: float,
        preferred_lifetime: float,
        adds_pair: bool,
    ) -> IgnoreReason | None:
        policy = self._policy
        if not policy.trusts(source):
            return IgnoreReason.UNTRUSTED_ROUTER
        if not is_live:  # a live prefix has passed this check already
            address_class = classify(prefix)
            if address_class is AddressClass.UNIQUE_LOCAL:
                if not policy.allow_ula:
                    return IgnoreReason.UNIQUE_LOCAL_NOT_ALLOWED
            elif address_class is not AddressClass.GLOBAL_UNICAST:
                return IgnoreReason.NOT_GLOBAL_UNICAST
        if policy.prefix_length is not None and prefix.prefixlen != policy.prefix_length:
            return IgnoreReason.WRONG_PREFIX_LENGTH
        if not autonomous:
            return IgnoreReason.NOT_AUTONOMOUS
        if preferred_lifetime > valid_lifetime:
            return IgnoreReason.PREFERRED_EXCEEDS_VALID
        if adds_pair and self._pairs >= policy.max_prefixes:
            return IgnoreReason.TOO_MANY_PREFIXES
        return None

    def _remember_ignored(
        self,
        events: list[TrackerEvent],
        key: tuple[Source, IPv6Network],
        reason: IgnoreReason,
    ) -> None:
        if self._ignored.get(key) is reason:
            return
        self._ignored.pop(key, None)
        self._ignored[key] = reason
        if len(self._ignored) > IGNORED_REMEMBERED:
            del self._ignored[next(iter(self._ignored))]
        source, prefix = key
        events.append(PrefixIgnored(prefix, source, reason))

    def _settle(self, events: list[TrackerEvent], now: float) -> None:
        """Mark deprecations, note the next deadline, choose the current prefix, report it."""
        lives = self._live.values()
        for live in lives:
            if live.preferred_until > now:
                if live.deprecated:
                    live.deprecated = False
                    live.rank = None
            elif not live.deprecated:
                live.deprecated = True
                live.rank = None
                events.append(PrefixDeprecated(live.prefix))
        deadline = min(
            [live.earliest_valid for live in lives]
            + [live.preferred_until for live in lives if not live.deprecated],
            default=math.inf,
        )
        self._next_deadline = deadline
        self._choose(events, now)

    def _choose(self, events: list[TrackerEvent], now: float) -> None:
        current = self._current
        if not self._live:
            if current is not None:
                events.append(PrefixLost(current))
                self._current = None
            return
        best_live = max(self._live.values(), key=_rank)
        best, best_rank = best_live.prefix, _rank(best_live)
        incumbent = None if current is None else self._live.get(current)
        if (
            current is None
            or incumbent is None
            or (
                best != current
                and displaces(best_rank, _rank(incumbent), self._policy.switch_margin)
            )
        ):
            chosen = self._view(best)
            if current is None:
                events.append(
                    PrefixAcquired(
                        prefix=best,
                        source=chosen.source,
                        preferred_until=chosen.preferred_until,
                        valid_until=chosen.valid_until,
                    )
                )
            else:
                events.append(
                    PrefixChanged(
                        old=current,
                        new=best,
                        source=chosen.source,
                        preferred_until=chosen.preferred_until,
                        valid_until=chosen.valid_until,
                    )
                )
            self._current = best
            self._reported = (chosen.preferred_until, chosen.valid_until)
            return
        preferred_until, valid_until = incumbent.preferred_until, incumbent.valid_until
        reported_preferred, reported_valid = self._reported
        tolerance = self._policy.lifetime_tolerance
        resolution = self._policy.lifetime_resolution
        if deadline_moved(
            reported_preferred, preferred_until, now, tolerance, resolution
        ) or deadline_moved(reported_valid, valid_until, now, tolerance, resolution):
            events.append(
                PrefixLifetimesUpdated(
                    prefix=current,
                    source=self._view(current).source,
                    preferred_until=preferred_until,
                    valid_until=valid_until,
                )
            )
            self._reported = (preferred_until, valid_until)

    def _view(self, prefix: IPv6Network) -> TrackedPrefix:
        live = self._live[prefix]
        announcements = live.announcements
        latest_source, latest = max(announcements.items(), key=lambda item: item[1].announced_at)
        return TrackedPrefix(
            prefix=prefix,
            source=latest_source,
            preferred_until=live.preferred_until,
            valid_until=live.valid_until,
            last_announced=latest.announced_at,
            deprecated=live.deprecated,
            stale=live.stale,
        )


# --- helpers ------------------------------------------------------------------------


def _seconds(lifetime: float) -> float:
    return math.inf if lifetime >= INFINITE_LIFETIME else float(lifetime)


def _numeric_order(prefix: IPv6Network) -> tuple[int, int]:
    return int(prefix.network_address), prefix.prefixlen


def _rank(live: _LivePrefix) -> Rank:
    """The prefix's rank as of the latest `PrefixTracker._settle` (cached on ``live``)."""
    rank = live.rank
    if rank is None:
        preferred = not live.deprecated
        prefix = live.prefix
        rank = live.rank = Rank(
            preferred=preferred,
            global_unicast=live.global_unicast,
            announced=not live.stale,
            preferred_until=live.preferred_until if preferred else -math.inf,
            last_announced=live.last_announced,
            negated_address=-int(prefix.network_address),
            negated_length=-prefix.prefixlen,
        )
    return rank
