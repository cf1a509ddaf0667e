"""What a scrape of /metrics costs now that it is authenticated and authorized.

Starts the control plane and one operator (one DynamicPrefix), then scrapes
/metrics over HTTPS: with a new token each time (a TokenReview and a SubjectAccessReview
per scrape), with one token again and again (the verdict remembered), and refused
without a token. Prints p50/p95 of each.

Run: .venv/bin/python benchmarks/bench_metrics_scrape.py [--scrapes 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import Cluster, OperatorProcess, wait_for


def timed(operator: OperatorProcess, token: str, expected: int) -> float:
    started = time.perf_counter()
    status, _ = operator.http_get("/metrics", token=token)
    elapsed = time.perf_counter() - started
    assert status == expected, status
    return elapsed * 1000


def report(what: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p95 = samples[int(0.95 * (len(samples) - 1))]
    print(f"{what:<40} n={len(samples):<4} p50 {statistics.median(samples):6.2f} ms"
          f"   p95 {p95:6.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    with ControlPlane() as plane, tempfile.TemporaryDirectory() as scratch:
        cluster = Cluster(plane)
        root = Path(__file__).parents[1]
        plane.kubectl("apply", "-f", str(root / "deploy/crd/dynamicprefixes.yaml"))
        plane.kubectl("apply", "-f", str(root / "testbed/crds/cilium-v2.yaml"))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
        cluster.apply(
            {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "metadata": {"name": "bench"},
                "spec": {
                    "acquisition": {"static": {"prefix": "2001:db8:be::/64"}},
                    "addressRanges": [
                        {"name": "lb", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}
                    ],
                },
            }
        )
        operator = OperatorProcess(plane, Path(scratch) / "operator.log").start()
        try:
            wait_for(lambda: _up(operator), what="the operator listening")
            tokens = [plane.create_service_account_token("default", f"s{i}")
                      for i in range(args.scrapes)]  # fmt: skip
            fresh = [timed(operator, token, 403) for token in tokens]
            again = [timed(operator, plane.admin_token, 200) for _ in range(args.scrapes)]
            refused = [timed(operator, "", 401) for _ in range(args.scrapes)]
        finally:
            operator.stop()
    report("new token each scrape (two reviews)", fresh)
    report("same token (verdict remembered)", again)
    report("no token (refused at once)", refused)


def _up(operator: OperatorProcess) -> bool:
    try:
        return operator.http_get("/healthz")[0] == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
