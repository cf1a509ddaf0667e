"""A watch that drops the echo of the client's own writes without decoding it.

Against the real API server: the client's own modification of a ConfigMap, made with
``drop_echo``, comes back as OWN_WRITE (its resourceVersion only); its own modification
without ``drop_echo``, and a modification by someone else, come back whole. The
raw-line checks and the forgetting of versions whose echo will not come are unit tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dynamic_prefix.kube.client import KubeClient, Resource, WatchEvent
from dynamic_prefix.kube.config import ClusterConfig, load_config
from testbed.controlplane import ControlPlane

CONFIGMAPS = Resource("", "v1", "configmaps", namespaced=True, kind="ConfigMap")


def _configmap(name: str, namespace: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"value": value},
    }


def test_own_modifications_come_back_undecoded_and_others_whole(
    control_plane: ControlPlane, namespace: str
) -> None:
    async def scenario() -> tuple[list[WatchEvent], str]:
        config = load_config(str(control_plane.kubeconfig))
        async with KubeClient(config) as ours, KubeClient(config, user_agent="other") as other:
            ours.drop_echoes_of(CONFIGMAPS)
            created = await ours.create(CONFIGMAPS, _configmap("a", namespace, "0"))
            mine = await ours.patch(
                CONFIGMAPS, "a", {"data": {"value": "1"}}, namespace=namespace, drop_echo=True
            )
            await ours.patch(CONFIGMAPS, "a", {"data": {"value": "2"}}, namespace=namespace)
            await other.patch(CONFIGMAPS, "a", {"data": {"value": "3"}}, namespace=namespace)
            events: list[WatchEvent] = []
            # replayed from before the writes: each answer was in before its echo is read
            # (live, an echo may overtake the answer; it is then decoded as usual)
            async for event in ours.watch(
                CONFIGMAPS,
                namespace=namespace,
                resource_version=created["metadata"]["resourceVersion"],
                own_writes=True,
            ):
                events.append(event)
                if len(events) == 3:
                    break
            return events, mine["metadata"]["resourceVersion"]

    (own, kept, foreign), version = asyncio.run(scenario())
    assert (own.type, own.object) == ("OWN_WRITE", {"metadata": {"resourceVersion": version}})
    assert (kept.type, kept.object["data"]) == ("MODIFIED", {"value": "2"})
    assert (foreign.type, foreign.object["data"]) == ("MODIFIED", {"value": "3"})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"42"}}}', "42"),
        # not a version this client wrote
        (b'{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"43"}}}', None),
        # only modifications
        (b'{"type":"ADDED","object":{"metadata":{"resourceVersion":"42"}}}', None),
        # a second "resourceVersion" key (e.g. a user's annotation): decoded as usual
        (
            b'{"type":"MODIFIED","object":{"metadata":{"annotations":{"resourceVersion":"42"},'
            b'"resourceVersion":"44"}}}',
            None,
        ),
    ],
)
def test_only_a_modification_at_a_version_we_wrote_is_taken_for_an_echo(
    line: bytes, expected: str | None
) -> None:
    client = KubeClient(ClusterConfig(server="https://127.0.0.1:1"))  # never connects
    versions: dict[str, None] = {"42": None}
    assert client._own_write(versions, line) == expected
    assert ("42" in versions) is (expected is None)  # taken once


def test_versions_a_watch_has_passed_are_forgotten() -> None:
    client = KubeClient(ClusterConfig(server="https://127.0.0.1:1"))
    # 40's echo overtook its answer and was decoded; 41 changed nothing (no event)
    versions: dict[str, None] = dict.fromkeys(["40", "41", "45", "47"])
    line = b'{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"45"}}}'
    assert client._own_write(versions, line) == "45"
    assert list(versions) == ["47"]
