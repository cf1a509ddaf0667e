"""One list+watch loop for every kind the operator follows (an informer, in client-go's
words): list, hand each object over, watch from the list's resourceVersion, list again
when the watch is too old (410 Gone), back off on errors.

On a relist, objects that vanished while the watch was down are handed over as
``DELETED``: the handler's view never keeps an object the cluster no longer has. With
``own_writes``, the client drops the echo of our own writes on the raw line, before any
decoding (`KubeClient.watch`); they are only counted here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, Protocol

from dynamic_prefix.kube.client import Resource, WatchEvent
from dynamic_prefix.kube.errors import ApiError, Gone

logger = logging.getLogger(__name__)

Handler = Callable[[str | None, dict[str, Any]], Awaitable[None] | None]
"""Called with (event type, object) for each object; type None for one seen in a list.
A handler that returns an awaitable is awaited before the next event."""

INITIAL_BACKOFF: Final = 0.1
MAX_BACKOFF: Final = 1.0
"""Retries of a lost watch stay at most a second apart: an outage of the API server ends
at a moment nobody announces, and the first change after it must not wait for a backoff
grown during it (a refused connection to a local server costs next to nothing)."""
STILL_FAILING_EVERY: Final = 60.0
"""While a watch keeps failing, a warning says so this often (one per outage otherwise)."""


class ListWatch(Protocol):
    """What an informer needs of a client (`KubeClient` has it)."""

    async def list_objects(self, resource: Resource) -> Any:
        """All objects of the kind: a List object."""
        ...

    def watch(
        self,
        resource: Resource,
        *,
        resource_version: str | None = ...,
        own_writes: bool = ...,
        keep_line: Callable[[bytes], bool] | None = ...,
    ) -> AsyncIterator[WatchEvent]:
        """The events after ``resource_version`` until the server ends the request, or
        the client ends it after a silence (`kube.client.WATCH_SILENCE_SECONDS`)."""
        ...


def object_key(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name", "")))


class Informer:
    """Follows one kind until cancelled; see the module docstring."""

    def __init__(
        self,
        client: ListWatch,
        resource: Resource,
        handler: Handler,
        *,
        own_writes: bool = False,
        listed: asyncio.Event | None = None,
        keep_line: Callable[[bytes], bool] | None = None,
        on_listed: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.keep_line = keep_line
        """Watch lines it refuses are dropped undecoded (see `KubeClient.watch`)."""
        self.resource = resource
        self.handler = handler
        self.own_writes = own_writes
        self.listed = listed or asyncio.Event()
        """Set once the first list was handed over."""
        self.on_listed = on_listed
        """Called once, when this informer's first list was handed over (even when
        ``listed`` was set already by an earlier informer of the kind)."""
        self.events = 0
        self.echoes = 0
        """Watch events that were our own writes coming back, dropped by the client."""
        self._known: dict[tuple[str, str], dict[str, Any]] = {}

    async def run(self) -> None:
        """List and watch until cancelled; errors are logged and retried with backoff."""
        backoff = INITIAL_BACKOFF
        version: str | None = None
        failing_since: float | None = None
        warned_at = 0.0
        while True:
            try:
                if version is None:
                    version = await self._list()
                    self.listed.set()
                    if self.on_listed is not None:
                        self.on_listed()
                        self.on_listed = None  # once: a relist after 410 Gone says nothing new
                    self._resumed(failing_since)
                    failing_since = None
                async for event in self.client.watch(
                    self.resource,
                    resource_version=version,
                    own_writes=self.own_writes,
                    keep_line=self.keep_line,
                ):
                    version = event.object.get("metadata", {}).get("resourceVersion", version)
                    if event.type == "BOOKMARK":
                        continue
                    if event.type == "OWN_WRITE":
                        self.echoes += 1
                        continue
                    await self._hand_over(event.type, event.object)
                    backoff = INITIAL_BACKOFF
                    self._resumed(failing_since)
                    failing_since = None
            except Gone:
                version = None  # too old: list again
            except ApiError as error:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = warned_at = now
                    logger.warning("watching %s: %s; trying again every %.1f s at most",
                                   self.resource, error, MAX_BACKOFF)  # fmt: skip
                elif now - warned_at >= STILL_FAILING_EVERY:
                    # a lasting refusal (a ClusterRole not updated) must not go quiet
                    warned_at = now
                    logger.warning("watching %s: still failing after %.0f s: %s",
                                   self.resource, now - failing_since, error)  # fmt: skip
                else:
                    logger.debug("watching %s: %s", self.resource, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _resumed(self, failing_since: float | None) -> None:
        """Say once that the watch is back after failing (None: it was not failing)."""
        if failing_since is not None:
            logger.info("watching %s again after %.1f s", self.resource,
                        time.monotonic() - failing_since)  # fmt: skip

    async def _list(self) -> str:
        listing = await self.client.list_objects(self.resource)
        kind = self.resource.kind
        seen: set[tuple[str, str]] = set()
        for obj in listing.get("items") or []:
            obj.setdefault("apiVersion", self.resource.api_version)
            if kind:
                obj.setdefault("kind", kind)
            seen.add(object_key(obj))
            await self._hand_over(None, obj)
        for key in [key for key in self._known if key not in seen]:
            await self._hand_over("DELETED", self._known[key])  # gone while we were away
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    async def _hand_over(self, event_type: str | None, obj: dict[str, Any]) -> None:
        self.events += 1
        if event_type == "DELETED":
            self._known.pop(object_key(obj), None)
        else:
            self._known[object_key(obj)] = obj
        result = self.handler(event_type, obj)
        if inspect.isawaitable(result):
            await result
