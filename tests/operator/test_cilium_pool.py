"""The operator and a Cilium LB pool on the real control plane: fill, rotate, keep, release."""

from __future__ import annotations

import secrets
from typing import Any

from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    DP_PATH,
    audit_time,
    blocks,
    dynamic_prefix,
    lb_block,
    patch_prefix,
    wait_condition_message,
    wait_current,
    wait_ready,
    writes_about,
    writes_to,
)


def test_pool_is_filled_then_follows_rotations_keeping_user_blocks(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = secrets.token_hex(3)
    dp, name = f"rotate-{tag}", f"pool-{tag}"
    user = [{"cidr": "192.0.2.0/24"}, {"start": "2001:db8:ffff::1", "stop": "2001:db8:ffff::9"}]
    cluster.apply(dynamic_prefix(dp, "2001:db8:1::/64"))
    cluster.apply(CILIUM_LB_POOL.manifest(name, dp=dp, entries=user))

    wait_for(lambda: blocks(cluster, name) == [*user, lb_block("2001:db8:1:0")], what="fill")

    patch_prefix(cluster, dp, "2001:db8:2::/64")
    wait_for(
        lambda: (
            blocks(cluster, name) == [*user, lb_block("2001:db8:2:0"), lb_block("2001:db8:1:0")]
        ),
        what="rotation keeps old and new",
    )
    patch_prefix(cluster, dp, "2001:db8:3::/64")
    wait_for(
        lambda: (
            (cluster.get(f"{DP_PATH}/{dp}") or {}).get("status", {}).get("currentPrefix")
            == "2001:db8:3::/64"
        ),
        what="the third prefix taken (a prefix replaced before it was seen is never current)",
    )
    patch_prefix(cluster, dp, "2001:db8:4::/64")
    wait_for(
        lambda: (
            blocks(cluster, name)
            == [*user, lb_block("2001:db8:4:0"), lb_block("2001:db8:3:0"), lb_block("2001:db8:2:0")]
        ),
        what="history trimmed to maxPrefixHistory",
    )
    # the pools do not wait for the status write (design.md, Order of writes)
    status = wait_current(cluster, dp, "2001:db8:4::/64")
    assert [h["prefix"] for h in status["history"]] == ["2001:db8:3::/64", "2001:db8:2::/64"]


def _one_filled_pool(cluster: Cluster, what: str, head: str) -> tuple[str, str, str]:
    """A DynamicPrefix ``what-TAG`` of ``head::/64`` and one pool of it, filled and
    counted in its status; (tag, DynamicPrefix, pool)."""
    tag = secrets.token_hex(3)
    dp, name = f"{what}-{tag}", f"pool-{tag}"
    cluster.apply(dynamic_prefix(dp, f"{head}::/64"))
    cluster.apply(CILIUM_LB_POOL.manifest(name, dp=dp, entries=[]))
    wait_for(lambda: blocks(cluster, name) == [lb_block(f"{head}:0")], what="fill")
    # the status that counts the pool, not one written before the pool was seen
    wait_condition_message(cluster, dp, "PoolsSynced", "1/1 pools in sync")
    return tag, dp, name


def test_reconciling_unchanged_state_makes_no_writes(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag, dp, name = _one_filled_pool(cluster, "idle", "2001:db8:10")

    before = len(writes_to(cluster, dp, name))
    # Events that change nothing the operator renders: an unrelated annotation on both.
    cluster.patch(CILIUM_LB_POOL.path(name), {"metadata": {"annotations": {"note": "touched"}}})
    cluster.patch(f"{DP_PATH}/{dp}", {"metadata": {"annotations": {"note": "touched"}}})
    # A later real change proves the operator processed the no-op events before it.
    other = f"marker-{tag}"
    cluster.apply(dynamic_prefix(other, "2001:db8:11::/64"))
    wait_ready(cluster, other)
    assert len(writes_to(cluster, dp, name)) == before, writes_to(cluster, dp, name)[before:]


def test_the_status_is_written_once_the_pool_write_is_answered(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    """What users reach goes first (design.md, Order of writes): in a one-pool change the
    status write reaches the API server after the pool's write was answered, not while
    it is in flight, where it would compete with it for two shared cores."""
    _, dp, name = _one_filled_pool(cluster, "first", "2001:db8:20")
    before = len(writes_to(cluster, dp, name))
    for prefix in ("2001:db8:21::/64", "2001:db8:22::/64", "2001:db8:23::/64"):
        patch_prefix(cluster, dp, prefix)
        wait_current(cluster, dp, prefix)
    changes = writes_to(cluster, dp, name)[before:]
    pool_writes = [w for w in changes if w["objectRef"]["name"] == name]
    status_writes = [w for w in changes if w["objectRef"].get("subresource") == "status"]
    assert len(pool_writes) == 3, changes
    for pool_write in pool_writes:
        sent, answered = (audit_time(pool_write["requestReceivedTimestamp"]),
                          audit_time(pool_write["stageTimestamp"]))  # fmt: skip
        # the change's status write is the first one after the pool write arrived
        status_write = min(
            (w for w in status_writes if audit_time(w["requestReceivedTimestamp"]) >= sent),
            key=lambda w: audit_time(w["requestReceivedTimestamp"]),
        )
        received = audit_time(status_write["requestReceivedTimestamp"])
        assert received >= answered, (pool_write, status_write)


def test_a_large_change_does_not_hold_the_status_back(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    """The status waits for the pools' writes for 50 ms at most: with 400 pools (about a
    third of a second of writes here) it is written while they are still going."""
    tag = secrets.token_hex(3)
    dp, count = f"large-{tag}", 400
    label = {"dynamic-prefix-test/large": tag}
    cluster.apply(dynamic_prefix(dp, "2001:db8:30::/64"))
    names = [f"large-{tag}-{index}" for index in range(count)]
    for name in names:
        pool = CILIUM_LB_POOL.manifest(name, dp=dp, entries=[])
        pool["metadata"]["labels"] = label
        response = cluster.plane.request("POST", CILIUM_LB_POOL.collection(None), body=pool)
        assert response.status == 201, response.body
    try:
        wait_condition_message(cluster, dp, "PoolsSynced", f"{count}/{count} pools in sync")

        def ours() -> list[dict[str, Any]]:
            return writes_about(cluster, lambda n: n == dp or n.startswith(f"large-{tag}-"))

        before = len(ours())
        patch_prefix(cluster, dp, "2001:db8:31::/64")
        wait_for(
            lambda: sum(w["objectRef"]["name"] != dp for w in ours()[before:]) >= count,
            what="every pool written",
        )
        assert blocks(cluster, names[-1]) == [lb_block("2001:db8:31:0"), lb_block("2001:db8:30:0")]
        changes = ours()[before:]
        pool_writes = [w for w in changes if w["objectRef"]["name"] != dp]
        status_write = next(w for w in changes if w["objectRef"].get("subresource") == "status")
        assert len(pool_writes) == count, len(pool_writes)
        last_answered = max(audit_time(w["stageTimestamp"]) for w in pool_writes)
        assert audit_time(status_write["requestReceivedTimestamp"]) < last_answered
    finally:
        response = cluster.plane.request(
            "DELETE",
            CILIUM_LB_POOL.collection(None) + f"?labelSelector=dynamic-prefix-test/large%3D{tag}",
        )
        assert response.status == 200, response.body
