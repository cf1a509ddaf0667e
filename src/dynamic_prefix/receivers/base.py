"""The one interface every prefix source offers the controller."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Network
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SourceState:
    """What a source currently believes.

    ``prefix`` is None while it has none (starting, or the prefix expired or was
    withdrawn; ``reason`` says which). Deadlines are wall-clock UTC; None is infinite.
    """

    source: str
    prefix: IPv6Network | None
    preferred_until: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    origin: str = ""  # who told us: a router's link-local address, a DHCPv6 server, "spec"
    reason: str = ""  # CamelCase, for conditions: Acquired, Expired, Withdrawn, Starting...
    message: str = ""  # for people: what happened, in a sentence


ReportCallback = Callable[[SourceState], None]


class SourceError(Exception):
    """A source cannot run as configured (no such interface, missing capability, port taken).

    Permanent until the configuration or the node changes: reported in a condition and
    an event, not retried in a loop.
    """


class PrefixSource(Protocol):
    """A running prefix source."""

    @property
    def name(self) -> str:
        """The source's name as in status.prefixSource."""
        ...

    @property
    def state(self) -> SourceState:
        """The latest state (also what was last reported)."""
        ...

    async def run(self, report: ReportCallback) -> None:
        """Run until cancelled, calling ``report`` at once on every change of state.

        Raises `SourceError` when it cannot run at all.
        """
        ...


@dataclass(frozen=True, slots=True)
class Dhcpv6Identity:
    """The DHCPv6 client's DUID and IAID, kept across restarts so the binding survives."""

    duid: bytes
    iaid: int


class IdentityStore(Protocol):
    """Where a DHCPv6 identity is kept (the controller keeps it in the DynamicPrefix status)."""

    async def load(self) -> Dhcpv6Identity | None:
        """The stored identity, or None the first time."""
        ...

    async def save(self, identity: Dhcpv6Identity) -> None:
        """Store the identity before it is first used on the wire."""
        ...
