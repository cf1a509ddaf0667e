"""Other projects' kinds, followed whenever the cluster serves them: one list+watch per kind.

The pool kinds (Cilium, MetalLB, Calico) and the BGP kinds (CiliumBGPAdvertisement,
MetalLB BGPAdvertisement, Calico BGPConfiguration) are found by API discovery. Kinds
whose CRD is installed after start are picked up by watching CustomResourceDefinitions
(one watch for all); for each kind the cluster's preferred version among the ones the
operator understands is used (Cilium serves v2, older releases v2alpha1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Protocol

from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.errors import ApiError
from dynamic_prefix.kube.informer import Informer

logger = logging.getLogger(__name__)

CRDS: Final = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
LISTING_PATIENCE: Final = 30.0
"""Seconds to wait for every kind's first list before going on."""
DISCOVERY_RETRIES: Final = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Seconds between discovery attempts while a new CRD is not served yet."""


class WatchedKind(Protocol):
    """A kind of another project, as discovery needs it (pool backends, BGP kinds)."""

    @property
    def name(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def plural(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def versions(self) -> tuple[str, ...]: ...


StartWatch = Callable[[Any, Resource, asyncio.Event], Coroutine[Any, Any, None]]
"""Starts following one served kind: (kind, its resource, set once it was listed)."""


async def served_resource(client: KubeClient, kind: WatchedKind) -> Resource | None:
    """The version of ``kind`` to use, or None if the cluster does not serve it."""
    for version in await client.discover_group(kind.group):
        name = version.get("version")
        if name not in kind.versions:
            continue
        for resource in await client.discover_resources(kind.group, name):
            if resource.get("name") == kind.plural:
                return Resource(
                    kind.group,
                    name,
                    kind.plural,
                    namespaced=bool(resource.get("namespaced")),
                    kind=str(resource.get("kind", kind.kind)),
                )
    return None


class KindWatchers:
    """Runs a watcher (``start``) for every kind of ``kinds`` the cluster serves, now or
    later; ``on_listed`` once every kind served at start was listed."""

    def __init__(
        self,
        client: KubeClient,
        kinds: Sequence[WatchedKind],
        start: StartWatch,
        *,
        on_listed: Callable[[], None],
        on_change: Callable[[WatchedKind, Resource | None], None] | None = None,
    ) -> None:
        self.client = client
        self.kinds = tuple(kinds)
        self._start = start
        self._on_listed = on_listed
        self._on_change = on_change
        self.watchers: dict[str, tuple[Resource, asyncio.Task[None]]] = {}
        self._listed: dict[str, asyncio.Event] = {}
        self._retries: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Discover, start watchers, then follow CRD changes until cancelled."""
        try:
            await self._rediscover(self.kinds)
            # PoolsSynced is judged only once every served kind was listed, so that a
            # restart does not report "0/0 pools in sync" before the pools are known
            try:
                async with asyncio.timeout(LISTING_PATIENCE):
                    await asyncio.gather(*(event.wait() for event in self._listed.values()))
            except TimeoutError:
                logger.warning("some kinds could not be listed; judging PoolsSynced anyway")
            self._on_listed()
            await Informer(self.client, CRDS, self._on_crd).run()
        finally:
            for retry in list(self._retries):
                retry.cancel()
            for _, task in self.watchers.values():
                task.cancel()
            await asyncio.gather(
                *(task for _, task in self.watchers.values()), return_exceptions=True
            )

    async def _on_crd(self, event_type: str | None, crd: dict[str, Any]) -> None:
        """A CRD appeared, changed or went: (re)discover the kinds it defines."""
        spec = crd.get("spec") or {}
        plural = (spec.get("names") or {}).get("plural")
        affected = tuple(
            k for k in self.kinds if k.group == spec.get("group") and k.plural == plural
        )
        if affected:
            missing = await self._rediscover(affected)
            if missing and event_type != "DELETED":
                self._retry_discovery(missing)

    def _retry_discovery(self, kinds: tuple[WatchedKind, ...]) -> None:
        """A CRD exists but discovery does not serve it yet: API discovery lags behind
        the CRD's Established condition by a moment; ask again a few times."""

        async def retry() -> None:
            pending = kinds
            for delay in DISCOVERY_RETRIES:
                await asyncio.sleep(delay)
                pending = await self._rediscover(pending)
                if not pending:
                    return
            logger.warning(
                "CRDs of %s exist but are not served; they are watched when they change",
                ", ".join(k.kind for k in pending),
            )

        task = asyncio.create_task(retry(), name="rediscover")
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _rediscover(self, kinds: tuple[WatchedKind, ...]) -> tuple[WatchedKind, ...]:
        """Start, switch or stop watchers; returns the kinds the cluster does not serve."""
        missing: list[WatchedKind] = []
        for kind in kinds:
            try:
                resource = await served_resource(self.client, kind)
            except ApiError as error:
                logger.warning("discovering %s: %s", kind.kind, error)
                continue
            if resource is None:
                missing.append(kind)
            running = self.watchers.get(kind.name)
            if running is not None and running[0] == resource:
                continue
            if running is not None:
                running[1].cancel()
                # wait, not await: awaiting it under suppress(CancelledError) would
                # swallow a cancellation of this task too, and stop would never end
                await asyncio.wait([running[1]])
                del self.watchers[kind.name]
            if resource is not None:
                listed = self._listed.setdefault(kind.name, asyncio.Event())
                task = asyncio.create_task(
                    self._start(kind, resource, listed), name=f"watch:{resource}"
                )
                self.watchers[kind.name] = (resource, task)
                logger.info("watching %s (%s)", kind.kind, resource.api_version)
            if self._on_change is not None:
                self._on_change(kind, resource)
        return tuple(missing)
