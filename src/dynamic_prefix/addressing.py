"""IPv6 prefix arithmetic: suffixes, address ranges, exact CIDR covers, carved subnets.

Everything works on `ipaddress` objects and integers, never on strings, and every bad
input raises `AddressError` with a message that says what is wrong and how to fix it:
a wrong answer here would put a Kubernetes service on somebody else's address.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import itertools
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

ADDRESS_BITS = 128
_ALL_ONES = (1 << ADDRESS_BITS) - 1


class AddressError(ValueError):
    """An address, prefix, suffix, range or subnet that cannot be used as given."""


def parse_address(text: str) -> IPv6Address:
    """An IPv6 address written in any RFC 4291 form (no zone, no prefix length)."""
    if not isinstance(text, str):
        raise AddressError(f"expected an IPv6 address as a string, got {type(text).__name__}")
    stripped = text.strip()
    if "/" in stripped:
        raise AddressError(f"{text!r} is a prefix; an address is expected here")
    if "%" in stripped:
        raise AddressError(f"{text!r} has a zone index; it is not allowed here")
    try:
        return IPv6Address(stripped)
    except ValueError:
        raise AddressError(f"{text!r} is not a valid IPv6 address") from None


def parse_prefix(text: str) -> IPv6Network:
    """An IPv6 prefix in CIDR notation; host bits must be zero (no silent masking)."""
    if not isinstance(text, str):
        raise AddressError(f"expected an IPv6 prefix as a string, got {type(text).__name__}")
    return _parse_prefix_text(text)


@functools.lru_cache(maxsize=4096)
def _parse_prefix_text(text: str) -> IPv6Network:
    """`parse_prefix` of a string, remembered: a status names the same few prefixes on
    every pass (an `IPv6Network` is immutable; a refused text raises each time)."""
    stripped = text.strip()
    if "/" not in stripped:
        raise AddressError(f"{text!r} has no prefix length; write it as e.g. 2001:db8:1::/64")
    address_part, _, length_part = stripped.partition("/")
    address = parse_address(address_part)
    if not length_part.isdigit():
        raise AddressError(f"{text!r}: prefix length {length_part!r} is not a number")
    length = int(length_part)
    if length > ADDRESS_BITS:
        raise AddressError(f"{text!r}: prefix length {length} is longer than 128")
    network = IPv6Network((address, length), strict=False)
    if network.network_address != address:
        raise AddressError(
            f"{text!r} has host bits set; the prefix is {network} "
            f"(or did you mean a longer prefix length?)"
        )
    return network


def parse_suffix(text: str) -> int:
    """A suffix written as an IPv6 address (``::f000:0:0:0``), as an integer."""
    if not isinstance(text, str):
        return int(parse_address(text))  # refused, with the reason
    return _parse_suffix_text(text)


@functools.lru_cache(maxsize=1024)
def _parse_suffix_text(text: str) -> int:
    """`parse_suffix` of a string, remembered: each spec check reads the same few range
    ends again (an int is immutable; a refused text raises each time)."""
    return int(parse_address(text))


def host_bits(prefix: IPv6Network) -> int:
    """How many bits a suffix may use inside ``prefix``."""
    return ADDRESS_BITS - prefix.prefixlen


def combine(prefix: IPv6Network, suffix: int) -> IPv6Address:
    """The address made of ``prefix``'s network bits and ``suffix``'s host bits.

    A suffix with any bit inside the prefix is refused rather than masked: silently
    dropping those bits would yield an address the user never asked for.
    """
    if not 0 <= suffix <= _ALL_ONES:
        raise AddressError(f"suffix {suffix} is not a 128-bit value")
    if suffix >> host_bits(prefix):
        raise AddressError(
            f"suffix {IPv6Address(suffix)} does not fit in {prefix}: "
            f"it sets bits inside the /{prefix.prefixlen} prefix, "
            f"only the last {host_bits(prefix)} bits are free"
        )
    return IPv6Address(int(prefix.network_address) | suffix)


def suffix_of(prefix: IPv6Network, address: IPv6Address) -> int:
    """The host part of ``address`` inside ``prefix`` (inverse of `combine`)."""
    if address not in prefix:
        raise AddressError(f"{address} is not inside {prefix}")
    return int(address) & ((1 << host_bits(prefix)) - 1)


@dataclass(frozen=True, slots=True)
class AddressRange:
    """An inclusive range of addresses with the exact CIDRs that cover it."""

    start: IPv6Address
    end: IPv6Address

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise AddressError(f"range start {self.start} is after its end {self.end}")

    @property
    def size(self) -> int:
        """Number of addresses in the range, both ends included."""
        return int(self.end) - int(self.start) + 1

    def first(self, count: int) -> tuple[IPv6Address, ...]:
        """The first ``count`` addresses of the range (fewer if it is smaller)."""
        return tuple(IPv6Address(int(self.start) + i) for i in range(min(count, self.size)))

    def enclosing(self) -> IPv6Network:
        """The smallest single CIDR containing the whole range (wider unless it is one)."""
        differing = (int(self.start) ^ int(self.end)).bit_length()
        return IPv6Network((int(self.start) >> differing << differing, ADDRESS_BITS - differing))

    def cidrs(self) -> tuple[IPv6Network, ...]:
        """The fewest CIDRs whose union is exactly the range: never a wider block."""
        return tuple(ipaddress.summarize_address_range(self.start, self.end))

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv6Address) and self.start <= address <= self.end


def address_range(prefix: IPv6Network, *, start_suffix: int, end_suffix: int) -> AddressRange:
    """The range ``prefix + start_suffix`` .. ``prefix + end_suffix``, checked to fit."""
    if start_suffix > end_suffix:
        raise AddressError(
            f"start {IPv6Address(start_suffix)} is after end {IPv6Address(end_suffix)}"
        )
    return AddressRange(combine(prefix, start_suffix), combine(prefix, end_suffix))


def range_from_cidrs(cidrs: list[IPv6Network] | tuple[IPv6Network, ...]) -> AddressRange:
    """The range a list of adjacent CIDRs covers; refuses gaps and overlaps."""
    if not cidrs:
        raise AddressError("no CIDRs given")
    ordered = sorted(cidrs, key=lambda net: int(net.network_address))
    for before, after in itertools.pairwise(ordered):
        if int(before.broadcast_address) + 1 != int(after.network_address):
            raise AddressError(f"{before} and {after} are not adjacent")
    return AddressRange(ordered[0].network_address, ordered[-1].broadcast_address)


def subnet_count(delegated: IPv6Network, prefix_length: int) -> int:
    """How many /``prefix_length`` subnets fit in ``delegated``."""
    return 1 << (prefix_length - delegated.prefixlen)


def carve_subnet(delegated: IPv6Network, *, offset: int, prefix_length: int) -> IPv6Network:
    """The ``offset``-th /``prefix_length`` subnet of ``delegated`` (offset 0 is the first)."""
    if not 0 <= prefix_length <= ADDRESS_BITS:
        raise AddressError(f"prefix length {prefix_length} is not between 0 and 128")
    if prefix_length < delegated.prefixlen:
        raise AddressError(
            f"a /{prefix_length} subnet cannot be carved from {delegated}: "
            f"it is larger than the /{delegated.prefixlen} it would come from"
        )
    if offset < 0:
        raise AddressError(f"offset {offset} is negative")
    count = subnet_count(delegated, prefix_length)
    if offset >= count:
        raise AddressError(
            f"offset {offset} is past the last subnet: {delegated} holds {count} "
            f"/{prefix_length} subnet{'s' if count != 1 else ''} (offsets 0 to {count - 1})"
        )
    base = int(delegated.network_address) + (offset << (ADDRESS_BITS - prefix_length))
    return IPv6Network((base, prefix_length))


class AddressClass(enum.Enum):
    """What kind of address or prefix it is (RFC 4291 section 2.4, RFC 4193)."""

    GLOBAL_UNICAST = "global unicast"
    UNIQUE_LOCAL = "unique local"
    LINK_LOCAL = "link-local"
    MULTICAST = "multicast"
    LOOPBACK = "loopback"
    UNSPECIFIED = "unspecified"
    IPV4_MAPPED = "IPv4-mapped"
    RESERVED = "reserved"


_CLASS_BLOCKS: tuple[tuple[IPv6Network, AddressClass], ...] = (
    (IPv6Network("::/128"), AddressClass.UNSPECIFIED),
    (IPv6Network("::1/128"), AddressClass.LOOPBACK),
    (IPv6Network("::ffff:0:0/96"), AddressClass.IPV4_MAPPED),
    (IPv6Network("fe80::/10"), AddressClass.LINK_LOCAL),
    (IPv6Network("fc00::/7"), AddressClass.UNIQUE_LOCAL),
    (IPv6Network("ff00::/8"), AddressClass.MULTICAST),
    (IPv6Network("2000::/3"), AddressClass.GLOBAL_UNICAST),
)


def classify(value: IPv6Address | IPv6Network) -> AddressClass:
    """The class of an address, or of a prefix lying wholly inside one class's block.

    A prefix that straddles blocks (``::/0``, ``fe00::/9``) is `AddressClass.RESERVED`:
    nothing good comes from treating it as any one of them.
    """
    network = IPv6Network(value) if isinstance(value, IPv6Address) else value
    for block, address_class in _CLASS_BLOCKS:
        if network.subnet_of(block):
            return address_class
    return AddressClass.RESERVED
