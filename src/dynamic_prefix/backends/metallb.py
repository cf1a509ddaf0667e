"""MetalLB IPAddressPool (metallb.io/v1beta1, namespaced): spec.addresses.

Address ranges become ``start-end`` strings and subnets CIDR strings, the two forms
MetalLB accepts.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from dynamic_prefix.backends.base import Placement
from dynamic_prefix.backends.list_field import Entry, ListFieldBackend, address_span
from dynamic_prefix.model import api


def _address(placement: Placement) -> list[Entry]:
    if placement.address_range is not None:
        return [f"{placement.address_range.start}-{placement.address_range.end}"]
    return [str(cidr) for cidr in placement.cidrs()]


def _malformed(entry: Any) -> str | None:
    if not isinstance(entry, str):
        return "not a string"
    return _malformed_text(entry)


@functools.lru_cache(maxsize=4096)
def _malformed_text(entry: str) -> str | None:
    """Cached: a prefix change checks every user entry of every pool again."""
    try:
        if "-" in entry:
            start, _, end = entry.partition("-")
            ipaddress.ip_address(start.strip())
            ipaddress.ip_address(end.strip())
        else:
            ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return "neither a CIDR nor a start-end range"
    return None


def _span(entry: Any) -> tuple[int, int] | None:
    return address_span(entry) if isinstance(entry, str) else None


IP_ADDRESS_POOL = ListFieldBackend(
    name="metallb-ip-address-pool",
    group="metallb.io",
    plural="ipaddresspools",
    kind="IPAddressPool",
    versions=("v1beta1",),
    field="addresses",
    record_annotation=api.ANNOTATION_MANAGED_ADDRESSES,
    render=_address,
    malformed=_malformed,
    span=_span,
)
