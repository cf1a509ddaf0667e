"""The controller's decisions, against the in-memory `FakeKube` (milliseconds per test).

What is written, when, and what is said: a prefix reaches the status and the pool with
the user's entries kept; nothing is written twice; a standby writes nothing; a deletion
releases pools before the finalizer goes; bad references are warned once; a failed
status write is counted and done again; pool outcomes feed ``PoolsSynced``. The same
paths against a real kube-apiserver are in the other tests of this folder.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dynamic_prefix.backends.cilium import LB_IP_POOL
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.kube.errors import TemporaryError
from dynamic_prefix.model import api
from dynamic_prefix.operator.controller import DYNAMIC_PREFIXES, Controller
from tests.operator.fake_kube import FakeKube
from tests.operator.operator_testkit import CILIUM_LB_POOL, dynamic_prefix

A = "2001:db8:a1::/64"
POOLS = Resource("cilium.io", "v2", LB_IP_POOL.plural, namespaced=False, kind=LB_IP_POOL.kind)


async def settle(controller: Controller) -> None:
    """Run the event loop until the controller has no background work left."""
    for _ in range(1000):
        await asyncio.sleep(0)
        if controller.idle():
            await asyncio.sleep(0)
            if controller.idle():
                return
    raise AssertionError("the controller kept working")


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeKube, Controller]]:
    kube = FakeKube()
    controller = Controller(kube)
    yield kube, controller
    await controller.close()


async def start(
    kube: FakeKube, controller: Controller, *, dp: str = "home", pool_dp: str | None = "home"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A DynamicPrefix with a static prefix and one annotated Cilium pool, as the watches
    would deliver them at start-up; returns both as stored."""
    dp_body = kube.put(DYNAMIC_PREFIXES, dynamic_prefix(dp, A))
    pool_body = kube.put(POOLS, CILIUM_LB_POOL.manifest("pool", dp=pool_dp))
    await controller.on_dynamic_prefix(None, dp_body)
    await controller.on_pool(LB_IP_POOL, POOLS, None, pool_body)
    controller.mark_pools_listed()
    controller.mark_services_listed()
    await settle(controller)
    return dp_body, pool_body


def blocks(kube: FakeKube) -> Any:
    return ((kube.object(POOLS, "pool") or {}).get("spec") or {}).get("blocks")


def finalizers(kube: FakeKube, name: str = "home") -> list[str]:
    return list(((kube.object(DYNAMIC_PREFIXES, name) or {})["metadata"]).get("finalizers") or [])


def status(kube: FakeKube, name: str = "home") -> dict[str, Any]:
    return dict((kube.object(DYNAMIC_PREFIXES, name) or {}).get("status") or {})


def condition(kube: FakeKube, kind: str) -> dict[str, Any]:
    return next(c for c in status(kube).get("conditions", []) if c["type"] == kind)


async def test_a_prefix_reaches_the_status_and_the_pool_keeping_user_entries(
    world: tuple[FakeKube, Controller],
) -> None:
    kube, controller = world

    await start(kube, controller)

    assert status(kube)["currentPrefix"] == A
    assert blocks(kube) == CILIUM_LB_POOL.expected([A])
    assert api.FINALIZER in finalizers(kube)
    synced = condition(kube, "PoolsSynced")
    assert (synced["status"], synced["reason"]) == ("True", "Synced")
    assert [e["reason"] for e in kube.events("PrefixReceived")] == ["PrefixReceived"]


async def test_the_same_events_again_write_nothing(world: tuple[FakeKube, Controller]) -> None:
    kube, controller = world
    await start(kube, controller)
    writes = len(kube.writes)

    await controller.on_dynamic_prefix("MODIFIED", kube.object(DYNAMIC_PREFIXES, "home") or {})
    await controller.on_pool(LB_IP_POOL, POOLS, "MODIFIED", kube.object(POOLS, "pool") or {})
    await settle(controller)

    assert kube.writes[writes:] == []


async def test_a_standby_writes_nothing() -> None:
    kube = FakeKube()
    controller = Controller(kube, leading=lambda: False)
    try:
        await start(kube, controller)
    finally:
        await controller.close()

    assert kube.writes == []
    assert controller.sources_pending() == []  # nothing is the standby's to start


async def test_deletion_releases_the_pool_then_lets_the_object_go(
    world: tuple[FakeKube, Controller],
) -> None:
    kube, controller = world
    await start(kube, controller)
    deleting = kube.object(DYNAMIC_PREFIXES, "home") or {}
    deleting["metadata"]["deletionTimestamp"] = "2026-12-03T12:00:00Z"

    await controller.on_dynamic_prefix("MODIFIED", deleting)
    await settle(controller)

    assert blocks(kube) == CILIUM_LB_POOL.released()
    assert api.FINALIZER not in finalizers(kube)
    order = [w.resource for w in kube.writes if w.verb == "patch"][-2:]
    assert order == [POOLS.path(), DYNAMIC_PREFIXES.path()]  # pool first, finalizer last
    assert [e["reason"] for e in kube.events("PoolsReleased")] == ["PoolsReleased"]


async def test_a_pool_naming_a_missing_dynamic_prefix_is_warned_once(
    world: tuple[FakeKube, Controller],
) -> None:
    kube, controller = world
    await start(kube, controller, pool_dp="nope")

    again = kube.object(POOLS, "pool") or {}
    again["metadata"]["resourceVersion"] = "999"  # a newer version: judged again
    await controller.on_pool(LB_IP_POOL, POOLS, "MODIFIED", again)
    await settle(controller)

    (warning,) = kube.events("DynamicPrefixNotFound")
    assert warning["type"] == "Warning"
    assert "DynamicPrefix nope does not exist" in warning["message"]
    assert blocks(kube) == CILIUM_LB_POOL.released()  # left alone


async def test_a_failed_status_write_is_counted_and_done_on_the_next_refresh(
    world: tuple[FakeKube, Controller],
) -> None:
    kube, controller = world
    kube.fail_next("patch", TemporaryError(503, "etcd is away"))  # the finalizer's patch
    writes: list[str] = []
    patch = kube.patch

    async def noting(resource: Any, name: str, body: Any, **kwargs: Any) -> Any:
        writes.append(f"{resource.plural}/{kwargs.get('subresource', '')}")
        if writes.count("dynamicprefixes/status") == 1 and kwargs.get("subresource"):
            raise TemporaryError(503, "etcd is away")  # the first status write
        return await patch(resource, name, body, **kwargs)

    setattr(kube, "patch", noting)  # noqa: B010  (a stand-in that notes each write)
    await start(kube, controller)

    assert controller.counters.reconcile_errors["home", "status"] == 1
    # the pools did not wait for the status: the decision was made, the write is repeated
    # (here by the refresh the pools' sync asks for; else by the retry timer)
    statuses = [i for i, write in enumerate(writes) if write == "dynamicprefixes/status"]
    assert len(statuses) >= 2
    assert writes.index("ciliumloadbalancerippools/") < statuses[1]  # before the one that took
    assert blocks(kube) == CILIUM_LB_POOL.expected([A])
    assert status(kube)["currentPrefix"] == A
    assert len(kube.events("PrefixReceived")) == 1  # posted once, for the write that took


async def test_a_pool_annotated_for_another_dynamic_prefix_leaves_the_first_one(
    world: tuple[FakeKube, Controller],
) -> None:
    kube, controller = world
    await start(kube, controller)
    assert "1/1" in condition(kube, "PoolsSynced")["message"]

    moved = kube.object(POOLS, "pool") or {}
    moved["metadata"]["annotations"][api.ANNOTATION_NAME] = "other"
    moved["metadata"]["resourceVersion"] = "999"
    await controller.on_pool(LB_IP_POOL, POOLS, "MODIFIED", moved)
    await settle(controller)

    assert controller.index.keys_of("home") == []
    assert condition(kube, "PoolsSynced")["message"] == "0/0 pools in sync"
    (warning,) = kube.events("DynamicPrefixNotFound")  # the pool's new reference
    assert "DynamicPrefix other does not exist" in warning["message"]


async def test_a_deletion_seen_before_the_listings_waits_for_them_then_releases(
    world: tuple[FakeKube, Controller],
) -> None:
    """At start-up the DynamicPrefix may be seen before its pools and Services: releasing
    then would release nothing and let it go with the operator's entries left behind."""
    kube, controller = world
    await start(kube, controller)
    restarted = Controller(kube)
    deleting = kube.object(DYNAMIC_PREFIXES, "home") or {}
    deleting["metadata"]["deletionTimestamp"] = "2026-12-03T12:00:00Z"
    try:
        await restarted.on_dynamic_prefix(None, deleting)
        await settle(restarted)
        assert api.FINALIZER in finalizers(kube), "nothing known yet: the deletion waits"

        await restarted.on_pool(LB_IP_POOL, POOLS, None, kube.object(POOLS, "pool") or {})
        restarted.mark_pools_listed()
        restarted.mark_services_listed()
        await settle(restarted)

        assert blocks(kube) == CILIUM_LB_POOL.released()
        assert api.FINALIZER not in finalizers(kube)
    finally:
        await restarted.close()


async def test_losing_the_lease_with_a_decision_unwritten_holds_the_servers_status(
    world: tuple[FakeKube, Controller],
) -> None:
    """The pools were written from a decision whose status write kept failing; when the
    lease is lost, the controller holds (and reports, as a standby) what the server has."""
    kube, controller = world
    patch = kube.patch

    async def status_refused(resource: Any, name: str, body: Any, **kwargs: Any) -> Any:
        if kwargs.get("subresource"):
            raise TemporaryError(503, "etcd is away")
        return await patch(resource, name, body, **kwargs)

    setattr(kube, "patch", status_refused)  # noqa: B010  (a stand-in that refuses status)
    await start(kube, controller)
    assert blocks(kube) == CILIUM_LB_POOL.expected([A])  # the pools did not wait
    assert controller.dynamic_prefixes["home"]["status"]["currentPrefix"] == A
    assert "currentPrefix" not in status(kube)

    await controller.stop_leading()

    assert "currentPrefix" not in (controller.dynamic_prefixes["home"].get("status") or {})
