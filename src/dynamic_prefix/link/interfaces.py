"""Facts about a node interface as the kernel reports them: index, state, link-layer
address, IPv6 addresses, the interface of the default route, IPv6 settings.

Each reader looks once and returns what it saw; none waits or retries (that is the
sources' business). The parsers take text, so they can be tested without an interface.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Final

from dynamic_prefix.link.rtnetlink import (
    IFA_F_DADFAILED,
    IFA_F_OPTIMISTIC,
    IFA_F_TENTATIVE,
    RT_SCOPE_LINK,
)
from dynamic_prefix.link.sockets import (
    ARPHRD_ETHER,
    IFF_RUNNING,
    IFF_UP,
    IFREQ,
    SIOCGIFFLAGS,
    SIOCGIFHWADDR,
)

PROC_IPV6_ROUTE: Final = Path("/proc/net/ipv6_route")
PROC_IF_INET6: Final = Path("/proc/net/if_inet6")
IPV6_CONF: Final = Path("/proc/sys/net/ipv6/conf")
SYS_CLASS_NET: Final = Path("/sys/class/net")

# /proc/net/ipv6_route flags, <linux/route.h> and <linux/ipv6_route.h>.
_RTF_UP = 0x0001
_RTF_REJECT = 0x0200
_IPV6_ROUTE_FIELDS = 10
_ETHERNET_ADDRESS_LENGTH = 6
_IF_INET6_FIELDS = 6  # address, ifindex, prefix length, scope, flags, name
_IF_INET6_ADDRESS_DIGITS = 32
_LINK_LOCAL = IPv6Network("fe80::/10")


# --- index, state and MAC, by ioctl ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkFacts:
    """What a listener needs to know about its interface, read at one moment."""

    ifindex: int
    up: bool
    """Up and running (``IFF_UP`` and ``IFF_RUNNING``)."""
    mac: bytes | None
    """None for link layers without 6-octet Ethernet addresses."""


def read_link(interface: str) -> LinkFacts | None:
    """The interface's index, whether it is up and running, and its MAC; None if absent."""
    try:
        ifindex = socket.if_nametoindex(interface)
        request = IFREQ.pack(interface.encode())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            flags_reply = fcntl.ioctl(probe, SIOCGIFFLAGS, request)
            address_reply = fcntl.ioctl(probe, SIOCGIFHWADDR, request)
    except OSError:
        return None
    (flags,) = struct.unpack_from("=H", flags_reply, 16)
    (family,) = struct.unpack_from("=H", address_reply, 16)
    mac = address_reply[18:24]
    usable_mac = family == ARPHRD_ETHER and any(mac)
    return LinkFacts(
        ifindex=ifindex,
        up=flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING,
        mac=mac if usable_mac else None,
    )


# --- link-layer address, from sysfs -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HardwareAddress:
    """An interface's link type (``ARPHRD_*``) and link-layer address as sysfs shows them."""

    hardware_type: int
    address: bytes
    """Empty if sysfs shows something that is not hex octets."""

    @property
    def ethernet(self) -> bytes | None:
        """The address if it is a 6-octet one, not all zeros; whatever the link type."""
        address = self.address
        return address if len(address) == _ETHERNET_ADDRESS_LENGTH and any(address) else None


def hardware_address(interface: str, sys_class_net: Path = SYS_CLASS_NET) -> HardwareAddress:
    """The interface's link type and address; `OSError` or `ValueError` if unreadable."""
    directory = sys_class_net / interface
    hardware_type = int((directory / "type").read_text().strip())
    text = (directory / "address").read_text().strip()
    try:
        address = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        address = b""
    return HardwareAddress(hardware_type, address)


# --- IPv6 addresses, from /proc/net/if_inet6 ----------------------------------------------
# Read there rather than over netlink: one small file, no socket, and pyroute2 stays out
# of the processes that only need a link-local address to bind.


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    """One line of ``/proc/net/if_inet6``."""

    address: IPv6Address
    ifindex: int
    prefix_length: int
    scope: int
    flags: int
    ifname: str

    @property
    def usable(self) -> bool:
        """Bindable: duplicate address detection is over (or optimistic) and did not fail."""
        if self.flags & IFA_F_DADFAILED:
            return False
        return not self.flags & IFA_F_TENTATIVE or bool(self.flags & IFA_F_OPTIMISTIC)


def parse_if_inet6(text: str) -> list[InterfaceAddress]:
    """The addresses in the text of ``/proc/net/if_inet6``; malformed lines are skipped."""
    found: list[InterfaceAddress] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != _IF_INET6_FIELDS or len(fields[0]) != _IF_INET6_ADDRESS_DIGITS:
            continue
        try:
            address = IPv6Address(int(fields[0], 16))
            ifindex, prefix_length, scope, flags = (int(field, 16) for field in fields[1:5])
        except ValueError:
            continue
        found.append(InterfaceAddress(address, ifindex, prefix_length, scope, flags, fields[5]))
    return found


def usable_link_local(addresses: list[InterfaceAddress], ifindex: int) -> IPv6Address | None:
    """The first usable link-local address on interface ``ifindex``, if any."""
    for entry in addresses:
        if (
            entry.ifindex == ifindex
            and entry.scope == RT_SCOPE_LINK
            and entry.address in _LINK_LOCAL
            and entry.usable
        ):
            return entry.address
    return None


def read_if_inet6(if_inet6: Path = PROC_IF_INET6) -> list[InterfaceAddress]:
    """Every IPv6 address of this node's interfaces; none if IPv6 is disabled on the node
    (the file is absent). Other read errors are `OSError`."""
    try:
        text = if_inet6.read_text()
    except FileNotFoundError:
        return []
    return parse_if_inet6(text)


# --- the interface of the default route -------------------------------------------------


def parse_default_route_interface(route_table: str) -> str | None:
    """The interface of the best IPv6 default route in ``/proc/net/ipv6_route`` text.

    Lines are destination, its length, source, its length, next hop, metric, reference
    count, use count, flags and device. The best ``::/0`` route that is up, not a reject
    route and not on ``lo`` wins, by lowest metric then first listed.
    """
    best: tuple[int, str] | None = None
    for line in route_table.splitlines():
        fields = line.split()
        if len(fields) != _IPV6_ROUTE_FIELDS:
            continue
        destination, length, metric, flags, device = (
            fields[0],
            fields[1],
            fields[5],
            fields[8],
            fields[9],
        )
        try:
            if int(destination, 16) != 0 or int(length, 16) != 0:
                continue
            route_flags = int(flags, 16)
            route_metric = int(metric, 16)
        except ValueError:
            continue
        if device == "lo" or not route_flags & _RTF_UP or route_flags & _RTF_REJECT:
            continue
        if best is None or route_metric < best[0]:
            best = (route_metric, device)
    return None if best is None else best[1]


def read_default_route_interface(route_table: Path = PROC_IPV6_ROUTE) -> str | None:
    """The interface of this node's best IPv6 default route, None if it has none;
    `OSError` if the routing table cannot be read."""
    return parse_default_route_interface(route_table.read_text())


# --- IPv6 settings ----------------------------------------------------------------------


def read_ipv6_settings(
    interface: str, names: tuple[str, ...], ipv6_conf: Path = IPV6_CONF
) -> dict[str, int] | None:
    """The interface's ``net.ipv6.conf`` integer settings ``names``; None if any of them
    cannot be read (no such interface, IPv6 disabled, not an integer)."""
    directory = ipv6_conf / interface
    try:
        return {name: int((directory / name).read_text()) for name in names}
    except (OSError, ValueError):
        return None
