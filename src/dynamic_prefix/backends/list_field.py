"""Backends whose pool is one list of entries in spec: Cilium pools and CIDR groups, MetalLB.

Ownership is recorded, never guessed: the entries the operator wrote are listed, as JSON,
in an annotation on the pool. Every other entry belongs to the user and is kept exactly
as it is, in its place; an entry identical to one the operator is about to write is
adopted rather than duplicated (this is how pools written by the Go operator are taken
over). Malformed entries are kept and reported, never deleted.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dynamic_prefix.backends.base import Patch, Placement, Plan
from dynamic_prefix.kube.client import Resource

Entry = Any  # a JSON value: a string for MetalLB and CIDR groups, an object for Cilium blocks


def _key(entry: Entry) -> Any:
    """A hashable identity of an entry: equal entries, equal keys (key order ignored)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and all(isinstance(v, str) for v in entry.values()):
        return tuple(sorted(entry.items()))
    return json.dumps(entry, sort_keys=True)


@functools.lru_cache(maxsize=4096)
def _rendered(
    render: Callable[[Placement], list[Entry]], placement: Placement
) -> tuple[Entry, ...]:
    """``render(placement)``, computed once per placement: a prefix change renders the same
    placements for every pool, and formatting IPv6 addresses is not cheap. The entries
    are shared between pools: read, never modified."""
    return tuple(render(placement))


@dataclass(frozen=True, slots=True)
class _Desired:
    """What a pool holds for some placements: entries, their keys, the record to write."""

    entries: tuple[Entry, ...]
    keys: frozenset[Any]
    record: str | None


@functools.lru_cache(maxsize=1024)
def _desired(
    render: Callable[[Placement], list[Entry]], placements: tuple[Placement, ...]
) -> _Desired:
    """The entries for ``placements``, duplicates dropped, computed once per prefix change
    for all the pools that share the placements (like `_rendered`, read-only)."""
    entries: list[Entry] = []
    seen: set[Any] = set()
    for placement in placements:
        for entry in _rendered(render, placement):
            key = _key(entry)
            if key not in seen:
                seen.add(key)
                entries.append(entry)
    return _Desired(tuple(entries), frozenset(seen), json.dumps(entries) if entries else None)


@functools.lru_cache(maxsize=1024)
def _recorded_keys(text: str) -> frozenset[Any] | None:
    """The keys of the entries an ownership record lists; None if it is not a JSON list.
    Cached: after a prefix change every pool of a DynamicPrefix carries the same record."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(entries, list):
        return None
    return frozenset(_key(entry) for entry in entries)


_NOTHING = _Desired((), frozenset(), None)


@dataclass(frozen=True, slots=True)
class ListFieldBackend:
    """A backend for pools holding their addresses in ``spec.<field>``."""

    name: str
    group: str
    plural: str
    kind: str
    versions: tuple[str, ...]
    field: str
    record_annotation: str
    render: Callable[[Placement], list[Entry]]
    malformed: Callable[[Entry], str | None]  # why a user entry looks broken, or None

    def plan(
        self,
        resource: Resource,
        pool: Mapping[str, Any],
        placements: Sequence[Placement] | None,
        *,
        generated: Sequence[Mapping[str, Any]] = (),
    ) -> Plan:
        """Keep the user's entries, replace ours with the rendering of ``placements``.

        ``None`` releases the pool; an empty sequence (no prefix known yet) changes
        nothing: a pool is never emptied for want of a prefix.
        """
        if placements is not None and not placements:
            return Plan()
        metadata = pool.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        spec = pool.get("spec") or {}
        observed = spec.get(self.field) or []
        problems: list[str] = []
        if not isinstance(observed, list):
            return Plan(problems=(f"spec.{self.field} is not a list; the pool is left alone",))
        owned, record_problem = self._read_record(annotations)
        if record_problem:
            problems.append(record_problem)

        desired = _NOTHING if placements is None else _desired(self.render, tuple(placements))
        desired_keys = desired.keys

        user_entries = []
        for index, entry in enumerate(observed):
            key = _key(entry)
            if key in owned or key in desired_keys:
                continue
            reason = self.malformed(entry)
            if reason is not None:
                problems.append(f"spec.{self.field}[{index}] {json.dumps(entry)}: {reason}; kept")
            user_entries.append(entry)

        new_entries = user_entries + list(desired.entries)
        record = desired.record
        if new_entries == observed and annotations.get(self.record_annotation) == record:
            return Plan(problems=tuple(problems))
        body: dict[str, Any] = {
            "metadata": {
                "resourceVersion": metadata.get("resourceVersion"),
                "annotations": {self.record_annotation: record},
            },
            "spec": {self.field: new_entries},
        }
        patch = Patch(resource, metadata.get("name", ""), metadata.get("namespace"), body)
        return Plan((patch,), tuple(problems))

    def _read_record(self, annotations: Mapping[str, str]) -> tuple[frozenset[Any], str | None]:
        text = annotations.get(self.record_annotation)
        if not text:
            return frozenset(), None
        keys = _recorded_keys(text)
        if keys is None:
            return frozenset(), (
                f"annotation {self.record_annotation} is not a JSON list; it is rewritten "
                "and nothing in the pool is treated as the operator's"
            )
        return keys, None
