"""The one interface every prefix source offers the controller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Network
from typing import Protocol

from dynamic_prefix.link import watch
from dynamic_prefix.model.source_state import SourceState

__all__ = [
    "Dhcpv6Identity",
    "IdentityStore",
    "PrefixSource",
    "ReportCallback",
    "SourceError",
    "SourceState",
]


ReportCallback = Callable[[SourceState], None]


class SourceError(Exception):
    """A source cannot run as configured (no such interface, missing capability, port taken).

    Permanent until the configuration or the node changes: reported in a condition and
    an event, not retried in a loop.
    """


class InterfaceMissing(SourceError):
    """The source's interface does not exist (yet): wait for it instead of failing."""

    def __init__(self, interface: str, message: str) -> None:
        super().__init__(message)
        self.interface = interface

    async def wait_until_present(self) -> None:
        """Return once the interface exists (at once if it does already)."""
        await watch.wait_for_interface(self.interface)


def missing(interface: str, what: str) -> InterfaceMissing:
    """The error for a source whose ``interface`` is absent; ``what`` names the source."""
    message = (
        f"interface {interface} does not exist on this node yet; {what} starts when it appears"
    )
    if watch.on_host_network() is False:
        message += (
            " (this pod is not on the host network, so it sees only its own interfaces: "
            "the Deployment needs hostNetwork: true)"
        )
    return InterfaceMissing(interface, message)


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
    """The DHCPv6 client's DUID and IAID, kept across restarts so the binding survives.

    ``prefix`` is the prefix last delegated under it, if known: the next client asks for
    it again (a hint in its Solicit), so a restart or a new leader keeps the delegation.
    """

    duid: bytes
    iaid: int
    prefix: IPv6Network | None = None


class IdentityStore(Protocol):
    """Where a DHCPv6 identity is kept (the controller keeps it in the DynamicPrefix status)."""

    async def load(self) -> Dhcpv6Identity | None:
        """The stored identity, or None the first time."""
        ...

    async def save(self, identity: Dhcpv6Identity) -> None:
        """Store the identity before it is first used on the wire."""
        ...
