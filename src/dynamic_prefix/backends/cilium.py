"""Cilium LB-IPAM: CiliumLoadBalancerIPPool (spec.blocks) and CiliumCIDRGroup (externalCIDRs).

Address ranges become ``{start, stop}`` blocks (Cilium says stop, not end) and subnets
``{cidr}`` blocks. A CIDR group can only hold CIDRs, so a range there is its exact CIDR
list, never a wider block. Both kinds are served as cilium.io/v2 by current Cilium and
v2alpha1 by older releases; the operator uses whichever the cluster prefers.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from dynamic_prefix.backends.base import Placement
from dynamic_prefix.backends.list_field import Entry, ListFieldBackend, address_span
from dynamic_prefix.model import api

GROUP = "cilium.io"
VERSIONS = ("v2", "v2alpha1")


def _block(placement: Placement) -> list[Entry]:
    if placement.address_range is not None:
        return [
            {"start": str(placement.address_range.start), "stop": str(placement.address_range.end)}
        ]
    return [{"cidr": str(cidr)} for cidr in placement.cidrs()]


def _valid_address(text: object) -> bool:
    return _parses(str(text), network=False)


def _valid_cidr(text: object) -> bool:
    return _parses(str(text), network=True)


@functools.lru_cache(maxsize=4096)
def _parses(text: str, *, network: bool) -> bool:
    """Cached: every reconcile checks the user's entries of every pool again."""
    try:
        if network:
            ipaddress.ip_network(text, strict=False)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _malformed_block(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "not an object"
    if "cidr" in entry:
        return None if _valid_cidr(entry["cidr"]) else "cidr is not a valid CIDR"
    if "start" in entry:
        ends_ok = _valid_address(entry["start"]) and _valid_address(
            entry.get("stop", entry["start"])
        )
        return None if ends_ok else "start/stop is not a valid address"
    return "has neither cidr nor start"


def _block_span(entry: Any) -> tuple[int, int] | None:
    if not isinstance(entry, dict):
        return None
    if "cidr" in entry:
        return address_span(str(entry["cidr"]))
    if "start" in entry:
        return address_span(f"{entry['start']}-{entry.get('stop', entry['start'])}")
    return None


def _cidrs(placement: Placement) -> list[Entry]:
    return [str(cidr) for cidr in placement.cidrs()]


def _malformed_cidr(entry: Any) -> str | None:
    return None if isinstance(entry, str) and _valid_cidr(entry) else "not a valid CIDR"


LB_IP_POOL = ListFieldBackend(
    name="cilium-lb-ip-pool",
    group=GROUP,
    plural="ciliumloadbalancerippools",
    kind="CiliumLoadBalancerIPPool",
    versions=VERSIONS,
    field="blocks",
    record_annotation=api.ANNOTATION_MANAGED_BLOCKS,
    render=_block,
    malformed=_malformed_block,
    span=_block_span,
)

CIDR_GROUP = ListFieldBackend(
    name="cilium-cidr-group",
    group=GROUP,
    plural="ciliumcidrgroups",
    kind="CiliumCIDRGroup",
    versions=VERSIONS,
    field="externalCIDRs",
    record_annotation=api.ANNOTATION_MANAGED_CIDRS,
    render=_cidrs,
    malformed=_malformed_cidr,
)
