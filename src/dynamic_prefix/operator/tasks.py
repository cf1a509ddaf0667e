"""Stopping background tasks within a bounded time.

A task that swallows its cancellation (Python 3.11's ``asyncio.wait_for`` does, when
its awaitable completes in the same step; ruff bans it here for that reason) would hold
up SIGTERM for good: the pod is killed at the end of its grace period and its Lease is
never given up, so a standby waits out the whole lease. Stopping therefore waits a
bounded time, names in the log what did not stop, and goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any, Final

logger = logging.getLogger(__name__)

STOP_PATIENCE_SECONDS: Final = 5.0


async def cancel_all(
    tasks: Collection[asyncio.Task[Any]],
    what: str,
    *,
    patience: float = STOP_PATIENCE_SECONDS,
) -> list[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait up to ``patience`` seconds for them to end; returns
    (and logs as an error) those still running. Their errors were theirs to log."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    done, pending = await asyncio.wait(tasks, timeout=patience)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: asyncio does not warn about it again
    stuck = [task for task in tasks if task in pending]
    if stuck:
        logger.error("%s did not stop within %.0f s of being cancelled: %s; going on without them",
                     what, patience, ", ".join(sorted(t.get_name() for t in stuck)))  # fmt: skip
    return stuck
