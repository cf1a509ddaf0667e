"""What an opted-in LoadBalancer Service should carry: pure, like the pool backends.

In ``transition.mode: ha`` a Service that names a DynamicPrefix and one of its ranges or
subnets gets its address in every prefix in use pinned in the annotation its IPAM reads
(prefix + the Service's fixed suffix, `service_addresses`), and the external-dns target
set to the address in the current prefix. In ``simple`` mode Services are left to their
IPAM (the Go operator's rule), and whatever the operator wrote earlier is released.

Ownership is recorded as in the Go operator: the entries written into the IPAM
annotation are listed, comma-separated, in ``dynamic-prefix.io/managed-ips``, those
written into the DNS target in ``dynamic-prefix.io/managed-targets``. Every other entry
is the user's and stays, in its place. A suffix taken from the address the IPAM gave is
recorded in ``dynamic-prefix.io/inferred-suffix`` so that it stays the same across
rotations.

Which annotation the IPAM reads (`choose_ipam`): ``dynamic-prefix.io/lb-provider`` if
set; else the pool kinds that the Service's range or subnet feeds, when they are of one
IPAM; else (no pool, or pools of two IPAMs) the one IPAM annotation the Service carries
already (as the Go operator, which writes Cilium's, left it); else Cilium, the Go
operator's default, when there is no pool.
"""

from __future__ import annotations

import enum
import functools
import json
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Final

from dynamic_prefix.addressing import parse_suffix
from dynamic_prefix.backends.base import (
    Patch,
    Placement,
    Plan,
    PoolReference,
    ReferenceProblem,
    resolve_placements,
)
from dynamic_prefix.backends.service_addresses import (
    ServiceReference,
    inferred_suffix,
    pinned_addresses,
)
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.model import api
from dynamic_prefix.model.spec import (
    DynamicPrefixSpec,
    InvalidSpec,
    TransitionMode,
    validate_dynamic_prefix,
)

SERVICES: Final = Resource("", "v1", "services", namespaced=True, kind="Service")

ANNOTATION_LB_PROVIDER: Final = f"{api.GROUP}/lb-provider"
ANNOTATION_MANAGED_IPS: Final = f"{api.GROUP}/managed-ips"
ANNOTATION_MANAGED_TARGETS: Final = f"{api.GROUP}/managed-targets"
ANNOTATION_INFERRED_SUFFIX: Final = f"{api.GROUP}/inferred-suffix"
ANNOTATION_SKIP_DNS: Final = f"{api.GROUP}/skip-external-dns-update"
DNS_TARGET: Final = "external-dns.alpha.kubernetes.io/target"

RECORD_ANNOTATIONS: Final = (ANNOTATION_MANAGED_IPS, ANNOTATION_MANAGED_TARGETS,
                             ANNOTATION_INFERRED_SUFFIX)  # fmt: skip


class Ipam(enum.StrEnum):
    """The load-balancer IPAMs whose Service annotation the operator writes."""

    CILIUM = "cilium"
    METALLB = "metallb"
    CALICO = "calico"


@dataclass(frozen=True, slots=True)
class IpamAnnotation:
    """How one IPAM reads the addresses a Service asks for."""

    name: str
    json_list: bool
    """Calico reads a JSON list of strings; the others a comma-separated list."""
    one_per_family: bool
    """MetalLB and Calico take at most one address of each family: the old address
    cannot be kept beside the new one, so only the current prefix's is pinned."""


IPAM_ANNOTATIONS: Final = {
    Ipam.CILIUM: IpamAnnotation("lbipam.cilium.io/ips", json_list=False, one_per_family=False),
    Ipam.METALLB: IpamAnnotation(
        "metallb.io/loadBalancerIPs", json_list=False, one_per_family=True
    ),
    Ipam.CALICO: IpamAnnotation(
        "projectcalico.org/loadBalancerIPs", json_list=True, one_per_family=True
    ),
}
METALLB_LEGACY: Final = IpamAnnotation(
    "metallb.universe.tf/loadBalancerIPs", json_list=False, one_per_family=True
)
"""MetalLB's older name, still read when the newer one is absent: written instead of the
newer one on a Service that already uses it."""

POOL_BACKEND_IPAM: Final = {
    "cilium-lb-ip-pool": Ipam.CILIUM,
    "metallb-ip-address-pool": Ipam.METALLB,
    "calico-ip-pool": Ipam.CALICO,
}
"""The IPAM that hands out addresses from each pool kind (a Cilium CIDR group is no pool)."""


def choose_ipam(annotations: Mapping[str, str], pool_backends: Iterable[str]) -> Ipam:
    """The IPAM whose annotation to write (see the module docstring for the rule);
    `ReferenceProblem` when it cannot be told."""
    explicit = annotations.get(ANNOTATION_LB_PROVIDER, "").strip()
    if explicit:
        try:
            return Ipam(explicit)
        except ValueError:
            raise ReferenceProblem(
                f"{ANNOTATION_LB_PROVIDER} {explicit!r} is not one of "
                f"{', '.join(i.value for i in Ipam)}"
            ) from None
    kinds = sorted({POOL_BACKEND_IPAM[b] for b in pool_backends if b in POOL_BACKEND_IPAM})
    if len(kinds) == 1:
        return kinds[0]
    # no pool, or pools of two IPAMs: the IPAM annotation the Service carries already
    # (the Go operator's, a user's) tells which one assigns its address
    present = {ipam for ipam, field in IPAM_ANNOTATIONS.items() if field.name in annotations}
    if METALLB_LEGACY.name in annotations:
        present.add(Ipam.METALLB)
    if len(present) == 1:
        return present.pop()
    if kinds:
        raise ReferenceProblem(
            f"pools of {', '.join(kinds)} share this range; say which IPAM assigns the "
            f"Service's address with {ANNOTATION_LB_PROVIDER}"
        )
    return Ipam.CILIUM


def pool_kinds_for(
    reference: PoolReference, pools: Iterable[tuple[str, PoolReference | None]]
) -> set[str]:
    """The pool kinds (backend names) a Service's range or subnet feeds, from the
    (backend, reference) of every pool; all of its DynamicPrefix's pools when none names
    that range or subnet. `choose_ipam` reads the IPAM from them."""
    mine = [(kind, ref) for kind, ref in pools
            if ref is not None and ref.dynamic_prefix == reference.dynamic_prefix]  # fmt: skip
    same = {kind for kind, ref in mine if ref == reference}
    return same or {kind for kind, _ in mine}


PlacementsFor = Callable[[PoolReference, Mapping[str, Any]], tuple[Placement, ...]]


def service_inputs(
    service: Mapping[str, Any],
    dynamic_prefix: Mapping[str, Any],
    *,
    pool_kinds: Iterable[str],
    placements_for: PlacementsFor = resolve_placements,
    spec: DynamicPrefixSpec | InvalidSpec | None = None,
) -> tuple[ServiceReference | None, ServiceInputs | None]:
    """What `plan_service` needs for a Service naming ``dynamic_prefix``: the one place
    that decides it, for the operator and ``dynamic-prefix status`` alike. ``None``
    inputs (mode simple, or not opted in) mean: release. `ReferenceProblem` when the
    Service or its DynamicPrefix cannot be served. ``spec``: the DynamicPrefix validated
    already (by a caller that keeps it per version)."""
    if spec is None:
        spec = validate_dynamic_prefix(dynamic_prefix)
    name = dynamic_prefix.get("metadata", {}).get("name", "")
    if isinstance(spec, InvalidSpec):
        raise ReferenceProblem(f"DynamicPrefix {name} is invalid")
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    reference = ServiceReference.from_annotations(annotations)
    if reference is None or spec.transition.mode is not TransitionMode.HA:
        return reference, None
    placements = placements_for(reference.placement, dynamic_prefix)
    return reference, ServiceInputs(placements, True, choose_ipam(annotations, pool_kinds))


@dataclass(frozen=True, slots=True)
class ServiceInputs:
    """What decides a Service's annotations besides the Service itself."""

    placements: tuple[Placement, ...]
    """The Service's range or subnet in every prefix in use, current first."""
    ha: bool
    """``transition.mode: ha``; in ``simple`` mode Services are left to their IPAM."""
    ipam: Ipam


def split_list(text: str | None, *, json_list: bool = False) -> list[str] | None:
    """The entries of an annotation's list; None if a JSON list is not readable."""
    if text is None or not text.strip():
        return []
    if json_list:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        return list(value)
    return [part.strip() for part in text.split(",") if part.strip()]


def join_list(entries: Sequence[str], *, json_list: bool = False) -> str | None:
    """The annotation's text for ``entries``; None (remove it) when there are none."""
    if not entries:
        return None
    return json.dumps(list(entries), separators=(",", ":")) if json_list else ",".join(entries)


@functools.lru_cache(maxsize=8192)
def canonical(entry: str) -> str:
    """An address in its canonical form (so ``2001:DB8::1`` and ``2001:db8::1`` are one
    entry); anything else (a hostname) as it is.

    Converted by the C library (`socket.inet_pton`/`inet_ntop`, RFC 5952 text, about
    twenty times faster than `ipaddress`) and cached: a prefix change canonicalises every
    address of every Service several times, and two of three recur in the next change
    (8,192 entries: two changes' worth for 1,000 Services, about 2 MiB)."""
    text = entry.strip()
    for family in (socket.AF_INET6, socket.AF_INET):
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, text))
        except OSError:
            continue
    return text


def address_text(address: IPv6Address) -> str:
    """``str(address)``, by the C library (the same RFC 5952 text but for IPv4-mapped
    addresses, which no prefix of ours contains)."""
    return socket.inet_ntop(socket.AF_INET6, address.packed)


class WaitingForAddress(Exception):
    """No suffix is given and the IPAM has not assigned an address in the range yet."""


def service_suffix(
    reference: ServiceReference, annotations: Mapping[str, str], service: Mapping[str, Any],
    placements: Sequence[Placement],
) -> tuple[int, bool]:  # fmt: skip
    """The Service's suffix and whether it was inferred just now (to be recorded).

    The user's ``suffix`` wins; else the recorded inferred one; else the one of the
    address the IPAM gave (status), newest placement first. `WaitingForAddress` if none.
    """
    if reference.suffix is not None:
        return reference.suffix, False
    recorded = annotations.get(ANNOTATION_INFERRED_SUFFIX, "").strip()
    if recorded:
        try:
            return parse_suffix(recorded), False
        except ValueError:
            pass  # not ours any more (a user's edit): infer again
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [str(item.get("ip")) for item in ingress if isinstance(item, Mapping)]
    suffix = inferred_suffix(placements, addresses)
    if suffix is None:
        raise WaitingForAddress(
            "no suffix given and its IPAM has not assigned an address in the range yet "
            f"(set {api.GROUP}/suffix to choose one)"
        )
    return suffix, True


def assigned(service: Mapping[str, Any]) -> frozenset[str]:
    """The addresses the IPAM has given the Service (its status), canonical."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return frozenset(
        canonical(str(item["ip"])) for item in ingress if isinstance(item, Mapping) and "ip" in item
    )


def _family(entry: str) -> int | None:
    try:
        address = ip_address(entry)
    except ValueError:
        return None
    return 4 if isinstance(address, IPv4Address) else 6


def _ipam_annotation(ipam: Ipam, annotations: Mapping[str, str]) -> IpamAnnotation:
    field = IPAM_ANNOTATIONS[ipam]
    legacy = METALLB_LEGACY.name in annotations
    if ipam is Ipam.METALLB and field.name not in annotations and legacy:
        return METALLB_LEGACY
    return field


@dataclass(frozen=True, slots=True)
class _Field:
    """One annotation list and the record of our entries in it."""

    annotation: str
    record: str
    json_list: bool = False


DNS_FIELD: Final = _Field(DNS_TARGET, ANNOTATION_MANAGED_TARGETS)


@dataclass(slots=True)
class _Edit:
    """The annotations of one Service as observed, and the changes made to them."""

    annotations: Mapping[str, str]
    changes: dict[str, str | None]
    problems: list[str]
    _owned: dict[str, frozenset[str]] = field(default_factory=dict)

    def set(self, name: str, value: str | None) -> None:
        if self.annotations.get(name) != value:
            self.changes[name] = value

    def owned(self, record: str) -> frozenset[str]:
        """The entries ``record`` lists, canonical (read once per plan: asked again)."""
        held = self._owned.get(record)
        if held is None:
            entries = split_list(self.annotations.get(record)) or []
            held = self._owned[record] = frozenset(canonical(e) for e in entries)
        return held

    def put(self, field: _Field, desired: Sequence[str] | None) -> list[str]:
        """Put ``desired`` (None: release) into one annotation list, keeping the user's
        entries in their place, ours after them; returns the user's entries."""
        observed = split_list(self.annotations.get(field.annotation), json_list=field.json_list)
        if observed is None:
            self.problems.append(f"{field.annotation} is not a JSON list of strings; left alone")
            return []
        owned = self.owned(field.record)
        wanted = {canonical(e) for e in desired or []}
        if field.record in self.annotations:
            # with a record, an entry it does not list is the user's even when it equals
            # one of ours: kept, and not recorded, so that it is never taken away
            users = [e for e in observed if canonical(e) not in owned]
            pinned = {canonical(e) for e in users}
            ours = [e for e in desired or [] if canonical(e) not in pinned]
        else:
            # first contact (no record yet, as a Service the Go operator wrote without
            # one): an entry equal to ours is adopted rather than duplicated
            users = [e for e in observed if canonical(e) not in wanted]
            ours = list(desired or [])
        entries = users + ours
        self.set(field.annotation, join_list(entries, json_list=field.json_list))
        self.set(field.record, join_list(ours))
        return users

    def strip(self, ipam: IpamAnnotation) -> None:
        """Remove the entries recorded as ours from one IPAM annotation."""
        observed = split_list(self.annotations.get(ipam.name), json_list=ipam.json_list)
        if observed is None:
            return
        owned = self.owned(ANNOTATION_MANAGED_IPS)
        kept = [e for e in observed if canonical(e) not in owned]
        if kept != observed:
            self.set(ipam.name, join_list(kept, json_list=ipam.json_list))


def plan_service(
    service: Mapping[str, Any],
    reference: ServiceReference | None,
    inputs: ServiceInputs | None,
) -> Plan:
    """The patch that makes ``service`` carry its addresses (``inputs`` None, or a
    reference None: release what the operator wrote). Raises `ReferenceProblem` for a
    Service that cannot be served (nothing is written then) and `WaitingForAddress`."""
    metadata = service.get("metadata") or {}
    edit = _Edit(metadata.get("annotations") or {}, {}, [])
    if reference is None or inputs is None or not inputs.ha:
        _release(edit)
    else:
        kind = (service.get("spec") or {}).get("type", "ClusterIP")
        if kind != "LoadBalancer":
            raise ReferenceProblem(
                f"the Service is of type {kind}, not LoadBalancer: it has no load-balancer "
                "address to move"
            )
        if not inputs.placements:
            return Plan()  # no prefix yet: nothing is ever emptied for want of one
        _serve(service, reference, inputs, edit)
    if not edit.changes:
        return Plan(problems=tuple(edit.problems))
    body = {"metadata": {"resourceVersion": metadata.get("resourceVersion"),
                         "annotations": edit.changes}}  # fmt: skip
    patch = Patch(SERVICES, metadata.get("name", ""), metadata.get("namespace"), body)
    return Plan((patch,), tuple(edit.problems))


def _serve(
    service: Mapping[str, Any], reference: ServiceReference, inputs: ServiceInputs, edit: _Edit
) -> None:
    suffix, inferred = service_suffix(reference, edit.annotations, service, inputs.placements)
    addresses = [address_text(a) for a in pinned_addresses(inputs.placements, suffix)]
    if inferred:
        edit.set(ANNOTATION_INFERRED_SUFFIX, str(IPv6Address(suffix)))
    elif reference.suffix is not None:
        edit.set(ANNOTATION_INFERRED_SUFFIX, None)  # the user's suffix wins
    ipam = _ipam_annotation(inputs.ipam, edit.annotations)
    families = (service.get("spec") or {}).get("ipFamilies")
    if ipam.one_per_family and isinstance(families, list) and "IPv6" not in families:
        raise ReferenceProblem(
            f"the Service's spec.ipFamilies is {', '.join(map(str, families))}: {inputs.ipam} "
            "gives a Service addresses of its own families only; make it dual-stack "
            "(ipFamilyPolicy: PreferDualStack) or IPv6"
        )
    pinned = addresses[:1] if ipam.one_per_family else addresses
    users = edit.put(_Field(ipam.name, ANNOTATION_MANAGED_IPS, ipam.json_list), pinned)
    if ipam.one_per_family and any(_family(e) == 6 for e in users):
        raise ReferenceProblem(
            f"{ipam.name} already asks for an IPv6 address of the user's ({', '.join(users)}), "
            f"and {inputs.ipam} takes one address per family: remove it, or the operator's "
            "annotations from this Service"
        )
    # another IPAM's annotation may hold our entries (the pools changed kind): hand them back
    for other in (*IPAM_ANNOTATIONS.values(), METALLB_LEGACY):
        if other.name != ipam.name and other.name in edit.annotations:
            edit.strip(other)
    _plan_dns(service, addresses[0], edit)


def _plan_dns(service: Mapping[str, Any], current: str, edit: _Edit) -> None:
    """The DNS target follows the address in the current prefix once the IPAM has given
    it (or before it gave anything): never an address the Service does not answer on."""
    if edit.annotations.get(ANNOTATION_SKIP_DNS, "").strip() == "true":
        edit.put(DNS_FIELD, None)
        return
    given = assigned(service)
    if given and canonical(current) not in given:
        return  # keep the target where it is until the IPAM assigns the new address
    edit.put(DNS_FIELD, [current])


def _release(edit: _Edit) -> None:
    """Take back exactly what the operator wrote: its entries, its records."""
    for ipam in (*IPAM_ANNOTATIONS.values(), METALLB_LEGACY):
        if ipam.name in edit.annotations:
            edit.strip(ipam)
    if DNS_TARGET in edit.annotations:
        edit.put(DNS_FIELD, None)
    for record in RECORD_ANNOTATIONS:
        edit.set(record, None)
