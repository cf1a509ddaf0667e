"""Two operators, one Lease: one writes, the other takes over when the leader dies or stalls.

Short lease timings (6 s lease, 4 s renew deadline, 1 s retry) keep the test quick; the
writes of each replica are told apart in the API server's audit log by their User-Agent,
which names the replica.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for

DP_PATH = f"/apis/{api.API_VERSION}/{api.PLURAL}"
POOLS = "/apis/cilium.io/v2/ciliumloadbalancerippools"
TIMINGS = ("--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1")


def replica(plane: ControlPlane, tmp_path: Path, lease: str, identity: str) -> OperatorProcess:
    process = OperatorProcess(plane, tmp_path / f"{identity}.log")
    process.lease_name = lease
    process.extra_args = ("--identity", identity, "--lease-namespace", "default", *TIMINGS)
    return process.start()


def holder(cluster: Cluster, lease: str) -> str | None:
    obj = cluster.get(f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{lease}") or {}
    value = (obj.get("spec") or {}).get("holderIdentity")
    return None if value is None else str(value)


def writes_by(cluster: Cluster, identity: str) -> list[dict[str, Any]]:
    """Writes a replica made, its Lease renewals left out."""
    return [
        w for w in cluster.plane.audit_writes(user_agent_prefix=f"dynamic-prefix/{identity}")
        if (w.get("objectRef") or {}).get("resource") != "leases"
    ]  # fmt: skip


def blocks(cluster: Cluster, name: str) -> list[Any]:
    return list(((cluster.get(f"{POOLS}/{name}") or {}).get("spec") or {}).get("blocks") or [])


def lb(head: str) -> dict[str, str]:
    return {"start": f"{head}:f000::", "stop": f"{head}:ffff:ffff:ffff:ffff"}


def setup(cluster: Cluster, tag: str) -> tuple[str, str]:
    dp, pool = f"le-{tag}", f"le-pool-{tag}"
    cluster.apply(
        {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": dp},
            "spec": {
                "acquisition": {"static": {"prefix": "2001:db8:1e::/64"}},
                "addressRanges": [
                    {"name": "lb", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}
                ],
                "transition": {"maxPrefixHistory": 1},
            },
        }
    )
    cluster.apply(
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumLoadBalancerIPPool",
            "metadata": {
                "name": pool,
                "annotations": {api.ANNOTATION_NAME: dp, api.ANNOTATION_ADDRESS_RANGE: "lb"},
            },
            "spec": {"blocks": []},
        }
    )
    return dp, pool


def rotate(cluster: Cluster, dp: str, prefix: str) -> None:
    cluster.patch(f"{DP_PATH}/{dp}", {"spec": {"acquisition": {"static": {"prefix": prefix}}}})


def test_only_the_leader_writes_and_a_standby_takes_over_when_it_is_killed(
    cluster: Cluster, control_plane: ControlPlane, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    lease = f"le-{tag}"
    first = replica(control_plane, tmp_path, lease, f"first-{tag}")
    try:
        wait_for(lambda: holder(cluster, lease) == f"first-{tag}", what="first replica leads")
        second = replica(control_plane, tmp_path, lease, f"second-{tag}")
        try:
            dp, pool = setup(cluster, tag)
            wait_for(lambda: blocks(cluster, pool) == [lb("2001:db8:1e:0")], what="filled")
            assert writes_by(cluster, f"first-{tag}")
            assert writes_by(cluster, f"second-{tag}") == []
            assert holder(cluster, lease) == f"first-{tag}"

            killed_at = time.monotonic()
            first.stop(signal.SIGKILL)  # no chance to give the Lease up
            wait_for(lambda: holder(cluster, lease) == f"second-{tag}", timeout=20, what="takeover")
            print(f"takeover after SIGKILL: {time.monotonic() - killed_at:.1f} s")
            rotate(cluster, dp, "2001:db8:1f::/64")
            wait_for(
                lambda: blocks(cluster, pool) == [lb("2001:db8:1f:0"), lb("2001:db8:1e:0")],
                timeout=20,
                what="the new leader follows the change",
            )
            assert writes_by(cluster, f"second-{tag}")
        finally:
            second.stop()
            print("---- second ----\n" + second.log()[-5000:])
    finally:
        first.stop()
        print("---- first ----\n" + first.log()[-5000:])


def test_a_stalled_leader_writes_nothing_after_a_standby_took_over(
    cluster: Cluster, control_plane: ControlPlane, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    lease = f"le-{tag}"
    first = replica(control_plane, tmp_path, lease, f"first-{tag}")
    try:
        wait_for(lambda: holder(cluster, lease) == f"first-{tag}", what="first replica leads")
        second = replica(control_plane, tmp_path, lease, f"second-{tag}")
        try:
            dp, pool = setup(cluster, tag)
            wait_for(lambda: blocks(cluster, pool) == [lb("2001:db8:1e:0")], what="filled")
            assert first.process is not None
            first.process.send_signal(signal.SIGSTOP)  # cut off from the API server, mid-lead
            try:
                wait_for(
                    lambda: holder(cluster, lease) == f"second-{tag}",
                    timeout=20,
                    what="the standby takes the Lease of the stalled leader",
                )
                rotate(cluster, dp, "2001:db8:20::/64")
                wait_for(
                    lambda: blocks(cluster, pool) == [lb("2001:db8:20:0"), lb("2001:db8:1e:0")],
                    timeout=20,
                    what="the new leader follows the change",
                )
                before = len(writes_by(cluster, f"first-{tag}"))
            finally:
                first.process.send_signal(signal.SIGCONT)
            # The old leader wakes up with events and timers queued; it must see that
            # its Lease is lost before it writes anything.
            rotate(cluster, dp, "2001:db8:21::/64")
            wait_for(
                lambda: blocks(cluster, pool) == [lb("2001:db8:21:0"), lb("2001:db8:20:0")],
                timeout=20,
                what="the change after the old leader woke up",
            )
            time.sleep(3)  # give the woken replica every chance to misbehave
            late = writes_by(cluster, f"first-{tag}")[before:]
            assert late == [], json.dumps(late, indent=1)[:2000]
            assert holder(cluster, lease) == f"second-{tag}"
        finally:
            second.stop()
            print("---- second ----\n" + second.log()[-5000:])
    finally:
        first.stop()
        print("---- first ----\n" + first.log()[-5000:])
