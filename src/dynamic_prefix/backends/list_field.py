"""Backends whose pool is one list of entries in spec: Cilium pools and CIDR groups, MetalLB.

Ownership is recorded, never guessed: the entries the operator wrote are listed, as JSON,
in an annotation on the pool. Every other entry belongs to the user and is kept exactly
as it is, in its place; an entry identical to one the operator is about to write is
adopted rather than duplicated (this is how pools written by the Go operator are taken
over). Malformed entries are kept and reported, never deleted.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dynamic_prefix.backends.base import Patch, Placement, Plan
from dynamic_prefix.kube.client import Resource

_T = TypeVar("_T")
Entry = Any  # a JSON value: a string for MetalLB and CIDR groups, an object for Cilium blocks


def _key(entry: Entry) -> Any:
    """A hashable identity of an entry: equal entries, equal keys (key order ignored)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and all(isinstance(v, str) for v in entry.values()):
        return tuple(sorted(entry.items()))
    return json.dumps(entry, sort_keys=True)


# The caches below share work among the pools of one prefix change (they all get the same
# placements and, once written, carry the same record). A few changes' worth is enough;
# larger bounds only made memory grow for thousands of rotations before levelling off.
RENDERINGS_KEPT = 64


@functools.lru_cache(maxsize=RENDERINGS_KEPT)
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


def _same_as_lately(function: Callable[..., _T]) -> Callable[..., _T]:
    """Remember the last few answers for arguments given again as the very same objects:
    a prefix change asks for every pool with the same few placements tuples the
    controller holds (current and retired), and even the `functools.lru_cache` lookup
    (hashing and comparing placements and their addresses) cost more than the rest of
    planning. The arguments are kept, so their identities cannot be reused."""
    recent: dict[tuple[int, ...], tuple[tuple[Any, ...], _T]] = {}

    @functools.wraps(function)
    def remembered(*args: Any) -> _T:
        held = recent.get(tuple(map(id, args)))  # ids are unique while their args are held
        if held is not None:
            return held[1]
        answer = function(*args)
        if len(recent) >= 4:
            del recent[next(iter(recent))]  # the oldest
        recent[tuple(map(id, args))] = (args, answer)
        return answer

    return remembered


@_same_as_lately
@functools.lru_cache(maxsize=RENDERINGS_KEPT)
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


@functools.lru_cache(maxsize=RENDERINGS_KEPT)
def _recorded_keys(text: str) -> frozenset[Any] | None:
    """The keys of the entries an ownership record lists; None if it is unreadable.
    Ours is a JSON list; the Go operator's a comma-separated one (`go_record_entries`),
    read too so that a pool it wrote is taken over with its record. Cached: after a
    prefix change every pool of a DynamicPrefix carries the same record."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        entries = go_record_entries(text)
    if not isinstance(entries, list):
        return None
    return frozenset(_key(entry) for entry in entries)


def go_record_entries(text: str) -> list[Entry] | None:
    """The entries of a record as the Go operator writes it: comma-separated, a Cilium
    block as ``cidr=<cidr>`` or ``range=<start>-<stop>``, addresses canonical; None if
    it is neither that nor JSON (a user's edit)."""
    entries: list[Entry] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.startswith("cidr="):
            entries.append({"cidr": item.removeprefix("cidr=")})
        elif item.startswith("range="):
            start, _, stop = item.removeprefix("range=").partition("-")
            entries.append({"start": start, "stop": stop} if stop else {"start": start})
        elif _looks_like_addresses(item):
            entries.append(item)
        else:
            return None
    return entries


def _looks_like_addresses(item: str) -> bool:
    """An address, a CIDR or ``a-b`` (MetalLB's range): what the Go operator records."""
    try:
        for part in item.split("-", 1):
            ipaddress.ip_network(part.strip(), strict=False)
    except ValueError:
        return False
    return True


_NOTHING = _Desired((), frozenset(), None)


@_same_as_lately
@functools.lru_cache(maxsize=RENDERINGS_KEPT)
def _spans(placements: tuple[Placement, ...]) -> tuple[tuple[int, int, str], ...]:
    """The address intervals the operator writes for ``placements``, with their text."""
    found = []
    for placement in placements:
        if placement.address_range is not None:
            start, end = placement.address_range.start, placement.address_range.end
            found.append((int(start), int(end), f"{start}-{end}"))
        elif placement.cidr is not None:
            network = placement.cidr
            found.append((int(network.network_address), int(network.broadcast_address),
                          str(network)))  # fmt: skip
    return tuple(found)


def _overlapping(span: tuple[int, int], spans: tuple[tuple[int, int, str], ...]) -> str | None:
    low, high = span
    for start, end, text in spans:
        if low <= end and start <= high:
            return text
    return None


@functools.lru_cache(maxsize=4096)
def address_span(text: str) -> tuple[int, int] | None:
    """``a-b`` or a CIDR as (first, last) address; None when unreadable or of IPv4 (the
    operator writes IPv6 only, and an IPv4 entry never overlaps it). Cached: a prefix
    change checks every user entry of every pool again, and parsing is most of the cost."""
    try:
        if "-" in text:
            first, _, last = text.partition("-")
            low, high = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
        else:
            network = ipaddress.ip_network(text.strip(), strict=False)
            low, high = network.network_address, network.broadcast_address
    except ValueError:
        return None
    if low.version != 6 or high.version != 6:
        return None
    return int(low), int(high)


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
    span: Callable[[Entry], tuple[int, int] | None] | None = None
    """The first and last address an entry hands out (None: none); given for the kinds
    that hand addresses out (IPAM pools), where an overlap with ours is a conflict."""

    def plan(
        self,
        resource: Resource,
        pool: Mapping[str, Any],
        placements: Sequence[Placement] | None,
        *,
        generated: Sequence[Mapping[str, Any]] = (),
        retired: Sequence[Placement] = (),
    ) -> Plan:
        """Keep the user's entries, replace ours with the rendering of ``placements``.

        ``None`` releases the pool; an empty sequence (no prefix known yet) changes
        nothing: a pool is never emptied for want of a prefix. ``retired`` are the
        placements of prefixes that left the history lately: a user's entry equal to
        their rendering is reported as stale.
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

        retired_keys = _desired(self.render, tuple(retired)).keys if retired else frozenset()
        spans = _spans(tuple(placements or ()))
        user_entries = []
        overlaps: list[str] = []
        stale: list[str] = []
        for index, entry in enumerate(observed):
            key = _key(entry)
            if key in owned or key in desired_keys:
                continue
            reason = self.malformed(entry)
            if reason is not None:
                problems.append(f"{self._where(index, entry)}: {reason}; kept")
            elif key in retired_keys:
                stale.append(
                    f"{self._where(index, entry)} is the operator's entry for a prefix that "
                    "left the history, "
                    "written back without its record (a stale copy?); kept: remove it, or "
                    "it stays as yours"
                )
            elif self.span is not None and (span := self.span(entry)) is not None:
                hit = _overlapping(span, spans)
                if hit is not None:
                    overlaps.append(
                        f"{self._where(index, entry)} overlaps {hit}, which the operator "
                        "writes; kept: the pool "
                        "kind refuses overlapping entries or hands an address out twice"
                    )
            user_entries.append(entry)

        new_entries = user_entries + list(desired.entries)
        record = desired.record
        if new_entries == observed and annotations.get(self.record_annotation) == record:
            return Plan(problems=tuple(problems), overlaps=tuple(overlaps), stale=tuple(stale))
        body: dict[str, Any] = {
            "metadata": {
                "resourceVersion": metadata.get("resourceVersion"),
                "annotations": {self.record_annotation: record},
            },
            "spec": {self.field: new_entries},
        }
        patch = Patch(resource, metadata.get("name", ""), metadata.get("namespace"), body)
        return Plan((patch,), tuple(problems), tuple(overlaps), tuple(stale))

    def _where(self, index: int, entry: Entry) -> str:
        """Where an entry is, for a message (written only when there is one to write)."""
        return f"spec.{self.field}[{index}] {json.dumps(entry)}"

    def _read_record(self, annotations: Mapping[str, str]) -> tuple[frozenset[Any], str | None]:
        text = annotations.get(self.record_annotation)
        if not text:
            return frozenset(), None
        keys = _recorded_keys(text)
        if keys is None:
            return frozenset(), (
                f"annotation {self.record_annotation} is neither a JSON list nor the Go "
                "operator's comma-separated record; it is rewritten and nothing in the pool "
                "is treated as the operator's"
            )
        return keys, None
