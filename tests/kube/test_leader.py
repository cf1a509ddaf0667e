"""LeaderElector against the real API server: when a standby may take the Lease.

Expiry is judged on the standby's own monotonic clock from when it first saw the Lease's
record, so a holder whose wall clock is far behind (an old renewTime) is not overrun,
while a Lease given up (no holder) is taken at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
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


class Recording:
    """The elector's client, recording each Lease call in order (the order, not the time,
    is what the tests judge)."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.calls: list[str] = []

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("get")
        return await self.client.get(*args, **kwargs)

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("create")
        return await self.client.create(*args, **kwargs)

    async def replace(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("replace")
        return await self.client.replace(*args, **kwargs)


async def _calls_until_leading(
    control_plane: ControlPlane, namespace: str, holder: str | None, renewed: dt.datetime
) -> list[str]:
    """The elector's Lease calls from its start until it leads."""
    name = f"lease-{secrets.token_hex(3)}"
    async with KubeClient(load_config(str(control_plane.kubeconfig))) as client:
        await client.create(LEASES, _lease(name, namespace, holder, renewed))
        became_leader = asyncio.Event()
        recording = Recording(client)
        calls_when_leading: list[str] = []

        async def started() -> None:
            calls_when_leading.extend(recording.calls)
            became_leader.set()

        async def stopped() -> None:
            pass

        elector = LeaderElector(
            recording,  # type: ignore[arg-type]  # the three calls the elector makes
            LeaseSettings(namespace=namespace, name=name, **SETTINGS),
            "standby",
            on_started=started,
            on_stopped=stopped,
        )
        task = asyncio.create_task(elector.run())
        try:
            await asyncio.wait_for(became_leader.wait(), timeout=10)
            lease = await client.get(LEASES, name, namespace=namespace)
            assert lease["spec"]["holderIdentity"] == "standby"
            assert lease["spec"]["leaseTransitions"] == 4
            return calls_when_leading
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def test_a_lease_renewed_long_ago_by_the_wall_clock_is_still_waited_out(
    control_plane: ControlPlane, namespace: str
) -> None:
    # the holder's clock may be an hour behind ours: only our own observation counts, so
    # the first look finds the Lease held and leaves it; a later look takes it
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    calls = asyncio.run(_calls_until_leading(control_plane, namespace, "old-leader", an_hour_ago))
    assert calls[0] == "get"
    assert calls[1] == "get"  # not taken on first sight: none of its age is believed
    assert calls[-1] == "replace"
    assert calls.count("replace") == 1


def test_a_released_lease_is_taken_at_once(control_plane: ControlPlane, namespace: str) -> None:
    now = dt.datetime.now(dt.UTC)
    calls = asyncio.run(_calls_until_leading(control_plane, namespace, None, now))
    assert calls == ["get", "replace"]  # on first sight


def test_the_age_credit_never_reaches_into_the_renew_margin() -> None:
    settings = LeaseSettings("x", lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
    assert settings.lease_seconds == 2  # 1.5 s rounded up: a Lease never says less
    assert settings.max_age_credit(2) == 0.2  # the retry period
    assert settings.max_age_credit(1.2) == pytest.approx(0.1)  # half of 1.2 s past 1.0 s
    assert settings.max_age_credit(1) == 0.0
    assert settings.max_age_credit(0.5) == 0.0  # a foreign, shorter Lease: nothing
    defaults = LeaseSettings(namespace="x")
    assert (defaults.lease_seconds, defaults.max_age_credit(15)) == (15, 2.0)


def test_a_holder_renews_in_one_request_and_sees_a_lease_someone_else_wrote(
    control_plane: ControlPlane, namespace: str
) -> None:
    """An idle leader's renewal is one PUT of the Lease it last wrote; the resourceVersion
    makes it fail once anyone else wrote the Lease, and the whole look (GET) then finds
    the other holder, so the leader steps down."""
    name = f"lease-{secrets.token_hex(3)}"

    async def scenario() -> tuple[list[str], list[str], int]:
        async with KubeClient(load_config(str(control_plane.kubeconfig))) as client:
            recording = Recording(client)
            changes: list[str] = []

            async def started() -> None:
                changes.append("started")

            async def stopped() -> None:
                changes.append("stopped")

            elector = LeaderElector(
                recording,  # type: ignore[arg-type]  # the three calls the elector makes
                LeaseSettings(namespace=namespace, name=name, **SETTINGS),
                "holder",
                on_started=started,
                on_stopped=stopped,
            )
            task = asyncio.create_task(elector.run())
            try:
                while recording.calls.count("replace") < 4:
                    await asyncio.sleep(0.05)
                renewals = list(recording.calls)
                lease = await client.get(LEASES, name, namespace=namespace)
                lease["spec"]["holderIdentity"] = "usurper"
                lease["spec"]["renewTime"] = dt.datetime.now(dt.UTC).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ"
                )
                lease["spec"]["leaseDurationSeconds"] = 30
                await client.replace(LEASES, name, lease)
                while "stopped" not in changes:
                    await asyncio.sleep(0.05)
                after = recording.calls[len(renewals) :]
                holder = await client.get(LEASES, name, namespace=namespace)
                assert holder["spec"]["holderIdentity"] == "usurper"  # never overwritten
                transitions = int(holder["spec"]["leaseTransitions"])
                return renewals, after, transitions
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    renewals, after, transitions = asyncio.run(scenario())
    assert renewals == ["get", "create"] + ["replace"] * 4, renewals  # no GET per renewal
    assert after[:2] == ["replace", "get"], after  # the PUT conflicts, then a whole look
    assert "replace" not in after[1:], after  # the other holder's Lease is not taken
    assert transitions == 0
