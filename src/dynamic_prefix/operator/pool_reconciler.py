"""Making one pool right: render what it should hold (`backends`), write only the
difference, retry conflicts, release what the operator wrote when a pool is no longer
annotated, and say what happened (events, outcomes for ``PoolsSynced``).

A pool is rendered from the DynamicPrefix's *status* (through `resolve_placements`),
never from a source's memory, so a restart or a new leader writes what was decided.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from dynamic_prefix.backends.base import (
    Create,
    Delete,
    Patch,
    Placement,
    Plan,
    PoolReference,
    ReferenceProblem,
    plan_pool,
)
from dynamic_prefix.kube.api import KubeApi
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.kube.errors import ApiError, Conflict, NotFound, TemporaryError
from dynamic_prefix.kube.events import EventRecorder, OncePerMessage
from dynamic_prefix.model import api
from dynamic_prefix.model.spec import InvalidSpec, validate_dynamic_prefix
from dynamic_prefix.model.status import format_time
from dynamic_prefix.operator import logs
from dynamic_prefix.operator.counters import ControllerCounters, metric_label
from dynamic_prefix.operator.outcomes import PoolOutcomes
from dynamic_prefix.operator.placements import PlacementCache
from dynamic_prefix.operator.pool_index import Pool, PoolIndex, PoolKey

logger = logging.getLogger(__name__)

ANNOTATION_LAST_SYNC: Final = f"{api.GROUP}/last-sync"
"""When the operator last changed the object (the Go operator's annotation); removed
when it lets the object go."""


def with_last_sync(body: Mapping[str, Any], moment: str | None) -> dict[str, Any]:
    """A merge patch that also sets (or, None, removes) ``last-sync``."""
    metadata = dict(body.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}),
                               ANNOTATION_LAST_SYNC: moment}  # fmt: skip
    return {**body, "metadata": metadata}


class LastSyncText:
    """``last-sync`` for now: `format_time` of the clock, formatted once per second
    rather than once per object of a change."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self._held: tuple[int, str] = (-1, "")

    def __call__(self) -> str:
        moment = self._clock()
        second = int(moment.timestamp())
        if self._held[0] != second:
            self._held = (second, format_time(moment))
        return self._held[1]


DYNAMIC_PREFIXES: Final = Resource(
    api.GROUP, api.VERSION, api.PLURAL, namespaced=False, kind=api.KIND
)
MAX_ATTEMPTS: Final = 6


class NotYet:
    """A reconcile that could not judge the pool yet (no prefix learnt in this process)."""


NOT_YET: Final = NotYet()


class PoolReconciler:
    """Reconciles and releases pools of the `PoolIndex`; see the module docstring."""

    def __init__(
        self,
        client: KubeApi,
        recorder: EventRecorder,
        index: PoolIndex,
        outcomes: PoolOutcomes,
        counters: ControllerCounters,
        *,
        dynamic_prefixes: Mapping[str, Mapping[str, Any]],
        live: set[str],
        retry_later: Callable[[PoolKey], None],
        concurrency: int = 64,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.index = index
        self.outcomes = outcomes
        self.counters = counters
        self._dynamic_prefixes = dynamic_prefixes
        self._live = live
        self._retry_later = retry_later
        self._locks: collections.defaultdict[PoolKey, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._semaphore = asyncio.Semaphore(concurrency)
        self.placements = PlacementCache()
        self._once = OncePerMessage(recorder)
        self._batches: collections.Counter[str] = collections.Counter()
        self._batch_updates: collections.defaultdict[str, list[str]] = collections.defaultdict(list)
        self._last_sync = LastSyncText(clock)

    # --- batches: one event on the DynamicPrefix for a whole prefix change ---------------

    def begin_batch(self, name: str) -> None:
        self._batches[name] += 1

    def end_batch(self, name: str) -> list[str]:
        """Close a batch; the pools it updated (when it was the last one open)."""
        self._batches[name] -= 1
        return [] if self._batches[name] else self._batch_updates.pop(name, [])

    def in_batch(self, name: str) -> bool:
        return self._batches[name] > 0

    # --- reconciling ---------------------------------------------------------------------

    async def reconcile(self, key: PoolKey) -> bool:
        """Make one pool right and record the outcome; whether the outcome changed."""
        async with self._locks[key], self._semaphore:
            pool = self.index.get(key)
            if pool is None:
                if self.index.generated.get(key):
                    await self._release_generated(key)
                return False
            reference = pool.reference
            if reference is None:
                await self._release_locked(key, pool)
                return False
            with logs.concerning(reference.dynamic_prefix):
                outcome = await self._reconcile_referenced(key, pool, reference)
            if isinstance(outcome, NotYet):
                return False
            if outcome is not None and reference.dynamic_prefix in self._dynamic_prefixes:
                # (a name no object has is only counted while it exists: no endless series)
                self.counters.reconcile_errors[reference.dynamic_prefix, key.backend] += 1
            return self.outcomes.record(reference.dynamic_prefix, key, outcome)

    async def _reconcile_referenced(
        self, key: PoolKey, pool: Pool, reference: PoolReference
    ) -> str | NotYet | None:
        dynamic_prefix = self._dynamic_prefixes.get(reference.dynamic_prefix)
        if dynamic_prefix is None:
            try:
                await self.client.get(DYNAMIC_PREFIXES, reference.dynamic_prefix)
            except NotFound:
                problem = (
                    f"DynamicPrefix {reference.dynamic_prefix} does not exist; pool left alone"
                )
                await self.warn(key, pool, "DynamicPrefixNotFound", problem)
                return problem
            return NOT_YET  # its event will arrive; nothing to do before it is live
        if reference.dynamic_prefix not in self._live:
            invalid = validate_dynamic_prefix(dynamic_prefix)
            if isinstance(invalid, InvalidSpec):
                problem = f"DynamicPrefix {reference.dynamic_prefix} is invalid: {invalid}"
                await self.warn(key, pool, "InvalidReference", f"{problem}; pool left alone")
                return problem
            return NOT_YET  # nothing is written before the prefix is (re)learnt
        try:
            placements = self.placements(reference, dynamic_prefix)
        except ReferenceProblem as error:
            await self.warn(key, pool, "InvalidReference", f"{error}; pool left alone")
            return str(error)
        if not placements:
            return NOT_YET
        return await self._apply_with_retries(key, pool, placements)

    async def _apply_with_retries(
        self, key: PoolKey, pool: Pool, placements: tuple[Placement, ...]
    ) -> str | None:
        delay = 0.2
        for attempt in range(MAX_ATTEMPTS):
            plan = self._plan(key, pool, placements)
            await self._tell_problems(key, pool, plan)
            try:
                await self._apply(pool, plan, key)
                if plan.actions:
                    self.counters.events[pool.reference_name, "pool_write"] += 1
                    await self._updated(key, pool, placements)
                # written or not, a pool with conflicting entries is not right
                return "; ".join(plan.conflicts) or None
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
                self.counters.events[pool.reference_name, "pool_error"] += 1
                await self.warn(key, pool, "UpdateFailed", f"cannot update the pool: {error}")
                return str(error)
        self._retry_later(key)
        return "kept conflicting with other writers"

    def _plan(self, key: PoolKey, pool: Pool, placements: tuple[Placement, ...] | None) -> Plan:
        generated = list(self.index.generated_of(key).values())
        reference = pool.reference
        dynamic_prefix = None if reference is None else self._dynamic_prefixes.get(
            reference.dynamic_prefix)  # fmt: skip
        if placements is None or reference is None or dynamic_prefix is None:
            return pool.backend.plan(pool.resource, pool.body, placements, generated=generated)
        # the same judgement `dynamic-prefix status` makes (placements cached per version)
        return plan_pool(
            pool.backend, pool.resource, pool.body, reference, dynamic_prefix,
            generated=generated, placements_for=self.placements,
            retired_for=self.placements.retired,
        )  # fmt: skip

    async def _apply(self, pool: Pool, plan: Plan, key: PoolKey, *, release: bool = False) -> None:
        generated = self.index.generated_of(key)
        for action in plan.actions:
            match action:
                case Patch(resource=resource, name=name, namespace=namespace, body=body):
                    if resource == pool.resource and name == pool.body["metadata"]["name"]:
                        body = with_last_sync(body, None if release else self._last_sync())
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

    async def _updated(self, key: PoolKey, pool: Pool, placements: tuple[Placement, ...]) -> None:
        name = pool.reference_name
        if name and self.in_batch(name):
            # one event on the DynamicPrefix tells about the whole batch
            self._batch_updates[name].append(str(key))
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

    async def _refetch(self, key: PoolKey, pool: Pool) -> Pool | None:
        metadata = pool.body["metadata"]
        try:
            body = await self.client.get(
                pool.resource, metadata["name"], namespace=metadata.get("namespace")
            )
        except NotFound:
            return None
        fresh = Pool(pool.backend, pool.resource, body)
        self.index.pools[key] = fresh
        return fresh

    async def _tell_problems(self, key: PoolKey, pool: Pool, plan: Plan) -> None:
        for reason, found in (("MalformedEntries", plan.problems),
                              ("OverlappingEntries", plan.overlaps),
                              ("StaleEntries", plan.stale),
                              ("UnsupportedPool", plan.unsupported)):  # fmt: skip
            if found:
                self.counters.events[pool.reference_name, metric_label(reason)] += 1
                await self.warn(key, pool, reason, "; ".join(found))

    async def warn(self, key: PoolKey, pool: Pool, reason: str, message: str) -> None:
        """A Warning event on the pool, once per distinct message of each reason."""
        await self._once.post(key, pool.body, type="Warning", reason=reason, message=message)

    def forget_warnings(self, key: PoolKey) -> None:
        """The pool is gone: a pool of the same name later is warned afresh."""
        self._once.forget(key)

    # --- releasing -----------------------------------------------------------------------

    async def release(self, key: PoolKey) -> None:
        """Remove the operator's entries from a pool (its DynamicPrefix is being deleted)."""
        async with self._locks[key]:
            pool = self.index.get(key)
            if pool is not None:
                await self._release_locked(key, pool)

    async def release_generated(self, key: PoolKey) -> None:
        """Delete the pools generated from a template that was deleted."""
        async with self._locks[key]:
            await self._release_generated(key)

    async def _release_locked(self, key: PoolKey, pool: Pool) -> None:
        plan = self._plan(key, pool, None)
        if plan.in_sync:
            return
        for _ in range(MAX_ATTEMPTS):
            try:
                await self._apply(pool, plan, key, release=True)
                break
            except Conflict:
                fresh = await self._refetch(key, pool)
                if fresh is None:
                    return
                pool = fresh
                plan = self._plan(key, pool, None)
        self.outcomes.forget_pool(key)
        await self.recorder.record(
            pool.body,
            type="Normal",
            reason="PoolReleased",
            message="the operator's entries were removed; entries written by users were kept",
        )

    async def _release_generated(self, key: PoolKey) -> None:
        for name, body in list(self.index.generated.get(key, {}).items()):
            resource = self.index.resource_of(key.backend, body)
            if resource is None:
                continue
            with contextlib.suppress(NotFound):
                await self.client.delete(resource, name)
