"""Running the prefix sources a DynamicPrefix asks for, and merging what they say.

All enabled sources of a DynamicPrefix run side by side; the effective state is that
of the highest-priority source holding a prefix (static, DHCPv6-PD, Router
Advertisements, netlink), so a fallback takes over the moment the primary loses its
prefix and gives way when it comes back. Sources restart only when
``spec.acquisition`` changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Network
from typing import Protocol, runtime_checkable

from dynamic_prefix.model import api
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import (
    Acquisition,
    Dhcpv6PdSpec,
    NetlinkSpec,
    PrefixSourceSpec,
    RouterAdvertisementSpec,
    StaticSpec,
    source_name,
)
from dynamic_prefix.operator import logs
from dynamic_prefix.operator.link_sources import build_link_source
from dynamic_prefix.sources.base import IdentityStore, InterfaceMissing, PrefixSource, SourceError
from dynamic_prefix.sources.static import StaticSource

logger = logging.getLogger(__name__)

SourceFactory = Callable[[str, PrefixSourceSpec, Acquisition], PrefixSource]


class SourceBuilder(Protocol):
    """`build_source`, or a stand-in for it (tests)."""

    def __call__(
        self,
        name: str,
        spec: PrefixSourceSpec,
        acquisition: Acquisition,
        *,
        identity_store: IdentityStore | None = None,
    ) -> PrefixSource:
        """The receiver for one source of DynamicPrefix ``name``."""
        ...


StateCallback = Callable[[str, SourceState], None]


def build_source(
    name: str,
    spec: PrefixSourceSpec,
    acquisition: Acquisition,
    *,
    identity_store: IdentityStore | None = None,
) -> PrefixSource:
    """The receiver for one source of DynamicPrefix ``name``."""
    match spec:
        case StaticSpec(prefix=prefix):
            return StaticSource(prefix)
        case RouterAdvertisementSpec() | NetlinkSpec() | Dhcpv6PdSpec():
            return build_link_source(name, spec, acquisition, identity_store=identity_store)


@dataclass
class _Running:
    acquisition: Acquisition
    tasks: list[asyncio.Task[None]]
    states: dict[int, SourceState] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    sources: dict[int, PrefixSource] = field(default_factory=dict)


@dataclass
class Retiring:
    """Sources replaced by a spec change whose delegation must be given back.

    They keep running (and holding their lease) until `SourceManager.retire`, which the
    controller calls once status and pools no longer use the prefixes in ``released``.
    """

    tasks: list[asyncio.Task[None]]
    sources: list[PrefixSource]
    released: frozenset[IPv6Network]


@runtime_checkable
class Releasable(Protocol):
    """A source holding something it can give back when stopped (a DHCPv6 delegation)."""

    release_on_stop: bool


def _wants_release(source: PrefixSource) -> bool:
    return isinstance(source, Releasable)


def _ask_release(source: PrefixSource) -> None:
    if isinstance(source, Releasable):
        source.release_on_stop = True  # read by the source when it is cancelled


class SourceManager:
    """Starts, restarts and stops the sources of every DynamicPrefix."""

    def __init__(self, on_change: StateCallback, factory: SourceFactory) -> None:
        self._on_change = on_change
        self._factory = factory
        self._running: dict[str, _Running] = {}
        # prefixes given back to a DHCPv6 server, per DynamicPrefix: they leave status
        # and pools at once, and stay listed until a source brings them back
        self._released: dict[str, frozenset[IPv6Network]] = {}

    def ensure(self, name: str, acquisition: Acquisition) -> Retiring | None:
        """Run exactly the sources of ``acquisition`` for ``name`` (no-op if already so).

        Sources the new acquisition no longer has are stopped, except delegations no
        longer wanted (a DHCPv6-PD source removed, or its interface or length changed):
        those are returned, still holding their lease, for `retire` to release once the
        prefix is out of use. Their prefixes count as released from now on.
        """
        running = self._running.get(name)
        if running is not None and running.acquisition == acquisition:
            return None
        retiring = None if running is None else self._retiring(running, acquisition)
        if running is not None and retiring is not None:
            self._released[name] = self._released.get(name, frozenset()) | retiring.released
            for task in retiring.tasks:
                running.tasks.remove(task)  # not cancelled by stop: they release first
        self.stop(name, forget_released=False)
        running = _Running(acquisition, [])
        self._running[name] = running
        for rank, spec in enumerate(acquisition.sources):
            task = asyncio.create_task(
                self._run_one(name, running, rank, spec),
                name=f"source:{name}:{source_name(spec)}",
                context=logs.context_for(name),  # what a receiver logs names its DynamicPrefix
            )
            running.tasks.append(task)
        logger.info(
            "started sources %s",
            ", ".join(source_name(s) for s in acquisition.sources),
            extra=logs.about(name),
        )
        return retiring

    def stop(self, name: str, *, forget_released: bool = True) -> None:
        """Stop every source of ``name`` without giving anything back: a DHCPv6 lease
        stays with the server for whoever runs the client next."""
        if forget_released:
            self._released.pop(name, None)
        running = self._running.pop(name, None)
        if running is None:
            return
        for task in running.tasks:
            task.cancel()
        logger.info("sources stopped", extra=logs.about(name))

    async def release(self, name: str) -> None:
        """Stop every source of ``name`` and give back what it holds (the DynamicPrefix is
        being deleted and its pools are released): DHCPv6 delegations are released."""
        running = self._running.get(name)
        if running is None:
            self._released.pop(name, None)
            return
        retiring = Retiring(
            list(running.tasks),
            list(running.sources.values()),
            frozenset(s.prefix for s in running.states.values() if s.prefix is not None),
        )
        running.tasks.clear()
        self.stop(name)
        await self.retire(retiring)

    async def retire(self, retiring: Retiring) -> None:
        """Release the delegations of ``retiring`` and wait until that is done."""
        for source in retiring.sources:
            if _wants_release(source):
                _ask_release(source)
        for task in retiring.tasks:
            task.cancel()
        await asyncio.gather(*retiring.tasks, return_exceptions=True)
        if retiring.released:
            logger.info("released %s", ", ".join(str(p) for p in sorted(retiring.released)))

    async def stop_all(self) -> None:
        """Stop every source (nothing is released) and wait until they are closed."""
        tasks = [task for running in self._running.values() for task in running.tasks]
        for name in list(self._running):
            self.stop(name)
        await asyncio.gather(*tasks, return_exceptions=True)

    def _retiring(self, running: _Running, acquisition: Acquisition) -> Retiring | None:
        """The delegating sources of ``running`` that ``acquisition`` no longer wants."""
        tasks: list[asyncio.Task[None]] = []
        sources: list[PrefixSource] = []
        released: set[IPv6Network] = set()
        for rank, spec in enumerate(running.acquisition.sources):
            source = running.sources.get(rank)
            if spec in acquisition.sources or source is None or not _wants_release(source):
                continue
            tasks.append(running.tasks[rank])
            sources.append(source)
            state = running.states.get(rank)
            if state is not None and state.prefix is not None:
                released.add(state.prefix)
        if not tasks:
            return None
        return Retiring(tasks, sources, frozenset(released))

    def state(self, name: str) -> SourceState | None:
        """The effective state of ``name``: the best source holding a prefix, else the primary's.

        None until some source has reported.
        """
        state = self._best_state(name)
        released = self._released.get(name)
        if not released:
            return state
        if state is None:
            return SourceState(
                api.SOURCE_DHCPV6_PD,
                None,
                reason="LeaseReleased",
                message="the delegation was released: its source was removed or changed",
                released=released,
            )
        return dataclasses.replace(state, released=released - {state.prefix})

    def _best_state(self, name: str) -> SourceState | None:
        running = self._running.get(name)
        if running is None or not running.states:
            return None
        for rank in range(len(running.acquisition.sources)):
            state = running.states.get(rank)
            if state is not None and state.prefix is not None:
                return state
        return running.states.get(0) or next(iter(running.states.values()))

    def running(self) -> dict[str, list[PrefixSource]]:
        """The source objects running for each DynamicPrefix (for metrics)."""
        return {name: list(r.sources.values()) for name, r in self._running.items()}

    def errors(self, name: str) -> list[str]:
        """Why sources of ``name`` could not run, if any could not."""
        running = self._running.get(name)
        return [] if running is None else list(running.errors.values())

    async def _run_one(
        self, name: str, running: _Running, rank: int, spec: PrefixSourceSpec
    ) -> None:
        def report(state: SourceState) -> None:
            if self._running.get(name) is not running:
                return  # a report from a source that is being replaced
            running.states[rank] = state
            released = self._released.get(name)
            if released and state.prefix in released:
                self._released[name] = released - {state.prefix}  # delegated to us again
            self._on_change(name, state)

        try:
            while True:
                source = self._factory(name, spec, running.acquisition)
                running.sources[rank] = source
                try:
                    await source.run(report)
                    return
                except InterfaceMissing as missing:
                    report(
                        SourceState(
                            source_name(spec), None, reason="InterfaceMissing", message=str(missing)
                        )
                    )
                    logger.info("%s: waiting for interface %s", source_name(spec),
                                missing.interface)  # fmt: skip
                    await missing.wait_until_present()
                    logger.info("interface %s appeared; starting %s", missing.interface,
                                source_name(spec))  # fmt: skip
        except asyncio.CancelledError:
            raise
        except SourceError as error:
            running.errors[rank] = f"{source_name(spec)}: {error}"
            report(
                SourceState(
                    source_name(spec), None, reason="ReceiverCreationFailed", message=str(error)
                )
            )
        except Exception as error:  # a bug in a source must not take the operator down
            logger.exception("source %s crashed", source_name(spec))
            running.errors[rank] = f"{source_name(spec)}: crashed: {error!r}"
            report(
                SourceState(
                    source_name(spec), None, reason="ReceiverCreationFailed", message=repr(error)
                )
            )
