"""Running a `PrefixTracker` in an event loop: the part the RA and netlink sources share.

The tracker is pure and takes the time as an argument; this shell feeds it loop time,
keeps one timer armed at its next deadline, and turns its events into `SourceState`
reports with wall-clock deadlines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable
from ipaddress import IPv6Network

from dynamic_prefix.protocols.tracker import (
    PrefixExpired,
    PrefixIgnored,
    PrefixTracker,
    PrefixWithdrawn,
    TrackerEvent,
    explain,
)
from dynamic_prefix.sources.base import ReportCallback, SourceState

log = logging.getLogger(__name__)

MAX_GONE = 16  # withdrawn or expired prefixes remembered (history holds at most 10)


class TrackerReporter:
    """Runs a `PrefixTracker` in an event loop: one timer, `SourceState` reports.

    The shared part of the sources built on the tracker. ``apply`` takes the events of
    each tracker call, re-arms the timer at `PrefixTracker.next_deadline` (whose expiry
    calls `PrefixTracker.advance`), and reports a new state when `explain` finds the
    current prefix changed. Deadlines are converted from the loop's monotonic clock to
    wall-clock UTC at the moment of the report.
    """

    def __init__(
        self,
        *,
        source: str,
        interface: str | None,
        tracker: PrefixTracker,
        wall_clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.source = source
        self.interface = interface
        self.tracker = tracker
        self._wall_clock = wall_clock or (lambda: dt.datetime.now(dt.UTC))
        where = f" on {interface}" if interface else ""
        self.state = SourceState(
            source=source, prefix=None, reason="Starting", message=f"starting{where}"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._report: ReportCallback | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._gone: dict[IPv6Network, None] = {}  # withdrawn or expired, newest last
        # prefixes that were current here, newest last: only they can be in the history,
        # so only their deadlines are reported (a flood of other prefixes reports nothing)
        self._were_current: dict[IPv6Network, None] = {}

    def start(self, loop: asyncio.AbstractEventLoop, report: ReportCallback) -> None:
        """Begin reporting to ``report`` in ``loop``."""
        self._loop = loop
        self._report = report

    def stop(self) -> None:
        """Cancel the timer and report nothing more."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None
        self._report = None

    def set_state(self, *, reason: str, message: str) -> None:
        """TrackerReport a state without a tracker event (starting, waiting for the interface)."""
        current = self.tracker.current
        self._publish(
            SourceState(
                source=self.source,
                prefix=None if current is None else current.prefix,
                preferred_until=None if current is None else self._wall(current.preferred_until),
                valid_until=None if current is None else self._wall(current.valid_until),
                origin=self.state.origin,
                reason=reason,
                message=message,
                gone=frozenset(self._gone),
                valid_until_of=self._others(),
            )
        )

    def advance(self) -> None:
        """Let the tracker process deadlines that have passed."""
        if self._loop is not None:
            self.apply(self.tracker.advance(self._loop.time()))

    def apply(self, events: Iterable[TrackerEvent]) -> None:
        """Log and report what ``events`` (of one tracker call) change; re-arm the timer."""
        events = list(events)
        for event in events:
            if isinstance(event, PrefixIgnored):
                log.info(
                    "%s: ignoring %s from %s: %s%s",
                    self.source,
                    event.prefix,
                    event.source,
                    event.reason,
                    self._where(),
                )
        self._remember_gone(events)
        current = self.tracker.current
        report = explain(events, current)
        others = self._others()
        gone = frozenset(self._gone)
        if report is None and (gone != self.state.gone or others != self.state.valid_until_of):
            # a prefix no longer current was withdrawn or expired, or its lifetime moved:
            # the controller keeps the history by it, so it must hear of it
            self._publish(dataclasses.replace(self.state, gone=gone, valid_until_of=others))
        if report is not None:
            where = self._where()
            log.info("%s: %s: %s%s", self.source, report.reason, report.message, where)
            self._publish(
                SourceState(
                    source=self.source,
                    prefix=None if current is None else current.prefix,
                    preferred_until=(
                        None if current is None else self._wall(current.preferred_until)
                    ),
                    valid_until=None if current is None else self._wall(current.valid_until),
                    origin=self.state.origin if current is None else str(current.source),
                    reason=str(report.reason),
                    message=report.message + where,
                    gone=gone,
                    valid_until_of=others,
                )
            )
        self._arm()

    def _remember_gone(self, events: list[TrackerEvent]) -> None:
        for event in events:
            if isinstance(event, PrefixWithdrawn | PrefixExpired):
                self._gone.pop(event.prefix, None)
                self._gone[event.prefix] = None
        for tracked in self.tracker.prefixes:
            self._gone.pop(tracked.prefix, None)  # announced again: not gone any more
        while len(self._gone) > MAX_GONE:
            del self._gone[next(iter(self._gone))]

    def _others(self) -> tuple[tuple[IPv6Network, dt.datetime | None], ...]:
        """The valid deadline, to the second, of every live prefix that was current here
        before: the ones the history may hold."""
        current = self.tracker.current
        if current is not None:
            self._were_current.pop(current.prefix, None)
            self._were_current[current.prefix] = None
            while len(self._were_current) > MAX_GONE:
                del self._were_current[next(iter(self._were_current))]
        return tuple(
            (tracked.prefix, self._wall(tracked.valid_until, whole_seconds=True))
            for tracked in self.tracker.prefixes
            if tracked.prefix in self._were_current
            and (current is None or tracked.prefix != current.prefix)
        )

    def _where(self) -> str:
        return f" (on {self.interface})" if self.interface else ""

    def _publish(self, state: SourceState) -> None:
        if state == self.state:
            return
        self.state = state
        if self._report is not None:
            self._report(state)

    def _wall(self, deadline: float, *, whole_seconds: bool = False) -> dt.datetime | None:
        if deadline == math.inf or self._loop is None:
            return None
        moment = self._wall_clock() + dt.timedelta(seconds=deadline - self._loop.time())
        # whole seconds, as status states them: the same deadline read twice compares equal
        return moment.replace(microsecond=0) if whole_seconds else moment

    def _arm(self) -> None:
        loop = self._loop
        deadline = self.tracker.next_deadline()
        if loop is None or deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        loop, deadline = self._loop, self._timer_at
        self._timer = None
        self._timer_at = None
        if loop is None or deadline is None:
            return
        # The loop may run a timer a hair early; the deadline has come all the same.
        self.apply(self.tracker.advance(max(loop.time(), deadline)))
