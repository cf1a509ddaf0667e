"""Watching Services: one list+watch of every Service, decoded only where it matters.

A cluster holds many Services and the operator cares for the few that opt in. A watch
line is decoded only when it mentions one of the operator's annotations or names a
Service already held (`ServiceIndex.is_candidate_line`); the echo of the operator's own
write is dropped undecoded too, as for pools.
"""

from __future__ import annotations

from typing import Any

from dynamic_prefix.backends.service import SERVICES
from dynamic_prefix.kube.client import KubeClient
from dynamic_prefix.kube.informer import Informer
from dynamic_prefix.operator.controller import Controller
from dynamic_prefix.operator.service_index import is_relevant, service_key


class ServiceWatcher:
    """Follows Services; hands the relevant ones to the controller."""

    def __init__(self, client: KubeClient, controller: Controller) -> None:
        self.controller = controller
        self.informer = Informer(
            client,
            SERVICES,
            self._dispatch,
            own_writes=True,
            keep_line=controller.service_index.is_candidate_line,
            on_listed=controller.mark_services_listed,
        )

    async def run(self) -> None:
        """Until cancelled; the controller is told once the Services were listed."""
        await self.informer.run()

    def _dispatch(self, event_type: str | None, obj: dict[str, Any]) -> None:
        held = service_key(obj) in self.controller.service_index.services
        if not held and not is_relevant(obj):
            return  # an ordinary Service (from a list, where nothing is filtered)
        if event_type == "MODIFIED" and self.controller.holds_service(obj):
            return  # our own write's echo, overtaken by the write's answer
        self.controller.spawn(
            self.controller.on_service(event_type, obj), f"service-event:{service_key(obj)}"
        )
