"""What a prefix source reported, and waiting for a report: shared by the receiver tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dynamic_prefix.model.source_state import SourceState

TIMEOUT = 10.0


class Reports:
    """The report callback: every state reported, and a way to wait for one."""

    def __init__(self) -> None:
        self.states: list[SourceState] = []
        self._arrived = asyncio.Event()

    def __call__(self, state: SourceState) -> None:
        self.states.append(state)
        self._arrived.set()

    def mark(self) -> int:
        """A position: `wait_for` with ``since`` looks only at reports after it."""
        return len(self.states)

    async def wait_for(
        self,
        predicate: Callable[[SourceState], bool],
        *,
        what: str,
        since: int = 0,
        timeout: float = TIMEOUT,
    ) -> SourceState:
        seen = since
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for state in self.states[seen:]:
                        if predicate(state):
                            return state
                    seen = len(self.states)
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            reported = "\n".join(f"  {state}" for state in self.states)
            pytest.fail(f"{what}: not reported within {timeout:g} s; reported:\n{reported}")
