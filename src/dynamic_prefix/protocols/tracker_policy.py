"""What the prefix tracker is told, and the rules those settings parameterise.

`TrackerPolicy` configures the filter, the two-hour rule, the hysteresis and the reporting
thresholds that `dynamic_prefix.protocols.tracker` describes; `IgnoreReason` names each way
the filter rejects a prefix. The rules themselves are pure functions here
(`two_hour_rule`, `Rank` and `displaces`, `deadline_moved`) so they read apart from the
state machine that applies them. Re-exported by `dynamic_prefix.protocols.tracker`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Final, NamedTuple, TypeAlias

from dynamic_prefix.addressing import ADDRESS_BITS

__all__ = [
    "TWO_HOURS",
    "IgnoreReason",
    "Rank",
    "Source",
    "TrackerPolicy",
    "deadline_moved",
    "displaces",
    "two_hour_rule",
    "unscoped",
]

Source: TypeAlias = IPv6Address | str
"""Who announced a prefix: a router's link-local address, or a label such as "static"."""

TWO_HOURS: Final = 7200.0
"""RFC 4862 5.5.3 e: the least valid lifetime an unauthenticated RA may leave a prefix."""


class IgnoreReason(enum.StrEnum):
    """Why an announced prefix is not used; values are stable labels for logs and metrics."""

    UNTRUSTED_ROUTER = "untrusted-router"
    NOT_GLOBAL_UNICAST = "not-global-unicast"
    UNIQUE_LOCAL_NOT_ALLOWED = "unique-local-not-allowed"
    WRONG_PREFIX_LENGTH = "wrong-prefix-length"
    NOT_AUTONOMOUS = "not-autonomous"
    PREFERRED_EXCEEDS_VALID = "preferred-exceeds-valid"
    TOO_MANY_PREFIXES = "too-many-prefixes"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerPolicy:
    """Which prefixes count, and how eagerly the current one is replaced and reported."""

    prefix_length: int | None = 64
    allow_ula: bool = False
    trusted_routers: frozenset[IPv6Address] = frozenset()
    switch_margin: float = 1800.0
    lifetime_tolerance: float = 0.0
    lifetime_resolution: float = 1.0
    max_prefixes: int = 64
    valid_floor: float = TWO_HOURS

    def __post_init__(self) -> None:
        if self.prefix_length is not None and not 0 <= self.prefix_length <= ADDRESS_BITS:
            raise ValueError(f"prefix length {self.prefix_length} is not between 0 and 128")
        scoped = sorted(str(router) for router in self.trusted_routers if router.scope_id)
        if scoped:
            raise ValueError(f"trusted routers are compared without zone: {', '.join(scoped)}")
        if not self.switch_margin >= 0:
            raise ValueError(f"switch margin {self.switch_margin} is negative")
        if not 0 <= self.lifetime_tolerance <= 1:
            raise ValueError(f"lifetime tolerance {self.lifetime_tolerance} is not in [0, 1]")
        if not self.lifetime_resolution >= 0:
            raise ValueError(f"lifetime resolution {self.lifetime_resolution} is negative")
        if self.max_prefixes < 1:
            raise ValueError(f"max prefixes {self.max_prefixes} is less than 1")
        if not self.valid_floor >= 0:
            raise ValueError(f"valid floor {self.valid_floor} is negative")

    def trusts(self, source: Source) -> bool:
        """Whether announcements from ``source`` may be used (labels are always trusted)."""
        if isinstance(source, str) or not self.trusted_routers:
            return True
        return unscoped(source) in self.trusted_routers

    def authenticates(self, source: Source) -> bool:
        """Whether ``source``'s word on lifetimes is taken at once: a label, or a router
        on a non-empty trusted list (no two-hour rule)."""
        return isinstance(source, str) or bool(self.trusted_routers)


def unscoped(address: IPv6Address) -> IPv6Address:
    """``address`` without its zone: routers are compared and reported without one."""
    return IPv6Address(int(address)) if address.scope_id else address


# --- rules --------------------------------------------------------------------------


def two_hour_rule(received: float, remaining: float, floor: float) -> float:
    """The valid lifetime an unauthenticated announcement leaves (RFC 4862 5.5.3 e)."""
    if received > floor or received > remaining:
        return received
    if remaining <= floor:
        return max(remaining, 0.0)
    return floor


class Rank(NamedTuple):
    """Larger is better: the selection rule of `dynamic_prefix.protocols.tracker`, steps 1-6."""

    preferred: bool
    global_unicast: bool
    announced: bool
    preferred_until: float  # -inf when deprecated: deprecated prefixes tie here
    last_announced: float
    negated_address: int
    negated_length: int


def displaces(challenger: Rank, incumbent: Rank, margin: float) -> bool:
    """Whether ``challenger`` beats the current prefix by enough to replace it."""
    if challenger.preferred != incumbent.preferred:
        return challenger.preferred
    if challenger.global_unicast != incumbent.global_unicast:
        return challenger.global_unicast
    if challenger.announced != incumbent.announced:
        return challenger.announced
    if not incumbent.preferred:
        return False
    return challenger.preferred_until > incumbent.preferred_until + margin


def deadline_moved(
    reported: float, deadline: float, now: float, tolerance: float, resolution: float
) -> bool:
    """Whether ``deadline`` differs from the ``reported`` one enough to report again."""
    if reported == deadline or (reported <= now and deadline <= now):
        return False
    if math.isinf(reported) or math.isinf(deadline):
        return True
    return abs(deadline - reported) > max(tolerance * max(deadline - now, 0.0), resolution)
