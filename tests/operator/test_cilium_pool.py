"""The operator and a Cilium LB pool on the real control plane: fill, rotate, keep, release."""

from __future__ import annotations

import secrets
from typing import Any

from dynamic_prefix.model import api
from testbed.harness import Cluster, OperatorProcess, wait_for

DP_PATH = f"/apis/{api.API_VERSION}/{api.PLURAL}"
POOLS = "/apis/cilium.io/v2/ciliumloadbalancerippools"


def dynamic_prefix(name: str, prefix: str, *, history: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {
            "acquisition": {"static": {"prefix": prefix}},
            "addressRanges": [
                {"name": "lb", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}
            ],
            "transition": {"maxPrefixHistory": history},
        },
    }


def pool(name: str, dp: str, blocks: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumLoadBalancerIPPool",
        "metadata": {
            "name": name,
            "annotations": {api.ANNOTATION_NAME: dp, api.ANNOTATION_ADDRESS_RANGE: "lb"},
        },
        "spec": {"blocks": blocks},
    }


def lb_block(prefix_head: str) -> dict[str, str]:
    return {"start": f"{prefix_head}:f000::", "stop": f"{prefix_head}:ffff:ffff:ffff:ffff"}


def blocks_of(cluster: Cluster, name: str) -> list[Any]:
    obj = cluster.get(f"{POOLS}/{name}")
    return [] if obj is None else list(obj["spec"].get("blocks") or [])


def set_prefix(cluster: Cluster, name: str, prefix: str) -> None:
    cluster.patch(f"{DP_PATH}/{name}", {"spec": {"acquisition": {"static": {"prefix": prefix}}}})


def test_pool_is_filled_then_follows_rotations_keeping_user_blocks(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = secrets.token_hex(3)
    dp, name = f"rotate-{tag}", f"pool-{tag}"
    user = [{"cidr": "192.0.2.0/24"}, {"start": "2001:db8:ffff::1", "stop": "2001:db8:ffff::9"}]
    cluster.apply(dynamic_prefix(dp, "2001:db8:1::/64"))
    cluster.apply(pool(name, dp, user))

    wait_for(lambda: blocks_of(cluster, name) == [*user, lb_block("2001:db8:1:0")], what="fill")

    set_prefix(cluster, dp, "2001:db8:2::/64")
    wait_for(
        lambda: (
            blocks_of(cluster, name) == [*user, lb_block("2001:db8:2:0"), lb_block("2001:db8:1:0")]
        ),
        what="rotation keeps old and new",
    )
    set_prefix(cluster, dp, "2001:db8:3::/64")
    wait_for(
        lambda: (
            (cluster.get(f"{DP_PATH}/{dp}") or {}).get("status", {}).get("currentPrefix")
            == "2001:db8:3::/64"
        ),
        what="the third prefix taken (a prefix replaced before it was seen is never current)",
    )
    set_prefix(cluster, dp, "2001:db8:4::/64")
    wait_for(
        lambda: (
            blocks_of(cluster, name)
            == [*user, lb_block("2001:db8:4:0"), lb_block("2001:db8:3:0"), lb_block("2001:db8:2:0")]
        ),
        what="history trimmed to maxPrefixHistory",
    )
    status = wait_for(lambda: (cluster.get(f"{DP_PATH}/{dp}") or {}).get("status"), what="status")
    assert status["currentPrefix"] == "2001:db8:4::/64"
    assert [h["prefix"] for h in status["history"]] == ["2001:db8:3::/64", "2001:db8:2::/64"]


def test_reconciling_unchanged_state_makes_no_writes(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    tag = secrets.token_hex(3)
    dp, name = f"idle-{tag}", f"pool-{tag}"
    cluster.apply(dynamic_prefix(dp, "2001:db8:10::/64"))
    cluster.apply(pool(name, dp, []))
    wait_for(lambda: blocks_of(cluster, name) == [lb_block("2001:db8:10:0")], what="fill")
    wait_for(lambda: _condition(cluster, dp, "PoolsSynced") == "True", what="PoolsSynced True")

    def writes_about_us() -> list[dict[str, Any]]:
        return [
            w for w in cluster.operator_writes()
            if (w.get("objectRef") or {}).get("name") in (dp, name)
        ]  # fmt: skip

    before = len(writes_about_us())
    # Events that change nothing the operator renders: an unrelated annotation on both.
    cluster.patch(f"{POOLS}/{name}", {"metadata": {"annotations": {"note": "touched"}}})
    cluster.patch(f"{DP_PATH}/{dp}", {"metadata": {"annotations": {"note": "touched"}}})
    # A later real change proves the operator processed the no-op events before it.
    other = f"marker-{tag}"
    cluster.apply(dynamic_prefix(other, "2001:db8:11::/64"))
    wait_for(lambda: _condition(cluster, other, "Ready") == "True", what="marker ready")
    assert len(writes_about_us()) == before, writes_about_us()[before:]


def _condition(cluster: Cluster, dp: str, kind: str) -> str | None:
    obj = cluster.get(f"{DP_PATH}/{dp}") or {}
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == kind:
            return str(condition["status"])
    return None
