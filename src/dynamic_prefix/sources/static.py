"""The static source: a prefix written in the spec, reported once and held."""

from __future__ import annotations

import asyncio
from ipaddress import IPv6Network

from dynamic_prefix.model import api
from dynamic_prefix.sources.base import ReportCallback, SourceState


class StaticSource:
    """Reports its fixed prefix with infinite lifetimes, then waits to be cancelled."""

    def __init__(self, prefix: IPv6Network) -> None:
        self._state = SourceState(
            source=api.SOURCE_STATIC,
            prefix=prefix,
            origin="spec",
            reason="StaticPrefix",
            message=f"prefix {prefix} is set in spec.acquisition.static",
        )

    @property
    def name(self) -> str:
        """``static``."""
        return api.SOURCE_STATIC

    @property
    def state(self) -> SourceState:
        """Always the fixed prefix."""
        return self._state

    async def run(self, report: ReportCallback) -> None:
        """Report once; nothing ever changes."""
        report(self._state)
        await asyncio.Event().wait()
