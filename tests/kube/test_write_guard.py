"""The leader's write guard, checked when a write is decided and again when it goes out.

Against the real API server.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from dynamic_prefix.kube.client import KubeClient
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


def test_a_write_is_checked_again_as_its_body_goes_out(
    control_plane: ControlPlane, namespace: str
) -> None:
    """aiohttp sends the headers with the body, from a task of its own: a pause just
    before that task runs must not let a write decided earlier go out."""

    async def scenario() -> dict[str, Any]:
        config = load_config(str(control_plane.kubeconfig))
        # leading when decided and connected, no longer as the body goes out
        answers = itertools.chain([True, True], itertools.repeat(False))
        async with (
            KubeClient(config) as admin,
            KubeClient(config, may_write=lambda: next(answers)) as leader,
        ):
            await admin.create(CONFIGMAPS, _configmap("c", namespace, "0"))
            with pytest.raises(NotLeader):
                await leader.patch(CONFIGMAPS, "c", {"data": {"value": "1"}}, namespace=namespace)
            still: dict[str, Any] = await admin.get(CONFIGMAPS, "c", namespace=namespace)
            return still

    assert asyncio.run(scenario())["data"] == {"value": "0"}
