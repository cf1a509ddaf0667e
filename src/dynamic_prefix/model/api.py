"""The DynamicPrefix API (dynamic-prefix.io/v1alpha1): names, annotations and the schema.

The OpenAPI schema built here is the single source of truth: the CRD manifest in
``deploy/`` is generated from it (``dynamic-prefix crd``, checked by a test), and
`dynamic_prefix.model.spec` validates objects against this same schema before its own
semantic checks. Field names follow the existing Go operator of the same name so its
users can switch without editing their YAML.
"""

from __future__ import annotations

import hashlib
from typing import Any

GROUP = "dynamic-prefix.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "DynamicPrefix"
PLURAL = "dynamicprefixes"
SINGULAR = "dynamicprefix"
SHORT_NAMES = ("dp", "dprefix")
CRD_NAME = f"{PLURAL}.{GROUP}"

# Annotations users put on pools (the Go operator's names, kept).
ANNOTATION_NAME = f"{GROUP}/name"
ANNOTATION_ADDRESS_RANGE = f"{GROUP}/address-range"
ANNOTATION_SUBNET = f"{GROUP}/subnet"
# What the operator wrote into a pool, recorded next to it (names kept from the Go operator).
ANNOTATION_MANAGED_BLOCKS = f"{GROUP}/managed-blocks"
ANNOTATION_MANAGED_CIDRS = f"{GROUP}/managed-cidrs"
ANNOTATION_MANAGED_ADDRESSES = f"{GROUP}/managed-addresses"
# Pools the operator generates itself (Calico) point back to the user's pool: the label
# (for kubectl -l; long names hashed to fit 63 characters) and the exact name.
LABEL_GENERATED_FROM = f"{GROUP}/generated-from"
ANNOTATION_GENERATED_FROM = f"{GROUP}/generated-from"
FINALIZER = f"{GROUP}/release-pools"
MAX_NAME = 253


def advertisement_name(dynamic_prefix: str, subnet: str) -> str:
    """``dp-<dynamicprefix>-<subnet>``: the BGP advertisement of a subnet, named as the Go
    operator names it (names too long for an object are shortened with a hash)."""
    name = f"dp-{dynamic_prefix}-{subnet}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: MAX_NAME - 17].rstrip('.-')}-{digest}"


# Prefix sources, as reported in status.prefixSource.
SOURCE_ROUTER_ADVERTISEMENT = "router-advertisement"
SOURCE_DHCPV6_PD = "dhcpv6-pd"
SOURCE_NETLINK = "netlink"
SOURCE_STATIC = "static"

DEFAULT_REQUESTED_PREFIX_LENGTH = 56
DEFAULT_MAX_PREFIX_HISTORY = 2
RETIRED_KEPT = 4

_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_INTERFACE_PATTERN = r"^[^/\s:]{1,15}$"  # Linux IFNAMSIZ - 1, no slash, blank or colon


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _integer(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "integer", "description": description, **extra}


def _boolean(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "boolean", "description": description, **extra}


def _object(
    description: str, properties: dict[str, Any], *, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "description": description}
    schema["properties"] = properties
    if required:
        schema["required"] = list(required)
    return schema


def _list_by_name(description: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "array",
        "description": description,
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }


def _item_name(what: str) -> dict[str, Any]:
    return _string(
        f"Name of this {what}, referenced by pools in the "
        f"{ANNOTATION_ADDRESS_RANGE if what == 'address range' else ANNOTATION_SUBNET} "
        "annotation. A DNS label: lower-case letters, digits and '-'.",
        minLength=1,
        maxLength=63,
        pattern=_NAME_PATTERN,
    )


def _timestamp(description: str) -> dict[str, Any]:
    return _string(description, format="date-time")


def _interface(description: str) -> dict[str, Any]:
    return _string(description, minLength=1, maxLength=15, pattern=_INTERFACE_PATTERN)


def spec_schema() -> dict[str, Any]:
    """The schema of ``.spec``."""
    router_advertisement = _object(
        "Learn the /64 from Router Advertisements heard on a node interface (raw ICMPv6 "
        "socket: needs hostNetwork and CAP_NET_RAW). Only RAs with hop limit 255 from a "
        "link-local source are trusted (RFC 4861 section 6.1.2). With several routers "
        "or prefixes, the first usable prefix heard stays current until another is "
        "better: preferred while it is deprecated, global while it is a ULA, still "
        "announced while it no longer is, or preferred for over 30 minutes longer.",
        {
            "interface": _interface(
                "Interface to listen on, e.g. eth0. When omitted, the interface that holds "
                "the node's IPv6 default route is used."
            ),
            "enabled": _boolean("Whether this source is used.", default=True),
            "trustedRouters": {
                "type": "array",
                "description": "Link-local addresses of the routers allowed to set the "
                "prefix (e.g. fe80::1); a listed router's withdrawal (valid lifetime 0) "
                "takes effect at once. Empty: any router on the link, and a withdrawal "
                "keeps the old prefix, deprecated, for at most two more hours (RFC 4862 "
                "section 5.5.3 e), since anyone on the link could have sent it.",
                "items": _string("A router's link-local IPv6 address."),
            },
        },
    )
    dhcpv6pd = _object(
        "Request a delegated prefix as a DHCPv6 client (RFC 8415 prefix delegation), for "
        "subnet mode. Needs hostNetwork and permission to bind UDP port 546.",
        {
            "interface": _interface("Interface to send DHCPv6 requests on."),
            "requestedPrefixLength": _integer(
                "Prefix length to ask the server for (a hint; the server decides). Unset, "
                f"a /{DEFAULT_REQUESTED_PREFIX_LENGTH} is asked for and subnets are checked "
                "against the prefix actually delegated; set, they are checked against it "
                "before any delegation (no default here, so that unset stays unset).",
                minimum=48,
                maximum=64,
            ),
        },
        required=("interface",),
    )
    netlink = _object(
        "Learn the /64 from the addresses the kernel itself configured by SLAAC on an "
        "interface (netlink; no raw socket or extra capability needed).",
        {"interface": _interface("Interface whose SLAAC addresses are followed.")},
        required=("interface",),
    )
    static = _object(
        "Use a fixed prefix: for links whose prefix never changes, demos, or to override "
        "what the link says while troubleshooting. Takes precedence over other sources.",
        {"prefix": _string("The prefix in CIDR notation, e.g. 2001:db8:1:2::/64.")},
        required=("prefix",),
    )
    prefix_filter = _object(
        "Which learnt prefixes are acceptable.",
        {
            "requireGlobalUnicast": _boolean(
                "Accept only global unicast prefixes (2000::/3). When false, unique local "
                "prefixes (fc00::/7) are accepted too. Link-local, multicast and other "
                "special ranges are never accepted.",
                default=True,
            ),
            "minPrefixLength": _integer(
                "Refuse a prefix shorter than this (e.g. 48), from any source.",
                minimum=1,
                maximum=128,
            ),
            "maxPrefixLength": _integer(
                "Refuse a prefix longer than this (e.g. 64), from any source.",
                minimum=1,
                maximum=128,
            ),
        },
    )
    acquisition = _object(
        "How the current prefix is learnt. At least one method must be enabled. When "
        "several are, static wins, then DHCPv6-PD, then Router Advertisements, then netlink.",
        {
            "routerAdvertisement": router_advertisement,
            "dhcpv6pd": dhcpv6pd,
            "netlink": netlink,
            "static": static,
            "prefixFilter": prefix_filter,
        },
    )
    address_range = _object(
        "A range of addresses inside the prefix, given as suffixes (the host part). The "
        "router's DHCPv6/SLAAC pool must leave this range free.",
        {
            "name": _item_name("address range"),
            "start": _string(
                "First address of the range as a suffix, e.g. '::f000:0:0:0' for "
                "prefix + f000:0:0:0.",
                minLength=2,
            ),
            "end": _string(
                "Last address of the range (inclusive) as a suffix, e.g. '::ffff:ffff:ffff:ffff'.",
                minLength=2,
            ),
        },
        required=("name", "start", "end"),
    )
    subnet = _object(
        "A subnet carved from the (delegated) prefix, for subnet mode.",
        {
            "name": _item_name("subnet"),
            "offset": _integer(
                "Which subnet of this length to take: 0 is the first, 1 the next, and so on.",
                minimum=0,
                default=0,
            ),
            "prefixLength": _integer(
                "Length of the subnet, e.g. 64; not shorter than the prefix it is carved from.",
                minimum=48,
                maximum=128,
            ),
            "bgp": _object(
                "BGP announcement of this subnet through the cluster's BGP speaker: the "
                "operator keeps a CiliumBGPAdvertisement, a MetalLB BGPAdvertisement or "
                "Calico's BGPConfiguration serviceLoadBalancerIPs in step with the prefix, "
                "for each of them whose pools the subnet feeds.",
                {
                    "advertise": _boolean(
                        "Whether the subnet is announced over BGP.", default=False
                    ),
                    "community": _string(
                        "Standard BGP community attached to the announcement, 'ASN:VALUE' "
                        "(two 16-bit numbers); the upstream router can accept only routes "
                        "carrying it.",
                        pattern=r"^\d+:\d+$",
                    ),
                    "announce": _string(
                        "What a speaker that can aggregate (MetalLB) announces: 'addresses' "
                        "(each LoadBalancer address as a /128; nothing unused is attracted) "
                        "or 'subnet' (one route for the whole subnet). Cilium always "
                        "announces addresses; Calico announces the subnet. Not in the Go "
                        "operator's API.",
                        enum=["addresses", "subnet"],
                        default="addresses",
                    ),
                },
            ),
        },
        required=("name", "prefixLength"),
    )
    transition = _object(
        "What happens to addresses of a previous prefix after the prefix changes.",
        {
            "mode": _string(
                "simple: old prefixes stay in the pools and LoadBalancer Services are left "
                "to their IPAM: they keep their old addresses until the old prefix leaves "
                "the history (its valid lifetime ends, it is withdrawn, or "
                "maxPrefixHistory is exceeded), and then get new ones from the IPAM. ha: "
                "Services that opt in (dynamic-prefix.io/name) get their address in every "
                "prefix in use pinned in the annotation their IPAM reads (Cilium keeps old "
                "and new side by side; MetalLB and Calico take one IPv6 address per Service, "
                "so the new one), and their external-dns target set to the new one.",
                enum=["simple", "ha"],
                default="simple",
            ),
            "maxPrefixHistory": _integer(
                "How many previous prefixes stay in the pools. A previous prefix also "
                "leaves as soon as its valid lifetime ends.",
                minimum=1,
                maximum=10,
                default=DEFAULT_MAX_PREFIX_HISTORY,
            ),
        },
    )
    return _object(
        "What prefix to follow and what to compute from it.",
        {
            "acquisition": acquisition,
            "addressRanges": _list_by_name("Address ranges inside the prefix.", address_range),
            "subnets": _list_by_name("Subnets carved from the prefix.", subnet),
            "transition": transition,
        },
        required=("acquisition",),
    )


def status_schema() -> dict[str, Any]:
    """The schema of ``.status``: what the operator believes, for users and pool sync."""
    condition = _object(
        "A condition in the metav1.Condition shape.",
        {
            "type": _string("Condition type, e.g. Ready, PrefixAcquired, PoolsSynced."),
            "status": _string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "observedGeneration": _integer("The .metadata.generation this was set for."),
            "lastTransitionTime": _timestamp("When status last changed."),
            "reason": _string("CamelCase reason, for programs."),
            "message": _string("What happened, for people."),
        },
        required=("type", "status", "lastTransitionTime", "reason", "message"),
    )
    computed_range = _object(
        "An address range computed for the current prefix.",
        {
            "name": _string("The address range's name in spec."),
            "start": _string("First address."),
            "end": _string("Last address (inclusive)."),
            "cidrs": {
                "type": "array",
                "description": "The exact CIDRs that cover start..end, never a wider block.",
                "items": _string("A CIDR."),
            },
            "cidr": _string(
                "The smallest single CIDR containing start..end, as the Go operator reports "
                "it (kept for compatibility): wider than the range when the range is not one "
                "CIDR; the pools hold `cidrs`."
            ),
        },
        required=("name", "start", "end"),
    )
    computed_subnet = _object(
        "A subnet computed for the current prefix.",
        {
            "name": _string("The subnet's name in spec."),
            "cidr": _string("The subnet."),
            "bgpAdvertisement": _string(
                "Name of the BGP advertisement objects the operator keeps for this subnet "
                "(CiliumBGPAdvertisement, MetalLB BGPAdvertisement); set when "
                "bgp.advertise is true. Whether they are in place: condition "
                "BGPAdvertisementReady."
            ),
        },
        required=("name", "cidr"),
    )
    history_entry = _object(
        "A prefix used before the current one, kept in the pools while it may still work.",
        {
            "prefix": _string("The previous prefix."),
            "acquiredAt": _timestamp("When it was first learnt."),
            "deprecatedAt": _timestamp("When it stopped being the current prefix."),
            "validUntil": _timestamp("When its valid lifetime ends; absent if infinite."),
            "state": _string(
                "draining: no longer current, still in the pools until it leaves the "
                "history (the Go operator's field; it writes only this value too).",
                enum=["active", "draining", "expired"],
            ),
        },
        required=("prefix",),
    )
    return _object(
        "What the operator currently believes; written by the operator only.",
        {
            "currentPrefix": _string("The prefix in use, in CIDR notation."),
            "prefixSource": _string(
                "Which source supplied it.",
                enum=[
                    SOURCE_ROUTER_ADVERTISEMENT,
                    SOURCE_DHCPV6_PD,
                    SOURCE_NETLINK,
                    SOURCE_STATIC,
                    "unknown",
                ],
            ),
            "acquiredAt": _timestamp("When the current prefix was first learnt."),
            "preferredUntil": _timestamp("End of the current prefix's preferred lifetime."),
            "validUntil": _timestamp("End of the current prefix's valid lifetime."),
            "leaseExpiresAt": _timestamp("End of the DHCPv6 lease (DHCPv6-PD only)."),
            "addressRanges": _list_by_name("Computed address ranges.", computed_range),
            "subnets": _list_by_name("Computed subnets.", computed_subnet),
            "history": {
                "type": "array",
                "description": "Previous prefixes still kept in the pools, newest first.",
                "items": history_entry,
            },
            "retiredPrefixes": {
                "type": "array",
                "description": "Prefixes that left the history lately (expired, withdrawn, "
                f"released or over maxPrefixHistory), newest first, at most {RETIRED_KEPT}: "
                "an entry of theirs that reappears in a pool without the operator's record "
                "(a stale copy written back) is reported, not taken for the user's.",
                "items": {"type": "string"},
            },
            "conditions": {
                "type": "array",
                "description": "Ready, PrefixAcquired, PoolsSynced, ServicesSynced (while "
                "Services name this DynamicPrefix) and Degraded.",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "observedGeneration": _integer("The .metadata.generation last acted on."),
            "dhcpv6": _object(
                "The DHCPv6 client's identity, kept so that a restart, a new pod or a new "
                "leader renews the same binding (and so gets the same prefix).",
                {
                    "duid": _string("DUID, in hexadecimal."),
                    "iaid": _integer("IAID of the prefix delegation."),
                },
            ),
        },
    )


def object_schema() -> dict[str, Any]:
    """The schema of a whole DynamicPrefix object."""
    return {
        "type": "object",
        "description": "A dynamic IPv6 prefix followed by the operator, with the address "
        "ranges and subnets computed from it for load-balancer pools.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "required": ["spec"],
    }


def custom_resource_definition() -> dict[str, Any]:
    """The CRD manifest (apiextensions.k8s.io/v1)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Prefix", "type": "string", "jsonPath": ".status.currentPrefix"},
                        {"name": "Source", "type": "string", "jsonPath": ".status.prefixSource"},
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": object_schema()},
                }
            ],
        },
    }
