"""Factories of the sources that listen on a node's link, and the DHCPv6 identity store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from dynamic_prefix.kube.api import KubeApi
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.model import api
from dynamic_prefix.model.spec import (
    Acquisition,
    Dhcpv6PdSpec,
    NetlinkSpec,
    PrefixSourceSpec,
    RouterAdvertisementSpec,
    source_name,
)
from dynamic_prefix.model.status import current_prefix
from dynamic_prefix.operator import logs
from dynamic_prefix.protocols.tracker import TrackerPolicy
from dynamic_prefix.sources.base import Dhcpv6Identity, IdentityStore, PrefixSource, SourceError
from dynamic_prefix.sources.dhcpv6 import Dhcpv6PdSource
from dynamic_prefix.sources.netlink import NetlinkSource
from dynamic_prefix.sources.router_advertisement import (
    RouterAdvertisementSource,
)

logger = logging.getLogger(__name__)


class StatusIdentityStore:
    """Keeps the DHCPv6 identity in ``status.dhcpv6`` of the DynamicPrefix.

    The status outlives pods and leaders, so whoever runs the client next presents the
    same DUID and IAID and the server renews the same binding.
    """

    def __init__(
        self,
        client: KubeApi,
        resource: Resource,
        name: str,
        cached: Callable[[], Mapping[str, Any] | None],
        store: Callable[[dict[str, Any]], None],
    ) -> None:
        self._client = client
        self._resource = resource
        self._name = name
        self._cached = cached
        self._store = store

    async def load(self) -> Dhcpv6Identity | None:
        """The identity in the cached status, if any."""
        status = (self._cached() or {}).get("status") or {}
        saved = status.get("dhcpv6") or {}
        try:
            duid, iaid = bytes.fromhex(saved["duid"]), int(saved["iaid"])
        except (KeyError, TypeError, ValueError):
            return None
        held = None
        if status.get("prefixSource") == api.SOURCE_DHCPV6_PD:
            held = current_prefix(status)
        return Dhcpv6Identity(duid, iaid, held)

    async def save(self, identity: Dhcpv6Identity) -> None:
        """Write it to the status before it is used on the wire."""
        patch = {"status": {"dhcpv6": {"duid": identity.duid.hex(), "iaid": identity.iaid}}}
        self._store(
            await self._client.patch(self._resource, self._name, patch, subresource="status")
        )
        logger.info("DHCPv6 identity saved in status", extra=logs.about(self._name))


def build_link_source(
    name: str,
    spec: PrefixSourceSpec,
    acquisition: Acquisition,
    *,
    identity_store: IdentityStore | None = None,
) -> PrefixSource:
    """The receiver for a link source; `SourceError` if it cannot be built."""
    match spec:
        case Dhcpv6PdSpec(interface=interface, requested_prefix_length=length):
            if identity_store is None:
                raise SourceError("the DHCPv6 client needs a place to keep its identity")
            return Dhcpv6PdSource(
                interface, requested_prefix_length=length, identity_store=identity_store
            )
        case RouterAdvertisementSpec(interface=interface, trusted_routers=trusted):
            policy = TrackerPolicy(
                trusted_routers=trusted, allow_ula=acquisition.allow_unique_local
            )
            return RouterAdvertisementSource(interface, policy=policy)
        case NetlinkSpec(interface=interface):
            return NetlinkSource(
                interface, policy=TrackerPolicy(allow_ula=acquisition.allow_unique_local)
            )
    raise SourceError(f"no receiver for source {source_name(spec)}")
