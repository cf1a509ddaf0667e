"""Every pool kind on the real control plane: fill, rotate, trim, keep the user's, release.

Each test runs once per pool kind: Cilium LB pool and CIDR group (cilium.io/v2), MetalLB
IPAddressPool (in a namespace of its own, not the operator's) and Calico IPPool (a
template the operator never edits, and pools it makes from it).
"""

from __future__ import annotations

import json
import time
from typing import Any, TypeVar

import pytest

from dynamic_prefix.model import api
from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    ALL_KINDS,
    CALICO_POOL,
    DP_PATH,
    LIST_KINDS,
    WAIT_SECONDS,
    CalicoPoolKind,
    ListPoolKind,
    PoolKind,
    PoolScene,
    condition_message,
    condition_status,
    create_dynamic_prefix,
    create_pool_of_every_kind,
    dynamic_prefix,
    new_tag,
    resource_version,
    set_prefix,
    status_of,
    wait_current,
    wait_event,
    wait_pools,
    wait_ready,
    writes_about,
    writes_to,
)

A, B, C, D = (f"2001:db8:{n}::/64" for n in ("a1", "b2", "c3", "d4"))

K = TypeVar("K", bound=PoolKind)


def _scene(request: pytest.FixtureRequest, cluster: Cluster, kind: K) -> PoolScene[K]:
    """The test's pools of ``kind``: a namespaced kind's (MetalLB) in a fresh namespace."""
    where: str | None = request.getfixturevalue("namespace") if kind.namespaced else None
    return PoolScene(cluster, kind, where)


@pytest.fixture(params=ALL_KINDS, ids=lambda kind: kind.id)
def scene(
    request: pytest.FixtureRequest, cluster: Cluster, shared_operator: OperatorProcess
) -> PoolScene[PoolKind]:
    """Each pool kind in turn, with the module's operator running."""
    return _scene(request, cluster, request.param)


@pytest.fixture(params=LIST_KINDS, ids=lambda kind: kind.id)
def list_scene(
    request: pytest.FixtureRequest, cluster: Cluster, shared_operator: OperatorProcess
) -> PoolScene[ListPoolKind]:
    """Each kind of pool that holds a list, in turn, with the module's operator running."""
    return _scene(request, cluster, request.param)


@pytest.fixture
def calico(cluster: Cluster, shared_operator: OperatorProcess) -> PoolScene[CalicoPoolKind]:
    """Calico pools, with the module's operator running."""
    return PoolScene(cluster, CALICO_POOL)


def test_pool_is_filled_on_the_first_prefix_then_keeps_old_and_new_up_to_max_prefix_history(
    scene: PoolScene[PoolKind],
) -> None:
    cluster, kind = scene.cluster, scene.kind
    dp, name = scene.set_up("fill", A, history=2)

    scene.wait(name, [A], what="filled with A")
    set_prefix(cluster, dp, B)
    scene.wait(name, [B, A], what="B and A")
    set_prefix(cluster, dp, C)
    set_prefix(cluster, dp, D)
    scene.wait(name, [D, C, B], what="trimmed")

    # the pools do not wait for the status write (design.md, Order of writes)
    status = wait_current(cluster, dp, D)
    assert [entry["prefix"] for entry in status["history"]] == [C, B]
    if isinstance(kind, ListPoolKind):
        record = scene.record(name)
        assert record is not None
        assert json.loads(record) == kind.expected([D, C, B])[len(kind.user_entries) :]
    if isinstance(kind, CalicoPoolKind):
        assert writes_to(cluster, name) == [], "the Calico template must never be written"


def test_user_entries_survive_100_rotations_and_every_pool_stays_as_big_as_after_one(
    cluster: Cluster, shared_operator: OperatorProcess, namespace: str
) -> None:
    """One DynamicPrefix, one pool of each kind; maxPrefixHistory 1 keeps two prefixes."""
    dp = f"churn-{new_tag()}"
    prefixes = [f"2001:db8:{0x100 + n:x}::/64" for n in range(101)]
    create_dynamic_prefix(cluster, dynamic_prefix(dp, prefixes[0], history=1))
    pools = create_pool_of_every_kind(cluster, dp, namespace)
    wait_pools(cluster, pools, prefixes[:1])

    set_prefix(cluster, dp, prefixes[1])
    wait_pools(cluster, pools, [prefixes[1], prefixes[0]], what="after one rotation")
    after_one = {name: _size(kind.observe(cluster, name, where)) for kind, name, where in pools}

    began = time.monotonic()
    for prefix in prefixes[2:]:
        set_prefix(cluster, dp, prefix)
        wait_current(cluster, dp, prefix)
    wait_pools(cluster, pools, [prefixes[-1], prefixes[-2]], what="after 100 rotations")
    for kind, name, where in pools:
        assert _size(kind.observe(cluster, name, where)) == after_one[name]
    print(f"99 more rotations of {len(pools)} pools took {time.monotonic() - began:.1f} s")
    assert [entry["prefix"] for entry in status_of(cluster, dp)["history"]] == [prefixes[-2]]


def _size(content: Any) -> int:
    """Entries in a list pool; pools made from a Calico template."""
    return len(content["generated"]) if isinstance(content, dict) else len(content)


def test_removing_the_name_annotation_releases_the_pool_keeping_the_users_entries(
    scene: PoolScene[PoolKind],
) -> None:
    cluster, kind = scene.cluster, scene.kind
    dp, name = scene.set_up("unannotate", A)
    wait_ready(cluster, dp)
    set_prefix(cluster, dp, B)
    scene.wait(name, [B, A])

    cluster.patch(
        scene.path(name),
        {"metadata": {"annotations": {api.ANNOTATION_NAME: None,
                                      api.ANNOTATION_ADDRESS_RANGE: None}}},
    )  # fmt: skip

    scene.wait_content(name, kind.released(), what="released")
    assert scene.record(name) is None
    wait_event(cluster, name, "PoolReleased", namespace=scene.event_namespace)


def test_deleting_the_dynamic_prefix_releases_its_pools_before_the_finalizer_lets_it_go(
    scene: PoolScene[PoolKind],
) -> None:
    cluster, kind = scene.cluster, scene.kind
    dp, name = scene.set_up_rotated("delete", A, B)
    finalizers = (cluster.get(f"{DP_PATH}/{dp}") or {})["metadata"].get("finalizers")
    assert finalizers == [api.FINALIZER]
    before = len(cluster.operator_writes())

    cluster.delete(f"{DP_PATH}/{dp}")

    wait_for(lambda: cluster.get(f"{DP_PATH}/{dp}") is None, what="the DynamicPrefix gone")
    assert scene.observe(name) == kind.released()
    assert scene.record(name) is None
    writes = [
        w for w in cluster.operator_writes()[before:]
        if (w.get("objectRef") or {}).get("resource") != "events"
    ]  # fmt: skip
    release = [i for i, w in enumerate(writes) if kind.operator_names(name)(_name_of(w))]
    finalizer = [i for i, w in enumerate(writes) if _name_of(w) == dp]
    assert release, "the operator never wrote to the pool"
    assert finalizer, "the operator never let the DynamicPrefix go"
    assert max(release) < max(finalizer), "the finalizer went before the pools were released"
    wait_event(cluster, dp, "PoolsReleased")


def _name_of(write: dict[str, Any]) -> str:
    return str((write.get("objectRef") or {}).get("name") or "")


def test_reconciling_unchanged_state_makes_no_writes(scene: PoolScene[PoolKind]) -> None:
    cluster, kind = scene.cluster, scene.kind
    dp, name = scene.set_up("idle", A)
    scene.wait(name, [A])
    wait_for(
        lambda: condition_message(cluster, dp, "PoolsSynced") == "1/1 pools in sync",
        what="PoolsSynced 1/1",
    )

    def ours(candidate: str) -> bool:
        return candidate == dp or kind.operator_names(name)(candidate)

    before = writes_about(cluster, ours)
    # Events that change nothing the operator renders: a note on the pool and the prefix.
    cluster.patch(scene.path(name), {"metadata": {"annotations": {"note": "touched"}}})
    cluster.patch(f"{DP_PATH}/{dp}", {"metadata": {"annotations": {"note": "touched"}}})
    # A pool of the same kind filled afterwards shows the operator has seen those events.
    _, marker = scene.set_up("mark", B)
    scene.wait(marker, [B], what="marker filled")

    assert writes_about(cluster, ours) == before


def test_a_users_removal_of_the_operators_entries_is_repaired_at_once(
    scene: PoolScene[PoolKind],
) -> None:
    _, name = scene.set_up_rotated("repair", A, B)

    scene.kind.remove_operator_entries(scene.cluster, name, scene.where)

    scene.wait(name, [B, A], what="repaired")


def test_a_pool_moved_to_another_dynamic_prefix_holds_only_the_new_ones_prefixes(
    scene: PoolScene[PoolKind],
) -> None:
    cluster = scene.cluster
    first, second, name = scene.name("move-from"), scene.name("move-to"), scene.name("move-pool")
    scene.create_dynamic_prefix(first, A)
    scene.create_dynamic_prefix(second, C)
    scene.create_pool(name, dp=first)
    set_prefix(cluster, first, B)
    scene.wait(name, [B, A])

    moved = {"metadata": {"annotations": {api.ANNOTATION_NAME: second}}}
    cluster.patch(scene.path(name), moved)

    scene.wait(name, [C], what="moved")


def test_malformed_user_entries_are_kept_in_place_and_reported(
    list_scene: PoolScene[ListPoolKind],
) -> None:
    scene = list_scene
    cluster, kind = scene.cluster, scene.kind
    dp, name = scene.name("malformed"), scene.name("malformed-pool")
    scene.create_dynamic_prefix(dp, A)
    scene.create_pool(name, dp=dp, entries=[*kind.user_entries, kind.malformed_entry])

    want = [*kind.user_entries, kind.malformed_entry, *kind.render(A)]
    scene.wait_content(name, want, what="filled, malformed entry kept")
    event = wait_event(cluster, name, "MalformedEntries", namespace=scene.event_namespace)
    assert event["type"] == "Warning"
    assert json.dumps(kind.malformed_entry) in event["message"]
    set_prefix(cluster, dp, B)
    want = [*kind.user_entries, kind.malformed_entry, *kind.render(B), *kind.render(A)]
    scene.wait_content(name, want, what="rotated, malformed entry kept")


def test_a_pool_naming_a_dynamic_prefix_that_does_not_exist_is_warned_about_and_left_alone(
    scene: PoolScene[PoolKind],
) -> None:
    cluster, kind = scene.cluster, scene.kind
    name = scene.name("orphan")
    created = scene.create_pool(name, dp=scene.name("missing"))

    event = wait_event(cluster, name, "DynamicPrefixNotFound", namespace=scene.event_namespace)
    assert event["type"] == "Warning"
    assert scene.name("missing") in event["message"]
    assert resource_version(cluster, scene.path(name)) == created["metadata"]["resourceVersion"]
    assert scene.observe(name) == kind.released()
    assert writes_about(cluster, kind.operator_names(name)) == []


def test_a_pool_naming_an_address_range_that_does_not_exist_is_warned_about_and_left_alone(
    scene: PoolScene[PoolKind],
) -> None:
    cluster, kind = scene.cluster, scene.kind
    dp, name = scene.name("norange"), scene.name("norange-pool")
    scene.create_dynamic_prefix(dp, A)
    wait_ready(cluster, dp)
    created = scene.create_pool(name, dp=dp, address_range="nope")

    event = wait_event(cluster, name, "InvalidReference", namespace=scene.event_namespace)
    assert event["type"] == "Warning"
    assert "'nope'" in event["message"]
    assert resource_version(cluster, scene.path(name)) == created["metadata"]["resourceVersion"]
    assert scene.observe(name) == kind.released()
    assert writes_about(cluster, kind.operator_names(name)) == []

    def not_in_sync() -> str | None:
        message = condition_message(cluster, dp, "PoolsSynced")
        return message if message is not None and message.startswith("0/1 ") else None

    message = wait_for(not_in_sync, timeout=WAIT_SECONDS, what="PoolsSynced 0/1")
    assert name in message
    assert condition_status(cluster, dp, "PoolsSynced") == "False"


def test_a_calico_template_deleted_by_its_user_takes_the_pools_made_from_it_along(
    calico: PoolScene[CalicoPoolKind],
) -> None:
    cluster, kind = calico.cluster, calico.kind
    _, name = calico.set_up_rotated("calico-gone", A, B)

    cluster.delete(kind.path(name))

    wait_for(
        lambda: not kind.generated(cluster, name),
        timeout=WAIT_SECONDS,
        what="generated pools deleted",
    )


def test_a_rotation_creates_the_calico_pool_of_the_new_prefix_once(
    calico: PoolScene[CalicoPoolKind],
) -> None:
    cluster, kind = calico.cluster, calico.kind
    dp, name = calico.set_up("calico-once", A)
    calico.wait(name, [A])
    before = len(writes_about(cluster, kind.operator_names(name)))

    set_prefix(cluster, dp, B)
    calico.wait(name, [B, A])
    set_prefix(cluster, dp, C)
    calico.wait(name, [C, B, A])
    # A Calico pool filled afterwards: the operator is done with the events before it.
    _, marker = calico.set_up("calico-once-mark", D)
    calico.wait(marker, [D])

    creates = [
        (w["objectRef"]["name"], w["responseStatus"]["code"])
        for w in writes_about(cluster, kind.operator_names(name))[before:]
        if w["verb"] == "create"
    ]
    assert sorted(creates) == sorted((kind.generated_name(name, prefix), 201) for prefix in (B, C))
