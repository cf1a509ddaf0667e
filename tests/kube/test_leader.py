"""LeaderElector against the real API server: when a standby may take the Lease.

Expiry is judged on the standby's own monotonic clock from when it first saw the Lease's
record, so a holder whose wall clock is far behind (an old renewTime) is not overrun,
while a Lease given up (no holder) is taken at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from typing import Any

import pytest

from dynamic_prefix.kube.client import KubeClient
from dynamic_prefix.kube.config import load_config
from dynamic_prefix.kube.leader import LEASES, LeaderElector, LeaseSettings
from testbed.controlplane import ControlPlane

SETTINGS = {"lease_duration": 1.5, "renew_deadline": 1.0, "retry_period": 0.2}


def _lease(name: str, namespace: str, holder: str | None, renewed: dt.datetime) -> dict[str, Any]:
    stamp = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 1,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": 3,
        },
    }


async def _time_to_lead(
    control_plane: ControlPlane, namespace: str, holder: str | None, renewed: dt.datetime
) -> float:
    name = f"lease-{secrets.token_hex(3)}"
    async with KubeClient(load_config(str(control_plane.kubeconfig))) as client:
        await client.create(LEASES, _lease(name, namespace, holder, renewed))
        became_leader = asyncio.Event()

        async def started() -> None:
            became_leader.set()

        async def stopped() -> None:
            pass

        elector = LeaderElector(
            client,
            LeaseSettings(namespace=namespace, name=name, **SETTINGS),
            "standby",
            on_started=started,
            on_stopped=stopped,
        )
        began = time.monotonic()
        task = asyncio.create_task(elector.run())
        try:
            await asyncio.wait_for(became_leader.wait(), timeout=10)
            took = time.monotonic() - began
            lease = await client.get(LEASES, name, namespace=namespace)
            assert lease["spec"]["holderIdentity"] == "standby"
            assert lease["spec"]["leaseTransitions"] == 4
            return took
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def test_a_lease_renewed_long_ago_by_the_wall_clock_is_still_waited_out(
    control_plane: ControlPlane, namespace: str
) -> None:
    # the holder's clock may be an hour behind ours: only our own observation counts
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    took = asyncio.run(_time_to_lead(control_plane, namespace, "old-leader", an_hour_ago))
    # the Lease says 1 s, no more than our 1 s renew deadline: none of its age is believed
    assert took >= 1.0


def test_a_released_lease_is_taken_at_once(control_plane: ControlPlane, namespace: str) -> None:
    now = dt.datetime.now(dt.UTC)
    took = asyncio.run(_time_to_lead(control_plane, namespace, None, now))
    assert took < 1.0


def test_the_age_credit_never_reaches_into_the_renew_margin() -> None:
    settings = LeaseSettings("x", lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
    assert settings.lease_seconds == 2  # 1.5 s rounded up: a Lease never says less
    assert settings.max_age_credit(2) == 0.2  # the retry period
    assert settings.max_age_credit(1.2) == pytest.approx(0.1)  # half of 1.2 s past 1.0 s
    assert settings.max_age_credit(1) == 0.0
    assert settings.max_age_credit(0.5) == 0.0  # a foreign, shorter Lease: nothing
    defaults = LeaseSettings(namespace="x")
    assert (defaults.lease_seconds, defaults.max_age_credit(15)) == (15, 2.0)
