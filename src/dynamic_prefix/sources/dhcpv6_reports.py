"""From the DHCPv6-PD client's events to the source's `SourceState` reports.

`Dhcpv6PdSource` moves bytes and time; `LeaseReporter` says what they mean: the
delegated prefix with wall-clock deadlines and a reason (``LeaseAcquired``,
``Renewing`` once T1 passes, ``LeaseRenewed``, ``Rebinding`` once T2 passes with how many
Renews went unanswered, ``LeaseLost``...), naming servers by address as well as DUID.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from dynamic_prefix.model import api
from dynamic_prefix.protocols.dhcpv6 import MessageType
from dynamic_prefix.protocols.dhcpv6_client import (
    BindingRejected,
    ClientEvent,
    ClientStopped,
    DelegationChanged,
    ExchangeTimedOut,
    LeaseAcquired,
    LeaseLost,
    LeaseReleased,
    LeaseRenewed,
    MessageDropped,
    NoPrefixAvailable,
    RebindStarted,
    RenewStarted,
)
from dynamic_prefix.sources.base import ReportCallback, SourceState

__all__ = ["LeaseReporter", "format_deadline"]

log = logging.getLogger(__name__)

_BOUND_REASONS: Final[dict[type, str]] = {
    LeaseAcquired: "LeaseAcquired",
    LeaseRenewed: "LeaseRenewed",
    DelegationChanged: "PrefixChanged",  # the condition's reason, as for the RA sources
}


def format_deadline(moment: dt.datetime | None) -> str:
    """A deadline for a message: RFC 3339 UTC to the second, or "forever"."""
    if moment is None:
        return "forever"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LeaseReporter:
    """The state of one DHCPv6-PD source, reported to ``report`` whenever it changes.

    ``last_sender`` is the address the latest datagram came from: a server's DUID is
    remembered with the address it was first bound from. ``on_stopped`` is called when
    the client has stopped (its Release answered or given up).
    """

    def __init__(self, interface: str, *, on_stopped: Callable[[], None]) -> None:
        self.interface = interface
        self.report: ReportCallback | None = None
        self.last_sender = ""
        self._on_stopped = on_stopped
        self._state = SourceState(
            source=api.SOURCE_DHCPV6_PD,
            prefix=None,
            reason="Starting",
            message=f"not started yet on {interface}",
        )
        self._server_addresses: dict[bytes, str] = {}
        self._renews_unanswered = 0

    @property
    def state(self) -> SourceState:
        """The latest state (also what was last reported)."""
        return self._state

    def apply(self, events: list[ClientEvent], now: float, wall_now: dt.datetime) -> None:
        """Report what ``events`` change; ``now`` is loop time, ``wall_now`` the same
        moment on the wall clock, to turn deadlines into dates."""

        def wall(deadline: float) -> dt.datetime | None:
            if math.isinf(deadline):
                return None
            return wall_now + dt.timedelta(seconds=deadline - now)

        for event in events:
            state = self._state_after(event, wall, now)
            if state is not None:
                self.set_state(state)

    def _state_after(
        self, event: ClientEvent, wall: Callable[[float], dt.datetime | None], now: float
    ) -> SourceState | None:
        """The state ``event`` leads to; None if it changes nothing to report."""
        match event:
            case LeaseAcquired() | LeaseRenewed() | DelegationChanged():
                self._server_addresses.setdefault(event.server_id, self.last_sender)
                prefix = event.new if isinstance(event, DelegationChanged) else event.prefix
                return SourceState(
                    source=api.SOURCE_DHCPV6_PD,
                    prefix=prefix,
                    preferred_until=wall(event.preferred_until),
                    valid_until=wall(event.valid_until),
                    origin=event.server_id.hex(),
                    reason=_BOUND_REASONS[type(event)],
                    message=self._bound_message(event),
                )
            case RenewStarted() | RebindStarted():
                return self._extending(event, wall)
            case ExchangeTimedOut(message_type=MessageType.RENEW, transmissions=sent):
                self._renews_unanswered = sent
            case LeaseLost() | LeaseReleased():
                return self._ended(event)
            case BindingRejected() | NoPrefixAvailable():
                return self._refused(event, now)
            case ExchangeTimedOut(message_type=kind, transmissions=sent):
                log.info("%s unanswered after %s transmission(s)", kind.name, sent)
            case MessageDropped(reason=why, detail=detail):
                log.debug("dropped a DHCPv6 message on %s: %s (%s)", self.interface, why, detail)
            case ClientStopped(release_acknowledged=acknowledged):
                if acknowledged is False:
                    log.warning("the server did not answer our Release")
                self._on_stopped()
        return None

    def _extending(
        self, event: RenewStarted | RebindStarted, wall: Callable[[float], dt.datetime | None]
    ) -> SourceState:
        """Renewing at T1 or rebinding at T2: the lease holds meanwhile."""
        state = self._kept_deadlines(event, wall)
        server = self._server_name(event.server_id)
        until = format_deadline(state.valid_until)
        if isinstance(event, RenewStarted):
            self._renews_unanswered = 0
            message = f"renewing {event.prefix} with {server} (T1 reached); valid until {until}"
            return replace(state, reason="Renewing", message=message)
        unanswered, self._renews_unanswered = self._renews_unanswered, 0
        why = (
            f"no reply to {unanswered} Renew(s) from {server} by T2"
            if unanswered
            else f"T2 reached before a Renew to {server}"
        )
        message = f"{why}; rebinding {event.prefix} with any server; valid until {until}"
        return replace(state, reason="Rebinding", message=message)

    def _ended(self, event: LeaseLost | LeaseReleased) -> SourceState:
        """The lease is gone: lost (soliciting again) or given back on stop."""
        if isinstance(event, LeaseLost):
            return SourceState(
                source=api.SOURCE_DHCPV6_PD,
                prefix=None,
                origin=self._state.origin,
                reason="LeaseLost",
                message=f"lease on {event.prefix} lost ({event.reason}); soliciting again",
            )
        return SourceState(
            source=api.SOURCE_DHCPV6_PD,
            prefix=None,
            origin=event.server_id.hex(),
            reason="LeaseReleased",
            message=f"released {event.prefix} on stop",
            released=frozenset({event.prefix}),
        )

    def _refused(self, event: BindingRejected | NoPrefixAvailable, now: float) -> SourceState:
        """The server said no: the state keeps its prefix and deadlines, says why."""
        if isinstance(event, BindingRejected):
            message = (
                f"the server no longer knows our binding for {event.prefix} "
                f"(NoBinding: {event.message or 'no text'}); requesting a new one"
            )
            return replace(self._state, reason="BindingRejected", message=message)
        message = (
            f"the server has no prefix for us (NoPrefixAvail: "
            f"{event.message or 'no text'}); retrying in {event.retry_at - now:.0f} s"
        )
        return replace(self._state, reason="NoPrefixAvailable", message=message)

    def _kept_deadlines(
        self,
        event: RenewStarted | RebindStarted,
        wall: Callable[[float], dt.datetime | None],
    ) -> SourceState:
        """The state with ``event``'s prefix and deadlines; the reported deadlines are
        kept when they are the same facts, so they do not drift by microseconds."""
        state = self._state
        if state.prefix == event.prefix and state.origin == event.server_id.hex():
            return state
        return replace(
            state,
            prefix=event.prefix,
            preferred_until=wall(event.preferred_until),
            valid_until=wall(event.valid_until),
            origin=event.server_id.hex(),
        )

    def _server_name(self, server_id: bytes) -> str:
        server = f"DUID {server_id.hex()}"
        address = self._server_addresses.get(server_id)
        return f"{address} ({server})" if address else server

    def _bound_message(self, event: LeaseAcquired | LeaseRenewed | DelegationChanged) -> str:
        server = self._server_name(event.server_id)
        match event:
            case LeaseAcquired(prefix=prefix):
                return f"{prefix} delegated by {server}"
            case LeaseRenewed(prefix=prefix):
                return f"{prefix} renewed by {server}"
            case DelegationChanged(old=old, new=new):
                return f"delegated prefix changed from {old} to {new} by {server}"

    def set_state(self, state: SourceState) -> None:
        """Make ``state`` the current one and report it, unless it is the current one."""
        if state == self._state:
            return
        self._state = state
        log.info("%s: %s (%s)", self.interface, state.reason, state.message)
        if self.report is not None:
            try:
                self.report(state)
            except Exception:
                log.exception("the report callback failed on %s", state)
