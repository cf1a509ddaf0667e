"""Switching a running cluster from the Go operator: its DynamicPrefix (with the status it
wrote), pools and a Service carrying its ownership records as it writes them
(comma-separated, blocks as cidr=/range=). Ours starts: nothing is renumbered, no user's
entry is lost, the Go operator's entries for a prefix no longer in use go, and its records
are taken over without a warning."""

from __future__ import annotations

from typing import Any

from testbed.harness import Cluster, OperatorProcess, wait_for
from tests.operator.operator_testkit import (
    CILIUM_LB_POOL,
    DP_PATH,
    METALLB_POOL,
    create,
    dynamic_prefix,
    events_about,
    lb_block,
    new_tag,
    wait_condition_status,
)

P0, P1, P2 = "2001:db8:a0::/64", "2001:db8:a1::/64", "2001:db8:a2::/64"


def metallb_range(head: str) -> str:
    return f"{head}:f000::-{head}:ffff:ffff:ffff:ffff"


def test_switching_from_the_go_operator_renumbers_nothing_and_loses_nothing(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    tag = new_tag()
    dp, cilium, metallb, web = f"mig-{tag}", f"mig-lb-{tag}", f"mig-mlb-{tag}", f"mig-web-{tag}"
    operator.stop()  # the Go operator is running: ours is not yet

    obj = dynamic_prefix(dp, P2, history=2)
    obj["spec"]["transition"]["mode"] = "ha"
    cluster.apply(obj)
    cluster.patch(f"{DP_PATH}/{dp}/status", {"status": {  # as the Go operator wrote it
        "currentPrefix": P2, "prefixSource": "static",
        "history": [{"prefix": P1, "state": "draining"}],
    }})  # fmt: skip
    user_block = {"cidr": "192.0.2.0/24"}
    go_blocks = [lb_block("2001:db8:a2:0"), lb_block("2001:db8:a1:0"), lb_block("2001:db8:a0:0")]
    pool = CILIUM_LB_POOL.manifest(cilium, dp=dp, entries=[user_block, *go_blocks])
    pool["metadata"]["annotations"]["dynamic-prefix.io/managed-blocks"] = ",".join(
        f"range={b['start']}-{b['stop']}" for b in go_blocks)  # fmt: skip
    cluster.apply(pool)
    go_addresses = [metallb_range("2001:db8:a2:0"), metallb_range("2001:db8:a1:0")]
    mlb = METALLB_POOL.manifest(metallb, dp=dp, namespace=namespace,
                                entries=["198.51.100.0/24", *go_addresses])  # fmt: skip
    mlb["metadata"]["annotations"]["dynamic-prefix.io/managed-addresses"] = ",".join(go_addresses)
    create(cluster, METALLB_POOL.collection(namespace), mlb)
    go_ips = ["2001:db8:a2:0:ffff::2", "2001:db8:a1:0:ffff::2"]
    services = "/api/v1/namespaces/default/services"
    create(cluster, services, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": web, "namespace": "default", "annotations": {
            "dynamic-prefix.io/name": dp, "dynamic-prefix.io/service-address-range": "lb",
            "dynamic-prefix.io/suffix": "::ffff:0:0:2",
            "lbipam.cilium.io/ips": ",".join(["192.0.2.2", *go_ips]),
            "dynamic-prefix.io/managed-ips": ",".join(go_ips),
            "external-dns.alpha.kubernetes.io/target": f"web.example.net,{go_ips[0]}",
            "dynamic-prefix.io/managed-targets": go_ips[0]}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
    })  # fmt: skip

    operator.start()
    wait_condition_status(cluster, dp, "Ready", "True")

    def cilium_blocks() -> list[Any] | None:
        found = CILIUM_LB_POOL.observe(cluster, cilium)
        return found if found == [user_block, *go_blocks[:2]] else None

    wait_for(cilium_blocks, what="the Go operator's block of P0 (no longer in use) gone")
    assert METALLB_POOL.observe(cluster, metallb, namespace) == ["198.51.100.0/24", *go_addresses]
    service = (cluster.get(f"{services}/{web}") or {})["metadata"]["annotations"]
    assert service["lbipam.cilium.io/ips"] == ",".join(["192.0.2.2", *go_ips])
    assert service["external-dns.alpha.kubernetes.io/target"] == f"web.example.net,{go_ips[0]}"
    status = (cluster.get(f"{DP_PATH}/{dp}") or {})["status"]
    assert status["currentPrefix"] == P2, "nothing renumbered"
    assert [h["prefix"] for h in status["history"]] == [P1]
    warnings = [e for name in (dp, cilium) for e in events_about(cluster, name)
                if e["type"] == "Warning"]  # fmt: skip
    assert warnings == [], [w["message"] for w in warnings]
    cluster.delete(f"{services}/{web}")
