"""Where a LoadBalancer Service's address is in each prefix: pure, like the pool backends.

A Service opts in with ``dynamic-prefix.io/name`` and one of
``dynamic-prefix.io/service-address-range`` / ``dynamic-prefix.io/service-subnet`` (the
Go operator's annotations; neither means the whole prefix). Its interface identifier,
the *suffix*, is fixed: given by
``dynamic-prefix.io/suffix`` (e.g. ``::ffff:0:2``), or else taken once from the address
its IPAM gave it. Its address in a prefix is then the base of the placement (the /64 of
an address range, or the subnet) plus the suffix; it must lie inside the range or subnet.
The pinned addresses are the ones of every prefix in use (current first, then the
history while it is valid), exactly the prefixes the pools hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network, ip_address
from typing import Final

from dynamic_prefix.addressing import AddressError, combine, parse_suffix, suffix_of
from dynamic_prefix.backends.base import Placement, PoolReference, ReferenceProblem
from dynamic_prefix.model import api

ANNOTATION_SERVICE_ADDRESS_RANGE: Final = f"{api.GROUP}/service-address-range"
ANNOTATION_SERVICE_SUBNET: Final = f"{api.GROUP}/service-subnet"
ANNOTATION_SUFFIX: Final = f"{api.GROUP}/suffix"


@dataclass(frozen=True, slots=True)
class ServiceReference:
    """What a Service's annotations ask for: a range or subnet of a DynamicPrefix, and
    the suffix if the user fixed it."""

    placement: PoolReference
    suffix: int | None = None

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str] | None) -> ServiceReference | None:
        """The reference of an opted-in Service; None if it does not opt in. Raises
        `ReferenceProblem` for a suffix that is not an interface identifier.

        The pools' ``address-range`` / ``subnet`` are read too when the Service-specific
        names are absent, and neither means the whole prefix, as in the Go operator.
        """
        annotations = annotations or {}
        name = annotations.get(api.ANNOTATION_NAME, "").strip()
        if not name:
            return None
        address_range = (
            annotations.get(ANNOTATION_SERVICE_ADDRESS_RANGE, "").strip()
            or annotations.get(api.ANNOTATION_ADDRESS_RANGE, "").strip()
            or None
        )
        subnet = (
            annotations.get(ANNOTATION_SERVICE_SUBNET, "").strip()
            or annotations.get(api.ANNOTATION_SUBNET, "").strip()
            or None
        )
        text = annotations.get(ANNOTATION_SUFFIX, "").strip()
        suffix = None
        if text:
            try:
                suffix = parse_suffix(text)
            except AddressError as error:
                raise ReferenceProblem(f"{ANNOTATION_SUFFIX} {text!r}: {error}") from error
            if suffix == 0:
                raise ReferenceProblem(
                    f"{ANNOTATION_SUFFIX} {text!r} is zero: the subnet-router anycast "
                    "address is no address for a Service"
                )
        return cls(PoolReference(name, address_range, subnet), suffix)


def base_of(placement: Placement) -> IPv6Network:
    """The network a suffix is added to: the subnet, or the prefix of an address range."""
    return placement.cidr if placement.cidr is not None else placement.prefix


def address_in(placement: Placement, suffix: int) -> IPv6Address:
    """The Service's address in one placement; `ReferenceProblem` if it falls outside the
    range or subnet, or the suffix has bits inside the network's prefix."""
    base = base_of(placement)
    host_bits = 128 - base.prefixlen
    if suffix >> host_bits:
        raise ReferenceProblem(
            f"suffix {IPv6Address(suffix)} has bits inside the /{base.prefixlen} of {base}: "
            f"a suffix must fit in its last {host_bits} bits"
        )
    address = combine(base, suffix)
    if not _inside(placement, address):
        where = (
            f"{placement.address_range.start}-{placement.address_range.end}"
            if placement.address_range is not None
            else str(base)
        )
        raise ReferenceProblem(f"{address} (prefix + suffix) is outside {where}")
    return address


def pinned_addresses(placements: Sequence[Placement], suffix: int) -> tuple[IPv6Address, ...]:
    """The Service's address in every prefix in use, current first (as `placements`)."""
    return tuple(address_in(placement, suffix) for placement in placements)


def inferred_suffix(placements: Sequence[Placement], addresses: Iterable[str]) -> int | None:
    """The suffix of the first IPv6 address the Service has (its IPAM's choice) that lies
    in one of the placements, newest placement first; None if none does."""
    parsed = []
    for text in addresses:
        try:
            address = ip_address(text.strip())
        except ValueError:
            continue
        if isinstance(address, IPv6Address):
            parsed.append(address)
    for placement in placements:
        for address in parsed:
            if _inside(placement, address):
                return suffix_of(base_of(placement), address)
    return None


def _inside(placement: Placement, address: IPv6Address) -> bool:
    if placement.address_range is not None:
        return address in placement.address_range
    return address in base_of(placement)
