"""A previous prefix leaves the pools when its valid lifetime ends, with no new report.

The static source, the only one the subprocess tests can drive, has infinite lifetimes,
so its history never expires. Finite lifetimes come from Router Advertisements and
DHCPv6-PD, which need the operator inside network namespaces (the end-to-end suite).
Here a scripted source stands in for them: it reports what a router would, and the real
`Controller`, run in this process, writes status and pools on the real control plane.
The lifetime rule itself is covered by the pure status tests (tests/model/test_status.py);
this test covers the controller's deadline timer and the pools that follow it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from ipaddress import IPv6Network

from dynamic_prefix.backends.cilium import LB_IP_POOL
from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.config import load_config
from dynamic_prefix.model import api
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import Acquisition, PrefixSourceSpec
from dynamic_prefix.operator.controller import Controller
from dynamic_prefix.sources.base import IdentityStore, PrefixSource, ReportCallback
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    DP_PATH,
    create,
    create_dynamic_prefix,
    dynamic_prefix,
    eventually,
    new_tag,
    status_of,
)

A, B = "2001:db8:a1::/64", "2001:db8:b2::/64"
LB_POOLS = Resource("cilium.io", "v2", LB_IP_POOL.plural, namespaced=False, kind=LB_IP_POOL.kind)
SOURCE = api.SOURCE_ROUTER_ADVERTISEMENT


class ScriptedSource:
    """A prefix source that reports exactly what the test puts in its queue."""

    def __init__(self, reports: asyncio.Queue[SourceState]) -> None:
        self._reports = reports
        self._state = SourceState(SOURCE, None, reason="Starting")

    @property
    def name(self) -> str:
        return SOURCE

    @property
    def state(self) -> SourceState:
        return self._state

    async def run(self, report: ReportCallback) -> None:
        while True:
            self._state = await self._reports.get()
            report(self._state)


def _state(prefix: str, valid_for: dt.timedelta) -> SourceState:
    until = dt.datetime.now(dt.UTC) + valid_for
    return SourceState(
        SOURCE, IPv6Network(prefix), preferred_until=until, valid_until=until, origin="fe80::1"
    )


async def test_a_history_prefix_leaves_the_pools_when_its_valid_lifetime_ends(
    cluster: Cluster, control_plane: ControlPlane
) -> None:
    tag = new_tag()
    dp, pool = f"lifetime-{tag}", f"lifetime-pool-{tag}"
    reports: asyncio.Queue[SourceState] = asyncio.Queue()

    def scripted(
        name: str,
        spec: PrefixSourceSpec,
        acquisition: Acquisition,
        *,
        identity_store: IdentityStore | None = None,
    ) -> PrefixSource:
        return ScriptedSource(reports)

    routed = {"routerAdvertisement": {"interface": "eth0"}}
    dp_obj = create_dynamic_prefix(cluster, dynamic_prefix(dp, A, acquisition=routed))
    pool_obj = create(cluster, CILIUM_LB_POOL.collection(), CILIUM_LB_POOL.manifest(pool, dp=dp))

    def holds(*prefixes: str) -> bool:
        return bool(CILIUM_LB_POOL.observe(cluster, pool) == CILIUM_LB_POOL.expected(prefixes))

    async with KubeClient(load_config(str(control_plane.kubeconfig))) as client:
        controller = Controller(client, source_factory=scripted)
        controller.mark_pools_listed()  # the pools are fed to it below, as a watch would
        try:
            await controller.on_dynamic_prefix(None, dp_obj)
            await controller.on_pool(LB_IP_POOL, LB_POOLS, None, pool_obj)
            # A router announces A with a short valid lifetime, then B with a long one.
            await reports.put(_state(A, dt.timedelta(seconds=5)))
            await eventually(lambda: holds(A), what="the pool filled with A")
            await reports.put(_state(B, dt.timedelta(days=1)))
            await eventually(lambda: holds(B, A), what="B and A while A is valid")
            # the pools do not wait for the status write (design.md, Order of writes)
            await eventually(
                lambda: status_of(cluster, dp).get("currentPrefix") == B, what="status says B"
            )
            history = status_of(cluster, dp)["history"]
            assert [entry["prefix"] for entry in history] == [A]
            assert "validUntil" in history[0]

            # Nothing more is reported: A's valid lifetime ending alone takes it out.
            await eventually(lambda: holds(B), what="A gone when its valid lifetime ended")
            await eventually(
                lambda: "history" not in status_of(cluster, dp), what="A gone from the history"
            )
            assert reports.empty()
        finally:
            cluster.delete(f"{DP_PATH}/{dp}")
            deleting = cluster.get(f"{DP_PATH}/{dp}")
            if deleting is not None:  # the finalizer: this controller releases the pool
                await controller.on_dynamic_prefix("MODIFIED", deleting)
            cluster.delete(CILIUM_LB_POOL.path(pool))
            await controller.close()
