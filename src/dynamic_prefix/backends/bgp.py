"""BGP announcements of subnets: what each BGP speaker should read, computed (pure).

For each subnet of a DynamicPrefix with ``bgp.advertise: true``, the operator keeps what
the cluster's BGP speaker reads, for every speaker whose pools the subnet feeds:

- Cilium: a ``CiliumBGPAdvertisement`` named ``dp-<dynamicprefix>-<subnet>`` (the Go
  operator's name) that announces the LoadBalancer IPs of the Services the subnet's
  ``CiliumLoadBalancerIPPool`` s serve, selected by each pool's ``serviceSelector``.
  A pool without one serves every LoadBalancer Service in the cluster; announcing its
  Services would announce them all, so such a pool is reported and left out.
- MetalLB: a ``BGPAdvertisement`` of the same name in each namespace of the subnet's
  ``IPAddressPool`` s, naming them; ``bgp.announce`` decides between /128s and one
  route for the whole subnet (MetalLB's aggregation length).
- Calico: the subnet's CIDRs, in every prefix in use, in ``spec.serviceLoadBalancerIPs``
  of the shared ``BGPConfiguration`` named ``default``, beside the CIDRs users listed.
  Which CIDRs are whose is recorded on it, per DynamicPrefix, like a pool's record.

The community of ``bgp.community`` goes on every announcement, so that the upstream
router can accept exactly the routes the operator meant (docs/router/).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Network, ip_network
from typing import Any, Final

from dynamic_prefix.addressing import AddressError, AddressRange, parse_address
from dynamic_prefix.backends.base import (
    PoolReference,
    ReferenceProblem,
    resolve_placements,
    retired_placements,
)
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.model import api
from dynamic_prefix.model.api import advertisement_name
from dynamic_prefix.model.spec import Announce, InvalidSpec, SubnetSpec, validate_dynamic_prefix
from dynamic_prefix.model.status import prefixes_in_use


@dataclass(frozen=True, slots=True)
class BgpKind:
    """A kind of object a BGP speaker reads; discovered like the pool kinds."""

    name: str  # for logs and metrics
    speaker: str  # cilium, metallb or calico
    group: str
    plural: str
    kind: str
    versions: tuple[str, ...]  # most preferred first


CILIUM_ADVERTISEMENT: Final = BgpKind(
    "cilium-bgp-advertisement", "cilium", "cilium.io", "ciliumbgpadvertisements",
    "CiliumBGPAdvertisement", ("v2", "v2alpha1"),
)  # fmt: skip
METALLB_ADVERTISEMENT: Final = BgpKind(
    "metallb-bgp-advertisement", "metallb", "metallb.io", "bgpadvertisements",
    "BGPAdvertisement", ("v1beta1",),
)  # fmt: skip
CALICO_BGP_CONFIGURATION: Final = BgpKind(
    "calico-bgp-configuration", "calico", "projectcalico.org", "bgpconfigurations",
    "BGPConfiguration", ("v3",),
)  # fmt: skip
BGP_KINDS: Final = (CILIUM_ADVERTISEMENT, METALLB_ADVERTISEMENT, CALICO_BGP_CONFIGURATION)
OWNED_SPEC_FIELDS: Final = {
    CILIUM_ADVERTISEMENT.name: ("advertisements",),
    METALLB_ADVERTISEMENT.name: ("ipAddressPools", "aggregationLengthV6", "communities"),
}
"""The spec fields of the objects it keeps that the operator owns: set when wanted,
removed when not (a community taken off the spec); the others are left to the API
server's defaults and to users (MetalLB ``peers``, ``nodeSelectors``)."""

POOL_SPEAKERS: Final = {
    "cilium-lb-ip-pool": CILIUM_ADVERTISEMENT,
    "metallb-ip-address-pool": METALLB_ADVERTISEMENT,
    "calico-ip-pool": CALICO_BGP_CONFIGURATION,
}
"""Which speaker announces the addresses of which pool backend (CIDR groups, and the
classic Calico API the operator never writes, feed none)."""

CALICO_CONFIGURATION_NAME: Final = "default"
"""The BGPConfiguration Calico reads cluster-wide settings from."""
MANAGED_BY: Final = "dynamic-prefix-operator"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_SUBNET: Final = f"{api.GROUP}/subnet"
ANNOTATION_ADVERTISED_CIDRS: Final = f"{api.GROUP}/advertised-cidrs"
"""On Calico's BGPConfiguration: ``{dynamicprefix: [cidr, ...]}``, what the operator
put in serviceLoadBalancerIPs for each DynamicPrefix (the rest is the users')."""
ANNOTATION_TAGGED_CIDRS: Final = f"{api.GROUP}/tagged-cidrs"
"""The same for the entries of prefixAdvertisements (the community on our CIDRs)."""
MAX_LABEL_VALUE: Final = 63


def label_value(text: str) -> str:
    """``text`` as a label value (at most 63 characters; longer ones hashed)."""
    if len(text) <= MAX_LABEL_VALUE:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[: MAX_LABEL_VALUE - 17].rstrip('.-_')}-{digest}"


@dataclass(frozen=True, slots=True)
class FedPool:
    """A pool that references a DynamicPrefix, as far as announcing it matters."""

    backend: str  # the pool backend's name, e.g. cilium-lb-ip-pool
    namespace: str | None
    name: str
    reference: PoolReference
    service_selector: Mapping[str, Any] | None = None  # Cilium
    entries: tuple[str, ...] = ()  # MetalLB spec.addresses, for the aggregation check

    @classmethod
    def of(cls, backend: str, body: Mapping[str, Any]) -> FedPool | None:
        """The pool as far as BGP matters; None if it references no DynamicPrefix."""
        metadata = body.get("metadata") or {}
        reference = PoolReference.from_annotations(metadata.get("annotations"))
        if reference is None:
            return None
        spec = body.get("spec") or {}
        selector = spec.get("serviceSelector")
        entries = spec.get("addresses") if backend == "metallb-ip-address-pool" else None
        return cls(
            backend,
            metadata.get("namespace"),
            str(metadata.get("name", "")),
            reference,
            selector if isinstance(selector, Mapping) else None,
            tuple(str(e) for e in entries) if isinstance(entries, list) else (),
        )

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.backend} {where}{self.name}"


@dataclass(frozen=True, slots=True)
class OwnedObject:
    """An object the operator keeps whole for one subnet (Cilium, MetalLB)."""

    kind: BgpKind
    namespace: str | None
    name: str
    body: dict[str, Any]

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind.kind} {where}{self.name}"


@dataclass(frozen=True, slots=True)
class Announcements:
    """Everything one DynamicPrefix should announce now, and what stands in the way."""

    objects: tuple[OwnedObject, ...] = ()
    calico_cidrs: tuple[str, ...] = ()
    """This DynamicPrefix's CIDRs in Calico's serviceLoadBalancerIPs (current first)."""
    calico_retired: tuple[str, ...] = ()
    """CIDRs of prefixes that left the history: removed even where no record lists them
    (a stale copy written back by an editor)."""
    problems: tuple[str, ...] = ()
    advertised: tuple[str, ...] = ()
    """One line per announcement, for the condition message."""
    calico_communities: tuple[tuple[str, str], ...] = ()
    """(CIDR, community) of this DynamicPrefix's CIDRs in Calico's list: attached with
    ``prefixAdvertisements``, so that the router's filter accepts Calico's routes too."""
    waiting: tuple[str, ...] = ()
    """Subnets with nothing to announce yet (no pool references them): said in the
    condition, not warned about (pools are often created just after)."""
    wanted: bool = False
    """Whether any subnet asks to be announced at all."""


@dataclass(frozen=True, slots=True)
class _Subnet:
    spec: SubnetSpec
    community: str | None
    pools: tuple[FedPool, ...]
    cidrs: tuple[IPv6Network, ...] = field(default=())


def plan_announcements(
    dynamic_prefix: Mapping[str, Any],
    pools: Iterable[FedPool],
    served: Mapping[str, Resource],
) -> Announcements | None:
    """What ``dynamic_prefix`` should announce, for the speakers ``served`` (by kind name).

    None without a prefix (no CIDR to announce yet) or with an invalid spec: what exists
    is kept then, as in the pools.
    """
    spec = validate_dynamic_prefix(dynamic_prefix)
    if isinstance(spec, InvalidSpec) or not prefixes_in_use(dynamic_prefix.get("status") or {}):
        return None
    name = str(dynamic_prefix["metadata"]["name"])
    wanted = [s for s in spec.subnets if s.bgp is not None and s.bgp.advertise]
    if not wanted:
        return Announcements()
    fed = [p for p in pools if p.reference.dynamic_prefix == name]
    objects: list[OwnedObject] = []
    calico: list[str] = []
    calico_communities: list[tuple[str, str]] = []
    retired: list[str] = []
    problems: list[str] = []
    advertised: list[str] = []
    waiting: list[str] = []
    for subnet in wanted:
        reference = PoolReference(name, subnet=subnet.name)
        try:
            placements = resolve_placements(reference, dynamic_prefix)
            old = retired_placements(reference, dynamic_prefix)
        except ReferenceProblem as error:
            problems.append(str(error))
            continue
        cidrs = [c for p in placements for c in p.cidrs()]
        if not cidrs:
            continue  # the subnet does not fit the current prefix (Degraded says so)
        mine = [p for p in fed if p.reference.subnet == subnet.name and p.backend in POOL_SPEAKERS]
        community = subnet.bgp.community if subnet.bgp is not None else None
        if not mine or (why_not := _community_problem(subnet.name, community)) is not None:
            if mine:
                problems.append(why_not or "")
            else:
                waiting.append(
                    f"subnet {subnet.name} feeds no pool of Cilium, MetalLB or Calico (annotate "
                    f"one with {api.ANNOTATION_SUBNET}: {subnet.name}): nothing to announce"
                )
            continue
        speakers = {POOL_SPEAKERS[p.backend] for p in mine}
        for kind in sorted(speakers, key=BGP_KINDS.index):
            resource = served.get(kind.name)
            of_kind = [p for p in mine if POOL_SPEAKERS[p.backend] is kind]
            if resource is None or kind is not CALICO_BGP_CONFIGURATION:
                made, why = _owned(kind, resource, dynamic_prefix, subnet=subnet,
                                    community=community, pools=of_kind)  # fmt: skip
                objects += made
                problems += why
                advertised += [o.describe() for o in made]
                continue
            texts = [str(c) for c in cidrs]
            calico += [c for c in texts if c not in calico]
            calico_communities += [(c, community) for c in texts if community is not None]
            retired += [str(c) for p in old for c in p.cidrs()]
            advertised.append(f"Calico BGPConfiguration {CALICO_CONFIGURATION_NAME}: "
                              + ", ".join(texts))  # fmt: skip
    return Announcements(
        tuple(objects),
        tuple(calico),
        tuple(c for c in retired if c not in calico),
        tuple(problems),
        tuple(advertised),
        tuple(dict(calico_communities).items()),
        tuple(waiting),
        wanted=True,
    )


def _owned(
    kind: BgpKind,
    resource: Resource | None,
    dynamic_prefix: Mapping[str, Any],
    *,
    subnet: SubnetSpec,
    community: str | None,
    pools: Sequence[FedPool],
) -> tuple[list[OwnedObject], list[str]]:
    """The objects of ``kind`` for one subnet, or why there are none."""
    if resource is None:
        return [], [
            f"subnet {subnet.name}: the cluster does not serve {kind.kind} ({kind.group}); "
            f"its {kind.speaker} pools are not announced until it does"
        ]
    if kind is CILIUM_ADVERTISEMENT:
        return _cilium(dynamic_prefix, subnet, community, pools, resource)
    return _metallb(dynamic_prefix, subnet, community, pools, resource)


def _community_problem(subnet: str, community: str | None) -> str | None:
    """Why ``community`` cannot be sent (the Go operator's CRD admits any digits; every
    speaker takes only two 16-bit halves), or None."""
    if community is None or all(int(part) <= 0xFFFF for part in community.split(":")):
        return None
    return (f"subnet {subnet}: bgp.community {community} is not a standard community (each "
            "half is a 16-bit number, 0-65535): not announced")  # fmt: skip


def _metadata(
    dynamic_prefix: Mapping[str, Any], subnet: SubnetSpec, namespace: str | None
) -> dict[str, Any]:
    """Name, labels (for a peer configuration's selector), owner (the DynamicPrefix)."""
    metadata = dynamic_prefix["metadata"]
    name = str(metadata["name"])
    result: dict[str, Any] = {
        "name": advertisement_name(name, subnet.name),
        "labels": {
            LABEL_MANAGED_BY: MANAGED_BY,
            api.ANNOTATION_NAME: label_value(name),
            LABEL_SUBNET: subnet.name,
        },
        "annotations": {api.ANNOTATION_NAME: name},
        "ownerReferences": [
            {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "name": name,
                "uid": str(metadata.get("uid", "")),
                "controller": True,
            }
        ],
    }
    if namespace is not None:
        result["namespace"] = namespace
    return result


def _cilium(
    dynamic_prefix: Mapping[str, Any],
    subnet: SubnetSpec,
    community: str | None,
    pools: Sequence[FedPool],
    resource: Resource,
) -> tuple[list[OwnedObject], list[str]]:
    problems: list[str] = []
    selectors: list[Mapping[str, Any]] = []
    for pool in sorted(pools, key=lambda p: p.name):
        selector = pool.service_selector
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            problems.append(
                f"subnet {subnet.name}: {pool.describe()} has no serviceSelector, so it serves "
                "every LoadBalancer Service and announcing its Services would announce them "
                "all; give the pool a serviceSelector to have its Services announced"
            )
            continue
        if selector not in selectors:
            selectors.append(selector)
    if not selectors:
        return [], problems
    entry_attributes: dict[str, Any] = {}
    if community is not None:
        entry_attributes = {"attributes": {"communities": {"standard": [community]}}}
    advertisements = [
        {
            "advertisementType": "Service",
            "service": {"addresses": ["LoadBalancerIP"]},
            "selector": json.loads(json.dumps(selector)),
            **entry_attributes,
        }
        for selector in selectors
    ]
    metadata = _metadata(dynamic_prefix, subnet, None)
    body = {
        "apiVersion": resource.api_version,
        "kind": CILIUM_ADVERTISEMENT.kind,
        "metadata": metadata,
        "spec": {"advertisements": advertisements},
    }
    return [OwnedObject(CILIUM_ADVERTISEMENT, None, metadata["name"], body)], problems


def _metallb(
    dynamic_prefix: Mapping[str, Any],
    subnet: SubnetSpec,
    community: str | None,
    pools: Sequence[FedPool],
    resource: Resource,
) -> tuple[list[OwnedObject], list[str]]:
    announce = subnet.bgp.announce if subnet.bgp is not None else Announce.ADDRESSES
    length = subnet.prefix_length if announce is Announce.SUBNET else 128
    objects: list[OwnedObject] = []
    problems: list[str] = []
    namespaces = sorted({p.namespace or "" for p in pools})
    for namespace in namespaces:
        names = sorted(p.name for p in pools if (p.namespace or "") == namespace)
        if announce is Announce.SUBNET:
            narrower = [
                f"{p.name} ({entry})"
                for p in pools
                if (p.namespace or "") == namespace
                for entry in p.entries
                if _shortest_length(entry) > length
            ]
            if narrower:
                problems.append(
                    f"subnet {subnet.name}: MetalLB refuses to aggregate to /{length} a pool "
                    f"holding narrower entries: {', '.join(narrower)}; use announce: "
                    "addresses, or move those entries to another pool"
                )
                continue
        spec: dict[str, Any] = {"ipAddressPools": names, "aggregationLengthV6": length}
        if community is not None:
            spec["communities"] = [community]
        metadata = _metadata(dynamic_prefix, subnet, namespace or None)
        body = {
            "apiVersion": resource.api_version,
            "kind": METALLB_ADVERTISEMENT.kind,
            "metadata": metadata,
            "spec": spec,
        }
        objects.append(OwnedObject(METALLB_ADVERTISEMENT, namespace or None, metadata["name"],
                                   body))  # fmt: skip
    return objects, problems


def _shortest_length(entry: str) -> int:
    """The shortest prefix length among the CIDRs of a MetalLB address entry, as MetalLB's
    aggregation check takes it (0 if it cannot be read or is IPv4, so that such an entry
    blocks nothing: a malformed one is reported by the pool's own verdict)."""
    try:
        if "-" in entry:
            start, _, end = entry.partition("-")
            first, last = parse_address(start.strip()), parse_address(end.strip())
            return min((c.prefixlen for c in AddressRange(first, last).cidrs()), default=0)
        network = ip_network(entry.strip(), strict=False)
    except (ValueError, AddressError):
        return 0
    return network.prefixlen if network.version == 6 else 0


# --- objects kept whole (Cilium, MetalLB) ---------------------------------------------


def is_ours(body: Mapping[str, Any], dynamic_prefix: Mapping[str, Any] | None = None) -> bool:
    """An object the operator made: our label, or (adopted from the Go operator) an owner
    reference to the DynamicPrefix ``dynamic_prefix``."""
    metadata = body.get("metadata") or {}
    if (metadata.get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY:
        return True
    if dynamic_prefix is None:
        return False
    uid = dynamic_prefix["metadata"].get("uid")
    return any(
        ref.get("kind") == api.KIND and ref.get("uid") == uid
        for ref in metadata.get("ownerReferences") or []
    )


def owner_of(body: Mapping[str, Any]) -> str | None:
    """The DynamicPrefix an object of ours was made for."""
    metadata = body.get("metadata") or {}
    name = (metadata.get("annotations") or {}).get(api.ANNOTATION_NAME)
    if name:
        return str(name)
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("kind") == api.KIND and ref.get("apiVersion", "").startswith(api.GROUP + "/"):
            return str(ref.get("name"))
    return None


def merge_diff(observed: Any, desired: Any) -> Any:
    """A JSON merge patch (RFC 7386) turning ``observed`` into ``desired``: keys that go
    are set to null, lists are replaced whole."""
    if not isinstance(observed, Mapping) or not isinstance(desired, Mapping):
        return desired
    patch: dict[str, Any] = {}
    for key in set(observed) | set(desired):
        if key not in desired:
            patch[key] = None
        elif key not in observed:
            patch[key] = desired[key]
        elif observed[key] != desired[key]:
            patch[key] = merge_diff(observed[key], desired[key])
    return patch


def object_patch(observed: Mapping[str, Any], desired: OwnedObject) -> dict[str, Any] | None:
    """The merge patch making ``observed`` what the operator keeps (None: it is already).

    The operator owns `OWNED_SPEC_FIELDS`, its labels and annotations, and the owner
    reference; other fields are left as they are: what the API server defaults (MetalLB's
    aggregationLength) and what a user adds (MetalLB ``peers``), so that neither is fought
    over. Cilium's ``advertisements`` list is the operator's whole.
    """
    metadata = observed.get("metadata") or {}
    wanted = desired.body["metadata"]
    patch: dict[str, Any] = {}
    for key in ("labels", "annotations"):
        have = metadata.get(key) or {}
        changed = {k: v for k, v in wanted[key].items() if have.get(k) != v}
        if changed:
            patch.setdefault("metadata", {})[key] = changed
    if metadata.get("ownerReferences") != wanted["ownerReferences"]:
        patch.setdefault("metadata", {})["ownerReferences"] = wanted["ownerReferences"]
    spec = observed.get("spec") or {}
    wanted_spec = desired.body["spec"]
    changed_spec = {
        key: merge_diff(spec.get(key), wanted_spec.get(key))
        for key in OWNED_SPEC_FIELDS[desired.kind.name]
        if spec.get(key) != wanted_spec.get(key)
    }
    if changed_spec:
        patch["spec"] = changed_spec
    if not patch:
        return None
    patch.setdefault("metadata", {})["resourceVersion"] = metadata.get("resourceVersion")
    return patch


# --- Calico's shared BGPConfiguration --------------------------------------------------


def read_record(
    config: Mapping[str, Any] | None, annotation: str = ANNOTATION_ADVERTISED_CIDRS
) -> dict[str, list[str]] | None:
    """A per-DynamicPrefix record on the BGPConfiguration; None if it is unreadable."""
    if config is None:
        return {}
    text = ((config.get("metadata") or {}).get("annotations") or {}).get(annotation)
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(v, list) and all(isinstance(c, str) for c in v) for v in value.values()
    ):
        return None
    return {str(k): list(v) for k, v in value.items()}


@dataclass(frozen=True, slots=True)
class CalicoChange:
    """What to do to the BGPConfiguration for one DynamicPrefix."""

    create: dict[str, Any] | None = None  # the object, when there is none
    patch: dict[str, Any] | None = None
    problem: str | None = None


def _canonical(text: object) -> str:
    try:
        return str(ip_network(str(text), strict=False))
    except ValueError:
        return str(text)


def calico_change(
    config: Mapping[str, Any] | None,
    dynamic_prefix: str,
    cidrs: Sequence[str],
    retired: Sequence[str] = (),
    *,
    communities: Mapping[str, str] | None = None,
    api_version: str = "projectcalico.org/v3",
) -> CalicoChange:
    """Make serviceLoadBalancerIPs hold ``cidrs`` for ``dynamic_prefix`` (empty: none).

    A user's CIDR is never removed, even where it equals one of ours (then it is not
    recorded as ours); the CIDRs of other DynamicPrefixes are left as they are; ours that
    are no longer wanted go, and so do ``retired`` ones that a stale copy brought back.
    ``communities`` (by CIDR) go into ``prefixAdvertisements`` for the CIDRs that are ours;
    the entries there for CIDRs that are not ours are the users'.
    """
    record = read_record(config)
    tag_record = read_record(config, ANNOTATION_TAGGED_CIDRS)
    if record is None or tag_record is None:
        return CalicoChange(
            problem=f"BGPConfiguration {CALICO_CONFIGURATION_NAME}: annotation "
            f"{ANNOTATION_ADVERTISED_CIDRS if record is None else ANNOTATION_TAGGED_CIDRS} "
            "is unreadable; fix or remove it"
        )
    spec = (config or {}).get("spec") or {}
    entries = list(spec.get("serviceLoadBalancerIPs") or [])
    listed = [_canonical(e.get("cidr")) if isinstance(e, Mapping) else None for e in entries]
    recorded_by_others = {c for name, held in record.items() if name != dynamic_prefix
                          for c in held}  # fmt: skip
    mine_before = set(record.get(dynamic_prefix, []))
    users = {c for c in listed if c is not None and c not in mine_before | recorded_by_others}
    wanted = [_canonical(c) for c in cidrs]
    drop = (mine_before | {_canonical(c) for c in retired}) - set(wanted) - recorded_by_others
    kept = [e for e, c in zip(entries, listed, strict=True) if c is None or c not in drop]
    kept_cidrs = {
        c for e, c in zip(entries, listed, strict=True) if c is not None and c not in drop
    }
    added = [{"cidr": c} for c in wanted if c not in kept_cidrs]
    new_entries = kept + added
    mine_now = [c for c in wanted if c not in users]
    new_adverts, tagged_now = _tag(spec, dynamic_prefix, tag_record, mine_now, communities)
    new_record = {k: v for k, v in record.items() if k != dynamic_prefix}
    if mine_now:
        new_record[dynamic_prefix] = mine_now
    new_tags = {k: v for k, v in tag_record.items() if k != dynamic_prefix}
    if tagged_now:
        new_tags[dynamic_prefix] = tagged_now
    adverts = list(spec.get("prefixAdvertisements") or [])
    record_text = json.dumps(dict(sorted(new_record.items())), separators=(",", ":"))
    tags_text = json.dumps(dict(sorted(new_tags.items())), separators=(",", ":"))
    if config is None:
        if not wanted:
            return CalicoChange()
        return CalicoChange(create={
            "apiVersion": api_version,
            "kind": CALICO_BGP_CONFIGURATION.kind,
            "metadata": {"name": CALICO_CONFIGURATION_NAME,
                         "annotations": {ANNOTATION_ADVERTISED_CIDRS: record_text}
                         | ({ANNOTATION_TAGGED_CIDRS: tags_text} if new_tags else {})},
            "spec": {"serviceLoadBalancerIPs": new_entries}
            | ({"prefixAdvertisements": new_adverts} if new_adverts else {}),
        })  # fmt: skip
    unchanged = new_record == record and new_tags == tag_record
    if new_entries == entries and new_adverts == adverts and unchanged:
        return CalicoChange()
    patch: dict[str, Any] = {
        "metadata": {
            "annotations": {
                ANNOTATION_ADVERTISED_CIDRS: record_text if new_record else None,
                ANNOTATION_TAGGED_CIDRS: tags_text if new_tags else None,
            },
            "resourceVersion": (config.get("metadata") or {}).get("resourceVersion"),
        }
    }
    if new_entries != entries:
        patch.setdefault("spec", {})["serviceLoadBalancerIPs"] = new_entries or None
    if new_adverts != adverts:
        patch.setdefault("spec", {})["prefixAdvertisements"] = new_adverts or None
    return CalicoChange(patch=patch)


def _tag(
    spec: Mapping[str, Any],
    dynamic_prefix: str,
    tag_record: Mapping[str, list[str]],
    mine: Sequence[str],
    communities: Mapping[str, str] | None,
) -> tuple[list[Any], list[str]]:
    """prefixAdvertisements with the community on each CIDR of ours that has one, and the
    CIDRs tagged by us now. Entries keep their places (another DynamicPrefix's pass must
    not reorder ours); an entry we did not write (a user's, another DynamicPrefix's) is
    never changed, and ours is not added beside one for the same CIDR."""
    wanted = {
        c: v for c, v in ((_canonical(c), v) for c, v in (communities or {}).items())
        if c in mine
    }  # fmt: skip
    before = set(tag_record.get(dynamic_prefix, []))
    adverts = list(spec.get("prefixAdvertisements") or [])

    def cidr_of(entry: Any) -> str | None:
        return _canonical(entry.get("cidr")) if isinstance(entry, Mapping) else None

    foreign = {c for c in map(cidr_of, adverts) if c is not None and c not in before}
    result: list[Any] = []
    tagged: list[str] = []
    for entry in adverts:
        cidr = cidr_of(entry)
        if cidr is None or cidr not in before:
            result.append(entry)  # not ours
        elif cidr in wanted and cidr not in tagged:
            result.append({"cidr": cidr, "communities": [wanted[cidr]]})
            tagged.append(cidr)
    for cidr, community in wanted.items():
        if cidr not in tagged and cidr not in foreign:
            result.append({"cidr": cidr, "communities": [community]})
            tagged.append(cidr)
    return result, tagged
