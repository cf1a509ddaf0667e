"""Recovery after an API server outage: the first prefix change after kube-apiserver
returns, to the pool holding it.

One DynamicPrefix (static source) and one Cilium pool; kube-apiserver is stopped (etcd
kept) for each outage length, started again on the same port, and as soon as its /readyz
answers the prefix is changed. Printed: the time from the server being ready to the pool
holding the new prefix (the operator's watches had to notice the server back first), and
for reference the same change with no outage before it.

Run: .venv/bin/python benchmarks/bench_recovery.py [--outages 30,90] [--rounds 2]
Prints a Markdown table; results go to docs/benchmarks.md by hand, with machine and date.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import OperatorProcess

ROOT = Path(__file__).parents[1]
DP = "recovery"
POOL = "/apis/cilium.io/v2/ciliumloadbalancerippools/recovery-pool"
DP_PATH = f"/apis/{api.API_VERSION}/{api.PLURAL}/{DP}"


def holds(plane: ControlPlane, head: str) -> bool:
    response = plane.request("GET", POOL)
    if response.status != 200:
        return False
    blocks = (response.json().get("spec") or {}).get("blocks") or []
    return any(str(b.get("start", "")).startswith(head) for b in blocks)


def change_and_wait(plane: ControlPlane, round_number: int) -> float:
    """Patch the prefix now; seconds until the pool holds it (polled every 10 ms)."""
    head = f"2001:db8:{round_number + 1:x}:0:f000"
    body = {"spec": {"acquisition": {"static": {"prefix": f"2001:db8:{round_number + 1:x}::/64"}}}}
    started = time.monotonic()
    response = plane.request("PATCH", DP_PATH, body=body)
    assert response.status == 200, response.body
    while not holds(plane, head):
        if time.monotonic() - started > 300:
            raise RuntimeError("the pool never followed")
        time.sleep(0.01)
    return time.monotonic() - started


def setup(plane: ControlPlane) -> None:
    plane.kubectl("apply", "-f", str(ROOT / "deploy/crd/dynamicprefixes.yaml"))
    plane.kubectl("apply", "-f", str(ROOT / "testbed/crds/cilium-v2.yaml"))
    plane.kubectl("wait", "--for=condition=Established", "crd", "--all")
    dynamic_prefix: dict[str, Any] = {
        "apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": DP},
        "spec": {"acquisition": {"static": {"prefix": "2001:db8::/64"}},
                 "addressRanges": [{"name": "lb", "start": "::f000:0:0:0",
                                    "end": "::ffff:ffff:ffff:ffff"}]},
    }  # fmt: skip
    pool = {
        "apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": "recovery-pool", "annotations": {
            api.ANNOTATION_NAME: DP, api.ANNOTATION_ADDRESS_RANGE: "lb"}},
        "spec": {"blocks": []},
    }  # fmt: skip
    for obj in (dynamic_prefix, pool):
        plane.kubectl("apply", "-f", "-", input=json.dumps(obj))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", default="30,90")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    outages = [float(s) for s in args.outages.split(",")]
    rows = []
    with ControlPlane() as plane, tempfile.TemporaryDirectory() as scratch:
        setup(plane)
        operator = OperatorProcess(plane, Path(scratch) / "operator.log").start()
        try:
            round_number = 0
            baseline = []
            for _ in range(args.rounds):
                time.sleep(1)
                baseline.append(change_and_wait(plane, round_number))
                round_number += 1
            rows.append(("none", baseline))
            for outage in outages:
                results = []
                for _ in range(args.rounds):
                    plane.stop_apiserver()
                    time.sleep(outage)
                    plane.start_apiserver()  # returns once /readyz answers 200
                    results.append(change_and_wait(plane, round_number))
                    round_number += 1
                rows.append((f"{outage:.0f} s", results))
        finally:
            operator.stop()
    print("| outage | rounds | change after the server is back -> pool, median | max |")
    print("|---|---:|---:|---:|")
    for label, results in rows:
        print(f"| {label} | {len(results)} | {statistics.median(results) * 1000:.0f} ms | "
              f"{max(results) * 1000:.0f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
