"""The controller: DynamicPrefix status from sources, pools from status, all event driven.

Data flow (docs/design.md has the picture):

1. A DynamicPrefix event validates the spec and (re)starts its sources (`SourceManager`).
2. A source report recomputes the status and writes it if it differs (`StatusWriter`).
   Status is the contract: pools are rendered from it, never from a source's memory, so
   a restart or a new leader continues from what is written.
3. When the prefixes in use or the spec change, every pool that references the
   DynamicPrefix is reconciled at once, concurrently, from the `PoolIndex`.
4. A pool event reconciles that pool (`PoolReconciler`): desired content is a pure
   function of the pool and the DynamicPrefix (`backends`), written only when it differs;
   how it ended is kept in `PoolOutcomes` for ``PoolsSynced``.

Nothing is written to a pool for a DynamicPrefix until its source has reported in this
process, so a restart never empties or rewinds a pool. Timers exist only for deadlines
(a history entry's valid lifetime, a preferred lifetime ending) and retries.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final

from dynamic_prefix.backends.base import PoolBackend, PoolReference
from dynamic_prefix.backends.bgp import BgpKind, FedPool
from dynamic_prefix.backends.service import pool_kinds_for
from dynamic_prefix.kube.api import KubeApi
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.kube.errors import ApiError, Conflict, NotFound
from dynamic_prefix.kube.events import EventRecorder
from dynamic_prefix.kube.objects import is_older
from dynamic_prefix.model import api
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import InvalidSpec, validate_dynamic_prefix
from dynamic_prefix.model.status import BgpSummary, PoolSummary, next_deadline, prefixes_in_use
from dynamic_prefix.operator import logs
from dynamic_prefix.operator.announcer import Announcer
from dynamic_prefix.operator.counters import ControllerCounters
from dynamic_prefix.operator.link_sources import StatusIdentityStore
from dynamic_prefix.operator.outcomes import PoolOutcomes
from dynamic_prefix.operator.pool_index import Pool, PoolIndex, PoolKey, is_generated
from dynamic_prefix.operator.pool_reconciler import DYNAMIC_PREFIXES, MAX_ATTEMPTS, PoolReconciler
from dynamic_prefix.operator.service_index import ServiceIndex, service_key
from dynamic_prefix.operator.service_reconciler import ServiceReconciler
from dynamic_prefix.operator.sources import SourceBuilder, SourceManager, build_source
from dynamic_prefix.operator.status_writer import Clock, StatusWriter
from dynamic_prefix.operator.tasks import cancel_all

__all__ = ["DYNAMIC_PREFIXES", "Controller", "PoolKey", "utc_now"]

logger = logging.getLogger(__name__)

RETRY_LATER_SECONDS: Final = 30.0
"""A finalizer that could not be added or a release that failed: tried again this late."""
WRITE_RETRY_SECONDS: Final = 1.0
"""A pool or Service whose writes kept failing (the API server away, conflicts): tried
again this soon, so that it is right within about a second of the server's return."""
STATUS_RETRY_SECONDS: Final = 1.0
STATUS_AFTER_POOLS_SECONDS: Final = 0.05
"""How long a changed status waits for the pools' writes before it is written anyway.

What users reach goes first: on a small cluster's two shared cores a status write in
the middle of a one-pool change delays that pool by about a millisecond (a tenth of the
change). A large change (hundreds of pools) does not hold the record back longer."""
TIMER_SLACK_SECONDS: Final = 0.01
"""A deadline's timer fires just after it, so that the status computed then is past it."""


@dataclass(frozen=True)
class _Sync:
    """A sync of pools started by a status refresh, and the sign that its writes are done."""

    task: asyncio.Task[None]
    written: asyncio.Event


def utc_now() -> dt.datetime:
    """The wall clock, in UTC."""
    return dt.datetime.now(dt.UTC)


def _finalizers_patch(body: Mapping[str, Any], finalizers: list[str]) -> dict[str, Any]:
    """Set the finalizers, failing with 409 if the object changed since ``body`` was read."""
    version = body["metadata"].get("resourceVersion")
    return {"metadata": {"finalizers": finalizers, "resourceVersion": version}}


def _finalizers(body: Mapping[str, Any]) -> list[str]:
    return list(body["metadata"].get("finalizers") or [])


class Controller:
    """Reacts to DynamicPrefix and pool events; see the module docstring."""

    def __init__(
        self,
        client: KubeApi,
        *,
        recorder: EventRecorder | None = None,
        source_factory: SourceBuilder = build_source,
        clock: Clock = utc_now,
        concurrency: int = 64,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        self.concurrency = concurrency
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
        self.live: set[str] = set()
        """DynamicPrefixes whose source reported a prefix in this process (pools may be
        written)."""
        self.pools_listed = False  # until every served pool kind was listed once
        self.counters = ControllerCounters()
        self.index = PoolIndex()
        self.outcomes = PoolOutcomes()
        self.status_writer = StatusWriter(client, self.recorder, self.counters, clock)
        self.reconciler = PoolReconciler(
            client,
            self.recorder,
            self.index,
            self.outcomes,
            self.counters,
            dynamic_prefixes=self.dynamic_prefixes,
            live=self.live,
            retry_later=self._retry_later,
            concurrency=concurrency,
            clock=clock,
        )
        self.services_listed = False  # until the Services were listed once
        self.service_index = ServiceIndex()
        self.service_outcomes = PoolOutcomes()
        self.services = ServiceReconciler(
            client,
            self.recorder,
            self.service_index,
            self.service_outcomes,
            self.counters,
            dynamic_prefixes=self.dynamic_prefixes,
            live=self.live,
            pool_kinds=self._pool_kinds,
            retry_later=self._retry_service_later,
            concurrency=concurrency,
            clock=clock,
        )
        self.announcer = Announcer(
            client,
            dynamic_prefixes=self.dynamic_prefixes,
            live=self.live,
            pools_of=self._fed_pools,
            spec_of=self.reconciler.placements.spec,
        )
        self._announce_pending: set[str] = set()
        self._pool_kinds_held: dict[PoolReference, set[str]] = {}
        self._finalize_pending: set[str] = set()
        self._synced_inputs: dict[str, tuple[Any, ...]] = {}
        self._unconfirmed: dict[str, Mapping[str, Any]] = {}
        """The status the server holds, for each DynamicPrefix whose decided status (held
        in `dynamic_prefixes`, rendered into pools) the server has not confirmed yet."""
        self._event_tails: dict[str, asyncio.Task[Any]] = {}
        self._status_locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._refresh_pending: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def generated(self) -> Mapping[PoolKey, dict[str, dict[str, Any]]]:
        """The Calico pools generated from each template, by name."""
        return self.index.generated

    # --- lifecycle -------------------------------------------------------------------

    async def close(self) -> None:
        """Stop sources (nothing released: the next holder renews), timers, background work."""
        for timer in self._timers.values():
            timer.cancel()
        await self.sources.stop_all()
        await cancel_all(self._tasks, "background work")

    def spawn(
        self, coroutine: Coroutine[Any, Any, Any], name: str, *, concerning: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coroutine`` in the background; cancelled by `close`, errors logged.

        Its log lines are tagged with the DynamicPrefix ``concerning``, if given, else
        with whatever the caller's are tagged with.
        """
        context = None if concerning is None else logs.context_for(concerning)
        task = asyncio.create_task(coroutine, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", task.get_name(), exc_info=task.exception())

    def idle(self) -> bool:
        """Whether no background work is in flight (for tests and benchmarks)."""
        return not self._tasks

    async def start_leading(self) -> None:
        """This replica became the leader: take over every DynamicPrefix from its status."""
        for body in list(self.dynamic_prefixes.values()):
            self.spawn(self.on_dynamic_prefix(None, body), "lead")
        if self.pools_listed:
            self._reconcile_unreferenced("lead")
        if self.services_listed:
            self._reconcile_unnamed_services("lead")

    async def stop_leading(self) -> None:
        """Leadership lost: stop the sources; nothing is written (the client refuses too)."""
        self.live.clear()
        self._synced_inputs.clear()
        # a decision whose status write did not go through is no longer ours to make:
        # hold what the server has (a standby reports what is written)
        for name, status in self._unconfirmed.items():
            held = self.dynamic_prefixes.get(name)
            if held is not None:
                self.dynamic_prefixes[name] = {**held, "status": status}
        self._unconfirmed.clear()
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
        if self.services_listed:
            self._reconcile_unnamed_services("listed")
            self._finalize_waiting()

    def mark_services_listed(self) -> None:
        """The Services were listed once: they can be judged (once pools can be too)."""
        if self.services_listed:
            return
        self.services_listed = True
        if self.pools_listed:
            for name in list(self.live):
                self.spawn(self.sync_pools_of(name), f"services-listed:{name}", concerning=name)
            self._reconcile_unnamed_services("listed")
            self._finalize_waiting()

    def _finalize_waiting(self) -> None:
        """Deletions seen before every pool and Service was listed: release them now."""
        for name in sorted(self._finalize_pending):
            body = self.dynamic_prefixes.get(name)
            if body is not None:
                self.spawn(self.on_dynamic_prefix("MODIFIED", body), f"finalize:{name}",
                           concerning=name)  # fmt: skip
        self._finalize_pending.clear()

    def _reconcile_unnamed_services(self, why: str) -> None:
        """Services that name no DynamicPrefix but carry our record: entries to give back."""
        for key, body in list(self.service_index.services.items()):
            if (body["metadata"].get("annotations") or {}).get(api.ANNOTATION_NAME) is None:
                self.spawn(self.reconcile_service(key), f"{why}:{key}")

    def _reconcile_unreferenced(self, why: str) -> None:
        """Reconcile every pool no DynamicPrefix references (it may hold entries to
        release), and every pool whose DynamicPrefix is missing or invalid (each gets its
        verdict at start-up, not only when it changes)."""
        for key in self.index.unreferenced():
            self.spawn(self.reconcile_pool(key), f"{why}:{key}")
        for key, pool in list(self.index.pools.items()):
            reference = pool.reference
            if reference is not None and reference.dynamic_prefix not in self.live:
                self.spawn(self.reconcile_pool(key), f"{why}:{key}")

    def _identity_store(self, name: str) -> StatusIdentityStore:
        def store(body: dict[str, Any]) -> None:
            if not is_older(body, self.dynamic_prefixes.get(name)):
                self._hold(name, body)

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
            self._judge_pools_of(name)  # now "does not exist"
            if self.leading():
                # normally released by the finalizer already; this catches a forced delete
                self.spawn(self._release_announcements(name), f"unannounce:{name}")
            return
        if is_older(body, self.dynamic_prefixes.get(name)):
            return  # we already hold a newer version (the answer to our own write)
        self._hold(name, body)
        if not self.leading():
            return
        if body["metadata"].get("deletionTimestamp"):
            if api.FINALIZER in _finalizers(body):
                if not (self.pools_listed and self.services_listed):
                    # what to release is known only once every pool and Service was
                    # listed: a deletion seen at start-up waits for that
                    self._finalize_pending.add(name)
                    return
                await self._finalize(name)
            return
        if api.FINALIZER not in _finalizers(body):
            await self._add_finalizer(name)
        spec = validate_dynamic_prefix(body)
        if isinstance(spec, InvalidSpec):
            self.sources.stop(name)
            self.live.discard(name)
            self._judge_pools_of(name)  # each is told why it is left alone
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

    def _judge_pools_of(self, name: str) -> None:
        """Reconcile the pools and Services of a DynamicPrefix that cannot serve them
        (deleted, invalid): each gets its Warning, and its outcome is recorded."""
        for key in self.index.keys_of(name):
            self.spawn(self.reconcile_pool(key), f"judge:{key}")
        for key in self.service_index.keys_of(name):
            self.spawn(self.reconcile_service(key), f"judge:{key}")

    def _on_source_change(self, name: str, state: SourceState) -> None:
        self.counters.events[name, "source_report"] += 1
        self.counters.source_reports[name, state.source] += 1
        if state.prefix is not None:
            self.live.add(name)
        self.request_refresh(name)

    def _forget(self, name: str) -> None:
        self.sources.stop(name)
        self.dynamic_prefixes.pop(name, None)
        self.live.discard(name)
        self._synced_inputs.pop(name, None)
        self._unconfirmed.pop(name, None)
        self.outcomes.forget_prefix(name)
        self.service_outcomes.forget_prefix(name)
        self.reconciler.placements.forget(name)
        self.services.placements.forget(name)
        self.announcer.outcomes.pop(name, None)
        self.counters.forget(name)  # a deleted object's series end with it
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    async def _add_finalizer(self, name: str) -> None:
        body = self.dynamic_prefixes.get(name)
        if body is None or api.FINALIZER in _finalizers(body):
            return
        finalizers = [*_finalizers(body), api.FINALIZER]
        try:
            patch = _finalizers_patch(body, finalizers)
            self._hold(name, await self.client.patch(DYNAMIC_PREFIXES, name, patch))
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
        keys = self.index.keys_of(name)
        services = self.service_index.keys_of(name)
        results = await asyncio.gather(
            *(self.reconciler.release(k) for k in keys),
            *(self.services.release(k, f"DynamicPrefix {name} is being deleted") for k in services),
            self.announcer.release(name),
            return_exceptions=True,
        )
        keys = [*keys, *services, PoolKey("bgp", "", "announcements")]
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
            message=f"released {len(keys) - len(services) - 1} pool(s), {len(services)} "
            "Service(s) and the BGP announcements: the operator's entries were removed, "
            "entries written by users were kept",
        )
        await self._remove_finalizer(name)

    async def _remove_finalizer(self, name: str) -> None:
        for _ in range(MAX_ATTEMPTS):
            body = self.dynamic_prefixes[name]
            finalizers = [f for f in _finalizers(body) if f != api.FINALIZER]
            try:
                await self.client.patch(DYNAMIC_PREFIXES, name, _finalizers_patch(body, finalizers))
                return
            except NotFound:
                return
            except Conflict:
                self._hold(name, await self.client.get(DYNAMIC_PREFIXES, name))

    # --- status ----------------------------------------------------------------------

    async def refresh_status(self, name: str) -> None:
        """Decide the status of ``name`` again; if it changed, bring the pools, Services and
        announcements to it and write it once they are written (or after
        STATUS_AFTER_POOLS_SECONDS).

        The pools do not wait for the status write: they are rendered from the decided
        status, which is held in memory while the server has not confirmed it
        (`_unconfirmed` keeps the server's). The status remains the record of what was
        decided: a write that fails is decided and written again from the server's
        status, and a new leader relearns the prefix before it writes anything
        (docs/design.md, "Order of writes").
        """
        sync: _Sync | None = None
        try:
            async with self._status_locks[name]:
                body: Mapping[str, Any] | None = self.dynamic_prefixes.get(name)
                if body is None or body["metadata"].get("deletionTimestamp") or not self.leading():
                    return
                state = self.sources.state(name)
                server_status = self._unconfirmed.get(name, body.get("status") or {})
                update = self.status_writer.decide(
                    name,
                    {**body, "status": server_status},
                    state,
                    self._pool_summary(name),
                    self._service_summary(name),
                    bgp=self._bgp_summary(name),
                )
                if update.status != body.get("status"):
                    body = self.dynamic_prefixes[name] = {**body, "status": update.status}
                self._arm_timer(name, update.status, state)
                sync = self._start_sync(name, body)
                if update.status == server_status:
                    self._unconfirmed.pop(name, None)
                else:
                    self._unconfirmed[name] = server_status
                    if sync is not None:
                        # what users reach first: the status once the pools are written
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(STATUS_AFTER_POOLS_SECONDS):
                                await sync.written.wait()
                    try:
                        written = await self.status_writer.write(name, server_status, update.status)
                    except ApiError as error:
                        # decided and written again a bit later, from the server's status (a
                        # static source will not report again to trigger it)
                        logger.warning("status not written: %s", error)
                        self._later(STATUS_RETRY_SECONDS, lambda: self.request_refresh(name))
                    else:
                        held = self.dynamic_prefixes.get(name)
                        server_now = self._unconfirmed.pop(name, None)
                        if written is not None and held is not None:  # (not deleted meanwhile)
                            if not is_older(written, held):
                                self._hold(name, written)
                            elif server_now is not None:
                                # a newer version came meanwhile: what the server has now
                                # includes this write (and anything else written since)
                                self.dynamic_prefixes[name] = {**held, "status": server_now}
                            events = update.events
                            self._post_in_order(
                                name, lambda: self.status_writer.announce(name, written, events)
                            )
        finally:
            if sync is not None:
                await sync.task  # its writes are part of this refresh, whatever happened

    def _start_sync(self, name: str, body: Mapping[str, Any]) -> _Sync | None:
        """Start bringing pools, Services and announcements to ``body`` if the prefixes in
        use or the spec changed since the last time (and the prefix was learnt here)."""
        inputs = (tuple(prefixes_in_use(body.get("status") or {})),
                  body["metadata"].get("generation"))  # fmt: skip
        if name not in self.live or self._synced_inputs.get(name) == inputs:
            return None
        self._synced_inputs[name] = inputs
        written = asyncio.Event()
        task = asyncio.create_task(self.sync_pools_of(name, written), name=f"sync:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _Sync(task, written)

    def _hold(self, name: str, body: Mapping[str, Any]) -> None:
        """Keep ``body``, as the server sent it, as the DynamicPrefix ``name``. While a
        decided status is not confirmed, the server's status is noted in `_unconfirmed`
        and the decided one stays, so pools are never rendered back to the older one."""
        if name in self._unconfirmed:
            self._unconfirmed[name] = body.get("status") or {}
            held = self.dynamic_prefixes.get(name)
            if held is not None:
                body = {**body, "status": held.get("status") or {}}
        self.dynamic_prefixes[name] = dict(body)

    def _post_in_order(self, name: str, posting: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Post events about the DynamicPrefix ``name`` in the background, each after the
        ones before it: nothing the operator does next waits for an event."""
        previous = self._event_tails.get(name)

        async def post() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await posting()

        task = self.spawn(post(), f"events:{name}", concerning=name)
        self._event_tails[name] = task

        def done(finished: asyncio.Task[Any]) -> None:
            if self._event_tails.get(name) is finished:
                del self._event_tails[name]

        task.add_done_callback(done)

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
        delay = max(0.0, (min(deadlines) - self.clock()).total_seconds()) + TIMER_SLACK_SECONDS
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(delay, lambda: self.request_refresh(name))

    def _pool_summary(self, name: str) -> PoolSummary | None:
        if name not in self.live or not self.pools_listed:
            return None
        return self.outcomes.summary(name, self.index.count_of(name))

    def _service_summary(self, name: str) -> PoolSummary | None:
        if name not in self.live or not self.pools_listed or not self.services_listed:
            return None
        return self.service_outcomes.summary(name, self.service_index.count_of(name))

    def _bgp_summary(self, name: str) -> BgpSummary | None:
        if name not in self.live or not self.pools_listed:
            return None
        return self.announcer.outcomes.get(name)

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

    def _refresh_pools_synced(self, name: str) -> None:
        if name not in self.dynamic_prefixes or name not in self.live:
            return
        if self.reconciler.in_batch(name):
            return  # a batch in progress reports once, at its end
        self.request_refresh(name)

    # --- pools -----------------------------------------------------------------------

    def holds(self, backend: PoolBackend, body: Mapping[str, Any]) -> bool:
        """Whether this version of a pool, or a newer one, is held already: the echo of our
        own write. Answered at once, so that the watcher spends no task on an echo (a prefix
        change echoes every pool); `on_pool` makes the same check for whatever gets past."""
        return self.index.holds(backend, body)

    async def on_pool(
        self,
        backend: PoolBackend,
        resource: Resource,
        event_type: str | None,
        body: Mapping[str, Any],
    ) -> None:
        """Handle one watch event of a pool of ``backend``."""
        key = PoolKey.of(backend, body)
        template = is_generated(body)
        if template is not None:
            await self._on_generated(PoolKey(key.backend, key.namespace, template), event_type,
                                     body)  # fmt: skip
            return
        self._pool_kinds_held.clear()  # which IPAM feeds a range may change
        if event_type == "DELETED":
            self._left(self.index.remove(key), key)
            self.reconciler.forget_warnings(key)
            if self.index.generated.get(key):
                # a Calico template deleted by its user takes its generated pools along
                await self.reconciler.release_generated(key)
            return
        if self.index.holds(backend, body):
            return  # the echo of our own write, or older: we hold this version already
        pool = Pool(backend, resource, dict(body))
        self._left(self.index.put(key, pool), key)
        if not self.leading():
            return
        changed = await self.reconcile_pool(key)
        reference = PoolReference.from_annotations(body["metadata"].get("annotations"))
        if reference is not None:
            self.request_announce(reference.dynamic_prefix)  # its selector or pools may differ
            if changed:
                self._refresh_pools_synced(reference.dynamic_prefix)

    def _left(self, name: str | None, key: PoolKey) -> None:
        """A pool no longer references the DynamicPrefix ``name``: it counts no more."""
        if name is not None:
            self.outcomes.forget(name, key)
            self._refresh_pools_synced(name)
            self.request_announce(name)

    async def _on_generated(
        self, template: PoolKey, event_type: str | None, body: Mapping[str, Any]
    ) -> None:
        if not self.index.note_generated(template, event_type, body):
            return  # a late event: we hold this version or a newer one (a write's answer)
        if self.index.get(template) is not None or event_type != "DELETED":
            await self.reconcile_pool(template)

    async def sync_pools_of(self, name: str, written: asyncio.Event | None = None) -> None:
        """Reconcile every pool that references ``name``, concurrently, then report it;
        ``written`` is set once the pools, Services and announcements are written, before
        the change's events are posted."""
        keys = self.index.keys_of(name)
        services = self.service_index.keys_of(name)
        self.reconciler.begin_batch(name)
        started = time.monotonic()
        try:
            await asyncio.gather(
                *self._workers(keys, self.reconcile_pool),
                *self._workers(services, self.reconcile_service),
                self.reconcile_announcements(name),
            )
        finally:
            updated = self.reconciler.end_batch(name)
            if written is not None:
                written.set()
        logger.info(
            "%d pool(s) reconciled, and %d Service(s), in %.0f ms",
            len(keys), len(services), (time.monotonic() - started) * 1000,
        )  # fmt: skip
        moved = list(self.services.updated.pop(name, {}))
        body = self.dynamic_prefixes.get(name)
        if body is not None:
            await self._announce(body, "PoolsUpdated", "pool(s)", updated)
            await self._announce(body, "ServicesUpdated", "Service(s)", moved)
            await self._announce(body, "AdvertisementsUpdated", "BGP object(s)",
                                 self.announcer.written.pop(name, []))  # fmt: skip
        self._refresh_pools_synced(name)

    def _workers(
        self, keys: Collection[PoolKey], reconcile: Callable[[PoolKey], Awaitable[bool]]
    ) -> list[Coroutine[Any, Any, None]]:
        """Workers that ``reconcile`` every key between them, as many as the reconcilers
        run at once: a fixed set rather than a task per pool (a thousand pools, a
        thousand tasks)."""
        pending = iter(keys)

        async def worker() -> None:
            for key in pending:
                try:
                    await reconcile(key)
                except Exception:  # one object's failure must not stop the others
                    logger.exception("reconciling %s failed", key)

        return [worker() for _ in range(min(self.concurrency, len(keys)))]

    async def _announce(
        self, body: Mapping[str, Any], reason: str, what: str, names: list[str]
    ) -> None:
        """One Normal event on the DynamicPrefix for a whole change, naming up to ten."""
        if not names:
            return
        current = (body.get("status") or {}).get("currentPrefix")
        listed = ", ".join(sorted(names)[:10]) + (", ..." if len(names) > 10 else "")
        await self.recorder.record(body, type="Normal", reason=reason,
                                   message=f"{len(names)} {what} updated for prefix {current}: "
                                   f"{listed}")  # fmt: skip

    async def reconcile_pool(self, key: PoolKey) -> bool:
        """Make one pool right and record the outcome for PoolsSynced; whether the outcome
        differs from the last one (worth a status refresh)."""
        if not self.leading():
            return False
        if not self.pools_listed:
            # before every kind was listed once, a Calico template may be seen before the
            # pools made from it; `mark_pools_listed` reconciles everything afterwards
            return False
        return await self.reconciler.reconcile(key)

    # --- Services ----------------------------------------------------------------------

    def holds_service(self, body: Mapping[str, Any]) -> bool:
        """Whether this version of a Service, or a newer one, is held (our write's echo)."""
        return self.service_index.holds(body)

    async def on_service(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Handle one watch event of a Service that opts in or carries our record."""
        key = service_key(body)
        if event_type == "DELETED":
            self.services.forget(key)
            self._left_service(self.service_index.remove(key), key)
            return
        if self.service_index.holds(body):
            return
        self._left_service(self.service_index.put(body), key)
        if self.service_index.get(key) is None:
            self.services.forget(key)
            return
        changed = await self.reconcile_service(key)
        name = (body["metadata"].get("annotations") or {}).get(api.ANNOTATION_NAME)
        if name and changed:
            self._refresh_pools_synced(str(name).strip())

    def _left_service(self, name: str | None, key: PoolKey) -> None:
        """A Service no longer names the DynamicPrefix ``name``: it counts no more."""
        if name is not None:
            self.service_outcomes.forget(name, key)
            self._refresh_pools_synced(name)

    async def reconcile_service(self, key: PoolKey) -> bool:
        """Make one Service right; whether its outcome changed (worth a status refresh)."""
        if not self.leading() or not self.pools_listed or not self.services_listed:
            return False
        return await self.services.reconcile(key)

    def _pool_kinds(self, reference: PoolReference) -> set[str]:
        """The pool kinds a Service's range or subnet feeds (which IPAM gives its address);
        kept until a pool event, since a prefix change asks it for every Service."""
        kinds = self._pool_kinds_held.get(reference)
        if kinds is None:
            pools = (self.index.get(key) for key in self.index.keys_of(reference.dynamic_prefix))
            kinds = pool_kinds_for(
                reference, ((p.backend.name, p.reference) for p in pools if p is not None)
            )
            self._pool_kinds_held[reference] = kinds
        return kinds

    # --- BGP announcements ---------------------------------------------------------------

    def bgp_kind_served(self, kind: BgpKind, resource: Resource | None) -> None:
        """A BGP kind was listed once (``resource``) or is served no more (None): every
        DynamicPrefix's announcements are decided again."""
        self.announcer.kind_served(kind, resource)
        for name in list(self.live):
            self.request_announce(name)

    def holds_bgp_object(self, kind: BgpKind, body: Mapping[str, Any]) -> bool:
        """Whether this version of a BGP object is held already (our write's echo)."""
        return self.announcer.holds(kind, body)

    def on_bgp_object(self, kind: BgpKind, event_type: str | None, body: dict[str, Any]) -> None:
        """A watch event of a BGP kind: held, and the DynamicPrefixes concerned reconciled
        (a user's edit or deletion of an object of ours is put right)."""
        if event_type is not None and self.announcer.holds(kind, body):
            return  # the echo of our own write
        for name in self.announcer.observe(kind, event_type, body):
            if kind.name in self.announcer.served:
                self.request_announce(name)

    def request_announce(self, name: str) -> None:
        """Reconcile the announcements of ``name`` soon; requests made meanwhile are
        served by one run."""
        if name in self._announce_pending or not self.leading():
            return
        self._announce_pending.add(name)

        async def announce() -> None:
            self._announce_pending.discard(name)
            await self.reconcile_announcements(name)
            body = self.dynamic_prefixes.get(name)
            if body is not None:
                await self._announce(body, "AdvertisementsUpdated", "BGP object(s)",
                                     self.announcer.written.pop(name, []))  # fmt: skip

        self.spawn(announce(), f"announce:{name}", concerning=name)

    async def reconcile_announcements(self, name: str) -> None:
        """Make the BGP announcements of ``name`` right; a changed outcome refreshes the
        status (BGPAdvertisementReady)."""
        if not self.leading() or not self.pools_listed:
            return
        if await self.announcer.reconcile(name):
            self._refresh_pools_synced(name)

    async def _release_announcements(self, name: str) -> None:
        try:
            await self.announcer.release(name)
        except Exception as error:
            logger.warning("BGP announcements of %s not released: %s", name, error)

    def _fed_pools(self, name: str) -> list[FedPool]:
        """The pools that reference ``name``, as far as announcing them matters."""
        pools = (self.index.get(key) for key in self.index.keys_of(name))
        fed = (FedPool.of(p.backend.name, p.body) for p in pools if p is not None)
        return [p for p in fed if p is not None]

    def _retry_service_later(self, key: PoolKey) -> None:
        self._later(
            WRITE_RETRY_SECONDS, lambda: self.spawn(self.reconcile_service(key), f"retry:{key}")
        )

    def _retry_later(self, key: PoolKey) -> None:
        self._later(
            WRITE_RETRY_SECONDS, lambda: self.spawn(self.reconcile_pool(key), f"retry:{key}")
        )

    def _later(self, delay: float, callback: Callable[[], object]) -> None:
        """Run ``callback`` after ``delay`` seconds (retries of failed API calls)."""
        asyncio.get_running_loop().call_later(delay, callback)
