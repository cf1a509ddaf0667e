"""The controller: DynamicPrefix status from sources, pools from status, all event driven.

Data flow (docs/design.md has the picture):

1. A DynamicPrefix event validates the spec and (re)starts its sources.
2. A source report recomputes the status (`core.status.next_status`) and writes it if it
   differs. Status is the contract: pools are rendered from it, never from a source's
   memory, so a restart or a new leader continues from what is written.
3. When the prefixes in use or the spec change, every pool that references the
   DynamicPrefix is reconciled at once, concurrently, from the in-memory pool index.
4. A pool event reconciles that pool: desired content is a pure function of the pool
   and the DynamicPrefix (`backends`), written only when it differs.

Nothing is written to a pool for a DynamicPrefix until its source has reported in this
process, so a restart never empties or rewinds a pool. Timers exist only for deadlines
(a history entry's valid lifetime, a preferred lifetime ending).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dynamic_prefix.backends.base import (
    Create,
    Delete,
    Patch,
    Placement,
    Plan,
    PoolBackend,
    PoolReference,
    ReferenceProblem,
    resolve_placements,
)
from dynamic_prefix.backends.registry import BACKENDS
from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.errors import ApiError, Conflict, NotFound, TemporaryError
from dynamic_prefix.kube.events import EventRecorder
from dynamic_prefix.model import api
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import InvalidSpec, validate_dynamic_prefix
from dynamic_prefix.model.status import PoolSummary, next_deadline, next_status, prefixes_in_use
from dynamic_prefix.operator import logs
from dynamic_prefix.operator.link_sources import StatusIdentityStore
from dynamic_prefix.operator.sources import SourceBuilder, SourceManager, build_source

logger = logging.getLogger(__name__)

_NOT_YET = "not yet"  # a reconcile that could not judge the pool yet (no prefix known)
DYNAMIC_PREFIXES = Resource(api.GROUP, api.VERSION, api.PLURAL, namespaced=False, kind=api.KIND)
MAX_ATTEMPTS = 6
RETRY_LATER_SECONDS = 30.0
STATUS_RETRY_SECONDS = 5.0
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The wall clock, in UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class PoolKey:
    """Identifies one pool object of one backend."""

    backend: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.backend}/{self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass
class _Pool:
    backend: PoolBackend
    resource: Resource
    body: dict[str, Any]

    @property
    def reference(self) -> PoolReference | None:
        """What the pool's annotations ask for (None: not annotated)."""
        return PoolReference.from_annotations(self.body["metadata"].get("annotations"))


def _merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new`` at the top level (None removes)."""
    return {key: new.get(key) for key in set(old) | set(new) if old.get(key) != new.get(key)}


def _is_older(candidate: Mapping[str, Any], known: Mapping[str, Any] | None) -> bool:
    """Whether ``candidate`` is an older version of the object than ``known``.

    Watch events can arrive after the answer to our own write, carrying an older
    version; keeping the newest stops a pool from being rendered from a stale status.
    resourceVersions are opaque by contract but etcd revisions in practice: they are
    compared as integers when both are, and otherwise the candidate is taken.
    """
    if known is None:
        return False
    old = str((known.get("metadata") or {}).get("resourceVersion", ""))
    new = str((candidate.get("metadata") or {}).get("resourceVersion", ""))
    return old.isdigit() and new.isdigit() and int(new) < int(old)


def reference_name(pool: _Pool) -> str:
    """The DynamicPrefix a pool references ("" if none), for metric labels."""
    reference = pool.reference
    return "" if reference is None else reference.dynamic_prefix


def _same_version(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether both are the same version of an object (equal, non-empty resourceVersions)."""
    version = (one.get("metadata") or {}).get("resourceVersion")
    return bool(version) and version == (other.get("metadata") or {}).get("resourceVersion")


def _snake(reason: str) -> str:
    """``PrefixChanged`` -> ``prefix_changed``, for metric labels."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in reason).lstrip("_")


def _finalizers_patch(body: Mapping[str, Any], finalizers: list[str]) -> dict[str, Any]:
    """Set the finalizers, failing with 409 if the object changed since ``body`` was read."""
    version = body["metadata"].get("resourceVersion")
    return {"metadata": {"finalizers": finalizers, "resourceVersion": version}}


class Controller:
    """Reacts to DynamicPrefix and pool events; see the module docstring."""

    def __init__(
        self,
        client: KubeClient,
        *,
        recorder: EventRecorder | None = None,
        source_factory: SourceBuilder = build_source,
        clock: Clock = utc_now,
        concurrency: int = 64,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        self.leading = leading  # a standby keeps its caches warm and writes nothing
        self.recorder = recorder or EventRecorder(client)
        self.clock = clock
        self.sources = SourceManager(
            self._on_source_change,
            lambda name, spec, acquisition: source_factory(
                name, spec, acquisition, identity_store=self._identity_store(name)
            ),
        )
        self.dynamic_prefixes: dict[str, dict[str, Any]] = {}
        self.pools: dict[PoolKey, _Pool] = {}
        self.pools_by_prefix: collections.defaultdict[str, set[PoolKey]] = collections.defaultdict(
            set
        )
        self.generated: collections.defaultdict[PoolKey, dict[str, dict[str, Any]]] = (
            collections.defaultdict(dict)
        )
        self.live: set[str] = set()
        self.pools_listed = False  # until every served pool kind was listed once
        # for metrics: (DynamicPrefix, kind of event) and (DynamicPrefix, source or backend)
        self.stats: collections.Counter[tuple[str, str]] = collections.Counter()
        self.source_reports: collections.Counter[tuple[str, str]] = collections.Counter()
        self.prefix_changes: collections.Counter[tuple[str, str]] = collections.Counter()
        self.reconcile_errors: collections.Counter[tuple[str, str]] = collections.Counter()
        self.pool_problems: collections.defaultdict[str, dict[PoolKey, str | None]] = (
            collections.defaultdict(dict)
        )
        self._synced_inputs: dict[str, tuple[Any, ...]] = {}
        self._status_locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._pool_locks: collections.defaultdict[PoolKey, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._syncing: collections.Counter[str] = collections.Counter()
        self._refresh_pending: set[str] = set()
        self._batch_updates: collections.defaultdict[str, list[str]] = collections.defaultdict(list)
        self._failing: collections.defaultdict[str, dict[PoolKey, str]] = collections.defaultdict(
            dict
        )
        self._placements: dict[tuple[str, str, PoolReference], tuple[Placement, ...]] = {}
        self._warned: dict[PoolKey, str] = {}
        self._semaphore = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle -------------------------------------------------------------------

    async def close(self) -> None:
        """Stop sources (nothing released: the next holder renews), timers, background work."""
        for timer in self._timers.values():
            timer.cancel()
        await self.sources.stop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coroutine: Any, name: str, *, concerning: str | None = None) -> None:
        """Run ``coroutine`` in the background; cancelled by `close`, errors logged.

        Its log lines are tagged with the DynamicPrefix ``concerning``, if given, else
        with whatever the caller's are tagged with.
        """
        context = None if concerning is None else logs.context_for(concerning)
        task = asyncio.create_task(coroutine, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", task.get_name(), exc_info=task.exception())

    async def start_leading(self) -> None:
        """This replica became the leader: take over every DynamicPrefix from its status."""
        for body in list(self.dynamic_prefixes.values()):
            self.spawn(self.on_dynamic_prefix(None, body), "lead")
        if self.pools_listed:
            self._reconcile_unreferenced("lead")

    async def stop_leading(self) -> None:
        """Leadership lost: stop the sources; nothing is written (the client refuses too)."""
        self.live.clear()
        self._synced_inputs.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await self.sources.stop_all()

    def sources_pending(self) -> list[str]:
        """DynamicPrefixes whose sources the leader has not started yet (empty on a standby).

        Only a valid, live object needs them; sources that started and then failed are not
        pending: that is the object's problem, told in its status, not the operator's.
        """
        if not self.leading():
            return []
        running = self.sources.running()
        return sorted(
            name
            for name, body in self.dynamic_prefixes.items()
            if name not in running
            and not body["metadata"].get("deletionTimestamp")
            and not isinstance(validate_dynamic_prefix(body), InvalidSpec)
        )

    def mark_pools_listed(self) -> None:
        """Every pool kind the cluster serves has been listed once: pools can be judged.

        Until then no pool is reconciled and PoolsSynced is not judged, so that a restart
        neither recreates pools it has not seen yet nor reports "0/0 pools in sync".
        """
        if self.pools_listed:
            return
        self.pools_listed = True
        for name in list(self.live):
            self.spawn(self.sync_pools_of(name), f"listed:{name}", concerning=name)
        self._reconcile_unreferenced("listed")

    def _reconcile_unreferenced(self, why: str) -> None:
        """Reconcile every pool no DynamicPrefix references: it may hold entries to release."""
        for key, pool in list(self.pools.items()):
            if pool.reference is None:
                self.spawn(self.reconcile_pool(key), f"{why}:{key}")

    def _identity_store(self, name: str) -> StatusIdentityStore:
        def store(body: dict[str, Any]) -> None:
            if not _is_older(body, self.dynamic_prefixes.get(name)):
                self.dynamic_prefixes[name] = body

        return StatusIdentityStore(
            self.client, DYNAMIC_PREFIXES, name, lambda: self.dynamic_prefixes.get(name), store
        )

    # --- DynamicPrefix events --------------------------------------------------------

    async def on_dynamic_prefix(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Handle one watch event of a DynamicPrefix (type None: seen in the initial list)."""
        name = body["metadata"]["name"]
        with logs.concerning(name):
            await self._on_dynamic_prefix(name, event_type, body)

    async def _on_dynamic_prefix(
        self, name: str, event_type: str | None, body: Mapping[str, Any]
    ) -> None:
        if event_type == "DELETED":
            self._forget(name)
            return
        if _is_older(body, self.dynamic_prefixes.get(name)):
            return  # we already hold a newer version (the answer to our own write)
        self.dynamic_prefixes[name] = dict(body)
        if not self.leading():
            return
        if body["metadata"].get("deletionTimestamp"):
            if api.FINALIZER in (body["metadata"].get("finalizers") or []):
                await self._finalize(name)
            return
        if api.FINALIZER not in (body["metadata"].get("finalizers") or []):
            await self._add_finalizer(name)
        spec = validate_dynamic_prefix(body)
        if isinstance(spec, InvalidSpec):
            self.sources.stop(name)
            self.live.discard(name)
        else:
            retiring = self.sources.ensure(name, spec.acquisition)
            if retiring is not None:
                # a delegation no longer wanted: status and pools stop using its prefix,
                # then it is given back (RFC 8415 section 18.2.7)
                await self.refresh_status(name)
                await self.sources.retire(retiring)
                return
            if self.sources.state(name) is None:
                return  # (re)starting sources report at once; their report writes status
        await self.refresh_status(name)

    def _on_source_change(self, name: str, state: SourceState) -> None:
        self.stats[name, "source_report"] += 1
        self.source_reports[name, state.source] += 1
        if state.prefix is not None:
            self.live.add(name)
        self.request_refresh(name)

    def _forget(self, name: str) -> None:
        self.sources.stop(name)
        self.dynamic_prefixes.pop(name, None)
        self.live.discard(name)
        self._synced_inputs.pop(name, None)
        self.pool_problems.pop(name, None)
        self._failing.pop(name, None)
        for counter in (self.stats, self.source_reports, self.prefix_changes,
                        self.reconcile_errors):  # fmt: skip
            for key in [key for key in counter if key[0] == name]:
                del counter[key]  # a deleted object's series end with it
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    async def _add_finalizer(self, name: str) -> None:
        body = self.dynamic_prefixes.get(name)
        if body is None or api.FINALIZER in (body["metadata"].get("finalizers") or []):
            return
        finalizers = [*(body["metadata"].get("finalizers") or []), api.FINALIZER]
        try:
            self.dynamic_prefixes[name] = await self.client.patch(
                DYNAMIC_PREFIXES, name, _finalizers_patch(body, finalizers)
            )
        except Conflict:
            pass  # a newer version is on its way to us; its event adds the finalizer
        except NotFound:
            self._forget(name)
        except ApiError as error:
            # without the finalizer, deleting the DynamicPrefix could not release its
            # pools: try again later; the rest of the handling goes on meanwhile
            logger.warning("finalizer not added: %s", error)
            self._later(
                RETRY_LATER_SECONDS,
                lambda: self.spawn(self._add_finalizer(name), f"finalizer:{name}"),
            )

    async def _finalize(self, name: str) -> None:
        """Release every pool of a DynamicPrefix being deleted, then its DHCPv6
        delegation (pools first: a prefix is out of use before it is given back), then
        let it go."""
        self.live.discard(name)
        keys = list(self.pools_by_prefix.get(name, ()))
        results = await asyncio.gather(
            *(self._release_pool(k) for k in keys), return_exceptions=True
        )
        failed = [
            f"{k}: {r}" for k, r in zip(keys, results, strict=True) if isinstance(r, Exception)
        ]
        body = self.dynamic_prefixes[name]
        if failed:
            await self.recorder.record(body, type="Warning", reason="ReleaseFailed",
                                       message="; ".join(failed)[:900])  # fmt: skip
            # the DynamicPrefix stays (its finalizer) until its pools are released: again later
            self._later(
                RETRY_LATER_SECONDS,
                lambda: self.spawn(self.on_dynamic_prefix("MODIFIED", body), f"finalize:{name}"),
            )
            return
        await self.sources.release(name)
        await self.recorder.record(
            body,
            type="Normal",
            reason="PoolsReleased",
            message=f"released {len(keys)} pool(s): the operator's entries were removed, "
            "entries written by users were kept",
        )
        for _ in range(MAX_ATTEMPTS):
            body = self.dynamic_prefixes[name]
            finalizers = [f for f in body["metadata"].get("finalizers") or [] if f != api.FINALIZER]
            try:
                await self.client.patch(DYNAMIC_PREFIXES, name, _finalizers_patch(body, finalizers))
                return
            except NotFound:
                return
            except Conflict:
                self.dynamic_prefixes[name] = await self.client.get(DYNAMIC_PREFIXES, name)

    # --- status ----------------------------------------------------------------------

    async def refresh_status(self, name: str) -> None:
        """Recompute the status of ``name``; write it and sync pools if anything changed."""
        async with self._status_locks[name]:
            body = self.dynamic_prefixes.get(name)
            if body is None or body["metadata"].get("deletionTimestamp") or not self.leading():
                return
            spec = validate_dynamic_prefix(body)
            state = self.sources.state(name)
            previous = body.get("status") or {}
            update = next_status(
                spec=spec,
                previous=previous,
                source=state,
                pools=self._pool_summary(name),
                generation=body["metadata"].get("generation"),
                now=self.clock(),
            )
            if update.status != previous:
                try:
                    body = await self.client.patch(
                        DYNAMIC_PREFIXES,
                        name,
                        {"status": _merge_patch(previous, update.status)},
                        subresource="status",
                    )
                except NotFound:
                    return
                except ApiError as error:
                    # a status that could not be written is computed again a bit later:
                    # a static source will not report again to trigger it
                    logger.warning("status not written: %s", error)
                    self.stats[name, "status_error"] += 1
                    self.reconcile_errors[name, "status"] += 1
                    self._later(STATUS_RETRY_SECONDS, lambda: self.request_refresh(name))
                    return
                self.dynamic_prefixes[name] = body
            for event in update.events:
                self.stats[name, _snake(event.reason)] += 1
                if event.reason in ("PrefixAcquired", "PrefixChanged"):
                    source = (body.get("status") or {}).get("prefixSource", "")
                    self.prefix_changes[name, str(source)] += 1
                await self.recorder.record(body, type=event.type, reason=event.reason,
                                           message=event.message)  # fmt: skip
            self._arm_timer(name, body.get("status") or {}, state)
        inputs = (tuple(prefixes_in_use(body.get("status") or {})),
                  body["metadata"].get("generation"))  # fmt: skip
        if name in self.live and self._synced_inputs.get(name) != inputs:
            self._synced_inputs[name] = inputs
            await self.sync_pools_of(name)

    def _arm_timer(self, name: str, status: Mapping[str, Any], state: SourceState | None) -> None:
        deadlines = [d for d in (next_deadline(status),) if d is not None]
        if (
            state is not None
            and state.preferred_until is not None
            and (state.preferred_until > self.clock())
        ):
            deadlines.append(state.preferred_until)
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        if not deadlines:
            return
        delay = max(0.0, (min(deadlines) - self.clock()).total_seconds()) + 0.01
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(delay, lambda: self.request_refresh(name))

    def _pool_summary(self, name: str) -> PoolSummary | None:
        """Counts kept up to date by `_record_outcome`: no walk over every pool."""
        if name not in self.live or not self.pools_listed:
            return None
        results = self.pool_problems.get(name, {})
        total = len(self.pools_by_prefix.get(name, ()))
        if len(results) < total:
            return None  # some pools not judged yet (just started): keep what status says
        failing = self._failing.get(name, {})
        shown = tuple(f"{key}: {failing[key]}" for key in sorted(failing, key=str)[:5])
        return PoolSummary(
            total=total,
            in_sync=len(results) - len(failing),
            failing=shown,
        )

    def _record_outcome(self, name: str, key: PoolKey, outcome: str | None) -> bool:
        """Remember how a pool's reconcile ended; True if that changed anything to report."""
        results = self.pool_problems[name]
        changed = key not in results or results[key] != outcome
        results[key] = outcome
        if outcome is None:
            self._failing[name].pop(key, None)
        else:
            self._failing[name][key] = outcome
        return changed

    def _forget_outcome(self, name: str, key: PoolKey) -> None:
        self.pool_problems[name].pop(key, None)
        self._failing[name].pop(key, None)

    # --- pools -----------------------------------------------------------------------

    def holds(self, backend: PoolBackend, body: Mapping[str, Any]) -> bool:
        """Whether this version of a pool, or a newer one, is held already: the echo of our
        own write. Answered at once, so that the watcher spends no task on an echo (a prefix
        change echoes every pool); `on_pool` makes the same check for whatever gets past."""
        metadata = body["metadata"]
        if api.ANNOTATION_GENERATED_FROM in (metadata.get("annotations") or {}):
            return False  # generated Calico pools are indexed under their template
        key = PoolKey(backend.name, metadata.get("namespace") or "", metadata["name"])
        old = self.pools.get(key)
        return old is not None and (_same_version(body, old.body) or _is_older(body, old.body))

    async def on_pool(
        self,
        backend: PoolBackend,
        resource: Resource,
        event_type: str | None,
        body: Mapping[str, Any],
    ) -> None:
        """Handle one watch event of a pool of ``backend``."""
        metadata = body["metadata"]
        key = PoolKey(backend.name, metadata.get("namespace") or "", metadata["name"])
        template = (metadata.get("annotations") or {}).get(api.ANNOTATION_GENERATED_FROM)
        if template is not None and api.LABEL_GENERATED_FROM in (metadata.get("labels") or {}):
            await self._on_generated(backend, key, template, event_type, body)
            return
        if event_type != "DELETED" and self.holds(backend, body):
            return  # the echo of our own write, or older: we hold this version already
        old = self.pools.get(key)
        reference = (
            None
            if event_type == "DELETED"
            else PoolReference.from_annotations(metadata.get("annotations"))
        )
        old_reference = None if old is None else old.reference
        moved = old_reference is not None and (
            reference is None or reference.dynamic_prefix != old_reference.dynamic_prefix
        )
        if old_reference is not None and moved:
            self.pools_by_prefix[old_reference.dynamic_prefix].discard(key)
            self._forget_outcome(old_reference.dynamic_prefix, key)
            await self._refresh_pools_synced(old_reference.dynamic_prefix)
        if event_type == "DELETED":
            self.pools.pop(key, None)
            self._warned.pop(key, None)
            if self.generated.get(key):
                # a Calico template deleted by its user takes its generated pools along
                async with self._pool_locks[key]:
                    await self._release_generated(key)
            return
        self.pools[key] = _Pool(backend, resource, dict(body))
        if reference is not None:
            self.pools_by_prefix[reference.dynamic_prefix].add(key)
        if not self.leading():
            return
        changed = await self.reconcile_pool(key)
        if reference is not None and changed:
            await self._refresh_pools_synced(reference.dynamic_prefix)

    async def _on_generated(
        self,
        backend: PoolBackend,
        key: PoolKey,
        template: str,
        event_type: str | None,
        body: Mapping[str, Any],
    ) -> None:
        template_key = PoolKey(key.backend, key.namespace, template)
        if event_type == "DELETED":
            self.generated[template_key].pop(key.name, None)
        else:
            held = self.generated[template_key].get(key.name)
            if held is not None and (_is_older(body, held) or _same_version(body, held)):
                return  # a late event: we hold this version or a newer one (a write's answer)
            self.generated[template_key][key.name] = dict(body)
        if template_key in self.pools or event_type != "DELETED":
            await self.reconcile_pool(template_key)

    async def sync_pools_of(self, name: str) -> None:
        """Reconcile every pool that references ``name``, concurrently, then report it."""
        keys = list(self.pools_by_prefix.get(name, ()))
        self._syncing[name] += 1
        started = time.monotonic()
        try:
            await asyncio.gather(*(self.reconcile_pool(key) for key in keys))
        finally:
            self._syncing[name] -= 1
        logger.info(
            "%d pool(s) reconciled in %.0f ms",
            len(keys), (time.monotonic() - started) * 1000,
        )  # fmt: skip
        updated = self._batch_updates.pop(name, [])
        body = self.dynamic_prefixes.get(name)
        if updated and body is not None:
            current = (body.get("status") or {}).get("currentPrefix")
            listed = ", ".join(sorted(updated)[:10]) + (", ..." if len(updated) > 10 else "")
            await self.recorder.record(
                body,
                type="Normal",
                reason="PoolsUpdated",
                message=f"{len(updated)} pool(s) updated for prefix {current}: {listed}",
            )
        await self._refresh_pools_synced(name)

    async def _refresh_pools_synced(self, name: str) -> None:
        body = self.dynamic_prefixes.get(name)
        if body is None or name not in self.live or self._syncing[name]:
            return  # a batch in progress reports once, at its end
        self.request_refresh(name)

    def request_refresh(self, name: str) -> None:
        """Recompute the status of ``name`` soon; requests made meanwhile are served by one run."""
        if name in self._refresh_pending:
            return
        self._refresh_pending.add(name)

        async def refresh() -> None:
            async with self._status_locks[name]:
                self._refresh_pending.discard(name)
            await self.refresh_status(name)

        self.spawn(refresh(), f"refresh:{name}", concerning=name)

    async def reconcile_pool(self, key: PoolKey) -> bool:
        """Make one pool right and record the outcome for PoolsSynced.

        Returns whether the outcome differs from the last one (worth a status refresh).
        """
        if not self.leading():
            return False
        if not self.pools_listed:
            # before every kind was listed once, a Calico template may be seen before the
            # pools made from it; `mark_pools_listed` reconciles everything afterwards
            return False
        async with self._pool_locks[key], self._semaphore:
            pool = self.pools.get(key)
            if pool is None:
                if self.generated.get(key):
                    await self._release_generated(key)
                return False
            reference = pool.reference
            if reference is None:
                await self._release_pool_locked(key, pool)
                return False
            with logs.concerning(reference.dynamic_prefix):
                outcome = await self._reconcile_referenced(key, pool, reference)
            if outcome is _NOT_YET:
                return False
            if outcome is not None and reference.dynamic_prefix in self.dynamic_prefixes:
                # (a name no object has is only counted while it exists: no endless series)
                self.reconcile_errors[reference.dynamic_prefix, key.backend] += 1
            return self._record_outcome(reference.dynamic_prefix, key, outcome)

    async def _reconcile_referenced(
        self, key: PoolKey, pool: _Pool, reference: PoolReference
    ) -> str | None:
        dynamic_prefix = self.dynamic_prefixes.get(reference.dynamic_prefix)
        if dynamic_prefix is None:
            try:
                dynamic_prefix = await self.client.get(DYNAMIC_PREFIXES, reference.dynamic_prefix)
            except NotFound:
                problem = (
                    f"DynamicPrefix {reference.dynamic_prefix} does not exist; pool left alone"
                )
                await self._warn(key, pool, "DynamicPrefixNotFound", problem)
                return problem
            return _NOT_YET  # its event will arrive; nothing to do before it is live
        if reference.dynamic_prefix not in self.live:
            return _NOT_YET  # nothing is written before the prefix is (re)learnt
        try:
            placements = self._placements_for(reference, dynamic_prefix)
        except ReferenceProblem as error:
            await self._warn(key, pool, "InvalidReference", f"{error}; pool left alone")
            return str(error)
        if not placements:
            return _NOT_YET
        return await self._apply_with_retries(key, pool, placements)

    def _placements_for(
        self, reference: PoolReference, dynamic_prefix: Mapping[str, Any]
    ) -> tuple[Placement, ...]:
        """`resolve_placements`, computed once per DynamicPrefix version and reference."""
        version = str(dynamic_prefix["metadata"].get("resourceVersion", ""))
        key = (reference.dynamic_prefix, version, reference)
        cached = self._placements.get(key)
        if cached is None:
            cached = resolve_placements(reference, dynamic_prefix)
            if len(self._placements) > 4096:
                self._placements.clear()
            self._placements[key] = cached
        return cached

    async def _apply_with_retries(
        self, key: PoolKey, pool: _Pool, placements: tuple[Placement, ...] | None
    ) -> str | None:
        delay = 0.2
        for attempt in range(MAX_ATTEMPTS):
            plan = pool.backend.plan(
                pool.resource, pool.body, placements, generated=list(self.generated[key].values())
            )
            if plan.problems:
                await self._warn(key, pool, "MalformedEntries", "; ".join(plan.problems))
            try:
                await self._apply(pool, plan, key)
                if plan.actions:
                    self.stats[reference_name(pool), "pool_write"] += 1
                    await self._updated(key, pool, placements)
                return None
            except Conflict:
                logger.info("pool %s changed since it was read; reading it again", key)
                fresh = await self._refetch(key, pool)
                if fresh is None:
                    return None
                pool = fresh
            except TemporaryError as error:
                if attempt == MAX_ATTEMPTS - 1:
                    self._retry_later(key)
                    return f"API error: {error}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except ApiError as error:
                self.stats[reference_name(pool), "pool_error"] += 1
                await self._warn(key, pool, "UpdateFailed", f"cannot update the pool: {error}")
                return str(error)
        self._retry_later(key)
        return "kept conflicting with other writers"

    async def _apply(self, pool: _Pool, plan: Plan, key: PoolKey | None = None) -> None:
        generated = self.generated[key] if key is not None else {}
        for action in plan.actions:
            match action:
                case Patch(resource=resource, name=name, namespace=namespace, body=body):
                    updated = await self.client.patch(
                        resource, name, body, namespace=namespace, drop_echo=True
                    )
                    if resource == pool.resource and name == pool.body["metadata"]["name"]:
                        pool.body = updated
                    elif name in generated:
                        # held from the answer: the watch does not bring our writes back
                        generated[name] = updated
                case Create(resource=resource, body=body):
                    # Conflict: it exists already; its own event brings it back to us
                    with contextlib.suppress(Conflict):
                        created = await self.client.create(resource, body)
                        generated[created["metadata"]["name"]] = created
                case Delete(resource=resource, name=name, namespace=namespace):
                    with contextlib.suppress(NotFound):
                        await self.client.delete(resource, name, namespace=namespace)
                    generated.pop(name, None)

    async def _updated(
        self, key: PoolKey, pool: _Pool, placements: tuple[Placement, ...] | None
    ) -> None:
        if placements is None:
            return
        reference = pool.reference
        if reference is not None and self._syncing[reference.dynamic_prefix]:
            # one event on the DynamicPrefix tells about the whole batch (sync_pools_of)
            self._batch_updates[reference.dynamic_prefix].append(str(key))
            return
        shown = ", ".join(
            str(p.address_range.start) + "-" + str(p.address_range.end)
            if p.address_range is not None else str(p.cidr)
            for p in placements
        )  # fmt: skip
        logger.debug("pool %s updated: %s", key, shown)
        await self.recorder.record(
            pool.body,
            type="Normal",
            reason="PoolUpdated",
            message=f"entries of the dynamic prefix operator set to: {shown}",
        )

    async def _refetch(self, key: PoolKey, pool: _Pool) -> _Pool | None:
        metadata = pool.body["metadata"]
        try:
            body = await self.client.get(
                pool.resource, metadata["name"], namespace=metadata.get("namespace")
            )
        except NotFound:
            return None
        fresh = _Pool(pool.backend, pool.resource, body)
        self.pools[key] = fresh
        return fresh

    def _retry_later(self, key: PoolKey) -> None:
        self._later(
            RETRY_LATER_SECONDS, lambda: self.spawn(self.reconcile_pool(key), f"retry:{key}")
        )

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` after ``delay`` seconds (retries of failed API calls)."""
        asyncio.get_running_loop().call_later(delay, callback)

    async def _warn(self, key: PoolKey, pool: _Pool, reason: str, message: str) -> None:
        """A Warning event on the pool, once per distinct message (no event storms)."""
        if self._warned.get(key) == message:
            return
        self._warned[key] = message
        await self.recorder.record(pool.body, type="Warning", reason=reason, message=message)

    async def _release_pool(self, key: PoolKey) -> None:
        async with self._pool_locks[key]:
            pool = self.pools.get(key)
            if pool is not None:
                await self._release_pool_locked(key, pool)

    async def _release_pool_locked(self, key: PoolKey, pool: _Pool) -> None:
        plan = pool.backend.plan(
            pool.resource, pool.body, None, generated=list(self.generated[key].values())
        )
        if plan.in_sync:
            return
        for _ in range(MAX_ATTEMPTS):
            try:
                await self._apply(pool, plan)
                break
            except Conflict:
                fresh = await self._refetch(key, pool)
                if fresh is None:
                    return
                pool = fresh
                plan = pool.backend.plan(
                    pool.resource, pool.body, None, generated=list(self.generated[key].values())
                )
        for name in list(self.pool_problems):
            self._forget_outcome(name, key)
        await self.recorder.record(
            pool.body,
            type="Normal",
            reason="PoolReleased",
            message="the operator's entries were removed; entries written by users were kept",
        )

    async def _release_generated(self, key: PoolKey) -> None:
        for name, body in list(self.generated.get(key, {}).items()):
            resource = self._resource_of(key.backend, body)
            if resource is None:
                continue
            with contextlib.suppress(NotFound):
                await self.client.delete(resource, name)

    def _resource_of(self, backend_name: str, body: Mapping[str, Any]) -> Resource | None:
        for pool in self.pools.values():
            if pool.backend.name == backend_name:
                return pool.resource
        group, _, version = str(body.get("apiVersion", "")).partition("/")
        for backend in BACKENDS:
            if backend.name == backend_name:
                return Resource(group, version, backend.plural, namespaced=False, kind=backend.kind)
        return None
