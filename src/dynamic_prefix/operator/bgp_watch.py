"""Watching the BGP kinds: one list+watch per kind the cluster serves (`operator.kinds`).

What is seen is held by the `Announcer`, so that writes happen only where the cluster
differs, and an object of ours that a user edits or deletes is put right at once. A kind
counts as served once it was listed: before that the operator could not tell an object
of its own from a missing one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dynamic_prefix.backends.bgp import CALICO_BGP_CONFIGURATION, CALICO_CONFIGURATION_NAME, BgpKind
from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.informer import Informer
from dynamic_prefix.operator.controller import Controller


class BgpWatcher:
    """Follows one BGP kind; hands events to the controller."""

    def __init__(
        self,
        client: KubeClient,
        controller: Controller,
        kind: BgpKind,
        resource: Resource,
        *,
        listed: asyncio.Event | None = None,
    ) -> None:
        self.controller = controller
        self.kind = kind
        self.resource = resource
        self.informer = Informer(
            client,
            resource,
            self._dispatch,
            own_writes=True,
            listed=listed,
            on_listed=lambda: controller.bgp_kind_served(kind, resource),
        )

    async def run(self) -> None:
        """Until cancelled; the controller is told once the kind was listed."""
        await self.informer.run()

    def _dispatch(self, event_type: str | None, obj: dict[str, Any]) -> None:
        if self.kind is CALICO_BGP_CONFIGURATION and (
            (obj.get("metadata") or {}).get("name") != CALICO_CONFIGURATION_NAME
        ):
            return  # Calico reads its cluster-wide settings from "default" only
        self.controller.on_bgp_object(self.kind, event_type, obj)
