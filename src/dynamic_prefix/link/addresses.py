"""What the kernel knows about an interface's IPv6 neighbours and addresses, read once
over route netlink (pyroute2), for `doctor`: no `ip` command, no text to parse.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Final

from pyroute2 import IPRoute

from dynamic_prefix.link.rtnetlink import IFA_F_DADFAILED, IFA_F_TENTATIVE, RT_SCOPE_UNIVERSE

NUD_FAILED: Final = 0x20
NUD_NOARP: Final = 0x40
"""Neighbour states (<linux/neighbour.h>) that say nothing about a node being there."""


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One entry of the kernel's IPv6 neighbour table."""

    address: IPv6Address
    link_address: str | None


def global_addresses(interface: str) -> list[IPv6Address]:
    """The interface's global IPv6 addresses usable as a source (DAD done and passed);
    empty if the interface does not exist or netlink cannot be read."""
    try:
        with IPRoute() as ipr:
            indexes = ipr.link_lookup(ifname=interface)
            if not indexes:
                return []
            messages = ipr.get_addr(family=socket.AF_INET6, index=indexes[0])
    except OSError:
        return []
    found = []
    for message in messages:
        flags = message.get_attr("IFA_FLAGS") or message["flags"]
        if message["scope"] != RT_SCOPE_UNIVERSE or flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
            continue
        found.append(IPv6Address(message.get_attr("IFA_ADDRESS")))
    return found


def neighbours(interface: str) -> list[Neighbour]:
    """The kernel's IPv6 neighbour table on the interface (failed and no-ARP entries left
    out); empty if the interface does not exist or netlink cannot be read."""
    try:
        with IPRoute() as ipr:
            indexes = ipr.link_lookup(ifname=interface)
            if not indexes:
                return []
            messages = ipr.get_neighbours(family=socket.AF_INET6, ifindex=indexes[0])
    except OSError:
        return []
    found = []
    for message in messages:
        if message["state"] & (NUD_FAILED | NUD_NOARP):
            continue
        address = IPv6Address(message.get_attr("NDA_DST"))
        if address.is_multicast:
            continue
        found.append(Neighbour(address, message.get_attr("NDA_LLADDR")))
    return found
