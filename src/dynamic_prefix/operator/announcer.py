"""The BGP announcements of each DynamicPrefix, kept in step with its status and pools.

`plan_announcements` (pure, `backends.bgp`) says what should exist; this applies it:
objects the operator keeps whole (CiliumBGPAdvertisement, MetalLB BGPAdvertisement) are
created, patched where they differ and deleted when no longer wanted; Calico's shared
BGPConfiguration is patched with optimistic concurrency, one DynamicPrefix at a time.
What the watches of those kinds show is held here (`objects`, `calico_config`), so that
a pass over unchanged state writes nothing, and a user's edit or deletion of an object
of ours is repaired by the pass its event starts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from dynamic_prefix.backends.bgp import (
    BGP_KINDS,
    CALICO_BGP_CONFIGURATION,
    CALICO_CONFIGURATION_NAME,
    BgpKind,
    FedPool,
    OwnedObject,
    calico_change,
    is_ours,
    object_patch,
    owner_of,
    plan_announcements,
    read_record,
)
from dynamic_prefix.kube.api import KubeApi
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.kube.errors import ApiError, Conflict, NotFound
from dynamic_prefix.model.spec import DynamicPrefixSpec, InvalidSpec
from dynamic_prefix.model.status import BgpSummary

logger = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 3
"""Writes that meet a newer version (409) are decided again from it this many times."""

ObjectKey = tuple[str, str, str]
"""(kind name, namespace or "", name) of an object of a BGP kind."""


def object_key(kind: BgpKind, body: Mapping[str, Any]) -> ObjectKey:
    metadata = body.get("metadata") or {}
    return (kind.name, str(metadata.get("namespace") or ""), str(metadata.get("name", "")))


class NotOurs(Exception):
    """An object by the name the operator would use exists and was made by someone else
    (a user, or the operator for another DynamicPrefix whose name and subnet join into the
    same ``dp-...`` name), or its kind is no longer served."""


class NotReleased(Exception):
    """Announcements of a DynamicPrefix being deleted could not all be removed."""


class Announcer:
    """Applies `plan_announcements` per DynamicPrefix; see the module docstring."""

    def __init__(
        self,
        client: KubeApi,
        *,
        dynamic_prefixes: Mapping[str, Mapping[str, Any]],
        live: set[str],
        pools_of: Callable[[str], list[FedPool]],
        spec_of: Callable[[Mapping[str, Any]], DynamicPrefixSpec | InvalidSpec],
    ) -> None:
        self.client = client
        self.dynamic_prefixes = dynamic_prefixes
        self.live = live
        self.pools_of = pools_of
        self.spec_of = spec_of
        """The validated spec, once per DynamicPrefix version (the pools' `PlacementCache`)."""
        self.served: dict[str, Resource] = {}
        """BGP kinds the cluster serves and that were listed once, by kind name."""
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.calico_config: dict[str, Any] | None = None
        self.outcomes: dict[str, BgpSummary] = {}
        self.written: dict[str, list[str]] = collections.defaultdict(list)
        """Objects written per DynamicPrefix since the controller last announced them."""
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._calico_lock = asyncio.Lock()

    # --- what the watches show -----------------------------------------------------------

    def kind_served(self, kind: BgpKind, resource: Resource | None) -> None:
        """A BGP kind was listed (``resource``) or is no longer served (None)."""
        if resource is None:
            self.served.pop(kind.name, None)
            for key in [k for k in self.objects if k[0] == kind.name]:
                del self.objects[key]
            if kind is CALICO_BGP_CONFIGURATION:
                self.calico_config = None
        else:
            self.served[kind.name] = resource

    def holds(self, kind: BgpKind, body: Mapping[str, Any]) -> bool:
        """Whether this version of an object, or a newer one, is held (our write's echo)."""
        held = self._held(kind, body)
        if held is None:
            return False
        version = (body.get("metadata") or {}).get("resourceVersion")
        return version is not None and version == (held.get("metadata") or {}).get(
            "resourceVersion"
        )

    def _held(self, kind: BgpKind, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if kind is CALICO_BGP_CONFIGURATION:
            return self.calico_config
        return self.objects.get(object_key(kind, body))

    def observe(self, kind: BgpKind, event_type: str | None, body: dict[str, Any]) -> list[str]:
        """Hold what a watch event shows; the DynamicPrefixes it concerns (to reconcile)."""
        if kind is CALICO_BGP_CONFIGURATION:
            if (body.get("metadata") or {}).get("name") != CALICO_CONFIGURATION_NAME:
                return []
            self.calico_config = None if event_type == "DELETED" else body
            record = read_record(self.calico_config) or {}
            return sorted(set(record) | self._announcing_to_calico())
        key = object_key(kind, body)
        if event_type == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = body
        owner = owner_of(body)
        return (
            [owner] if owner is not None and is_ours(body, self.dynamic_prefixes.get(owner)) else []
        )

    def _announcing_to_calico(self) -> set[str]:
        return {name for name, summary in self.outcomes.items() if summary.wanted}

    # --- reconcile -----------------------------------------------------------------------

    async def reconcile(self, name: str) -> bool:
        """Make the announcements of ``name`` right; whether the outcome changed."""
        async with self._locks[name]:
            body = self.dynamic_prefixes.get(name)
            if body is None or name not in self.live or body["metadata"].get("deletionTimestamp"):
                return False
            if not self._concerns(name, body):
                # the common case, asked on every prefix change: nothing to announce or undo
                summary = BgpSummary(wanted=False)
                changed = self.outcomes.get(name) != summary
                self.outcomes[name] = summary
                return changed
            plan = plan_announcements(body, self.pools_of(name), self.served)
            if plan is None:
                return False
            problems = list(plan.problems)
            failed: set[str] = set()
            wanted: set[ObjectKey] = set()
            for desired in plan.objects:
                wanted.add((desired.kind.name, desired.namespace or "", desired.name))
                try:
                    await self._put(desired, body)
                except NotOurs as error:
                    problems.append(str(error))
                    failed.add(desired.describe())
                except ApiError as error:
                    problems.append(f"{desired.describe()}: {error}")
                    failed.add(desired.describe())
            problems += await self._delete_unwanted(name, body, wanted)
            if CALICO_BGP_CONFIGURATION.name in self.served:
                problem = await self._calico(
                    name, plan.calico_cidrs, plan.calico_retired, dict(plan.calico_communities)
                )
                if problem is not None:
                    problems.append(problem)
                    failed.add("calico")
            advertised = tuple(
                line for line in plan.advertised
                if line not in failed and not (line.startswith("Calico") and "calico" in failed)
            )  # fmt: skip
            summary = BgpSummary(advertised, tuple(problems), plan.wanted, plan.waiting)
            changed = self.outcomes.get(name) != summary
            self.outcomes[name] = summary
            return changed

    def _concerns(self, name: str, body: Mapping[str, Any]) -> bool:
        """Whether ``name`` asks for announcements, or has some to undo."""
        spec = self.spec_of(body)
        if not isinstance(spec, InvalidSpec) and any(
            s.bgp is not None and s.bgp.advertise for s in spec.subnets
        ):
            return True
        summary = self.outcomes.get(name)
        return (
            (summary is not None and summary.wanted)
            or any(owner_of(o) == name for o in self.objects.values())
            or name in (read_record(self.calico_config) or {})
        )

    async def release(self, name: str) -> None:
        """Remove every announcement of ``name`` (being deleted): its objects, and its
        CIDRs from Calico's BGPConfiguration (users' kept). Raises `ApiError` on failure."""
        async with self._locks[name]:
            body = self.dynamic_prefixes.get(name)
            problems = await self._delete_unwanted(name, body, set())
            if CALICO_BGP_CONFIGURATION.name in self.served:
                problem = await self._calico(name, (), (), {})
                if problem is not None:
                    problems.append(problem)
            self.outcomes.pop(name, None)
            self.written.pop(name, None)
            if problems:
                raise NotReleased("; ".join(problems))

    async def _put(self, desired: OwnedObject, dynamic_prefix: Mapping[str, Any]) -> None:
        name = str(dynamic_prefix["metadata"]["name"])
        resource = self.served.get(desired.kind.name)
        if resource is None:  # its CRD went while this pass ran
            raise NotOurs(f"{desired.describe()}: {desired.kind.kind} is no longer served")
        key = (desired.kind.name, desired.namespace or "", desired.name)
        for _ in range(MAX_ATTEMPTS):
            observed = self.objects.get(key)
            if observed is None:
                try:
                    self.objects[key] = await self.client.create(resource, desired.body)
                    self.written[name].append(desired.describe())
                    return
                except Conflict:
                    observed = await self.client.get(
                        resource, desired.name, namespace=desired.namespace
                    )
                    self.objects[key] = observed
            owner = owner_of(observed)
            if not is_ours(observed, dynamic_prefix) or owner not in (None, name):
                raise NotOurs(
                    f"{desired.describe()} exists and was not made by the operator for {name}: "
                    "left alone (delete or rename it to have the subnet announced)"
                )
            patch = object_patch(observed, desired)
            if patch is None:
                return
            try:
                self.objects[key] = await self.client.patch(
                    resource, desired.name, patch, namespace=desired.namespace
                )
                self.written[name].append(desired.describe())
                return
            except Conflict:
                self.objects.pop(key, None)
                with contextlib.suppress(NotFound):
                    self.objects[key] = await self.client.get(
                        resource, desired.name, namespace=desired.namespace
                    )
            except NotFound:
                self.objects.pop(key, None)
        raise Conflict(409, f"{desired.describe()} kept changing while it was written")

    async def _delete_unwanted(
        self, name: str, dynamic_prefix: Mapping[str, Any] | None, wanted: set[ObjectKey]
    ) -> list[str]:
        """Delete the objects of ours made for ``name`` that are not ``wanted``."""
        problems: list[str] = []
        for key, observed in list(self.objects.items()):
            if key in wanted or owner_of(observed) != name or not is_ours(observed, dynamic_prefix):
                continue
            kind = next(k for k in BGP_KINDS if k.name == key[0])
            resource = self.served.get(kind.name)
            if resource is None:
                continue
            try:
                await self.client.delete(resource, key[2], namespace=key[1] or None)
                self.written[name].append(f"{kind.kind} {key[1] + '/' if key[1] else ''}{key[2]} "
                                          "deleted")  # fmt: skip
            except NotFound:
                pass
            except ApiError as error:
                problems.append(f"{kind.kind} {key[2]} not deleted: {error}")
                continue
            self.objects.pop(key, None)
        return problems

    async def _calico(
        self,
        name: str,
        cidrs: tuple[str, ...],
        retired: tuple[str, ...],
        communities: dict[str, str],
    ) -> str | None:
        """Make Calico's BGPConfiguration list ``cidrs`` for ``name``; a problem or None."""
        resource = self.served.get(CALICO_BGP_CONFIGURATION.name)
        if resource is None:
            return f"{CALICO_BGP_CONFIGURATION.kind} is no longer served"
        async with self._calico_lock:
            for _ in range(MAX_ATTEMPTS):
                change = calico_change(
                    self.calico_config,
                    name,
                    cidrs,
                    retired,
                    communities=communities,
                    api_version=resource.api_version,
                )
                if change.problem is not None:
                    return change.problem
                try:
                    if change.create is not None:
                        self.calico_config = await self.client.create(resource, change.create)
                    elif change.patch is not None:
                        self.calico_config = await self.client.patch(
                            resource, CALICO_CONFIGURATION_NAME, change.patch
                        )
                    else:
                        return None
                    self.written[name].append(
                        f"BGPConfiguration {CALICO_CONFIGURATION_NAME} serviceLoadBalancerIPs"
                    )
                    return None
                except (Conflict, NotFound):
                    try:
                        self.calico_config = await self.client.get(
                            resource, CALICO_CONFIGURATION_NAME
                        )
                    except NotFound:
                        self.calico_config = None
                except ApiError as error:
                    return f"BGPConfiguration {CALICO_CONFIGURATION_NAME}: {error}"
        return f"BGPConfiguration {CALICO_CONFIGURATION_NAME} kept changing while it was written"
