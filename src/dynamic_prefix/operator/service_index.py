"""The Services the operator looks after, by key and by the DynamicPrefix each names.

Only Services that opt in (``dynamic-prefix.io/name``) or still carry a record of the
operator's (entries to give back) are held; the watch drops every other Service before
decoding it (`is_candidate_line`), so a cluster's thousands of ordinary Services cost
nothing.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping
from typing import Any, Final

from dynamic_prefix.backends.service import RECORD_ANNOTATIONS
from dynamic_prefix.kube.objects import is_older, same_version
from dynamic_prefix.model import api
from dynamic_prefix.operator.pool_index import PoolKey

SERVICE: Final = "service"
"""The backend part of a Service's key (keys are shared with pools for outcomes)."""

_MARKERS: Final = (api.ANNOTATION_NAME, *RECORD_ANNOTATIONS)
_MARKER_BYTES: Final = f'"{api.GROUP}/'.encode()
_NAME: Final = re.compile(
    rb'"metadata":\{"name":"([^"\\]*)",(?:"generateName":"[^"\\]*",)?"namespace":"([^"\\]*)"'
)


def service_key(body: Mapping[str, Any]) -> PoolKey:
    metadata = body["metadata"]
    return PoolKey(SERVICE, metadata.get("namespace") or "", metadata["name"])


def is_relevant(body: Mapping[str, Any]) -> bool:
    """Whether a Service opts in or carries the operator's record."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return any(name in annotations for name in _MARKERS)


def named_prefix(body: Mapping[str, Any]) -> str | None:
    """The DynamicPrefix a Service names, if any."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    name = str(annotations.get(api.ANNOTATION_NAME, "")).strip()
    return name or None


class ServiceIndex:
    """Services by key, and their keys by the DynamicPrefix they name."""

    def __init__(self) -> None:
        self.services: dict[PoolKey, dict[str, Any]] = {}
        self._by_prefix: collections.defaultdict[str, set[PoolKey]] = collections.defaultdict(set)

    def get(self, key: PoolKey) -> dict[str, Any] | None:
        return self.services.get(key)

    def keys_of(self, name: str) -> list[PoolKey]:
        return list(self._by_prefix.get(name, ()))

    def count_of(self, name: str) -> int:
        return len(self._by_prefix.get(name, ()))

    def holds(self, body: Mapping[str, Any]) -> bool:
        """Whether this version of a Service, or a newer one, is held (our write's echo)."""
        old = self.services.get(service_key(body))
        return old is not None and (same_version(body, old) or is_older(body, old))

    def is_candidate_line(self, line: bytes) -> bool:
        """Whether a raw watch line may concern us: it mentions our annotations, or names
        a Service we hold (which may have lost them). Anything else is not decoded."""
        if _MARKER_BYTES in line:
            return True
        match = _NAME.search(line)
        if match is None:
            return True  # an unexpected layout: decode it rather than miss it
        key = PoolKey(SERVICE, match.group(2).decode(), match.group(1).decode())
        return key in self.services

    def put(self, body: Mapping[str, Any]) -> str | None:
        """Hold this version (or forget a Service that is no longer relevant); returns
        the DynamicPrefix it no longer names, if any."""
        key = service_key(body)
        left = self._leave(key, named_prefix(body))
        if is_relevant(body):
            self.services[key] = dict(body)
            name = named_prefix(body)
            if name is not None:
                self._by_prefix[name].add(key)
        else:
            self.services.pop(key, None)
        return left

    def remove(self, key: PoolKey) -> str | None:
        """Forget a deleted Service; the DynamicPrefix it named, if any."""
        left = self._leave(key, None)
        self.services.pop(key, None)
        return left

    def _leave(self, key: PoolKey, name: str | None) -> str | None:
        old = self.services.get(key)
        old_name = None if old is None else named_prefix(old)
        if old_name is None or old_name == name:
            return None
        self._by_prefix[old_name].discard(key)
        if not self._by_prefix[old_name]:
            del self._by_prefix[old_name]
        return old_name
