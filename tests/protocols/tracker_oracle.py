"""A naive reference model of the prefix tracker's rules, for property tests to compare with.

Written from RFC 4861 and RFC 4862 section 5.5.3 and the choices documented in the
README ("How prefixes come and go"), docs/design.md and the docstring of
`dynamic_prefix.protocols.tracker`, not from the tracker's code: no caches, no indexes,
no shared helpers. It keeps one record per (router, prefix) and recomputes everything
else from those records on every question, so each rule below reads as one plain
statement. It handles Router Advertisements only, and none of the reporting (events,
reasons); what it answers is which prefixes are live, with which deadlines, and which
one is current.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from dynamic_prefix.protocols.ndp import PrefixInformation

INFINITY = 0xFFFFFFFF  # RFC 4861 4.6.2: all ones is an infinite lifetime
TWO_HOURS = 2 * 60 * 60  # RFC 4862 5.5.3 e
SWITCH_MARGIN = 30 * 60  # README: "outlasts the current one's by more than 30 minutes"
GLOBAL_UNICAST = IPv6Network("2000::/3")  # RFC 4291 2.4
UNIQUE_LOCAL = IPv6Network("fc00::/7")  # RFC 4193


@dataclass
class Pair:
    """What one router last said about one prefix."""

    preferred_until: float
    valid_until: float
    announced_at: float
    stale: bool = False  # the router's latest RA with prefixes left this one out


@dataclass(frozen=True)
class OraclePrefix:
    """A live prefix as the model sees it."""

    prefix: IPv6Network
    preferred_until: float
    valid_until: float
    last_announced: float
    deprecated: bool
    stale: bool


def seconds(lifetime: int) -> float:
    return math.inf if lifetime == INFINITY else float(lifetime)


class OracleTracker:
    """The rules, one (router, prefix) record at a time."""

    def __init__(
        self,
        *,
        trusted_routers: frozenset[IPv6Address],
        allow_ula: bool,
        max_prefixes: int,
        prefix_length: int = 64,
    ) -> None:
        self.trusted_routers = trusted_routers
        self.allow_ula = allow_ula
        self.max_prefixes = max_prefixes
        self.prefix_length = prefix_length
        self.pairs: dict[tuple[IPv6Address, IPv6Network], Pair] = {}
        self.current: IPv6Network | None = None
        self.now = -math.inf

    # --- what happens -----------------------------------------------------------------

    def advance(self, now: float) -> None:
        self.now = max(self.now, now)
        self.drop_expired()
        self.choose()

    def advertise(
        self, router: IPv6Address, options: tuple[PrefixInformation, ...], now: float
    ) -> None:
        self.now = max(self.now, now)
        self.drop_expired()
        for option in options:
            self.take(router, option)
        if options:
            # Every prefix this router announced before and left out of this RA is stale.
            mentioned = {option.prefix for option in options}
            for (source, prefix), pair in self.pairs.items():
                if source == router and prefix not in mentioned:
                    pair.stale = True
        self.choose()

    # --- the rules --------------------------------------------------------------------

    def usable(self, router: IPv6Address, option: PrefixInformation) -> bool:
        """The filter: who may speak, which prefixes count."""
        if self.trusted_routers and router not in self.trusted_routers:
            return False  # a trusted list is set and the router is not on it
        prefix = option.prefix
        is_global = prefix.subnet_of(GLOBAL_UNICAST)
        is_ula = prefix.subnet_of(UNIQUE_LOCAL)
        if not (is_global or (is_ula and self.allow_ula)):
            return False
        if prefix.prefixlen != self.prefix_length:
            return False
        if not option.autonomous:
            return False  # RFC 4862 5.5.3 a: SLAAC uses only prefixes with A set
        return option.preferred_lifetime <= option.valid_lifetime  # 5.5.3 c

    def take(self, router: IPv6Address, option: PrefixInformation) -> None:
        if not self.usable(router, option):
            return
        key = (router, option.prefix)
        known = self.pairs.get(key)
        valid = seconds(option.valid_lifetime)
        preferred = seconds(option.preferred_lifetime)
        if known is None:
            if valid == 0:
                return  # withdrawing what was never announced changes nothing
            if len(self.pairs) >= self.max_prefixes:
                return  # a flood of new prefixes is not kept
        elif not self.trusted_routers:
            # RFC 4862 5.5.3 e, unauthenticated: no cut below two hours.
            remaining = known.valid_until - self.now
            if valid > TWO_HOURS or valid > remaining:
                pass  # e.1: take the advertised lifetime
            elif remaining <= TWO_HOURS:
                valid = remaining  # e.2: keep what remains
            else:
                valid = TWO_HOURS  # e.3: two hours remain
            preferred = min(preferred, valid)
        if valid == 0:
            del self.pairs[key]  # an authenticated withdrawal
            return
        self.pairs[key] = Pair(
            preferred_until=self.now + preferred,
            valid_until=self.now + valid,
            announced_at=self.now,
        )

    def drop_expired(self) -> None:
        for key, pair in list(self.pairs.items()):
            if pair.valid_until <= self.now:
                del self.pairs[key]

    def live(self) -> dict[IPv6Network, OraclePrefix]:
        """Every prefix some router still announces, its deadlines the latest over them."""
        by_prefix: dict[IPv6Network, list[Pair]] = {}
        for (_, prefix), pair in self.pairs.items():
            by_prefix.setdefault(prefix, []).append(pair)
        result = {}
        for prefix, pairs in by_prefix.items():
            preferred_until = max(pair.preferred_until for pair in pairs)
            result[prefix] = OraclePrefix(
                prefix=prefix,
                preferred_until=preferred_until,
                valid_until=max(pair.valid_until for pair in pairs),
                last_announced=max(pair.announced_at for pair in pairs),
                deprecated=preferred_until <= self.now,
                stale=all(pair.stale for pair in pairs),
            )
        return result

    def beats(self, challenger: OraclePrefix, current: OraclePrefix) -> bool:
        """The README's rule: better by the first of these on which the two differ."""
        if challenger.deprecated != current.deprecated:
            return not challenger.deprecated
        challenger_global = challenger.prefix.subnet_of(GLOBAL_UNICAST)
        if challenger_global != current.prefix.subnet_of(GLOBAL_UNICAST):
            return challenger_global
        if challenger.stale != current.stale:
            return not challenger.stale
        if challenger.deprecated:
            return False  # both deprecated: lifetimes do not matter
        return challenger.preferred_until > current.preferred_until + SWITCH_MARGIN

    def best(self, live: dict[IPv6Network, OraclePrefix]) -> IPv6Network:
        """Steps 1 to 6 of the tracker's docstring, compared one after the other."""

        def better(a: OraclePrefix, b: OraclePrefix) -> bool:
            a_global = a.prefix.subnet_of(GLOBAL_UNICAST)
            b_global = b.prefix.subnet_of(GLOBAL_UNICAST)
            if a.deprecated != b.deprecated:
                return not a.deprecated
            if a_global != b_global:
                return a_global
            if a.stale != b.stale:
                return not a.stale
            if not a.deprecated and a.preferred_until != b.preferred_until:
                return a.preferred_until > b.preferred_until
            if a.last_announced != b.last_announced:
                return a.last_announced > b.last_announced
            return int(a.prefix.network_address) < int(b.prefix.network_address)

        winner: OraclePrefix | None = None
        for candidate in live.values():
            if winner is None or better(candidate, winner):
                winner = candidate
        assert winner is not None
        return winner.prefix

    def choose(self) -> None:
        live = self.live()
        if not live:
            self.current = None
        elif self.current not in live:
            self.current = self.best(live)
        else:
            current = live[self.current]
            if any(self.beats(other, current) for other in live.values()):
                self.current = self.best(live)
