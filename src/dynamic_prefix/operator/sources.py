"""Running the prefix sources a DynamicPrefix asks for, and merging what they say.

All enabled sources of a DynamicPrefix run side by side; the effective state is that
of the highest-priority source holding a prefix (static, DHCPv6-PD, Router
Advertisements, netlink), so a fallback takes over the moment the primary loses its
prefix and gives way when it comes back. Sources restart only when
``spec.acquisition`` changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from dynamic_prefix.core.source_state import SourceState
from dynamic_prefix.core.spec import (
    Acquisition,
    Dhcpv6PdSource,
    NetlinkSource,
    PrefixSourceSpec,
    RouterAdvertisementSource,
    StaticSource,
    source_name,
)
from dynamic_prefix.operator import logs
from dynamic_prefix.operator.link_sources import build_link_source
from dynamic_prefix.receivers.base import IdentityStore, PrefixSource, SourceError
from dynamic_prefix.receivers.static import StaticSource as StaticPrefixSource

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
        case StaticSource(prefix=prefix):
            return StaticPrefixSource(prefix)
        case RouterAdvertisementSource() | NetlinkSource() | Dhcpv6PdSource():
            return build_link_source(name, spec, acquisition, identity_store=identity_store)


@dataclass
class _Running:
    acquisition: Acquisition
    tasks: list[asyncio.Task[None]]
    states: dict[int, SourceState] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    sources: dict[int, PrefixSource] = field(default_factory=dict)


class SourceManager:
    """Starts, restarts and stops the sources of every DynamicPrefix."""

    def __init__(self, on_change: StateCallback, factory: SourceFactory) -> None:
        self._on_change = on_change
        self._factory = factory
        self._running: dict[str, _Running] = {}

    def ensure(self, name: str, acquisition: Acquisition) -> None:
        """Run exactly the sources of ``acquisition`` for ``name`` (no-op if already so)."""
        running = self._running.get(name)
        if running is not None and running.acquisition == acquisition:
            return
        self.stop(name)
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

    def stop(self, name: str) -> None:
        """Stop every source of ``name``; their cleanup (e.g. DHCPv6 Release) runs in the tasks."""
        running = self._running.pop(name, None)
        if running is None:
            return
        for task in running.tasks:
            task.cancel()
        logger.info("sources stopped", extra=logs.about(name))

    async def stop_all(self) -> None:
        """Stop every source and wait for their cleanup."""
        tasks = [task for running in self._running.values() for task in running.tasks]
        for name in list(self._running):
            self.stop(name)
        await asyncio.gather(*tasks, return_exceptions=True)

    def state(self, name: str) -> SourceState | None:
        """The effective state of ``name``: the best source holding a prefix, else the primary's.

        None until some source has reported.
        """
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
            self._on_change(name, state)

        try:
            source = self._factory(name, spec, running.acquisition)
            running.sources[rank] = source
            await source.run(report)
        except asyncio.CancelledError:
            raise
        except SourceError as error:
            running.errors[rank] = f"{source_name(spec)}: {error}"
            report(SourceState(source_name(spec), None, reason="SourceFailed", message=str(error)))
        except Exception as error:  # a bug in a source must not take the operator down
            logger.exception("source %s crashed", source_name(spec))
            running.errors[rank] = f"{source_name(spec)}: crashed: {error!r}"
            report(SourceState(source_name(spec), None, reason="SourceFailed", message=repr(error)))
