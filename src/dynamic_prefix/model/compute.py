"""What a prefix means for a DynamicPrefix: its address ranges and subnets, computed.

The result has the shape of the status fields of the same names, so `calc`, the status
writer and the pool backends all agree on every address by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from dynamic_prefix.addressing import AddressError, AddressRange, address_range, carve_subnet
from dynamic_prefix.model.schema import Problem
from dynamic_prefix.model.spec import DynamicPrefixSpec

CALICO_IPV6_BLOCK_SIZE = 122
"""Calico's default blockSize for IPv6 pools: a Calico IPPool's CIDR must be at least one
block, so a range whose cover has longer CIDRs cannot be a Calico pool in full."""


@dataclass(frozen=True, slots=True)
class ComputedRange:
    """An address range of the spec, placed in a concrete prefix."""

    name: str
    range: AddressRange

    @property
    def start(self) -> IPv6Address:
        """First address."""
        return self.range.start

    @property
    def end(self) -> IPv6Address:
        """Last address, inclusive."""
        return self.range.end

    def to_status(self) -> dict[str, Any]:
        """The entry of status.addressRanges."""
        return {
            "name": self.name,
            "start": str(self.start),
            "end": str(self.end),
            "cidrs": [str(cidr) for cidr in self.range.cidrs()],
            "cidr": str(self.range.enclosing()),
        }


@dataclass(frozen=True, slots=True)
class ComputedSubnet:
    """A subnet of the spec, carved from a concrete prefix."""

    name: str
    cidr: IPv6Network

    def to_status(self) -> dict[str, Any]:
        """The entry of status.subnets."""
        return {"name": self.name, "cidr": str(self.cidr)}


@dataclass(frozen=True, slots=True)
class Computed:
    """Everything computed from one prefix; ``problems`` lists what did not fit it."""

    prefix: IPv6Network
    address_ranges: tuple[ComputedRange, ...]
    subnets: tuple[ComputedSubnet, ...]
    problems: tuple[Problem, ...]

    def range_named(self, name: str) -> ComputedRange | None:
        """The computed address range called ``name``, if any."""
        return next((r for r in self.address_ranges if r.name == name), None)

    def subnet_named(self, name: str) -> ComputedSubnet | None:
        """The computed subnet called ``name``, if any."""
        return next((s for s in self.subnets if s.name == name), None)

    def calico_notes(self, block_size: int = CALICO_IPV6_BLOCK_SIZE) -> list[str]:
        """Ranges whose CIDRs are smaller than a Calico block: said before use (``calc``)."""
        notes = []
        for placed in self.address_ranges:
            small = [c for c in placed.range.cidrs() if c.prefixlen > block_size]
            if small:
                smallest = max(c.prefixlen for c in small)
                notes.append(
                    f"address range {placed.name} splits into CIDRs as small as /{smallest} "
                    f"({len(small)} of {len(placed.range.cidrs())} are smaller than a Calico "
                    f"block, /{block_size} by default): a Calico IPPool cannot hold those, so "
                    "with Calico align the range to the block size or lower the template's "
                    "blockSize; Cilium and MetalLB take it as it is"
                )
        return notes

    def to_status(self) -> dict[str, Any]:
        """``{prefix, addressRanges, subnets}`` shaped like the status fields."""
        return {
            "prefix": str(self.prefix),
            "addressRanges": [r.to_status() for r in self.address_ranges],
            "subnets": [s.to_status() for s in self.subnets],
        }


def compute(spec: DynamicPrefixSpec, prefix: IPv6Network) -> Computed:
    """Place every range and subnet of ``spec`` in ``prefix``.

    A validated spec fits the prefix its primary source is expected to deliver, but a
    server may delegate a different length; whatever does not fit is left out and named
    in ``problems`` rather than approximated.
    """
    problems: list[Problem] = []
    ranges: list[ComputedRange] = []
    for index, range_spec in enumerate(spec.address_ranges):
        try:
            placed = address_range(
                prefix, start_suffix=range_spec.start_suffix, end_suffix=range_spec.end_suffix
            )
        except AddressError as error:
            problems.append(
                Problem(
                    f"spec.addressRanges[{index}] ({range_spec.name})",
                    f"{error}; the other ranges and subnets are served",
                )
            )
            continue
        ranges.append(ComputedRange(range_spec.name, placed))
    subnets: list[ComputedSubnet] = []
    for index, subnet_spec in enumerate(spec.subnets):
        try:
            cidr = carve_subnet(
                prefix, offset=subnet_spec.offset, prefix_length=subnet_spec.prefix_length
            )
        except AddressError as error:
            problems.append(
                Problem(
                    f"spec.subnets[{index}] ({subnet_spec.name})",
                    f"{error}; the other ranges and subnets are served",
                )
            )
            continue
        subnets.append(ComputedSubnet(subnet_spec.name, cidr))
    return Computed(prefix, tuple(ranges), tuple(subnets), tuple(problems))


SUFFIX_BITS = 64  # the DHCPv6 pool of a router is a range of suffixes inside a /64


def dhcpv6_pool_outside(ranges: tuple[ComputedRange, ...]) -> tuple[int, int] | None:
    """The widest span of /64 suffixes a router's DHCPv6 pool may use, clear of ``ranges``.

    Suffix 0 (the Subnet-Router anycast address, RFC 4291 2.6.1) is never handed out.
    None when the ranges leave no room at all.
    """
    last = (1 << SUFFIX_BITS) - 1
    taken = sorted(
        (int(r.start) & last, int(r.end) & last) for r in ranges if r.range.size <= last + 1
    )
    best: tuple[int, int] | None = None
    cursor = 1
    for start, end in [*taken, (last + 1, last + 1)]:
        if start > cursor and (best is None or start - 1 - cursor > best[1] - best[0]):
            best = (cursor, start - 1)
        cursor = max(cursor, end + 1)
    return best


ODHCPD_MIN_HOST_ID_BITS = 12
"""odhcpd (OpenWRT) gives DHCPv6 leases host IDs of at least 12 bits (its default)."""


def odhcpd_host_id_bits(ranges: tuple[ComputedRange, ...]) -> int | None:
    """The largest ``dhcpv6_hostidlength`` that keeps OpenWRT's odhcpd clear of ``ranges``.

    odhcpd has no DHCPv6 pool bounds: it picks each lease's host ID below
    2^dhcpv6_hostidlength (12 to 64 bits). That stays clear of the ranges as long as
    2^bits is at most the lowest suffix they reserve. None when even 12 bits would reach
    into a range (one starts below ``::1000``).
    """
    last = (1 << SUFFIX_BITS) - 1
    lowest = min((int(r.start) & last for r in ranges), default=last + 1)
    bits = min(SUFFIX_BITS, lowest.bit_length() - 1) if lowest else -1
    return bits if bits >= ODHCPD_MIN_HOST_ID_BITS else None
