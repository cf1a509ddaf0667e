"""How a source words what the prefix tracker did: `explain` and `TrackerReport`.

`explain` turns one batch of events (one call's return value) into
a `TrackerReport`: whether what a source tells its consumer about the current prefix changed
(acquired, changed, deprecated, withdrawn, expired, lifetimes moved), the condition reason
and a sentence saying why. Every other event (a prefix observed, ignored or gone that was
not current) changes nothing a consumer of the current prefix sees.

Re-exported by `dynamic_prefix.protocols.tracker`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv6Network
from typing import Final, NamedTuple

from dynamic_prefix.protocols.tracker_events import (
    PrefixAcquired,
    PrefixChanged,
    PrefixDeprecated,
    PrefixExpired,
    PrefixLifetimesUpdated,
    PrefixLost,
    PrefixWithdrawn,
    TrackedPrefix,
    TrackerEvent,
)

__all__ = ["TrackerReport", "TrackerReportReason", "explain"]


class TrackerReportReason(enum.StrEnum):
    """Why a source reports a new state; values are CamelCase condition reasons."""

    ACQUIRED = "Acquired"
    """There is a current prefix (first acquired, or re-announced with new lifetimes)."""
    CHANGED = "Changed"
    DEPRECATED = "Deprecated"
    WITHDRAWN = "Withdrawn"
    EXPIRED = "Expired"
    LOST = "Lost"
    """The current prefix went away for another reason (not raised by this tracker)."""


@dataclass(frozen=True, slots=True)
class TrackerReport:
    """What changed about the current prefix, for a condition: reason and a sentence."""

    reason: TrackerReportReason
    message: str


class _Unknown(enum.Enum):
    """The current prefix before a batch, when the batch does not tell."""

    UNKNOWN = enum.auto()


_UNKNOWN: Final = _Unknown.UNKNOWN


def explain(events: Iterable[TrackerEvent], current: TrackedPrefix | None) -> TrackerReport | None:
    """Whether ``events`` change what a source says about the current prefix, and why.

    ``events`` is one tracker call's batch, or several calls' batches in order, and
    ``current`` the tracker's current prefix after them. The batch is judged as a whole:
    the current prefix before it (known from its first acquisition, change or loss)
    against ``current``, so a loss and a new acquisition in one batch are one change.
    None means there is nothing new to report.
    """
    batch = _read(events, current)
    before = batch.before
    after = None if current is None else current.prefix
    if not isinstance(before, _Unknown) and before != after:
        return _change_report(before, current, batch.gone)
    if current is None or not (batch.touched or before == after):
        return None
    return _update_report(current)


class _Batch(NamedTuple):
    """What one batch of events says about the current prefix."""

    before: IPv6Network | _Unknown | None
    """The current prefix before the batch; `_UNKNOWN` when no event tells."""
    gone: dict[IPv6Network, str]
    """Why each prefix that went away or was deprecated did, as the end of a sentence."""
    touched: bool
    """The current prefix's lifetimes or deprecation changed."""


def _read(events: Iterable[TrackerEvent], current: TrackedPrefix | None) -> _Batch:
    gone: dict[IPv6Network, str] = {}
    before: IPv6Network | _Unknown | None = _UNKNOWN
    touched = False
    for event in events:
        match event:
            case PrefixWithdrawn(prefix=prefix, source=source):
                gone[prefix] = f"was withdrawn by {source}"
            case PrefixExpired(prefix=prefix):
                gone[prefix] = "expired"
            case PrefixDeprecated(prefix=prefix):
                gone.setdefault(prefix, "is deprecated")
                touched = touched or (current is not None and prefix == current.prefix)
            case PrefixAcquired():
                before = None if before is _UNKNOWN else before
            case PrefixChanged(old=old):
                before = old if before is _UNKNOWN else before
            case PrefixLost(prefix=prefix):
                before = prefix if before is _UNKNOWN else before
            case PrefixLifetimesUpdated():
                touched = True
            case _:
                pass
    return _Batch(before, gone, touched)


def _change_report(
    before: IPv6Network | None, current: TrackedPrefix | None, gone: dict[IPv6Network, str]
) -> TrackerReport | None:
    """The current prefix went from ``before`` to ``current`` (None: there was or is none)."""
    if current is None:
        return None if before is None else _loss_report(before, gone)
    if before is None:
        return TrackerReport(
            TrackerReportReason.ACQUIRED,
            f"prefix {current.prefix} acquired from {current.source}",
        )
    why = gone.get(before, f"is no longer announced, or {current.prefix} outlives it")
    return TrackerReport(
        TrackerReportReason.CHANGED,
        f"prefix changed from {before} to {current.prefix} (from {current.source}): {before} {why}",
    )


def _loss_report(before: IPv6Network, gone: dict[IPv6Network, str]) -> TrackerReport:
    """The current prefix ``before`` went and no prefix is left."""
    why = gone.get(before, "")
    if why.startswith("was withdrawn"):
        return TrackerReport(
            TrackerReportReason.WITHDRAWN, f"prefix {before} {why}; no prefix left"
        )
    if why == "expired":
        return TrackerReport(
            TrackerReportReason.EXPIRED,
            f"prefix {before} expired: its valid lifetime ran out without a new "
            "announcement; no prefix left",
        )
    return TrackerReport(TrackerReportReason.LOST, f"prefix {before} is gone; no prefix left")


def _update_report(current: TrackedPrefix) -> TrackerReport:
    """The current prefix stayed, and was deprecated or had its lifetimes moved."""
    if current.deprecated:
        return TrackerReport(
            TrackerReportReason.DEPRECATED,
            f"prefix {current.prefix} from {current.source} is deprecated "
            "(its preferred lifetime ended)",
        )
    return TrackerReport(
        TrackerReportReason.ACQUIRED,
        f"prefix {current.prefix} from {current.source}, lifetimes updated",
    )
