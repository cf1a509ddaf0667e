"""A restarted controller writes nothing when nothing changed, whatever order its watches
deliver the objects in.

At start kopf lists every watched kind at once, so the order of the first events is up to
chance: a DynamicPrefix may learn its prefix before any pool was listed, and a Calico
template comes before the pools made from it (lists are ordered by name, and their names
start with the template's). A subprocess operator meets those orders only sometimes;
here the real `Controller`, run in this process against the real control plane, is fed
them in exactly that order, so the test fails every time the behaviour is wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from dynamic_prefix.backends.calico import IP_POOL
from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.config import load_config
from dynamic_prefix.operator.controller import Controller
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster
from tests.operator.operator_testkit import (
    CALICO_POOL,
    DP_PATH,
    changes_since,
    conditions,
    create,
    create_dynamic_prefix,
    dynamic_prefix,
    eventually,
    new_tag,
    resource_version,
    writes_about,
)

A = "2001:db8:a1::/64"
IP_POOLS = Resource("projectcalico.org", "v3", IP_POOL.plural, namespaced=False, kind=IP_POOL.kind)


async def settle(controller: Controller) -> None:
    """Wait until the work the controller's last event started (its tasks) is done."""
    await asyncio.sleep(0)
    await eventually(controller.idle, what="the controller idle")


class Scene:
    """A DynamicPrefix and a Calico template on the control plane, and controllers for them."""

    def __init__(self, cluster: Cluster, client: KubeClient) -> None:
        self.cluster = cluster
        self.client = client
        tag = new_tag()
        self.dp, self.template = f"order-{tag}", f"order-pool-{tag}"

    def dynamic_prefix(self) -> dict[str, Any]:
        obj = self.cluster.get(f"{DP_PATH}/{self.dp}")
        assert obj is not None
        return obj

    def template_body(self) -> dict[str, Any]:
        obj = self.cluster.get(CALICO_POOL.path(self.template))
        assert obj is not None
        return obj

    async def feed_generated(self, controller: Controller) -> None:
        for pool in CALICO_POOL.generated(self.cluster, self.template):
            await controller.on_pool(IP_POOL, IP_POOLS, None, pool)

    def writes(self) -> list[str]:
        """The controller's writes to the DynamicPrefix and the pools, as ``verb name code``."""
        ours = CALICO_POOL.operator_names(self.template)
        return [
            f"{w['verb']} {w['objectRef'].get('name')}/{w['objectRef'].get('subresource', '')} "
            f"-> {w['responseStatus']['code']}"
            for w in writes_about(self.cluster, lambda name: name == self.dp or ours(name))
        ]

    async def set_up(self) -> None:
        """Everything in sync, by a first controller that then stops: what a restart finds."""
        create_dynamic_prefix(self.cluster, dynamic_prefix(self.dp, A))
        template = CALICO_POOL.manifest(self.template, dp=self.dp)
        create(self.cluster, CALICO_POOL.collection(), template)
        first = Controller(self.client)
        first.mark_pools_listed()  # nothing to list before the objects below
        try:
            await first.on_dynamic_prefix(None, self.dynamic_prefix())
            await eventually(lambda: self.dp in first.live, what="the prefix learnt")
            await first.on_pool(IP_POOL, IP_POOLS, None, self.template_body())
            made = CALICO_POOL.expected([A])
            await eventually(
                lambda: CALICO_POOL.observe(self.cluster, self.template) == made,
                what="the Calico pool made",
            )
            await self.feed_generated(first)
            await settle(first)
        finally:
            await first.close()

    async def tear_down(self, controller: Controller) -> None:
        self.cluster.delete(f"{DP_PATH}/{self.dp}")
        deleting = self.cluster.get(f"{DP_PATH}/{self.dp}")
        if deleting is not None:  # the finalizer: this controller releases the pool
            await controller.on_dynamic_prefix("MODIFIED", deleting)
        for pool in CALICO_POOL.generated(self.cluster, self.template):
            self.cluster.delete(CALICO_POOL.path(pool["metadata"]["name"]))
        self.cluster.delete(CALICO_POOL.path(self.template))


@pytest.fixture
async def scene(cluster: Cluster, control_plane: ControlPlane) -> AsyncIterator[Scene]:
    async with KubeClient(load_config(str(control_plane.kubeconfig))) as client:
        yield Scene(cluster, client)


@dataclass(frozen=True)
class Restarted:
    controller: Controller
    writes: list[str]  # ``verb name/subresource -> code`` since the restart
    pools_synced: list[str]  # PoolsSynced messages of the statuses written since


async def restart_in_that_order(scene: Scene) -> Restarted:
    """A restarted controller is told of the DynamicPrefix first and relearns its prefix,
    then of the template, then of the pools made from it."""
    await scene.set_up()
    before = scene.writes()
    since = resource_version(scene.cluster, f"{DP_PATH}/{scene.dp}")
    restarted = Controller(scene.client)
    await restarted.on_dynamic_prefix(None, scene.dynamic_prefix())
    await eventually(lambda: scene.dp in restarted.live, what="the prefix relearnt")
    await settle(restarted)
    await restarted.on_pool(IP_POOL, IP_POOLS, None, scene.template_body())
    await settle(restarted)
    await scene.feed_generated(restarted)
    restarted.mark_pools_listed()  # what PoolKinds does once every kind was listed
    await settle(restarted)
    versions = changes_since(scene.cluster, DP_PATH, since, name=scene.dp)
    return Restarted(
        restarted,
        scene.writes()[len(before) :],
        [
            str(c.get("message"))
            for _, obj in versions
            for c in conditions(obj)
            if c.get("type") == "PoolsSynced"
        ],
    )


async def test_a_dynamic_prefix_relearnt_before_its_pools_are_listed_writes_no_status(
    scene: Scene,
) -> None:
    restarted = await restart_in_that_order(scene)
    try:
        assert restarted.pools_synced == []
        assert [w for w in restarted.writes if w.startswith(f"patch {scene.dp}/")] == []
    finally:
        await scene.tear_down(restarted.controller)
        await restarted.controller.close()


async def test_a_calico_template_listed_before_the_pools_made_from_it_makes_no_pool_writes(
    scene: Scene,
) -> None:
    restarted = await restart_in_that_order(scene)
    try:
        pool_writes = [w for w in restarted.writes if not w.startswith(f"patch {scene.dp}/")]
        assert pool_writes == []
    finally:
        await scene.tear_down(restarted.controller)
        await restarted.controller.close()
