"""The pools the operator knows of, by key and by the DynamicPrefix each references.

Filled from the pool watches: every pool of every served kind (annotated or not, since a
pool whose annotation was removed still holds entries to release), and the Calico pools
generated from each template. A prefix change reconciles the pools of one DynamicPrefix
from here, without listing anything.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynamic_prefix.backends.base import PoolBackend, PoolReference
from dynamic_prefix.backends.registry import BACKENDS
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.kube.objects import is_older, same_version
from dynamic_prefix.model import api


@dataclass(frozen=True, slots=True)
class PoolKey:
    """Identifies one pool object of one backend."""

    backend: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.backend}/{self.namespace + '/' if self.namespace else ''}{self.name}"

    @classmethod
    def of(cls, backend: PoolBackend, body: Mapping[str, Any]) -> PoolKey:
        metadata = body["metadata"]
        return cls(backend.name, metadata.get("namespace") or "", metadata["name"])


@dataclass
class Pool:
    """The latest version of one pool object seen, and how to render it."""

    backend: PoolBackend
    resource: Resource
    body: dict[str, Any]
    _read: tuple[object, PoolReference | None] = field(
        default=(None, None), init=False, repr=False, compare=False
    )

    @property
    def reference(self) -> PoolReference | None:
        """What the pool's annotations ask for (None: not annotated); read once per
        version of the annotations (a prefix change asks for every pool several times)."""
        annotations = self.body["metadata"].get("annotations")
        if annotations is not None and self._read[0] is annotations:
            return self._read[1]
        reference = PoolReference.from_annotations(annotations)
        self._read = (annotations, reference)
        return reference

    @property
    def reference_name(self) -> str:
        """The DynamicPrefix the pool references ("" if none), for metric labels."""
        reference = self.reference
        return "" if reference is None else reference.dynamic_prefix


def is_generated(body: Mapping[str, Any]) -> str | None:
    """The template a pool was generated from (Calico), or None for a user's pool."""
    metadata = body["metadata"]
    template = (metadata.get("annotations") or {}).get(api.ANNOTATION_GENERATED_FROM)
    if template is not None and api.LABEL_GENERATED_FROM in (metadata.get("labels") or {}):
        return str(template)
    return None


class PoolIndex:
    """Pools by key, the keys by referenced DynamicPrefix, generated pools by template."""

    def __init__(self) -> None:
        self.pools: dict[PoolKey, Pool] = {}
        self._by_prefix: collections.defaultdict[str, set[PoolKey]] = collections.defaultdict(set)
        self.generated: collections.defaultdict[PoolKey, dict[str, dict[str, Any]]] = (
            collections.defaultdict(dict)
        )

    def get(self, key: PoolKey) -> Pool | None:
        return self.pools.get(key)

    def keys_of(self, name: str) -> list[PoolKey]:
        """The pools that reference the DynamicPrefix ``name``."""
        return list(self._by_prefix.get(name, ()))

    def count_of(self, name: str) -> int:
        return len(self._by_prefix.get(name, ()))

    def unreferenced(self) -> list[PoolKey]:
        """Pools no DynamicPrefix references: they may hold entries to release."""
        return [key for key, pool in self.pools.items() if pool.reference is None]

    def holds(self, backend: PoolBackend, body: Mapping[str, Any]) -> bool:
        """Whether this version of a pool, or a newer one, is held already (the echo of
        our own write). Generated Calico pools are indexed under their template: False."""
        if api.ANNOTATION_GENERATED_FROM in (body["metadata"].get("annotations") or {}):
            return False
        old = self.pools.get(PoolKey.of(backend, body))
        return old is not None and (same_version(body, old.body) or is_older(body, old.body))

    def put(self, key: PoolKey, pool: Pool) -> str | None:
        """Hold this version of a pool; returns the DynamicPrefix it no longer references
        (it referenced another one, or none now), if any."""
        left = self._leave(key, pool.reference)
        self.pools[key] = pool
        if (reference := pool.reference) is not None:
            self._by_prefix[reference.dynamic_prefix].add(key)
        return left

    def remove(self, key: PoolKey) -> str | None:
        """Forget a deleted pool; returns the DynamicPrefix it referenced, if any."""
        left = self._leave(key, None)
        self.pools.pop(key, None)
        return left

    def _leave(self, key: PoolKey, reference: PoolReference | None) -> str | None:
        old = self.pools.get(key)
        old_reference = None if old is None else old.reference
        if old_reference is None:
            return None
        if reference is not None and reference.dynamic_prefix == old_reference.dynamic_prefix:
            return None
        self._by_prefix[old_reference.dynamic_prefix].discard(key)
        return old_reference.dynamic_prefix

    def generated_of(self, template: PoolKey) -> dict[str, dict[str, Any]]:
        """The pools generated from a template, by name (created on first use)."""
        return self.generated[template]

    def note_generated(
        self, template: PoolKey, event_type: str | None, body: Mapping[str, Any]
    ) -> bool:
        """Hold (or forget) one generated pool; False if this version is held already."""
        name = body["metadata"]["name"]
        pools = self.generated[template]
        if event_type == "DELETED":
            pools.pop(name, None)
            return True
        held = pools.get(name)
        if held is not None and (is_older(body, held) or same_version(body, held)):
            return False  # a late event: we hold this version or a newer one
        pools[name] = dict(body)
        return True

    def resource_of(self, backend_name: str, body: Mapping[str, Any]) -> Resource | None:
        """Where a generated pool of ``backend_name`` lives (the version its templates are
        served in, else the version its body names)."""
        for pool in self.pools.values():
            if pool.backend.name == backend_name:
                return pool.resource
        group, _, version = str(body.get("apiVersion", "")).partition("/")
        for backend in BACKENDS:
            if backend.name == backend_name:
                return Resource(group, version, backend.plural, namespaced=False, kind=backend.kind)
        return None
