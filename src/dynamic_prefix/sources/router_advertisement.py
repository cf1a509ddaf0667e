"""The Router Advertisement source: a `PrefixTracker` fed by a shared `RaListener`.

`RouterAdvertisementSource` is the `PrefixSource`: its own `PrefixTracker` and policy
(trusted routers, ULAs allowed) over the listener shared by every consumer on the
interface (`dynamic_prefix.sources.ra_listener`), one timer at the tracker's next
deadline, and a `SourceState` report whenever `explain` says the current prefix changed.
A consumer that joins a running listener is replayed the latest RA of each router heard,
with its arrival time, so it need not wait for the next periodic RA.

Without an interface it takes the one of the node's IPv6 default route
(`default_route_interface`).

Needs ``CAP_NET_RAW`` and the node's network namespace (``hostNetwork: true``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from dynamic_prefix.link import watch as link_watch
from dynamic_prefix.link.interfaces import PROC_IPV6_ROUTE, read_default_route_interface
from dynamic_prefix.model import api
from dynamic_prefix.protocols.tracker import PrefixTracker, TrackerPolicy
from dynamic_prefix.sources.base import ReportCallback, SourceError, SourceState
from dynamic_prefix.sources.ra_listener import (
    DropReason,
    RaListener,
    ReceivedAdvertisement,
    ReceiveDropReason,
    SolicitationPacing,
)
from dynamic_prefix.sources.tracking import TrackerReporter

# The listener's types are this source's API too (its pacing, listener and drop counts).
__all__ = [
    "DropReason",
    "RaListener",
    "ReceiveDropReason",
    "ReceivedAdvertisement",
    "RouterAdvertisementSource",
    "SolicitationPacing",
    "default_route_interface",
]


def default_route_interface(route_table: Path = PROC_IPV6_ROUTE) -> str:
    """The interface that holds this node's IPv6 default route; `SourceError` if none."""
    try:
        interface = read_default_route_interface(route_table)
    except OSError as exc:
        raise SourceError(
            f"no interface is set and the IPv6 routing table cannot be read ({route_table}: "
            f"{exc.strerror or exc}); set spec.acquisition.routerAdvertisement.interface"
        ) from exc
    if interface is None:
        hint = (
            " (this pod is not on the host network: the Deployment needs hostNetwork: true "
            "to see node interfaces and routes)"
            if link_watch.on_host_network() is False
            else ""
        )
        raise SourceError(
            "no interface is set and this node has no IPv6 default route to take it from; "
            "set spec.acquisition.routerAdvertisement.interface" + hint
        )
    return interface


class RouterAdvertisementSource:
    """The prefix of the Router Advertisements heard on an interface.

    ``interface`` None means the interface of the node's IPv6 default route, looked up when
    `run` starts. ``policy`` is this consumer's (trusted routers, ULAs, prefix length);
    ``pacing`` applies if this source is the first on its interface.
    """

    def __init__(
        self,
        interface: str | None,
        *,
        policy: TrackerPolicy | None = None,
        pacing: SolicitationPacing | None = None,
        wall_clock: Callable[[], dt.datetime] | None = None,
        route_table: Path = PROC_IPV6_ROUTE,
    ) -> None:
        self._interface = interface
        self._pacing = pacing
        self._route_table = route_table
        self._reporter = TrackerReporter(
            source=api.SOURCE_ROUTER_ADVERTISEMENT,
            interface=interface,
            tracker=PrefixTracker(policy or TrackerPolicy()),
            wall_clock=wall_clock,
        )
        self._listener: RaListener | None = None
        self.drop_counts: Counter[DropReason] = Counter()
        """RAs this consumer's policy refused (``untrusted-router``); the listener's own
        ``drop_counts`` hold everything dropped before any consumer saw it."""

    @property
    def name(self) -> str:
        """``router-advertisement``."""
        return api.SOURCE_ROUTER_ADVERTISEMENT

    @property
    def state(self) -> SourceState:
        """The latest state (also what was last reported)."""
        return self._reporter.state

    @property
    def tracker(self) -> PrefixTracker:
        """This consumer's tracker (for inspection; the source feeds it)."""
        return self._reporter.tracker

    @property
    def listener(self) -> RaListener | None:
        """The shared listener while running."""
        return self._listener

    async def run(self, report: ReportCallback) -> None:
        """Listen until cancelled; `SourceError` if there is no such interface (or no
        default route to find it by) or no CAP_NET_RAW."""
        loop = asyncio.get_running_loop()
        interface = self._interface or default_route_interface(self._route_table)
        reporter = self._reporter
        reporter.interface = interface
        async with RaListener.shared(interface, pacing=self._pacing) as listener:
            self._listener = listener
            reporter.start(loop, report)
            reporter.set_state(
                reason="Starting",
                message=f"listening for Router Advertisements on {interface}",
            )
            unsubscribe = listener.subscribe(self._on_advertisement)
            try:
                reporter.advance()  # replayed RAs may have run out since they arrived
                await listener.wait()
            finally:
                unsubscribe()
                reporter.stop()
                self._listener = None

    def _on_advertisement(self, received: ReceivedAdvertisement) -> None:
        tracker = self._reporter.tracker
        if not tracker.policy.trusts(received.router):
            self.drop_counts[ReceiveDropReason.UNTRUSTED_ROUTER] += 1
        self._reporter.apply(
            tracker.observe_advertisement(received.ra, router=received.router, now=received.at)
        )
