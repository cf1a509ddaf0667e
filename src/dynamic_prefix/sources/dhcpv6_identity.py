"""The DHCPv6 client's identity (DUID and IAID): made once per interface, then kept.

The server binds a delegation to the DUID and IAID, so the operator must present the same
pair after every restart, on whichever node holds the leadership: a new pair is a new
client and, usually, a renumbering. `new_identity` makes one that does not depend on the
node; the stores keep it (the operator's own store, in the DynamicPrefix status, lives in
`dynamic_prefix.operator.link_sources`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from pathlib import Path

from dynamic_prefix.link.interfaces import hardware_address
from dynamic_prefix.link.sockets import ARPHRD_ETHER
from dynamic_prefix.protocols.dhcpv6 import (
    HARDWARE_TYPE_ETHERNET,
    DuidLl,
    DuidType,
    UnknownDuid,
    build_duid,
)
from dynamic_prefix.sources.base import Dhcpv6Identity, SourceError

__all__ = [
    "FileIdentityStore",
    "InMemoryIdentityStore",
    "identity_for_interface",
    "new_identity",
]

_ETHERNET_ADDRESS_LENGTH = 6


def new_identity(
    interface: str, *, hardware_type: int, link_layer_address: bytes
) -> Dhcpv6Identity:
    """A fresh identity for ``interface``: DUID-LL of its MAC, IAID from its name.

    The IAID is the first 32 bits of SHA-256 of the interface name, so it is the same on
    every node. An interface without an Ethernet address (a tunnel, WireGuard) gets a
    random DUID-UUID (RFC 8415 section 11.5) instead; either way the identity is stored
    and reused, so only its first creation depends on the interface.
    """
    iaid = int.from_bytes(hashlib.sha256(interface.encode()).digest()[:4], "big")
    if (
        hardware_type == ARPHRD_ETHER
        and len(link_layer_address) == _ETHERNET_ADDRESS_LENGTH
        and any(link_layer_address)
    ):
        duid = build_duid(DuidLl(HARDWARE_TYPE_ETHERNET, link_layer_address))
    else:
        duid = build_duid(UnknownDuid(DuidType.UUID, uuid.uuid4().bytes))
    return Dhcpv6Identity(duid=duid, iaid=iaid)


def identity_for_interface(interface: str) -> Dhcpv6Identity:
    """`new_identity` from the interface's link-layer address as the kernel shows it;
    `SourceError` if that cannot be read."""
    try:
        link = hardware_address(interface)
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read the link-layer address of {interface}: {exc}") from exc
    return new_identity(
        interface, hardware_type=link.hardware_type, link_layer_address=link.address
    )


class InMemoryIdentityStore:
    """Keeps the identity in this object only (tests, one-off CLI runs)."""

    def __init__(self, identity: Dhcpv6Identity | None = None) -> None:
        self.identity = identity
        self.saves = 0

    async def load(self) -> Dhcpv6Identity | None:
        """The identity given or saved last."""
        return self.identity

    async def save(self, identity: Dhcpv6Identity) -> None:
        """Remember ``identity``."""
        self.identity = identity
        self.saves += 1


class FileIdentityStore:
    """Keeps the identity in a JSON file, ``{"duid": "<hex>", "iaid": <int>}``.

    Writes go to a temporary file renamed over the old one, so a crash never leaves half
    a file. An unreadable file is a `SourceError`, never silently replaced: a new DUID
    would lose the binding.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    async def load(self) -> Dhcpv6Identity | None:
        """The stored identity, or None if the file does not exist."""
        return await asyncio.to_thread(self._load)

    async def save(self, identity: Dhcpv6Identity) -> None:
        """Write ``identity`` atomically, creating the parent directory if needed."""
        await asyncio.to_thread(self._save, identity)

    def _load(self) -> Dhcpv6Identity | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"cannot read the DHCPv6 identity file {self.path}: {exc}") from exc
        try:
            data = json.loads(text)
            duid = bytes.fromhex(data["duid"])
            iaid = data["iaid"]
            if not isinstance(iaid, int) or isinstance(iaid, bool):
                raise TypeError(f"iaid is {type(iaid).__name__}, not an integer")
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(
                f"the DHCPv6 identity file {self.path} is not valid ({exc}); "
                'expected {"duid": "<hex>", "iaid": <integer>}'
            ) from exc
        return Dhcpv6Identity(duid=duid, iaid=iaid)

    def _save(self, identity: Dhcpv6Identity) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"duid": identity.duid.hex(), "iaid": identity.iaid}))
        os.replace(temporary, self.path)
