"""Making one Service right: pin its address in every prefix in use where its IPAM reads
it, point its DNS target at the current one, write only the difference, and give back
what the operator wrote when the Service or its DynamicPrefix lets go.

Like pools, a Service is rendered from the DynamicPrefix's *status*, and nothing is
written for a DynamicPrefix whose prefix was not (re)learnt in this process, so a restart
never moves a Service back or away from its current address.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from dynamic_prefix.backends.base import (
    Patch,
    PoolReference,
    ReferenceProblem,
)
from dynamic_prefix.backends.service import (
    SERVICES,
    ServiceInputs,
    WaitingForAddress,
    plan_service,
    service_inputs,
)
from dynamic_prefix.backends.service_addresses import ServiceReference
from dynamic_prefix.kube.api import KubeApi
from dynamic_prefix.kube.errors import ApiError, Conflict, NotFound, TemporaryError
from dynamic_prefix.kube.events import EventRecorder, OncePerMessage
from dynamic_prefix.model.spec import InvalidSpec
from dynamic_prefix.operator import logs
from dynamic_prefix.operator.counters import ControllerCounters
from dynamic_prefix.operator.outcomes import PoolOutcomes
from dynamic_prefix.operator.placements import PlacementCache
from dynamic_prefix.operator.pool_index import PoolKey
from dynamic_prefix.operator.pool_reconciler import (
    DYNAMIC_PREFIXES,
    LastSyncText,
    with_last_sync,
)
from dynamic_prefix.operator.service_index import ServiceIndex, named_prefix

logger = logging.getLogger(__name__)


class Again:
    """The Service changed under a write: read it again and decide afresh."""


AGAIN: Final = Again()

MAX_ATTEMPTS: Final = 6
DYNAMIC_PREFIX_MISSING: Final = "DynamicPrefixNotFound"


def named_reference(body: Mapping[str, Any]) -> PoolReference:
    """The range or subnet a Service names, read leniently (a bad suffix is judged later)."""
    annotations = dict((body.get("metadata") or {}).get("annotations") or {})
    annotations.pop("dynamic-prefix.io/suffix", None)
    reference = ServiceReference.from_annotations(annotations)
    return reference.placement if reference is not None else PoolReference("")


class ServiceReconciler:
    """Reconciles and releases the Services of the `ServiceIndex`; see the module docstring."""

    def __init__(
        self,
        client: KubeApi,
        recorder: EventRecorder,
        index: ServiceIndex,
        outcomes: PoolOutcomes,
        counters: ControllerCounters,
        *,
        dynamic_prefixes: Mapping[str, Mapping[str, Any]],
        live: set[str],
        pool_kinds: Callable[[PoolReference], set[str]],
        retry_later: Callable[[PoolKey], None],
        concurrency: int = 64,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.client = client
        self._last_sync = LastSyncText(clock)
        self.recorder = recorder
        self.index = index
        self.outcomes = outcomes
        self.counters = counters
        self._dynamic_prefixes = dynamic_prefixes
        self._live = live
        self._pool_kinds = pool_kinds
        self._retry_later = retry_later
        self._locks: collections.defaultdict[PoolKey, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._semaphore = asyncio.Semaphore(concurrency)
        self.placements = PlacementCache()
        self._once = OncePerMessage(recorder)
        self.updated: collections.defaultdict[str, dict[str, None]] = collections.defaultdict(dict)
        """Services written per DynamicPrefix since the caller last took them, each once
        (one event on the DynamicPrefix for a whole prefix change: a Service written on
        its own event before the change, and again in it, is one Service updated)."""

    async def reconcile(self, key: PoolKey) -> bool:
        """Make one Service right and record the outcome; whether the outcome changed.

        After a conflict the Service is read again and everything is decided afresh from
        it (a user's edit of its suffix or DynamicPrefix meanwhile counts)."""
        async with self._locks[key], self._semaphore:
            for _ in range(MAX_ATTEMPTS):
                body = self.index.get(key)
                if body is None:
                    return False
                name = named_prefix(body)
                if name is None:
                    released = await self._release(key, body, "its annotation was removed")
                    if released is AGAIN:
                        continue
                    return False
                with logs.concerning(name):
                    outcome = await self._reconcile_named(key, body, name)
                if outcome is AGAIN:
                    continue
                if outcome is None or isinstance(outcome, str):
                    if outcome is not None and name in self._dynamic_prefixes:
                        self.counters.reconcile_errors[name, "service"] += 1
                    return self.outcomes.record(name, key, outcome)
                return False
            self._retry_later(key)
            return False

    async def _reconcile_named(
        self, key: PoolKey, body: dict[str, Any], name: str
    ) -> str | bool | Again | None:
        """None: in sync; a string: what is wrong; False: not judged yet; AGAIN: read
        again after a conflict."""
        dynamic_prefix = self._dynamic_prefixes.get(name)
        if dynamic_prefix is None:
            try:
                await self.client.get(DYNAMIC_PREFIXES, name)
            except NotFound:
                problem = f"DynamicPrefix {name} does not exist"
                await self.warn(key, body, DYNAMIC_PREFIX_MISSING, problem + "; Service left alone")
                # what the operator wrote for another one is given back
                released = await self._release(key, body, problem, quiet=True)
                return AGAIN if released is AGAIN else problem
            return False
        spec = self.placements.spec(dynamic_prefix)
        if isinstance(spec, InvalidSpec):
            problem = f"DynamicPrefix {name} is invalid"
            await self.warn(key, body, "InvalidReference", problem + "; Service left alone")
            return problem
        if name not in self._live:
            return False
        try:
            reference, inputs = service_inputs(
                body,
                dynamic_prefix,
                pool_kinds=self._pool_kinds(named_reference(body)),
                placements_for=self.placements,
                spec=spec,
            )
            if reference is None:
                return None
            if inputs is None:
                await self.tell(
                    key, body, "LeftToIpam",
                    f"DynamicPrefix {name} is in transition.mode simple: this Service's "
                    "addresses are left to its IPAM (mode ha pins them in every prefix)",
                )  # fmt: skip
            outcome, _ = await self._apply_with_retries(key, body, reference, inputs)
            return outcome
        except ReferenceProblem as error:
            await self.warn(key, body, "InvalidReference", f"{error}; nothing written")
            if (body.get("spec") or {}).get("type") != "LoadBalancer":
                # no longer a load balancer: what the operator wrote has no use
                released = await self._release(key, body, str(error), quiet=True)
                if released is AGAIN:
                    return AGAIN
            return str(error)
        except WaitingForAddress as error:
            return str(error)

    async def _apply_with_retries(
        self,
        key: PoolKey,
        body: dict[str, Any],
        reference: ServiceReference | None,
        inputs: ServiceInputs | None,
    ) -> tuple[str | Again | None, bool]:
        """How it ended (None: in sync, a string: what is wrong, AGAIN: the Service
        changed meanwhile and was read again) and whether it wrote."""
        delay = 0.2
        for attempt in range(MAX_ATTEMPTS):
            plan = plan_service(body, reference, inputs)
            if plan.problems:
                await self.warn(key, body, "MalformedEntries", "; ".join(plan.problems))
            try:
                for action in plan.actions:
                    if isinstance(action, Patch):
                        moment = None if inputs is None else self._last_sync()
                        body = await self.client.patch(
                            SERVICES, action.name, with_last_sync(action.body, moment),
                            namespace=action.namespace, drop_echo=True,
                        )  # fmt: skip
                        self.index.put(body)
                if plan.actions and reference is not None:
                    self.counters.events[reference.placement.dynamic_prefix, "service_write"] += 1
                    self.updated[reference.placement.dynamic_prefix][str(key)] = None
                return None, bool(plan.actions)
            except Conflict:
                fresh = await self._refetch(key, body)
                return (None if fresh is None else AGAIN), False
            except NotFound:
                self.index.remove(key)
                return None, False
            except TemporaryError as error:
                if attempt == MAX_ATTEMPTS - 1:
                    self._retry_later(key)
                    return f"API error: {error}", False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except ApiError as error:
                await self.warn(key, body, "UpdateFailed", f"cannot update the Service: {error}")
                return str(error), False
        self._retry_later(key)
        return "kept failing", False

    async def _refetch(self, key: PoolKey, body: Mapping[str, Any]) -> dict[str, Any] | None:
        metadata = body["metadata"]
        try:
            fresh: dict[str, Any] = await self.client.get(
                SERVICES, metadata["name"], namespace=metadata.get("namespace")
            )
        except NotFound:
            self.index.remove(key)
            return None
        self.index.put(fresh)
        return fresh

    async def warn(self, key: PoolKey, body: Mapping[str, Any], reason: str, message: str) -> None:
        """A Warning event on the Service, once per distinct message."""
        await self._once.post(key, body, type="Warning", reason=reason, message=message)

    async def tell(self, key: PoolKey, body: Mapping[str, Any], reason: str, message: str) -> None:
        """A Normal event on the Service, once per distinct message."""
        await self._once.post(key, body, type="Normal", reason=reason, message=message)

    def forget(self, key: PoolKey) -> None:
        """The Service is gone: a Service of the same name later is judged afresh."""
        self._once.forget(key)
        self.outcomes.forget_pool(key)

    async def release(self, key: PoolKey, why: str) -> None:
        """Give back what the operator wrote on one Service (its DynamicPrefix goes);
        `ReleaseFailed` if it could not be written, so the finalizer stays and retries."""
        async with self._locks[key]:
            for _ in range(MAX_ATTEMPTS):
                body = self.index.get(key)
                if body is None:
                    return
                outcome = await self._release(key, body, why)
                if outcome is AGAIN:
                    continue
                if outcome is not None:
                    raise ReleaseFailed(f"service {key}: {outcome}")
                return
            raise ReleaseFailed(f"service {key}: kept conflicting with other writers")

    async def _release(
        self, key: PoolKey, body: dict[str, Any], why: str, *, quiet: bool = False
    ) -> str | Again | None:
        """Take back the operator's entries and records; the outcome of the write."""
        if not quiet:
            self.outcomes.forget_pool(key)
        outcome, wrote = await self._apply_with_retries(key, body, None, None)
        if wrote:
            await self.recorder.record(
                body,
                type="Normal",
                reason="ServiceReleased",
                message=f"{why}: the operator's addresses and DNS target were removed; "
                "entries written by users were kept",
            )
        return outcome


class ReleaseFailed(Exception):
    """What the operator wrote on a Service could not be taken back (yet)."""
