"""What every backend shares: pool references, placements, plans and the backend protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Network
from typing import Any, Protocol

from dynamic_prefix.addressing import AddressRange
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.model import api
from dynamic_prefix.model.compute import compute
from dynamic_prefix.model.spec import InvalidSpec, validate_dynamic_prefix
from dynamic_prefix.model.status import prefixes_in_use, retired_prefixes


@dataclass(frozen=True, slots=True)
class PoolReference:
    """What a pool's annotations ask for: a DynamicPrefix and one of its ranges or subnets.

    Neither range nor subnet means the whole prefix (the Go operator's behaviour).
    """

    dynamic_prefix: str
    address_range: str | None = None
    subnet: str | None = None

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str] | None) -> PoolReference | None:
        """The reference of an annotated pool, or None when it is not annotated."""
        annotations = annotations or {}
        name = annotations.get(api.ANNOTATION_NAME, "").strip()
        if not name:
            return None
        return cls(
            name,
            annotations.get(api.ANNOTATION_ADDRESS_RANGE, "").strip() or None,
            annotations.get(api.ANNOTATION_SUBNET, "").strip() or None,
        )

    def describe(self) -> str:
        """For messages: ``home-prefix/loadbalancers``."""
        return self.dynamic_prefix + "/" + (self.address_range or self.subnet or "(whole prefix)")


@dataclass(frozen=True, slots=True)
class Placement:
    """One prefix's share of a pool: an address range or a CIDR inside that prefix."""

    prefix: IPv6Network
    current: bool
    address_range: AddressRange | None = None
    cidr: IPv6Network | None = None

    def cidrs(self) -> tuple[IPv6Network, ...]:
        """The exact CIDRs of this placement."""
        if self.address_range is not None:
            return self.address_range.cidrs()
        return (self.cidr,) if self.cidr is not None else ()


class ReferenceProblem(Exception):
    """A pool refers to something that does not exist or cannot be used; it is left alone."""


def resolve_placements(
    reference: PoolReference, dynamic_prefix: Mapping[str, Any]
) -> tuple[Placement, ...]:
    """What the pool should hold: its range or subnet in every prefix in use, newest first.

    Empty while the DynamicPrefix has no prefix yet. Raises `ReferenceProblem` when the
    reference names a range or subnet the spec does not have, or the spec is invalid.
    """
    spec = validate_dynamic_prefix(dynamic_prefix)
    if isinstance(spec, InvalidSpec):
        raise ReferenceProblem(f"DynamicPrefix {reference.dynamic_prefix} is invalid: {spec}")
    if reference.address_range is not None and reference.subnet is not None:
        raise ReferenceProblem(
            f"the pool names both an address range ({reference.address_range}) and a subnet "
            f"({reference.subnet}); use one of {api.ANNOTATION_ADDRESS_RANGE} or "
            f"{api.ANNOTATION_SUBNET}"
        )
    if reference.address_range is not None:
        names = [r.name for r in spec.address_ranges]
        if reference.address_range not in names:
            raise ReferenceProblem(
                f"DynamicPrefix {reference.dynamic_prefix} has no address range named "
                f"{reference.address_range!r} (it has: {', '.join(names) or 'none'})"
            )
    if reference.subnet is not None:
        names = [s.name for s in spec.subnets]
        if reference.subnet not in names:
            raise ReferenceProblem(
                f"DynamicPrefix {reference.dynamic_prefix} has no subnet named "
                f"{reference.subnet!r} (it has: {', '.join(names) or 'none'})"
            )
    placements = []
    status = dynamic_prefix.get("status") or {}
    for index, prefix in enumerate(prefixes_in_use(status)):
        current = index == 0
        if reference.address_range is not None:
            placed = compute(spec, prefix).range_named(reference.address_range)
            if placed is not None:
                placements.append(Placement(prefix, current, address_range=placed.range))
        elif reference.subnet is not None:
            subnet = compute(spec, prefix).subnet_named(reference.subnet)
            if subnet is not None:
                placements.append(Placement(prefix, current, cidr=subnet.cidr))
        else:
            placements.append(Placement(prefix, current, cidr=prefix))
    return tuple(placements)


PlacementsFor = Callable[[PoolReference, Mapping[str, Any]], tuple[Placement, ...]]


def plan_pool(
    backend: PoolBackend,
    resource: Resource,
    pool: Mapping[str, Any],
    reference: PoolReference,
    dynamic_prefix: Mapping[str, Any],
    *,
    generated: Sequence[Mapping[str, Any]],
    placements_for: PlacementsFor = resolve_placements,
    retired_for: PlacementsFor | None = None,
) -> Plan:
    """What the operator would do to ``pool`` now: the one judgement of "in sync", used by
    the reconciler and by ``dynamic-prefix status`` alike. ``generated`` are the pools
    made from it earlier (Calico). ``placements_for`` and ``retired_for`` (default
    `retired_placements`) may be cached per DynamicPrefix version by the caller.
    `ReferenceProblem` when it cannot be served."""
    placements = placements_for(reference, dynamic_prefix)
    if not placements:
        return Plan()  # no prefix yet: nothing is judged, nothing written
    old = (retired_for or retired_placements)(reference, dynamic_prefix)
    return backend.plan(resource, pool, placements, generated=generated, retired=old)


def retired_placements(
    reference: PoolReference, dynamic_prefix: Mapping[str, Any]
) -> tuple[Placement, ...]:
    """The placements ``reference`` had in the prefixes that left the history lately
    (status.retiredPrefixes)."""
    found: list[Placement] = []
    for prefix in retired_prefixes(dynamic_prefix.get("status") or {}):
        held = {**dynamic_prefix, "status": {"currentPrefix": str(prefix)}}
        try:
            found += resolve_placements(reference, held)
        except ReferenceProblem:
            continue
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Patch:
    """A JSON merge patch of one object."""

    resource: Resource
    name: str
    namespace: str | None
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Create:
    """A new object."""

    resource: Resource
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delete:
    """An object to remove."""

    resource: Resource
    name: str
    namespace: str | None


Action = Patch | Create | Delete


@dataclass(frozen=True, slots=True)
class Plan:
    """The API actions that make a pool right, and what is wrong with it that we left alone."""

    actions: tuple[Action, ...] = ()
    problems: tuple[str, ...] = field(default=())
    """Entries kept that look broken (told in a Warning; the pool still counts as in sync)."""
    overlaps: tuple[str, ...] = field(default=())
    """Users' entries that overlap what the operator writes: the pool kind refuses such a
    pool (MetalLB) or hands the same address out twice; kept, and the pool is not in sync."""
    stale: tuple[str, ...] = field(default=())
    """Entries that are exactly the operator's rendering of a prefix this DynamicPrefix
    held until recently, but not in its record (a stale copy written back): kept, since
    the operator cannot know who wrote them, and the pool is not in sync until removed."""

    @property
    def in_sync(self) -> bool:
        """True when nothing needs to be written."""
        return not self.actions

    unsupported: tuple[str, ...] = field(default=())
    """What the operator cannot write for this pool because its kind would refuse it (a
    classic Calico pool; CIDRs smaller than a Calico block): left out, and said."""

    @property
    def conflicts(self) -> tuple[str, ...]:
        """What keeps the pool from being right although nothing is to be written."""
        return self.overlaps + self.stale + self.unsupported


class PoolBackend(Protocol):
    """One kind of pool."""

    @property
    def name(self) -> str:
        """Short name for logs and metrics, e.g. ``cilium-lb-ip-pool``."""
        ...

    @property
    def group(self) -> str:
        """API group of the pool kind."""
        ...

    @property
    def plural(self) -> str:
        """Plural resource name of the pool kind."""
        ...

    @property
    def kind(self) -> str:
        """Kind of the pool objects."""
        ...

    @property
    def versions(self) -> tuple[str, ...]:
        """Served versions this backend understands, most preferred first."""
        ...

    def plan(
        self,
        resource: Resource,
        pool: Mapping[str, Any],
        placements: Sequence[Placement] | None,
        *,
        generated: Sequence[Mapping[str, Any]] = (),
        retired: Sequence[Placement] = (),
    ) -> Plan:
        """The actions that make ``pool`` hold ``placements`` (None: release the pool).

        ``generated`` are objects this backend created for the pool earlier (Calico);
        ``retired`` the placements of prefixes that left the history lately (stale
        entries equal to their rendering are reported).
        """
        ...
