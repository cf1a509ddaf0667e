"""What /readyz waits for on the leader: the sources of every valid DynamicPrefix started.

Driven in process: the controller's view is filled by hand, and the sources are real
static sources. No API call is made (the client is never entered).
"""

from __future__ import annotations

import asyncio
from typing import Any

from dynamic_prefix.kube.client import KubeClient
from dynamic_prefix.kube.config import ClusterConfig
from dynamic_prefix.model import api
from dynamic_prefix.model.spec import DynamicPrefixSpec, validate_dynamic_prefix
from dynamic_prefix.operator.controller import Controller


def _body(name: str, prefix: str) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name, "generation": 1},
        "spec": {"acquisition": {"static": {"prefix": prefix}}},
    }


def test_the_leader_is_ready_once_every_valid_object_has_its_sources() -> None:
    async def scenario() -> None:
        leading = True
        client = KubeClient(ClusterConfig(server="https://127.0.0.1:1"))
        controller = Controller(client, leading=lambda: leading)
        controller.dynamic_prefixes["home"] = _body("home", "2001:db8:1::/64")
        controller.dynamic_prefixes["broken"] = _body("broken", "not a prefix")
        gone = _body("gone", "2001:db8:2::/64")
        gone["metadata"]["deletionTimestamp"] = "2026-11-26T00:00:00Z"
        controller.dynamic_prefixes["gone"] = gone

        assert controller.sources_pending() == ["home"]  # not the invalid or deleted ones
        spec = validate_dynamic_prefix(controller.dynamic_prefixes["home"])
        assert isinstance(spec, DynamicPrefixSpec)
        controller.sources.ensure("home", spec.acquisition)
        assert controller.sources_pending() == []
        controller.sources.stop("home")
        assert controller.sources_pending() == ["home"]
        leading = False
        assert controller.sources_pending() == []  # a standby runs no sources
        await controller.close()

    asyncio.run(scenario())
