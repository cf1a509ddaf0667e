"""Every pool kind on the real control plane: fill, rotate, trim, keep the user's, release.

Each test runs once per pool kind: Cilium LB pool and CIDR group (cilium.io/v2), MetalLB
IPAddressPool (in a namespace of its own, not the operator's) and Calico IPPool (a
template the operator never edits, and pools it makes from it).
"""

from __future__ import annotations

import json
import time
from typing import Any

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
    condition_status,
    create,
    create_dynamic_prefix,
    dynamic_prefix,
    new_tag,
    resource_version,
    set_prefix,
    status_of,
    wait_current,
    wait_event,
    wait_pool,
    wait_ready,
    writes_about,
    writes_to,
)

A, B, C, D = (f"2001:db8:{n}::/64" for n in ("a1", "b2", "c3", "d4"))


@pytest.fixture(params=ALL_KINDS, ids=lambda kind: kind.id)
def kind(request: pytest.FixtureRequest) -> PoolKind:
    kind: PoolKind = request.param
    return kind


@pytest.fixture(params=LIST_KINDS, ids=lambda kind: kind.id)
def list_kind(request: pytest.FixtureRequest) -> ListPoolKind:
    kind: ListPoolKind = request.param
    return kind


def pool_namespace(kind: PoolKind, request: pytest.FixtureRequest) -> str | None:
    """A fresh namespace for a namespaced kind (MetalLB), None for cluster-scoped ones."""
    if not kind.namespaced:
        return None
    namespace: str = request.getfixturevalue("namespace")
    return namespace


def event_namespace(namespace: str | None) -> str:
    """Events about cluster-scoped objects go to default, others next to the object."""
    return namespace or "default"


def test_pool_is_filled_on_the_first_prefix_then_keeps_old_and_new_up_to_max_prefix_history(
    kind: PoolKind,
    cluster: Cluster,
    shared_operator: OperatorProcess,
    request: pytest.FixtureRequest,
) -> None:
    tag = new_tag()
    dp, name = f"fill-{tag}", f"fill-pool-{tag}"
    where = pool_namespace(kind, request)
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A, history=2))
    create(cluster, kind.collection(where), kind.manifest(name, dp=dp, namespace=where))

    wait_pool(cluster, kind, name, kind.expected([A]), namespace=where, what="filled with A")
    set_prefix(cluster, dp, B)
    wait_pool(cluster, kind, name, kind.expected([B, A]), namespace=where, what="B and A")
    set_prefix(cluster, dp, C)
    set_prefix(cluster, dp, D)
    wait_pool(cluster, kind, name, kind.expected([D, C, B]), namespace=where, what="trimmed")

    status = status_of(cluster, dp)
    assert status["currentPrefix"] == D
    assert [entry["prefix"] for entry in status["history"]] == [C, B]
    if isinstance(kind, ListPoolKind):
        record = kind.record(cluster, name, where)
        assert record is not None
        assert json.loads(record) == kind.expected([D, C, B])[len(kind.user_entries) :]
    if isinstance(kind, CalicoPoolKind):
        assert writes_to(cluster, name) == [], "the Calico template must never be written"


def test_user_entries_survive_100_rotations_and_every_pool_stays_as_big_as_after_one(
    cluster: Cluster, shared_operator: OperatorProcess, namespace: str
) -> None:
    """One DynamicPrefix, one pool of each kind; maxPrefixHistory 1 keeps two prefixes."""
    tag = new_tag()
    dp = f"churn-{tag}"
    prefixes = [f"2001:db8:{0x100 + n:x}::/64" for n in range(101)]
    pools = [(kind, f"churn-{kind.id}-{tag}", namespace if kind.namespaced else None)
             for kind in ALL_KINDS]  # fmt: skip
    create_dynamic_prefix(cluster, dynamic_prefix(dp, prefixes[0], history=1))
    for kind, name, where in pools:
        create(cluster, kind.collection(where), kind.manifest(name, dp=dp, namespace=where))
    for kind, name, where in pools:
        wait_pool(cluster, kind, name, kind.expected(prefixes[:1]), namespace=where)

    set_prefix(cluster, dp, prefixes[1])
    after_one = {}
    for kind, name, where in pools:
        want = kind.expected([prefixes[1], prefixes[0]])
        wait_pool(cluster, kind, name, want, namespace=where, what="after one rotation")
        after_one[name] = _size(kind.observe(cluster, name, where))

    began = time.monotonic()
    for prefix in prefixes[2:]:
        set_prefix(cluster, dp, prefix)
        wait_current(cluster, dp, prefix)
    for kind, name, where in pools:
        want = kind.expected([prefixes[-1], prefixes[-2]])
        wait_pool(cluster, kind, name, want, namespace=where, what="after 100 rotations")
        assert _size(kind.observe(cluster, name, where)) == after_one[name]
    print(f"99 more rotations of {len(pools)} pools took {time.monotonic() - began:.1f} s")
    assert [entry["prefix"] for entry in status_of(cluster, dp)["history"]] == [prefixes[-2]]


def _size(content: Any) -> int:
    """Entries in a list pool; pools made from a Calico template."""
    return len(content["generated"]) if isinstance(content, dict) else len(content)


def test_removing_the_name_annotation_releases_the_pool_keeping_the_users_entries(
    kind: PoolKind,
    cluster: Cluster,
    shared_operator: OperatorProcess,
    request: pytest.FixtureRequest,
) -> None:
    tag = new_tag()
    dp, name = f"unannotate-{tag}", f"unannotate-pool-{tag}"
    where = pool_namespace(kind, request)
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    create(cluster, kind.collection(where), kind.manifest(name, dp=dp, namespace=where))
    wait_ready(cluster, dp)
    set_prefix(cluster, dp, B)
    wait_pool(cluster, kind, name, kind.expected([B, A]), namespace=where)

    cluster.patch(
        kind.path(name, where),
        {"metadata": {"annotations": {api.ANNOTATION_NAME: None,
                                      api.ANNOTATION_ADDRESS_RANGE: None}}},
    )  # fmt: skip

    wait_pool(cluster, kind, name, kind.released(), namespace=where, what="released")
    assert kind.record(cluster, name, where) is None
    wait_event(cluster, name, "PoolReleased", namespace=event_namespace(where))


def test_deleting_the_dynamic_prefix_releases_its_pools_before_the_finalizer_lets_it_go(
    kind: PoolKind,
    cluster: Cluster,
    shared_operator: OperatorProcess,
    request: pytest.FixtureRequest,
) -> None:
    tag = new_tag()
    dp, name = f"delete-{tag}", f"delete-pool-{tag}"
    where = pool_namespace(kind, request)
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    create(cluster, kind.collection(where), kind.manifest(name, dp=dp, namespace=where))
    set_prefix(cluster, dp, B)
    wait_pool(cluster, kind, name, kind.expected([B, A]), namespace=where)
    finalizers = (cluster.get(f"{DP_PATH}/{dp}") or {})["metadata"].get("finalizers")
    assert finalizers == [api.FINALIZER]
    before = len(cluster.operator_writes())

    cluster.delete(f"{DP_PATH}/{dp}")

    wait_for(lambda: cluster.get(f"{DP_PATH}/{dp}") is None, what="the DynamicPrefix gone")
    assert kind.observe(cluster, name, where) == kind.released()
    assert kind.record(cluster, name, where) is None
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


def test_reconciling_unchanged_state_makes_no_writes(
    kind: PoolKind,
    cluster: Cluster,
    shared_operator: OperatorProcess,
    request: pytest.FixtureRequest,
) -> None:
    tag = new_tag()
    dp, name = f"idle-{tag}", f"idle-pool-{tag}"
    where = pool_namespace(kind, request)
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    create(cluster, kind.collection(where), kind.manifest(name, dp=dp, namespace=where))
    wait_pool(cluster, kind, name, kind.expected([A]), namespace=where)
    wait_for(
        lambda: _message(cluster, dp, "PoolsSynced") == "1/1 pools in sync",
        what="PoolsSynced 1/1",
    )

    def ours(candidate: str) -> bool:
        return candidate == dp or kind.operator_names(name)(candidate)

    before = writes_about(cluster, ours)
    # Events that change nothing the operator renders: a note on the pool and the prefix.
    cluster.patch(kind.path(name, where), {"metadata": {"annotations": {"note": "touched"}}})
    cluster.patch(f"{DP_PATH}/{dp}", {"metadata": {"annotations": {"note": "touched"}}})
    # A pool of the same kind filled afterwards shows the operator has seen those events.
    marker_dp, marker = f"mark-{tag}", f"mark-pool-{tag}"
    create_dynamic_prefix(cluster, dynamic_prefix(marker_dp, B))
    create(cluster, kind.collection(where), kind.manifest(marker, dp=marker_dp, namespace=where))
    wait_pool(cluster, kind, marker, kind.expected([B]), namespace=where, what="marker filled")

    assert writes_about(cluster, ours) == before


def _message(cluster: Cluster, dp: str, kind: str) -> str | None:
    for item in status_of(cluster, dp).get("conditions") or []:
        if item.get("type") == kind:
            return str(item.get("message"))
    return None


def test_a_users_removal_of_the_operators_entries_is_repaired_at_once(
    kind: PoolKind,
    cluster: Cluster,
    shared_operator: OperatorProcess,
    request: pytest.FixtureRequest,
) -> None:
    tag = new_tag()
    dp, name = f"repair-{tag}", f"repair-pool-{tag}"
    where = pool_namespace(kind, request)
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    create(cluster, kind.collection(where), kind.manifest(name, dp=dp, namespace=where))
    set_prefix(cluster, dp, B)
    wait_pool(cluster, kind, name, kind.expected([B, A]), namespace=where)

    kind.remove_operator_entries(cluster, name, where)

    wait_pool(cluster, kind, name, kind.expected([B, A]), namespace=where, what="repaired")


def test_a_pool_moved_to_another_dynamic_prefix_holds_only_the_new_ones_prefixes(
    kind: PoolKind,
    cluster: Cluster,
    shared_operator: OperatorProcess,
    request: pytest.FixtureRequest,
) -> None:
    tag = new_tag()
    first, second, name = f"move-from-{tag}", f"move-to-{tag}", f"move-pool-{tag}"
    where = pool_namespace(kind, request)
    create_dynamic_prefix(cluster, dynamic_prefix(first, A))
    create_dynamic_prefix(cluster, dynamic_prefix(second, C))
    create(cluster, kind.collection(where), kind.manifest(name, dp=first, namespace=where))
    set_prefix(cluster, first, B)
    wait_pool(cluster, kind, name, kind.expected([B, A]), namespace=where)

    moved = {"metadata": {"annotations": {api.ANNOTATION_NAME: second}}}
    cluster.patch(kind.path(name, where), moved)

    wait_pool(cluster, kind, name, kind.expected([C]), namespace=where, what="moved")


def test_malformed_user_entries_are_kept_in_place_and_reported(
    list_kind: ListPoolKind,
    cluster: Cluster,
    shared_operator: OperatorProcess,
    request: pytest.FixtureRequest,
) -> None:
    kind = list_kind
    tag = new_tag()
    dp, name = f"malformed-{tag}", f"malformed-pool-{tag}"
    where = pool_namespace(kind, request)
    manifest = kind.manifest(name, dp=dp, namespace=where, extra_entries=[kind.malformed_entry])
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    create(cluster, kind.collection(where), manifest)

    want = [*kind.user_entries, kind.malformed_entry, *kind.render(A)]
    wait_pool(cluster, kind, name, want, namespace=where, what="filled, malformed entry kept")
    event = wait_event(cluster, name, "MalformedEntries", namespace=event_namespace(where))
    assert event["type"] == "Warning"
    assert json.dumps(kind.malformed_entry) in event["message"]
    set_prefix(cluster, dp, B)
    want = [*kind.user_entries, kind.malformed_entry, *kind.render(B), *kind.render(A)]
    wait_pool(cluster, kind, name, want, namespace=where, what="rotated, malformed entry kept")


def test_a_pool_naming_a_dynamic_prefix_that_does_not_exist_is_warned_about_and_left_alone(
    kind: PoolKind,
    cluster: Cluster,
    shared_operator: OperatorProcess,
    request: pytest.FixtureRequest,
) -> None:
    tag = new_tag()
    name = f"orphan-{tag}"
    where = pool_namespace(kind, request)
    created = create(
        cluster, kind.collection(where), kind.manifest(name, dp=f"missing-{tag}", namespace=where)
    )

    event = wait_event(cluster, name, "DynamicPrefixNotFound", namespace=event_namespace(where))
    assert event["type"] == "Warning"
    assert f"missing-{tag}" in event["message"]
    assert (
        resource_version(cluster, kind.path(name, where)) == created["metadata"]["resourceVersion"]
    )
    assert kind.observe(cluster, name, where) == kind.released()
    assert writes_about(cluster, kind.operator_names(name)) == []


def test_a_pool_naming_an_address_range_that_does_not_exist_is_warned_about_and_left_alone(
    kind: PoolKind,
    cluster: Cluster,
    shared_operator: OperatorProcess,
    request: pytest.FixtureRequest,
) -> None:
    tag = new_tag()
    dp, name = f"norange-{tag}", f"norange-pool-{tag}"
    where = pool_namespace(kind, request)
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    wait_ready(cluster, dp)
    manifest = kind.manifest(name, dp=dp, address_range="nope", namespace=where)
    created = create(cluster, kind.collection(where), manifest)

    event = wait_event(cluster, name, "InvalidReference", namespace=event_namespace(where))
    assert event["type"] == "Warning"
    assert "'nope'" in event["message"]
    assert (
        resource_version(cluster, kind.path(name, where)) == created["metadata"]["resourceVersion"]
    )
    assert kind.observe(cluster, name, where) == kind.released()
    assert writes_about(cluster, kind.operator_names(name)) == []

    def not_in_sync() -> str | None:
        message = _message(cluster, dp, "PoolsSynced")
        return message if message is not None and message.startswith("0/1 ") else None

    message = wait_for(not_in_sync, timeout=WAIT_SECONDS, what="PoolsSynced 0/1")
    assert name in message
    assert condition_status(cluster, dp, "PoolsSynced") == "False"


def test_a_calico_template_deleted_by_its_user_takes_the_pools_made_from_it_along(
    cluster: Cluster, shared_operator: OperatorProcess
) -> None:
    kind = CALICO_POOL
    tag = new_tag()
    dp, name = f"calico-gone-{tag}", f"calico-gone-pool-{tag}"
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    create(cluster, kind.collection(), kind.manifest(name, dp=dp))
    set_prefix(cluster, dp, B)
    wait_pool(cluster, kind, name, kind.expected([B, A]))

    cluster.delete(kind.path(name))

    wait_for(
        lambda: not kind.generated(cluster, name),
        timeout=WAIT_SECONDS,
        what="generated pools deleted",
    )


def test_a_rotation_creates_the_calico_pool_of_the_new_prefix_once(
    cluster: Cluster, shared_operator: OperatorProcess
) -> None:
    kind = CALICO_POOL
    tag = new_tag()
    dp, name = f"calico-once-{tag}", f"calico-once-pool-{tag}"
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    create(cluster, kind.collection(), kind.manifest(name, dp=dp))
    wait_pool(cluster, kind, name, kind.expected([A]))
    before = len(writes_about(cluster, kind.operator_names(name)))

    set_prefix(cluster, dp, B)
    wait_pool(cluster, kind, name, kind.expected([B, A]))
    set_prefix(cluster, dp, C)
    wait_pool(cluster, kind, name, kind.expected([C, B, A]))
    # A Calico pool filled afterwards: the operator is done with the events before it.
    marker_dp, marker = f"calico-once-mark-{tag}", f"calico-once-mark-pool-{tag}"
    create_dynamic_prefix(cluster, dynamic_prefix(marker_dp, D))
    create(cluster, kind.collection(), kind.manifest(marker, dp=marker_dp))
    wait_pool(cluster, kind, marker, kind.expected([D]))

    creates = [
        (w["objectRef"]["name"], w["responseStatus"]["code"])
        for w in writes_about(cluster, kind.operator_names(name))[before:]
        if w["verb"] == "create"
    ]
    assert sorted(creates) == sorted((kind.generated_name(name, prefix), 201) for prefix in (B, C))
