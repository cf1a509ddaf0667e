"""The operator and a Cilium LB pool on the real control plane: fill, rotate, keep, release."""

from __future__ import annotations

import secrets
from typing import Any

from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    DP_PATH,
    blocks,
    dynamic_prefix,
    lb_block,
    patch_prefix,
    wait_condition_message,
    wait_current,
    wait_ready,
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


def test_reconciling_unchanged_state_makes_no_writes(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = secrets.token_hex(3)
    dp, name = f"idle-{tag}", f"pool-{tag}"
    cluster.apply(dynamic_prefix(dp, "2001:db8:10::/64"))
    cluster.apply(CILIUM_LB_POOL.manifest(name, dp=dp, entries=[]))
    wait_for(lambda: blocks(cluster, name) == [lb_block("2001:db8:10:0")], what="fill")
    # the status that counts the pool, not one written before the pool was seen
    wait_condition_message(cluster, dp, "PoolsSynced", "1/1 pools in sync")

    def writes_about_us() -> list[dict[str, Any]]:
        return [
            w for w in cluster.operator_writes()
            if (w.get("objectRef") or {}).get("name") in (dp, name)
        ]  # fmt: skip

    before = len(writes_about_us())
    # Events that change nothing the operator renders: an unrelated annotation on both.
    cluster.patch(CILIUM_LB_POOL.path(name), {"metadata": {"annotations": {"note": "touched"}}})
    cluster.patch(f"{DP_PATH}/{dp}", {"metadata": {"annotations": {"note": "touched"}}})
    # A later real change proves the operator processed the no-op events before it.
    other = f"marker-{tag}"
    cluster.apply(dynamic_prefix(other, "2001:db8:11::/64"))
    wait_ready(cluster, other)
    assert len(writes_about_us()) == before, writes_about_us()[before:]
