"""What a user switching from the Go operator keeps: its event reasons and its metric
names, types and labels, seen on the real API server and scraped from `/metrics`."""

from __future__ import annotations

from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    dynamic_prefix,
    events_about,
    lb_block,
    new_tag,
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
