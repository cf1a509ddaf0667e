"""What a user switching from the Go operator keeps: its event reasons and its metric
names, types and labels, seen on the real API server and scraped from `/metrics`."""

from __future__ import annotations

import datetime as dt

from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    DP_PATH,
    dynamic_prefix,
    events_about,
    lb_block,
    new_tag,
    resource_version,
    set_prefix,
    wait_condition_status,
    wait_current,
)


def test_the_go_operators_events_and_metrics_are_there(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = new_tag()
    dp, pool = f"go-{tag}", f"go-pool-{tag}"
    cluster.apply(dynamic_prefix(dp, "2001:db8:90::/64", history=1))
    cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp, entries=[]))
    wait_current(cluster, dp, "2001:db8:90::/64")
    set_prefix(cluster, dp, "2001:db8:91::/64")
    set_prefix(cluster, dp, "2001:db8:92::/64")  # the first leaves the history (limit 1)
    wait_current(cluster, dp, "2001:db8:92::/64")
    wait_condition_status(cluster, dp, "PoolsSynced", "True")

    def reasons() -> set[str] | None:
        found = {e["reason"] for e in events_about(cluster, dp)}
        wanted = {"PrefixReceived", "PrefixChanged", "TransitionStarted", "TransitionCompleted"}
        return found if wanted <= found else None

    wait_for(reasons, what="the Go operator's event reasons")
    completed = events_about(cluster, dp, reason="TransitionCompleted")
    assert any("2001:db8:90::/64 is no longer in use" in e["message"] for e in completed)

    _, metrics = operator.http_get("/metrics")
    lines = metrics.splitlines()
    assert "# TYPE dynamic_prefix_received_total counter" in lines
    assert f'dynamic_prefix_received_total{{name="{dp}",source="static"}} 3.0' in lines
    assert "# TYPE dynamic_prefix_changes_total counter" in lines
    assert f'dynamic_prefix_changes_total{{name="{dp}"}} 2.0' in lines
    assert "# TYPE dynamic_prefix_lease_expiry_seconds gauge" in lines
    assert f'dynamic_prefix_lease_expiry_seconds{{name="{dp}"}} 0.0' in lines  # static: none
    assert f'dynamic_prefix_receiver_healthy{{name="{dp}"}} 1.0' in lines
    assert "# TYPE dynamic_prefix_pools_synced gauge" in lines
    assert (
        f'dynamic_prefix_pools_synced{{backend="cilium-lb-ip-pool",dynamic_prefix="{dp}",'
        f'pool="{pool}"}} 1.0'
    ) in lines
    assert lb_block("2001:db8:92:0") in CILIUM_LB_POOL.observe(cluster, pool)


def test_pools_carry_last_sync_written_only_with_a_change_and_removed_on_release(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = new_tag()
    dp, pool = f"sync-{tag}", f"sync-pool-{tag}"
    cluster.apply(dynamic_prefix(dp, "2001:db8:93::/64"))
    cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp, entries=[]))

    def last_sync() -> str | None:
        obj = cluster.get(CILIUM_LB_POOL.path(pool)) or {}
        value = (obj.get("metadata", {}).get("annotations") or {}).get(
            "dynamic-prefix.io/last-sync"
        )
        return None if value is None else str(value)

    first = wait_for(last_sync, what="last-sync written with the first fill")
    assert dt.datetime.fromisoformat(first.replace("Z", "+00:00")).tzinfo is not None
    version = resource_version(cluster, CILIUM_LB_POOL.path(pool))
    cluster.patch(f"{DP_PATH}/{dp}", {"metadata": {"annotations": {"note": "touched"}}})
    set_prefix(cluster, dp, "2001:db8:94::/64")
    wait_for(lambda: lb_block("2001:db8:94:0") in CILIUM_LB_POOL.observe(cluster, pool) or None,
             what="rotated")  # fmt: skip
    assert resource_version(cluster, CILIUM_LB_POOL.path(pool)) != version
    assert last_sync() is not None

    cluster.delete(f"{DP_PATH}/{dp}")
    wait_for(lambda: last_sync() is None or None, what="last-sync removed on release")
