"""The leader's write guard, checked when a write is decided and again in the step that
hands its bytes to a connection.

Against the real API server.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from dynamic_prefix.kube.client import REQUESTS_IN_FLIGHT, KubeClient
from dynamic_prefix.kube.config import load_config
from dynamic_prefix.kube.errors import NotLeader
from testbed.controlplane import ControlPlane
from tests.kube.test_watch_own_writes import CONFIGMAPS, _configmap


def test_a_write_is_checked_again_once_it_has_its_connection(
    control_plane: ControlPlane, namespace: str
) -> None:
    """The lease lost between the first check and the moment the request goes out (a
    wait for a connection, a paused process): the write is refused and nothing changes."""

    async def scenario() -> dict[str, Any]:
        config = load_config(str(control_plane.kubeconfig))
        # leading when decided, no longer from when it has its connection
        answers = itertools.chain([True], itertools.repeat(False))
        async with (
            KubeClient(config) as admin,
            KubeClient(config, may_write=lambda: next(answers)) as leader,
        ):
            await admin.create(CONFIGMAPS, _configmap("b", namespace, "0"))
            with pytest.raises(NotLeader, match="lost while the write waited"):
                await leader.patch(CONFIGMAPS, "b", {"data": {"value": "1"}}, namespace=namespace)
            still: dict[str, Any] = await admin.get(CONFIGMAPS, "b", namespace=namespace)
            return still

    assert asyncio.run(scenario())["data"] == {"value": "0"}


def test_a_write_that_waits_for_a_connection_is_checked_when_it_gets_one(
    control_plane: ControlPlane, namespace: str
) -> None:
    """Every connection busy (64 slow reads), the write waits; the lease is lost
    meanwhile: when a connection frees, the check made in the step that would send the
    bytes refuses it, and nothing changes."""

    async def scenario() -> tuple[dict[str, Any], float]:
        config = load_config(str(control_plane.kubeconfig))
        leading = True
        async with (
            KubeClient(config) as admin,
            KubeClient(config, may_write=lambda: leading) as leader,
        ):
            await admin.create(CONFIGMAPS, _configmap("c", namespace, "0"))
            # each holds a connection for 2 s: a watch read as one answer
            slow = CONFIGMAPS.path(namespace=namespace) + "?watch=true&timeoutSeconds=2"
            busy = [asyncio.create_task(leader.request("list", "GET", slow))
                    for _ in range(REQUESTS_IN_FLIGHT)]  # fmt: skip
            await asyncio.sleep(0.5)
            started = asyncio.get_running_loop().time()
            write = asyncio.create_task(
                leader.patch(CONFIGMAPS, "c", {"data": {"value": "1"}}, namespace=namespace)
            )
            await asyncio.sleep(0.2)
            assert not write.done()  # waiting for a connection
            leading = False
            with pytest.raises(NotLeader, match="lost while the write waited"):
                await write
            waited = asyncio.get_running_loop().time() - started
            await asyncio.gather(*busy)
            still: dict[str, Any] = await admin.get(CONFIGMAPS, "c", namespace=namespace)
            return still, waited

    still, waited = asyncio.run(scenario())
    assert still["data"] == {"value": "0"}
    assert waited > 1.0  # it was refused when a connection freed, not before
