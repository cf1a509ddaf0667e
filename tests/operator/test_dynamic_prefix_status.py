"""What the operator says about a DynamicPrefix: conditions, events, and what it refuses to do.

An invalid DynamicPrefix is reported (Ready False, Degraded True, a Warning event) and
its pools are not written; PoolsSynced counts the pools that reference it; a rotation is
told by an event and does not flip Ready.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dynamic_prefix.model import api
from dynamic_prefix.model.status import format_time
from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_CIDR_GROUP,
    CILIUM_LB_POOL,
    DP_PATH,
    METALLB_POOL,
    WAIT_SECONDS,
    Pools,
    PoolScene,
    changes_since,
    condition,
    condition_message,
    condition_of,
    condition_status,
    create,
    create_dynamic_prefix,
    create_fed_pools,
    create_pool_of_every_kind,
    dynamic_prefix,
    events_about,
    new_tag,
    resource_version,
    set_prefix,
    status_of,
    wait_condition_message,
    wait_condition_status,
    wait_current,
    wait_event,
    wait_pool,
    wait_pools,
    writes_about,
)

A, B, C = (f"2001:db8:{n}::/64" for n in ("a1", "b2", "c3"))
POOL = CILIUM_LB_POOL


def _snapshot(cluster: Cluster, pools: Pools) -> dict[str, Any]:
    """Each pool's resourceVersion and content, and the operator's writes to it so far."""
    return {
        name: (
            resource_version(cluster, kind.path(name, where)),
            kind.observe(cluster, name, where),
            len(writes_about(cluster, kind.operator_names(name))),
        )
        for kind, name, where in pools
    }


def _catch_up(cluster: Cluster, tag: str, namespace: str) -> None:
    """Pools of every kind filled for a valid DynamicPrefix made now: the operator has
    handled what was created before them."""
    wait_pools(
        cluster, create_fed_pools(cluster, f"mark-{tag}", C, namespace), [C], "marker filled"
    )


INVALID_SPECS: dict[str, tuple[dict[str, Any], str]] = {
    "range-does-not-fit-a-64": (
        {"ranges": [{"name": "lb", "start": "::1:0:0:0:0", "end": "::1:ffff:ffff:ffff:ffff"}]},
        "does not fit",
    ),
    "no-acquisition-source": ({"acquisition": {}}, "no prefix source is enabled"),
}


@pytest.mark.parametrize("case", INVALID_SPECS)
def test_an_invalid_dynamic_prefix_is_degraded_with_a_warning_and_its_pools_are_not_written(
    case: str, cluster: Cluster, shared_operator: OperatorProcess, namespace: str
) -> None:
    overrides, problem = INVALID_SPECS[case]
    tag = new_tag()
    dp = f"invalid-{tag}"
    pools = create_pool_of_every_kind(cluster, dp, namespace)
    created = _snapshot(cluster, pools)
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A, **overrides))

    wait_condition_status(cluster, dp, "Degraded", "True")
    assert problem in (condition_message(cluster, dp, "Degraded") or "")
    assert condition_status(cluster, dp, "Ready") == "False"
    assert problem in (condition_message(cluster, dp, "Ready") or "")
    event = wait_event(cluster, dp, "InvalidSpec")
    assert event["type"] == "Warning"
    assert problem in event["message"]
    _catch_up(cluster, tag, namespace)
    assert _snapshot(cluster, pools) == created
    assert "currentPrefix" not in status_of(cluster, dp)


def test_a_dynamic_prefix_that_becomes_invalid_leaves_its_filled_pools_as_they_are(
    cluster: Cluster, shared_operator: OperatorProcess, namespace: str
) -> None:
    tag = new_tag()
    dp = f"breaks-{tag}"
    pools = create_fed_pools(cluster, dp, A, namespace)
    set_prefix(cluster, dp, B)
    wait_pools(cluster, pools, [B, A])
    filled = _snapshot(cluster, pools)

    bad_range = {"name": "lb", "start": "::1:0:0:0:0", "end": "::1:ffff:ffff:ffff:ffff"}
    cluster.patch(f"{DP_PATH}/{dp}", {"spec": {"addressRanges": [bad_range]}})

    wait_condition_status(cluster, dp, "Degraded", "True")
    _catch_up(cluster, tag, namespace)
    assert _snapshot(cluster, pools) == filled
    assert status_of(cluster, dp)["currentPrefix"] == B


def test_pools_synced_reports_how_many_of_the_referencing_pools_are_in_sync(
    cluster: Cluster, shared_operator: OperatorProcess, namespace: str
) -> None:
    dp = f"count-{new_tag()}"
    count = len(create_fed_pools(cluster, dp, A, namespace))

    wait_condition_message(cluster, dp, "PoolsSynced", f"{count}/{count} pools in sync")
    assert condition_status(cluster, dp, "PoolsSynced") == "True"
    assert condition_status(cluster, dp, "Ready") == "True"


def _two_pools(cluster: Cluster, tag: str, namespace: str) -> tuple[str, str, str]:
    dp, kept, other = f"recount-{tag}", f"recount-kept-{tag}", f"recount-other-{tag}"
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    create(cluster, POOL.collection(), POOL.manifest(kept, dp=dp))
    create(cluster, METALLB_POOL.collection(namespace),
           METALLB_POOL.manifest(other, dp=dp, namespace=namespace))  # fmt: skip
    wait_condition_message(cluster, dp, "PoolsSynced", "2/2 pools in sync")
    return dp, kept, other


def test_pools_synced_stops_counting_a_pool_released_by_removing_its_annotation(
    cluster: Cluster, shared_operator: OperatorProcess, namespace: str
) -> None:
    dp, _, other = _two_pools(cluster, new_tag(), namespace)

    cluster.patch(
        METALLB_POOL.path(other, namespace),
        {"metadata": {"annotations": {api.ANNOTATION_NAME: None}}},
    )

    wait_pool(cluster, METALLB_POOL, other, METALLB_POOL.released(), namespace=namespace)
    wait_condition_message(cluster, dp, "PoolsSynced", "1/1 pools in sync")


def test_pools_synced_stops_counting_a_deleted_pool(
    cluster: Cluster, shared_operator: OperatorProcess, namespace: str
) -> None:
    dp, _, other = _two_pools(cluster, new_tag(), namespace)

    cluster.delete(METALLB_POOL.path(other, namespace))

    wait_condition_message(cluster, dp, "PoolsSynced", "1/1 pools in sync")


def test_a_rotation_is_told_by_a_prefix_changed_event_naming_both_prefixes(
    cluster: Cluster, shared_operator: OperatorProcess
) -> None:
    tag = new_tag()
    dp = f"told-{tag}"
    create_dynamic_prefix(cluster, dynamic_prefix(dp, A))
    acquired = wait_event(cluster, dp, "PrefixReceived")  # the Go operator's reason
    assert acquired["type"] == "Normal"
    assert A in acquired["message"]
    assert events_about(cluster, dp, reason="PrefixChanged") == []

    set_prefix(cluster, dp, B)

    changed = wait_event(cluster, dp, "PrefixChanged")
    assert changed["type"] == "Normal"
    assert f"from {A} to {B}" in changed["message"]
    assert changed["involvedObject"]["kind"] == api.KIND
    started = wait_event(cluster, dp, "TransitionStarted")  # the Go operator's, beside it
    assert f"from {A} to {B}" in started["message"]


def test_ready_keeps_its_last_transition_time_across_a_rotation(
    cluster: Cluster, shared_operator: OperatorProcess
) -> None:
    scene = PoolScene(cluster, POOL)
    dp, pool = scene.set_up("steady", A)
    scene.wait(pool, [A])
    wait_condition_message(cluster, dp, "PoolsSynced", "1/1 pools in sync")
    ready = condition(cluster, dp, "Ready")
    assert ready is not None
    assert ready["status"] == "True"
    transition = str(ready["lastTransitionTime"])
    since = resource_version(cluster, f"{DP_PATH}/{dp}")
    # Timestamps have whole seconds: rotate in a later second, so a flip would show.
    wait_for(
        lambda: format_time(dt.datetime.now(dt.UTC)) > transition,
        what="the next second",
    )

    set_prefix(cluster, dp, B)

    scene.wait(pool, [B, A])
    wait_current(cluster, dp, B)  # the pools do not wait for the status write
    after = condition(cluster, dp, "Ready")
    assert after is not None
    assert after["status"] == "True"
    assert after["lastTransitionTime"] == transition
    versions = changes_since(cluster, DP_PATH, since, name=dp)
    assert versions, "the rotation wrote no status"
    assert [_ready_of(obj) for _, obj in versions] == ["True"] * len(versions)


def _ready_of(obj: dict[str, Any]) -> str | None:
    found = condition_of(obj, "Ready")
    return None if found is None else str(found.get("status"))


def test_a_prefix_that_comes_back_is_current_and_not_also_listed_in_history(
    cluster: Cluster, shared_operator: OperatorProcess
) -> None:
    scene = PoolScene(cluster, POOL)
    dp, pool = scene.set_up_rotated("back", A, B)

    set_prefix(cluster, dp, A)

    scene.wait(pool, [A, B], what="A current, B its history")
    status = wait_current(cluster, dp, A)
    assert [entry["prefix"] for entry in status["history"]] == [B]


def test_a_pool_update_is_told_by_an_event(
    cluster: Cluster, shared_operator: OperatorProcess
) -> None:
    scene = PoolScene(cluster, CILIUM_CIDR_GROUP)
    dp, group = scene.set_up("update", A)
    scene.wait(group, [A])

    def told() -> bool:
        on_pool = [e for e in events_about(cluster, group) if e["type"] == "Normal"]
        on_dp = [e for e in events_about(cluster, dp) if group in e["message"]]
        return bool(on_pool or on_dp)

    wait_for(told, timeout=WAIT_SECONDS, what="an event about the pool's update")
