"""Failover: the leader killed (SIGKILL) to the standby writing, and the operator's start-up.

Two operators share one Lease with the default timings (15 s lease, 10 s renew deadline,
2 s retry). Each run: the leader is killed, the prefix is changed at once, and the time
until the pool holds the new prefix is measured (the standby must first see the Lease
expire, take it, start the source and write). Also: start-up (process start to the first
pool written) and the resident memory of an idle operator.

Run: .venv/bin/python benchmarks/bench_failover.py [--runs 10]
"""

from __future__ import annotations

import argparse
import random
import secrets
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for

ROOT = Path(__file__).parents[1]
DP_PATH = f"/apis/{api.API_VERSION}/{api.PLURAL}"
POOL = "/apis/cilium.io/v2/ciliumloadbalancerippools/failover-pool"


def start(plane: ControlPlane, scratch: Path, lease: str, identity: str) -> OperatorProcess:
    process = OperatorProcess(plane, scratch / f"{identity}.log")
    process.lease_name = lease
    process.extra_args = ("--identity", identity, "--lease-namespace", "default")
    return process.start()


def holds(cluster: Cluster, head: str) -> bool:
    blocks = ((cluster.get(POOL) or {}).get("spec") or {}).get("blocks") or []
    return any(str(block.get("start", "")).startswith(head) for block in blocks)


def until_held(cluster: Cluster, head: str, what: str) -> None:
    def check() -> bool:
        return holds(cluster, head)

    wait_for(check, timeout=60, what=what)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    failovers: list[float] = []
    startups: list[float] = []
    memory: list[float] = []
    with ControlPlane() as plane, tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        cluster = Cluster(plane)
        plane.kubectl("apply", "-f", str(ROOT / "deploy/crd/dynamicprefixes.yaml"))
        plane.kubectl("apply", "-f", str(ROOT / "testbed/crds/cilium-v2.yaml"))
        plane.kubectl("wait", "--for=condition=Established", "crd", "--all")
        dp: dict[str, Any] = {
            "apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "failover"},
            "spec": {"acquisition": {"static": {"prefix": "2001:db8:f0::/64"}},
                     "addressRanges": [{"name": "lb", "start": "::f000:0:0:0",
                                        "end": "::ffff:ffff:ffff:ffff"}],
                     "transition": {"maxPrefixHistory": 1}},
        }  # fmt: skip
        cluster.apply(dp)
        cluster.apply({
            "apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool",
            "metadata": {"name": "failover-pool", "annotations": {
                api.ANNOTATION_NAME: "failover", api.ANNOTATION_ADDRESS_RANGE: "lb"}},
            "spec": {"blocks": []},
        })  # fmt: skip
        lease = f"failover-{secrets.token_hex(3)}"
        leader = None
        for run in range(args.runs):
            began = time.monotonic()
            leader = leader or start(plane, scratch, lease, f"a{run}")
            head = f"2001:db8:f{run + 1:x}:0"
            cluster.patch(
                f"{DP_PATH}/failover",
                {"spec": {"acquisition": {"static": {"prefix": head[:-2] + "::/64"}}}},
            )
            until_held(cluster, head, "leader writes")
            if run == 0:
                startups.append(time.monotonic() - began)
            standby = start(plane, scratch, lease, f"b{run}")
            # the standby is up and watching; then a random moment of the 2 s renewal cycle
            time.sleep(3 + random.uniform(0, 2))
            assert leader.process is not None
            memory.append(rss_mib(leader.process.pid))
            leader.stop(signal.SIGKILL)
            killed = time.monotonic()
            head = f"2001:db8:e{run + 1:x}:0"
            cluster.patch(
                f"{DP_PATH}/failover",
                {"spec": {"acquisition": {"static": {"prefix": head[:-2] + "::/64"}}}},
            )
            until_held(cluster, head, "standby writes")
            failovers.append(time.monotonic() - killed)
            print(f"run {run + 1}: leader killed -> standby writing in {failovers[-1]:.1f} s",
                  flush=True)  # fmt: skip
            leader = standby
        if leader is not None:
            leader.stop()
    print(
        f"\nfailover (SIGKILL -> standby writing), {len(failovers)} runs, lease 15 s: "
        f"p50 {statistics.median(failovers):.1f} s, max {max(failovers):.1f} s"
    )
    print(f"start-up (process start -> first pool written): {startups[0]:.1f} s")
    print(f"resident memory of a leader with one DynamicPrefix and one pool: "
          f"{statistics.median(memory):.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
