"""The controller's index of generated Calico pools keeps the newest version it was given.

In process, as a standby (nothing is reconciled or written): a write's answer is held,
and a late watch event with an older version, or the same one, does not replace it.
Otherwise the next plan would patch with a stale resourceVersion and conflict for good.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dynamic_prefix.backends.calico import IP_POOL
from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.config import ClusterConfig
from dynamic_prefix.model import api
from dynamic_prefix.operator.controller import Controller, PoolKey

IPPOOLS = Resource("projectcalico.org", "v3", "ippools", namespaced=False, kind="IPPool")


def _generated(version: str, cidr: str) -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "IPPool",
        "metadata": {
            "name": "lb-2001-db8-1",
            "resourceVersion": version,
            "labels": {api.LABEL_GENERATED_FROM: "lb"},
            "annotations": {api.ANNOTATION_GENERATED_FROM: "lb"},
        },
        "spec": {"cidr": cidr},
    }


def test_a_late_event_does_not_replace_a_newer_held_version() -> None:
    async def scenario() -> None:
        controller = Controller(
            KubeClient(ClusterConfig(server="https://127.0.0.1:1")), leading=lambda: False
        )
        template = PoolKey(IP_POOL.name, "", "lb")
        index = controller.generated[template]
        index["lb-2001-db8-1"] = _generated("105", "2001:db8:1::/68")  # a patch's answer

        await controller.on_pool(IP_POOL, IPPOOLS, "ADDED", _generated("100", "2001:db8::/68"))
        await controller.on_pool(IP_POOL, IPPOOLS, "MODIFIED", _generated("105", "x"))
        assert index["lb-2001-db8-1"]["metadata"]["resourceVersion"] == "105"
        assert index["lb-2001-db8-1"]["spec"]["cidr"] == "2001:db8:1::/68"

        await controller.on_pool(IP_POOL, IPPOOLS, "MODIFIED", _generated("110", "y"))
        assert index["lb-2001-db8-1"]["spec"]["cidr"] == "y"  # someone else's newer edit
        await controller.on_pool(IP_POOL, IPPOOLS, "DELETED", _generated("111", "y"))
        assert "lb-2001-db8-1" not in index
        await controller.close()

    asyncio.run(scenario())
