"""Propagation latency: a prefix change to the last of N annotated pools updated.

For N = 1, 100, 1000 Cilium pools referencing one DynamicPrefix (static source, so the
change is a spec patch), the time from the patch to the moment the last pool shows the
new block, seen through a watch on the pools. The floor: the same N updates issued
directly by a minimal concurrent PATCH loop (same concurrency as the operator, 64), no
operator involved. Also the operator's CPU time per change (steadier than latency on a
shared machine), and its resident memory and idle CPU with 1000 pools.

Run: .venv/bin/python benchmarks/bench_propagation.py [--sizes 1,100,1000] [--rounds 10]
Prints a Markdown table; results go to docs/benchmarks.md by hand, with machine and date.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import OperatorProcess

ROOT = Path(__file__).parents[1]
POOLS = "/apis/cilium.io/v2/ciliumloadbalancerippools"
CONCURRENCY = 64


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Api:
    def __init__(self, plane: ControlPlane, session: aiohttp.ClientSession) -> None:
        self.plane = plane
        self.session = session
        self.headers = {"Authorization": f"Bearer {plane.admin_token}"}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        merge: bool = False,
        missing: bool = False,
    ) -> Any:
        """One request; ``missing``: a 404 is an answer (None), not an error."""
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = (
                "application/merge-patch+json" if merge else "application/json"
            )
        async with self.session.request(
            method, self.plane.server + path, json=body, headers=headers, ssl=False
        ) as response:
            text = await response.text()
            if missing and response.status == 404:
                return None
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:300]}")
            return json.loads(text) if text else {}


def _updated(obj: dict[str, Any], marker: str) -> bool:
    blocks = obj.get("spec", {}).get("blocks") or []
    return any(str(block.get("start", "")).startswith(marker) for block in blocks)


async def wait_all_updated(api: Api, names: set[str], marker: str, since_version: str) -> float:
    """Watch the pools until every one of ``names`` holds a block starting with ``marker``.

    The API server closes a watch whose reader falls behind; then the pools are listed
    (what is done by then counts at the time of the list) and watching resumes.
    """
    pending = set(names)
    version = since_version
    while True:
        url = f"{api.plane.server}{POOLS}?watch=true&resourceVersion={version}"
        async with api.session.get(url, headers=api.headers, ssl=False) as response:
            async for line in response.content:
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    break
                version = obj["metadata"]["resourceVersion"]
                if obj["metadata"]["name"] in pending and _updated(obj, marker):
                    pending.discard(obj["metadata"]["name"])
                    if not pending:
                        return time.monotonic()
        listing = await api.call("GET", POOLS)
        listed_at = time.monotonic()
        for obj in listing["items"]:
            if obj["metadata"]["name"] in pending and _updated(obj, marker):
                pending.discard(obj["metadata"]["name"])
        if not pending:
            return listed_at
        version = listing["metadata"]["resourceVersion"]


async def measure_operator(
    api: Api, dp: str, names: set[str], rounds: int, *, offset: int, pid: int
) -> tuple[list[float], list[float]]:
    """Latency of each round, and the operator's CPU seconds for it (less noisy on a
    shared machine: what our code costs, whatever the API server's share of the cores)."""
    latencies, cpu = [], []
    for round_number in range(rounds):
        head = f"2001:db8:{offset + round_number + 1:x}:0"
        listing = await api.call("GET", POOLS + "?limit=1")
        version = listing["metadata"]["resourceVersion"]
        waiter = asyncio.create_task(wait_all_updated(api, names, f"{head}:f000", version))
        await asyncio.sleep(0.05)  # the watch is established
        cpu_before = process_stats(pid)[1]
        started = time.monotonic()
        await api.call(
            "PATCH",
            f"/apis/{api_path()}/{dp}",
            {"spec": {"acquisition": {"static": {"prefix": f"{head[:-2]}::/64"}}}},
            merge=True,
        )
        finished = await asyncio.wait_for(waiter, 120)
        latencies.append(finished - started)
        await asyncio.sleep(0.5)  # the batch's status update and event
        cpu.append(process_stats(pid)[1] - cpu_before)
    return latencies, cpu


def api_path() -> str:
    return f"{api.API_VERSION}/{api.PLURAL}"


async def measure_floor(api: Api, names: list[str], rounds: int) -> list[float]:
    """N merge patches of pool blocks, 64 at a time, straight to the API server."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    latencies = []
    for round_number in range(rounds):
        block = {
            "start": f"2001:db8:ffff:{round_number:x}::1",
            "stop": f"2001:db8:ffff:{round_number:x}::9",
        }

        async def one(name: str, block: dict[str, str] = block) -> None:
            async with semaphore:
                await api.call(
                    "PATCH", f"{POOLS}/{name}", {"spec": {"blocks": [block]}}, merge=True
                )

        started = time.monotonic()
        await asyncio.gather(*(one(name) for name in names))
        latencies.append(time.monotonic() - started)
    return latencies


def process_stats(pid: int) -> tuple[float, float]:
    """Resident memory in MiB and CPU seconds used so far."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return rss_kb / 1024, cpu


async def run_size(
    plane: ControlPlane, n: int, rounds: int, offset: int, pid: int
) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        api = Api(plane, session)
        dp = f"bench-{n}"
        await api.call("POST", f"/apis/{api_path()}", {
            "apiVersion": api.API_VERSION if False else "dynamic-prefix.io/v1alpha1",
            "kind": "DynamicPrefix", "metadata": {"name": dp},
            "spec": {"acquisition": {"static": {"prefix": f"2001:db8:{offset:x}::/64"}},
                     "addressRanges": [{"name": "lb", "start": "::f000:0:0:0",
                                        "end": "::ffff:ffff:ffff:ffff"}]}})  # fmt: skip
        names = [f"bench-{n}-{i}" for i in range(n)]
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def create(name: str) -> None:
            async with semaphore:
                await api.call("POST", POOLS, {
                    "apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool",
                    "metadata": {"name": name, "annotations": {api_name(): dp, api_range(): "lb"}},
                    "spec": {"blocks": [{"cidr": "192.0.2.0/24"}]}})  # fmt: skip

        await asyncio.gather(*(create(name) for name in names))
        # one unmeasured rotation: every pool is filled and indexed before measuring
        latencies, cpu = await measure_operator(
            api, dp, set(names), rounds + 1, offset=offset, pid=pid
        )
        latencies, cpu = latencies[1:], cpu[1:]
        floor_names = [f"floor-{n}-{i}" for i in range(n)]
        empty_pool = {"apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool",
                      "spec": {"blocks": []}}  # fmt: skip
        await asyncio.gather(
            *(api.call("POST", POOLS, {**empty_pool, "metadata": {"name": name}})
              for name in floor_names)
        )  # fmt: skip
        floor = await measure_floor(api, floor_names, rounds)
        return {"n": n, "operator": latencies, "floor": floor, "cpu": cpu}


def api_name() -> str:
    return api.ANNOTATION_NAME


def api_range() -> str:
    return api.ANNOTATION_ADDRESS_RANGE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with ControlPlane() as plane, tempfile.TemporaryDirectory() as scratch:
        plane.kubectl("apply", "-f", str(ROOT / "deploy/crd/dynamicprefixes.yaml"))
        plane.kubectl("apply", "-f", str(ROOT / "testbed/crds/cilium-v2.yaml"))
        plane.kubectl("wait", "--for=condition=Established", "crd", "--all")
        operator = OperatorProcess(
            plane, Path(os.environ.get("BENCH_OPERATOR_LOG", Path(scratch) / "operator.log"))
        ).start()
        try:
            results = []
            profiler = None
            if os.environ.get("BENCH_PYSPY") and operator.process is not None:
                # developer aid: sample the operator while it works (py-spy, not a dependency)
                profiler = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(operator.process.pid), "--format", "raw",
                     "-r", "200", "-o", os.environ["BENCH_PYSPY"]],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            assert operator.process is not None
            for index, n in enumerate(sizes):
                results.append(asyncio.run(run_size(
                    plane, n, args.rounds, 0x100 * (index + 1), operator.process.pid
                )))  # fmt: skip
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait()
            assert operator.process is not None
            pid = operator.process.pid
            time.sleep(2)
            rss, cpu_before = process_stats(pid)
            time.sleep(30)
            rss_after, cpu_after = process_stats(pid)
            total_pools = sum(sizes)
        finally:
            operator.stop()
    print(f"rounds per size: {args.rounds}; concurrency {CONCURRENCY}; static source\n")
    print("| pools | operator p50 | operator p95 | floor p50 | floor p95 | p50 ratio "
          "| operator CPU p50 |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        op, fl = result["operator"], result["floor"]
        ratio = statistics.median(op) / statistics.median(fl)
        print(
            f"| {result['n']} | {statistics.median(op) * 1000:.0f} ms | "
            f"{percentile(op, 0.95) * 1000:.0f} ms | {statistics.median(fl) * 1000:.0f} ms | "
            f"{percentile(fl, 0.95) * 1000:.0f} ms | {ratio:.2f} | "
            f"{statistics.median(result['cpu']) * 1000:.0f} ms |"
        )
    idle = 100 * (cpu_after - cpu_before) / 30
    print(
        f"\noperator with {total_pools} pools: resident memory {rss_after:.0f} MiB "
        f"(was {rss:.0f} MiB), idle CPU {idle:.2f}% of one core over 30 s"
    )


if __name__ == "__main__":
    main()
