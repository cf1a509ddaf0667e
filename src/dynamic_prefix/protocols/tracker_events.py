"""What the prefix tracker says: the prefixes it reports and the events it returns.

Every event is named as a fact about one prefix; `TrackerEvent` is their union. Re-exported
by `dynamic_prefix.protocols.tracker`, whose docstring says when each is emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Network
from typing import TypeAlias

from dynamic_prefix.protocols.tracker_policy import IgnoreReason, Source

__all__ = [
    "PrefixAcquired",
    "PrefixChanged",
    "PrefixDeprecated",
    "PrefixExpired",
    "PrefixIgnored",
    "PrefixLifetimesUpdated",
    "PrefixLost",
    "PrefixObserved",
    "PrefixWithdrawn",
    "TrackedPrefix",
    "TrackerEvent",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedPrefix:
    """A live prefix: deadlines are absolute monotonic seconds, `math.inf` for never."""

    prefix: IPv6Network
    source: Source
    """The source of the most recent announcement."""
    preferred_until: float
    valid_until: float
    last_announced: float
    deprecated: bool
    stale: bool
    """Every source's latest Router Advertisement left this prefix out."""


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixObserved:
    """A prefix that was not live is now announced (and passed the filter)."""

    prefix: IPv6Network
    source: Source
    preferred_until: float
    valid_until: float


@dataclass(frozen=True, slots=True)
class PrefixIgnored:
    """An announced prefix did not pass the filter (reported once per reason)."""

    prefix: IPv6Network
    source: Source
    reason: IgnoreReason


@dataclass(frozen=True, slots=True)
class PrefixDeprecated:
    """A live prefix's preferred lifetime ran out, or it was announced with 0."""

    prefix: IPv6Network


@dataclass(frozen=True, slots=True)
class PrefixWithdrawn:
    """The last source announcing a prefix announced it with valid lifetime 0."""

    prefix: IPv6Network
    source: Source


@dataclass(frozen=True, slots=True)
class PrefixExpired:
    """A prefix's valid lifetime ran out because no source announced it again."""

    prefix: IPv6Network


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixAcquired:
    """There was no current prefix; now there is."""

    prefix: IPv6Network
    source: Source
    preferred_until: float
    valid_until: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixChanged:
    """The current prefix is now ``new`` instead of ``old``."""

    old: IPv6Network
    new: IPv6Network
    source: Source
    preferred_until: float
    valid_until: float


@dataclass(frozen=True, slots=True)
class PrefixLost:
    """The current prefix went away and no other live prefix is left."""

    prefix: IPv6Network


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixLifetimesUpdated:
    """The current prefix's deadlines moved by more than the policy's tolerance."""

    prefix: IPv6Network
    source: Source
    preferred_until: float
    valid_until: float


TrackerEvent: TypeAlias = (
    PrefixObserved
    | PrefixIgnored
    | PrefixDeprecated
    | PrefixWithdrawn
    | PrefixExpired
    | PrefixAcquired
    | PrefixChanged
    | PrefixLost
    | PrefixLifetimesUpdated
)
