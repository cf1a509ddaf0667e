"""The API server goes away and comes back: the operator's watches resume by themselves and
the next prefix change reaches the pools, judged by the order of what happens (the
outage, the server back, the change, the pool written), not by how long it took; the
time is measured by benchmarks/bench_recovery.py.

The API server is the session's shared one, stopped and started again on the same port
and etcd: every other test's objects survive it.
"""

from __future__ import annotations

from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    blocks,
    dynamic_prefix,
    lb_block,
    new_tag,
    patch_prefix,
    wait_current,
)


def test_after_an_outage_watches_resume_and_the_next_change_reaches_the_pool(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = new_tag()
    dp, pool = f"outage-{tag}", f"outage-pool-{tag}"
    cluster.apply(dynamic_prefix(dp, "2001:db8:76::/64"))
    cluster.apply(CILIUM_LB_POOL.manifest(pool, dp=dp, entries=[]))
    wait_for(lambda: blocks(cluster, pool) == [lb_block("2001:db8:76:0")], what="filled")

    start = len(operator.log())
    cluster.plane.stop_apiserver()
    # the server comes back once the operator has lost its DynamicPrefix watch, and has
    # kept failing to reach the server (its backoff at the cap)
    wait_for(lambda: "dynamicprefixes" in operator.log()[start:] or None, what="the loss seen")
    wait_for(
        lambda: operator.log()[start:].count("watching") >= 3 or None,
        what="several watches lost",
    )
    cluster.plane.start_apiserver()
    patch_prefix(cluster, dp, "2001:db8:77::/64")

    wait_current(cluster, dp, "2001:db8:77::/64")
    wait_for(
        lambda: blocks(cluster, pool) == [lb_block("2001:db8:77:0"), lb_block("2001:db8:76:0")],
        what="the change after the outage reaches the pool",
    )
    log = operator.log()
    assert "trying again every 1.0 s at most" in log, "the outage was seen"
    assert "again after" in log, "and the return told"
