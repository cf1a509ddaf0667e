"""The DynamicPrefix status as a pure function of what is known: the one home of its rules.

`next_status` takes the spec (or why it is invalid), the previous status, the latest
report of the prefix source, the pools' sync summary and the time, and returns the
whole new status plus the events worth telling people about. It decides:

- which prefix is current, and when an old one moves into the history;
- the history: newest first, a prefix listed once (A -> B -> A lists B only), trimmed to
  ``maxPrefixHistory`` entries and to entries whose valid lifetime has not ended (by
  their recorded deadline, or because the source saw them withdrawn or expire);
- conditions (Ready, PrefixAcquired, PoolsSynced, Degraded), whose lastTransitionTime
  moves only when their status flips.

When the source loses its prefix (expired, withdrawn) the last prefix stays in status
and pools: emptying pools would break every service at once, while the condition and a
Warning event say that the prefix is no longer confirmed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Network
from typing import Any

from dynamic_prefix.addressing import AddressError, parse_prefix
from dynamic_prefix.model import api
from dynamic_prefix.model.compute import compute
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import DynamicPrefixSpec, InvalidSpec

READY = "Ready"
PREFIX_ACQUIRED = "PrefixAcquired"
POOLS_SYNCED = "PoolsSynced"
SERVICES_SYNCED = "ServicesSynced"
BGP_ADVERTISEMENT_READY = "BGPAdvertisementReady"  # the Go operator's name
DEGRADED = "Degraded"

ROUTINE_REASONS = frozenset({"Starting", "Soliciting", "LeaseReleased"})
"""Source reasons for having no prefix that every restart or spec edit passes through:
told in a Normal event, since nobody needs to act on them."""


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes timestamps."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> dt.datetime | None:
    """A Kubernetes timestamp, or None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class PoolSummary:
    """How the pools that reference a DynamicPrefix stand after their last reconcile."""

    total: int
    in_sync: int
    failing: tuple[str, ...] = ()  # "kind/name: why", for the condition message


@dataclass(frozen=True, slots=True)
class BgpSummary:
    """How the BGP announcements of a DynamicPrefix stand after their last reconcile."""

    advertised: tuple[str, ...] = ()  # one line per object in place
    problems: tuple[str, ...] = ()  # what is not announced, and why (warned about)
    wanted: bool = True  # whether any subnet asks to be announced
    waiting: tuple[str, ...] = ()  # subnets no pool references yet (said, not warned)


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """Something worth a Kubernetes Event on the DynamicPrefix."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """The new status and the events that explain the change."""

    status: dict[str, Any]
    events: tuple[StatusEvent, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A prefix that was current before."""

    prefix: IPv6Network
    acquired_at: str | None
    deprecated_at: str | None
    valid_until: dt.datetime | None

    def to_status(self) -> dict[str, Any]:
        """The entry of status.history."""
        entry: dict[str, Any] = {"prefix": str(self.prefix), "state": "draining"}
        if self.acquired_at:
            entry["acquiredAt"] = self.acquired_at
        if self.deprecated_at:
            entry["deprecatedAt"] = self.deprecated_at
        if self.valid_until is not None:
            entry["validUntil"] = format_time(self.valid_until)
        return entry


def read_history(status: Mapping[str, Any]) -> list[HistoryEntry]:
    """status.history as values; unreadable entries are dropped."""
    entries = []
    for item in status.get("history") or []:
        try:
            prefix = parse_prefix(item["prefix"])
        except (AddressError, KeyError, TypeError):
            continue
        entries.append(
            HistoryEntry(
                prefix,
                item.get("acquiredAt"),
                item.get("deprecatedAt"),
                parse_time(item.get("validUntil")),
            )
        )
    return entries


def trim_history(
    entries: Sequence[HistoryEntry], *, current: IPv6Network | None, limit: int, now: dt.datetime
) -> list[HistoryEntry]:
    """Newest first, each prefix once, never the current one, none expired, at most ``limit``."""
    kept: list[HistoryEntry] = []
    seen: set[IPv6Network] = set() if current is None else {current}
    for entry in entries:
        if entry.prefix in seen:
            continue
        if entry.valid_until is not None and entry.valid_until <= now:
            continue
        seen.add(entry.prefix)
        kept.append(entry)
    return kept[:limit]


def current_prefix(status: Mapping[str, Any]) -> IPv6Network | None:
    """status.currentPrefix, if set and readable."""
    try:
        return parse_prefix(status["currentPrefix"])
    except (AddressError, KeyError, TypeError):
        return None


def prefixes_in_use(status: Mapping[str, Any]) -> list[IPv6Network]:
    """The current prefix and every history prefix, newest first: what pools should hold."""
    current = current_prefix(status)
    prefixes = [] if current is None else [current]
    prefixes += [entry.prefix for entry in read_history(status) if entry.prefix not in prefixes]
    return prefixes


def retired_prefixes(status: Mapping[str, Any]) -> list[IPv6Network]:
    """status.retiredPrefixes, readable ones only."""
    found = []
    for text in status.get("retiredPrefixes") or []:
        try:
            found.append(parse_prefix(text))
        except (AddressError, TypeError):
            continue
    return found


def _completed(
    previous: Mapping[str, Any], status: Mapping[str, Any], released: frozenset[IPv6Network]
) -> list[StatusEvent]:
    """A TransitionCompleted event (the Go operator's) for each prefix that stops being in
    use with this status (it leaves the pools and Services); a released one has its own."""
    left = set(prefixes_in_use(previous)) - set(prefixes_in_use(status)) - released
    return [
        StatusEvent("Normal", "TransitionCompleted",
                    f"{prefix} is no longer in use: it left the pools and Services")
        for prefix in sorted(left)
    ]  # fmt: skip


def _retired(previous: Mapping[str, Any], status: Mapping[str, Any]) -> list[str]:
    """Prefixes that left the ones in use with this status, then those retired before;
    none in use again, each once, at most `api.RETIRED_KEPT`."""
    in_use = prefixes_in_use(status)
    left = [p for p in prefixes_in_use(previous) if p not in in_use]
    kept: list[IPv6Network] = []
    for prefix in [*left, *retired_prefixes(previous)]:
        if prefix not in in_use and prefix not in kept:
            kept.append(prefix)
    return [str(p) for p in kept[: api.RETIRED_KEPT]]


def next_deadline(status: Mapping[str, Any]) -> dt.datetime | None:
    """When the status must be recomputed even if nothing is reported: a history expiry."""
    deadlines = [e.valid_until for e in read_history(status) if e.valid_until is not None]
    return min(deadlines) if deadlines else None


def next_status(
    *,
    spec: DynamicPrefixSpec | InvalidSpec,
    previous: Mapping[str, Any],
    source: SourceState | None,
    pools: PoolSummary | None,
    generation: int | None,
    now: dt.datetime,
    services: PoolSummary | None = None,
    bgp: BgpSummary | None = None,
    name: str = "",
) -> StatusUpdate:
    """The whole new status (see the module docstring for the rules). ``name`` is the
    DynamicPrefix's, for the names of its BGP advertisements."""
    status: dict[str, Any] = {key: value for key, value in previous.items() if key != "conditions"}
    events: list[StatusEvent] = []
    conditions = _Conditions(previous.get("conditions") or [], generation, now)

    if isinstance(spec, InvalidSpec):
        new_generation = previous.get("observedGeneration") != generation
        events += _invalid_spec(spec, conditions, new_generation=new_generation)
        status["observedGeneration"] = generation
        status["conditions"] = conditions.result()
        return StatusUpdate(_without_none(status), tuple(events))

    history = read_history(previous)
    source = _filtered(spec, source, conditions, events,
                       kept=current_prefix(previous) is not None)  # fmt: skip
    replaced = _apply_source(
        source,
        previous=previous,
        status=status,
        history=history,
        conditions=conditions,
        events=events,
        now=now,
    )

    current = current_prefix(status)
    if source is not None:
        history = _follow_source(history, source)
    history = trim_history(
        history, current=current, limit=spec.transition.max_prefix_history, now=now
    )
    status["history"] = [entry.to_status() for entry in history] or None
    status["retiredPrefixes"] = _retired(previous, status) or None
    if replaced is not None and source is not None and current is not None:
        events.insert(0, _changed_event(replaced, current, source, history))
        events.insert(1, StatusEvent(
            "Normal", "TransitionStarted",
            f"transition from {replaced} to {current} started (transition.mode "
            f"{spec.transition.mode.value})",
        ))  # fmt: skip
    released = source.released if source is not None else frozenset()
    events += _completed(previous, status, released)

    events += _fit(spec, current, status, conditions, name)
    announcing = any(sub.bgp is not None and sub.bgp.advertise for sub in spec.subnets)
    events += _set_bgp(conditions, bgp, announcing=announcing)
    _set_pools_and_ready(conditions, pools, current, services)
    status["observedGeneration"] = generation
    status["conditions"] = conditions.result()
    return StatusUpdate(_without_none(status), tuple(events))


def _filtered(
    spec: DynamicPrefixSpec,
    source: SourceState | None,
    conditions: _Conditions,
    events: list[StatusEvent],
    *,
    kept: bool,
) -> SourceState | None:
    """The source's report with a prefix the prefix filter refuses taken as no prefix
    (reason PrefixRejected): the last good prefix stays; a Warning says why, once (when
    a kept prefix stops being confirmed, the loss's own event says it)."""
    if source is None or source.prefix is None:
        return source
    why = spec.acquisition.refusal(source.prefix)
    if why is None:
        return source
    message = f"{source.source} offered a prefix the filter refuses: {why}"
    was = conditions.status_of(PREFIX_ACQUIRED)
    told_by_loss = kept and was == "True"
    new = conditions.reason_of(PREFIX_ACQUIRED) != "PrefixRejected" or (
        conditions.message_of(PREFIX_ACQUIRED) != message
    )
    if new and not told_by_loss:
        events.append(StatusEvent("Warning", "PrefixRejected", message))
    return dataclasses.replace(source, prefix=None, reason="PrefixRejected", message=message)


def _invalid_spec(
    spec: InvalidSpec, conditions: _Conditions, *, new_generation: bool
) -> list[StatusEvent]:
    """Degraded and not Ready, saying why; the prefix fields are left as they were."""
    message = "; ".join(str(problem) for problem in spec.problems)
    conditions.set(DEGRADED, True, "InvalidSpec", message)
    events = []
    if conditions.flipped(DEGRADED) or new_generation:
        events.append(StatusEvent("Warning", "InvalidSpec", message))
    conditions.set(READY, False, "InvalidSpec", "the spec is invalid: " + message)
    _keep_or_unknown(conditions, PREFIX_ACQUIRED, "no prefix is acquired while the spec is invalid")
    return events


def _fit(
    spec: DynamicPrefixSpec,
    current: IPv6Network | None,
    status: dict[str, Any],
    conditions: _Conditions,
    name: str,
) -> list[StatusEvent]:
    """The computed ranges and subnets of the current prefix, and Degraded if parts of the
    spec do not fit it."""
    fit_problems: list[str] = []
    if current is not None:
        computed = compute(spec, current)
        status["addressRanges"] = [r.to_status() for r in computed.address_ranges]
        announced = {s.name for s in spec.subnets if s.bgp is not None and s.bgp.advertise}
        status["subnets"] = [
            s.to_status()
            | ({"bgpAdvertisement": api.advertisement_name(name, s.name)}
               if s.name in announced else {})
            for s in computed.subnets
        ]  # fmt: skip
        fit_problems = [str(problem) for problem in computed.problems]
    if not fit_problems:
        conditions.set(DEGRADED, False, "AsExpected", "the spec is valid and fits the prefix")
        return []
    message = f"parts of the spec do not fit {current}: " + "; ".join(fit_problems)
    conditions.set(DEGRADED, True, "PrefixDoesNotFit", message)
    if conditions.flipped(DEGRADED):
        return [StatusEvent("Warning", "PrefixDoesNotFit", message)]
    return []


def _follow_source(history: list[HistoryEntry], source: SourceState) -> list[HistoryEntry]:
    """History entries as the source knows them now: gone and released prefixes out,
    deadlines of the prefixes it still sees exact (they may move either way)."""
    out = source.gone | source.released
    deadlines = dict(source.valid_until_of)
    return [
        entry
        if entry.prefix not in deadlines
        else dataclasses.replace(entry, valid_until=deadlines[entry.prefix])
        for entry in history
        if entry.prefix not in out
    ]


def _changed_event(
    old: IPv6Network, new: IPv6Network, source: SourceState, history: Sequence[HistoryEntry]
) -> StatusEvent:
    """The PrefixChanged event, saying what really happens to the previous prefix."""
    entry = next((e for e in history if e.prefix == old), None)
    if entry is not None and entry.valid_until is not None:
        fate = f"stays in the pools, deprecated, until {format_time(entry.valid_until)}"
    elif entry is not None:
        fate = "stays in the pools, deprecated, while it is in the history"
    elif old in source.gone:
        fate = "was withdrawn by a trusted router (or expired) and leaves the pools now"
    else:
        fate = "leaves the pools now (its valid lifetime ended, or the history is full)"
    origin = f", from {source.origin}" if source.origin else ""
    return StatusEvent(
        "Normal",
        "PrefixChanged",
        f"prefix changed from {old} to {new} ({source.source}{origin}); {old} {fate}",
    )


_PREFIX_FIELDS = ("currentPrefix", "prefixSource", "acquiredAt", "preferredUntil",
                  "validUntil", "leaseExpiresAt", "addressRanges", "subnets")  # fmt: skip


def _apply_source(
    source: SourceState | None,
    *,
    previous: Mapping[str, Any],
    status: dict[str, Any],
    history: list[HistoryEntry],
    conditions: _Conditions,
    events: list[StatusEvent],
    now: dt.datetime,
) -> IPv6Network | None:
    """Prefix fields, history head and PrefixAcquired from the source's latest report.

    Returns the previous prefix if the source replaced it (it is now the history's head).
    """
    if source is None:
        _keep_or_unknown(conditions, PREFIX_ACQUIRED, "waiting for the prefix source")
        return None
    old_prefix = current_prefix(previous)
    released = old_prefix is not None and old_prefix in source.released
    if old_prefix is not None and released:
        _apply_release(source, old_prefix, status, conditions, events)
        old_prefix = None  # given back: no longer ours to use, whatever replaces it
    if source.prefix is None:
        if not released:
            _apply_no_prefix(source, old_prefix, conditions, events)
        return None
    return _apply_prefix(
        source,
        source.prefix,
        old_prefix,
        previous=previous,
        status=status,
        history=history,
        conditions=conditions,
        events=events,
        now=now,
    )


def _apply_release(
    source: SourceState,
    released: IPv6Network,
    status: dict[str, Any],
    conditions: _Conditions,
    events: list[StatusEvent],
) -> None:
    """The current prefix was given back: out of status (and so of the pools) at once."""
    for key in _PREFIX_FIELDS:
        status.pop(key, None)
    if source.prefix is None:
        conditions.set(
            PREFIX_ACQUIRED, False, source.reason or "LeaseReleased",
            f"{released} was released: {source.message or 'the delegation ended'}",
        )  # fmt: skip
    events.append(
        StatusEvent("Normal", "PrefixReleased",
                    f"{released} was released to the DHCPv6 server and leaves the pools now")
    )  # fmt: skip


def _apply_prefix(
    source: SourceState,
    new_prefix: IPv6Network,
    old_prefix: IPv6Network | None,
    *,
    previous: Mapping[str, Any],
    status: dict[str, Any],
    history: list[HistoryEntry],
    conditions: _Conditions,
    events: list[StatusEvent],
    now: dt.datetime,
) -> IPv6Network | None:
    """The source has a prefix: it is current; a different previous one heads the history."""
    stamp = format_time(now)
    replaced: IPv6Network | None = None
    if new_prefix != old_prefix:
        if old_prefix is not None:
            entry = HistoryEntry(
                old_prefix,
                previous.get("acquiredAt"),
                stamp,
                parse_time(previous.get("validUntil")),
            )
            history.insert(0, entry)
            replaced = old_prefix
        else:
            origin = f", from {source.origin}" if source.origin else ""
            events.append(
                StatusEvent("Normal", "PrefixReceived",
                            f"prefix {new_prefix} acquired ({source.source}{origin})")
            )  # fmt: skip
        status["acquiredAt"] = stamp
    status["currentPrefix"] = str(new_prefix)
    status["prefixSource"] = source.source
    status["preferredUntil"] = _time_or_none(source.preferred_until)
    status["validUntil"] = _time_or_none(source.valid_until)
    status["leaseExpiresAt"] = (
        _time_or_none(source.valid_until) if source.source == api.SOURCE_DHCPV6_PD else None
    )
    deprecated = source.preferred_until is not None and source.preferred_until <= now
    conditions.set(
        PREFIX_ACQUIRED,
        True,
        "PrefixDeprecated" if deprecated else source.reason or "Acquired",
        source.message or f"prefix {new_prefix} from {source.source}",
    )
    if deprecated and conditions.reason_changed(PREFIX_ACQUIRED):
        events.append(
            StatusEvent("Warning", "PrefixDeprecated",
                        f"prefix {new_prefix} is deprecated (preferred lifetime ended)")
        )  # fmt: skip
    return replaced


def _apply_no_prefix(
    source: SourceState,
    kept: IPv6Network | None,
    conditions: _Conditions,
    events: list[StatusEvent],
) -> None:
    """The source has no prefix: PrefixAcquired False; the pools keep what they hold."""
    conditions.set(
        PREFIX_ACQUIRED, False, source.reason or "NoPrefix", source.message or "no prefix"
    )
    if conditions.flipped(PREFIX_ACQUIRED) and kept is not None:
        events.append(
            StatusEvent(
                "Normal" if source.reason in ROUTINE_REASONS else "Warning",
                source.reason or "PrefixLost",
                f"{source.message or 'the source has no prefix'}; pools keep {kept} "
                "until a prefix is learnt again",
            )
        )


def _set_pools_and_ready(
    conditions: _Conditions,
    pools: PoolSummary | None,
    current: IPv6Network | None,
    services: PoolSummary | None = None,
) -> None:
    """PoolsSynced and ServicesSynced from their summaries, then Ready from everything."""
    if pools is not None:
        _set_synced(conditions, POOLS_SYNCED, pools, "pools")
    elif current is None:
        _keep_or_unknown(conditions, POOLS_SYNCED, "pools are synced once a prefix is known")
    elif conditions.status_of(POOLS_SYNCED) in (None, "Unknown"):
        # a new DynamicPrefix or its first prefix: its pools are being written, none judged
        conditions.set_status(POOLS_SYNCED, "Unknown", "Pending", "the pools are being written")
    if services is not None:
        if services.total:
            _set_synced(conditions, SERVICES_SYNCED, services, "services")
        else:
            conditions.remove(SERVICES_SYNCED)  # no Service opts in (any more)

    acquired = conditions.status_of(PREFIX_ACQUIRED) == "True"
    # Ready says what is known: pools and announcements not judged yet (Unknown) are not
    # ready, so `kubectl wait --for=condition=Ready` returns once they are in place
    pools_state = conditions.status_of(POOLS_SYNCED)
    synced = pools_state == "True"
    services_synced = conditions.status_of(SERVICES_SYNCED) != "False"
    announced = conditions.status_of(BGP_ADVERTISEMENT_READY) in (None, "True")
    healthy = conditions.status_of(DEGRADED) == "False"
    if acquired and synced and services_synced and announced and healthy:
        conditions.set(READY, True, "Ready", f"prefix {current} in use")
    elif not acquired:
        conditions.set(READY, False, "NoPrefix", "no prefix is confirmed by the source")
    elif not healthy:
        conditions.set(READY, False, "Degraded", "the spec does not fit the prefix")
    elif not synced:
        conditions.set(READY, False, "PoolsNotSynced", "some pools are not in sync"
                       if pools_state == "False" else "the pools are being written")  # fmt: skip
    elif not services_synced:
        conditions.set(READY, False, "ServicesNotSynced", "some Services are not in sync")
    else:
        conditions.set(READY, False, "BGPNotReady", "some subnets are not announced over BGP"
                       if conditions.status_of(BGP_ADVERTISEMENT_READY) == "False"
                       else "the BGP announcements are being written")  # fmt: skip


def _set_bgp(
    conditions: _Conditions, bgp: BgpSummary | None, *, announcing: bool
) -> list[StatusEvent]:
    """BGPAdvertisementReady (the Go operator's reasons), absent when no subnet asks to be
    announced; a Warning when it turns False or its problems change."""
    if bgp is None:  # not judged yet (no prefix, pools not listed, just created)
        if announcing:
            _keep_or_unknown(conditions, BGP_ADVERTISEMENT_READY,
                             "the BGP announcements are being written")  # fmt: skip
        return []  # kept as it was
    if not bgp.wanted:
        conditions.remove(BGP_ADVERTISEMENT_READY)
        return []
    if bgp.problems or bgp.waiting:
        message = "; ".join((*bgp.problems, *bgp.waiting)[:5])
        if bgp.advertised:
            message += f" ({len(bgp.advertised)} advertisement(s) in place)"
        conditions.set(BGP_ADVERTISEMENT_READY, False, "AdvertisementsPending", message)
        changed = conditions.flipped(BGP_ADVERTISEMENT_READY) or conditions.message_changed(
            BGP_ADVERTISEMENT_READY
        )
        if bgp.problems and changed:
            return [StatusEvent("Warning", "AdvertisementsPending", message)]
        return []
    listed = "; ".join(bgp.advertised[:5]) + ("; ..." if len(bgp.advertised) > 5 else "")
    message = f"{len(bgp.advertised)} BGP advertisement(s) configured: {listed}"
    conditions.set(BGP_ADVERTISEMENT_READY, True, "AdvertisementsReady", message)
    if conditions.flipped(BGP_ADVERTISEMENT_READY):
        return [StatusEvent("Normal", "AdvertisementsReady", message)]
    return []


def _set_synced(conditions: _Conditions, kind: str, summary: PoolSummary, what: str) -> None:
    counted = f"{summary.in_sync}/{summary.total} {what} in sync"
    if summary.in_sync == summary.total:
        conditions.set(kind, True, "Synced", counted)
    else:
        detail = "; ".join(summary.failing[:5])
        conditions.set(kind, False, "SyncFailed", counted + (f": {detail}" if detail else ""))


def _time_or_none(moment: dt.datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def _without_none(status: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in status.items() if value is not None}


def _keep_or_unknown(conditions: _Conditions, kind: str, message: str) -> None:
    if conditions.status_of(kind) is None:
        conditions.set_status(kind, "Unknown", "Pending", message)


class _Conditions:
    """metav1.Condition list editing: lastTransitionTime moves only when status flips."""

    def __init__(
        self, previous: Sequence[Mapping[str, Any]], generation: int | None, now: dt.datetime
    ) -> None:
        self._previous = {c.get("type"): dict(c) for c in previous if isinstance(c, Mapping)}
        self._current = {kind: dict(c) for kind, c in self._previous.items()}
        self._generation = generation
        self._now = format_time(now)

    def set(self, kind: str, value: bool, reason: str, message: str) -> None:
        self.set_status(kind, "True" if value else "False", reason, message)

    def set_status(self, kind: str, value: str, reason: str, message: str) -> None:
        old = self._previous.get(kind)
        changed = old is None or old.get("status") != value
        condition = {
            "type": kind,
            "status": value,
            "observedGeneration": self._generation,
            "lastTransitionTime": self._now if changed else old.get("lastTransitionTime", self._now)
            if old is not None else self._now,
            "reason": reason,
            "message": message,
        }  # fmt: skip
        self._current[kind] = {k: v for k, v in condition.items() if v is not None}

    def reason_of(self, kind: str) -> str | None:
        condition = self._current.get(kind)
        return None if condition is None else str(condition.get("reason"))

    def message_of(self, kind: str) -> str | None:
        condition = self._current.get(kind)
        return None if condition is None else str(condition.get("message"))

    def remove(self, kind: str) -> None:
        self._current.pop(kind, None)

    def status_of(self, kind: str) -> str | None:
        condition = self._current.get(kind)
        return None if condition is None else str(condition.get("status"))

    def flipped(self, kind: str) -> bool:
        old, new = self._previous.get(kind), self._current.get(kind)
        return new is not None and (old is None or old.get("status") != new.get("status"))

    def message_changed(self, kind: str) -> bool:
        old, new = self._previous.get(kind), self._current.get(kind)
        return new is not None and (old is None or old.get("message") != new.get("message"))

    def reason_changed(self, kind: str) -> bool:
        old, new = self._previous.get(kind), self._current.get(kind)
        return new is not None and (old is None or old.get("reason") != new.get("reason"))

    def result(self) -> list[dict[str, Any]]:
        order = [READY, PREFIX_ACQUIRED, POOLS_SYNCED, SERVICES_SYNCED, BGP_ADVERTISEMENT_READY,
                 DEGRADED]  # fmt: skip
        return sorted(
            self._current.values(),
            key=lambda c: order.index(c["type"]) if c["type"] in order else len(order),
        )
