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

        desired: list[Entry] = []
        if placements is not None:
            seen: set[str] = set()
            for placement in placements:
                for entry in _rendered(self.render, placement):
                    if _key(entry) not in seen:
                        seen.add(_key(entry))
                        desired.append(entry)
        desired_keys = {_key(entry) for entry in desired}

        user_entries = []
        for index, entry in enumerate(observed):
            key = _key(entry)
            if key in owned or key in desired_keys:
                continue
            reason = self.malformed(entry)
            if reason is not None:
                problems.append(f"spec.{self.field}[{index}] {json.dumps(entry)}: {reason}; kept")
            user_entries.append(entry)

        new_entries = user_entries + desired
        record = json.dumps(desired) if desired else None
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

    def _read_record(self, annotations: Mapping[str, str]) -> tuple[set[str], str | None]:
        text = annotations.get(self.record_annotation)
        if not text:
            return set(), None
        try:
            entries = json.loads(text)
        except json.JSONDecodeError:
            entries = None
        if not isinstance(entries, list):
            return set(), (
                f"annotation {self.record_annotation} is not a JSON list; it is rewritten "
                "and nothing in the pool is treated as the operator's"
            )
        return {_key(entry) for entry in entries}, None
