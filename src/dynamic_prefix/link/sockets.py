"""Linux socket options, ioctls and link numbers the `socket` module does not name.

One definition each, for every source that opens its own socket on an interface.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

# Socket options, <asm-generic/socket.h>; level SOL_SOCKET.
SO_BINDTODEVICE: Final[int] = getattr(socket, "SO_BINDTODEVICE", 25)
SO_RCVBUFFORCE: Final = 33
"""SO_RCVBUF beyond net.core.rmem_max; needs CAP_NET_ADMIN."""
SO_RXQ_OVFL: Final = 40
"""Ancillary data with the running count of datagrams the kernel dropped (buffer full)."""

ICMP6_FILTER: Final = 1
"""The ICMPv6 types a raw socket is passed; level IPPROTO_ICMPV6, <linux/icmpv6.h>."""

# Interface ioctls, <linux/sockios.h>, on any socket, with a struct ifreq.
SIOCGIFFLAGS: Final = 0x8913
SIOCGIFHWADDR: Final = 0x8927
IFREQ: Final = struct.Struct("16s24x")
"""struct ifreq: the interface name, then a 24-octet union the reply fills."""

# Interface flags, <linux/if.h>.
IFF_UP: Final = 0x1
IFF_RUNNING: Final = 0x40

ARPHRD_ETHER: Final = 1
"""The link type of Ethernet, <linux/if_arp.h>; also IANA hardware type 1."""


def icmp6_filter_passing(*types: int) -> bytes:
    """An ICMP6_FILTER value: eight 32-bit words in which a set bit BLOCKS that type."""
    words = [0xFFFF_FFFF] * 8
    for icmp_type in types:
        words[icmp_type >> 5] &= ~(1 << (icmp_type & 31)) & 0xFFFF_FFFF
    return struct.pack("=8I", *words)
