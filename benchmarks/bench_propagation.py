"""Propagation latency: a prefix change to the last of N annotated pools updated.

For N = 1, 100, 1000 Cilium pools referencing one DynamicPrefix (static source, so the
change is a spec patch), the time from the patch to the moment the last pool shows the
new block, seen through a watch on the pools. The floor: the same N updates issued
directly by a minimal concurrent PATCH loop (same concurrency as the operator, 64), no
operator involved, writing what the operator writes (the user's block, three ranges, the
ownership record and last-sync) to pools shaped as the operator's are (a reference to a
DynamicPrefix and a range; created by one field manager, written by another): the API
server's CPU per write follows the object's size and its managers. Printed beside it:
the floor of the tables before 2026-12-06 (the same writes to plain pools, under their
creator's manager), the floor of the older tables (one block, no annotations), and the
floor timed as the operator is, until a watch has seen the last pool (the watch costs
the floor about a fifth at 1,000 pools on two shared cores). The rounds of the operator
and of the floors are interleaved.
Also the operator's CPU time per change (steadier than latency on a shared machine), the
API server's and etcd's, and the operator's resident memory and idle CPU.

Run: .venv/bin/python benchmarks/bench_propagation.py [--sizes 1,100,1000] [--rounds 10]
Prints a Markdown table; results go to docs/benchmarks.md by hand, with machine and date.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
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
) -> tuple[list[float], list[float], list[float]]:
    """Latency of each round, the operator's CPU seconds for it (less noisy on a shared
    machine: what our code costs, whatever the API server's share of the cores), and the
    API server's and etcd's."""
    latencies, cpu, control = [], [], []
    for round_number in range(rounds):
        head = f"2001:db8:{offset + round_number + 1:x}:0"
        listing = await api.call("GET", POOLS + "?limit=1")
        version = listing["metadata"]["resourceVersion"]
        waiter = asyncio.create_task(wait_all_updated(api, names, f"{head}:f000", version))
        await asyncio.sleep(0.05)  # the watch is established
        cpu_before = process_stats(pid)[1]
        plane_before = plane_cpu(api.plane)
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
        control.append(plane_cpu(api.plane) - plane_before)
    return latencies, cpu, control


def api_path() -> str:
    return f"{api.API_VERSION}/{api.PLURAL}"


def operator_like_patch(round_number: int) -> dict[str, Any]:
    """What the operator writes to a pool on a prefix change: the user's block, the
    current prefix's range and the history's two (the default maxPrefixHistory), and the
    ownership record and last-sync annotations."""
    heads = [f"2001:db8:ffff:{r:x}" for r in range(round_number + 2, round_number - 1, -1)]
    ranges = [{"start": f"{head}:f000::", "stop": f"{head}:ffff:ffff:ffff:ffff"}
              for head in heads]  # fmt: skip
    # the same bytes under other annotation names: a pool carrying the operator's record
    # without a reference to a DynamicPrefix is released by the operator, which would
    # then write each floor pool too
    return {
        "metadata": {"annotations": {f"{FLOOR_DOMAIN}/managed-blocks": json.dumps(ranges),
                                     f"{FLOOR_DOMAIN}/last-sync": "2026-12-05T00:00:00Z"}},
        "spec": {"blocks": [{"cidr": "192.0.2.0/24"}, *ranges]},
    }  # fmt: skip


FLOOR_DOMAIN = "floor.example.net"
"""The floor's annotations: as long as ``dynamic-prefix.io``, so that the floor's pools
and writes have the operator's bytes, and not the operator's (it would take them)."""

FLOOR_MANAGER = "floor"
"""The floor loop's field manager. The operator writes pools that someone else created
(here the benchmark, in a cluster kubectl or Helm) under its own manager, so each of its
pools has two entries in managedFields, which the API server merges on every write. At
1,000 pools, writing under the creator's manager cost the API server 14% less CPU per
write, and 22% less without the reference annotations too (docs/benchmarks.md)."""


def user_pool(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Cilium pool as its user writes it: one IPv4 block, and ``annotations`` if any."""
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool",
            "metadata": metadata, "spec": {"blocks": [{"cidr": "192.0.2.0/24"}]}}  # fmt: skip


def floor_pool(name: str, dp: str, *, shaped: bool = True) -> dict[str, Any]:
    """A pool for the floor to write. ``shaped``: as the operator's pools are, with a
    reference to a DynamicPrefix and an address range (under `FLOOR_DOMAIN`); else a
    plain pool, as the floor of the tables before 2026-12-06 wrote."""
    reference = {f"{FLOOR_DOMAIN}/name": dp, f"{FLOOR_DOMAIN}/address-range": "lb"}
    return user_pool(name, reference if shaped else None)


def ratio_cell(operator_p50: float, floor: list[float]) -> str:
    """A floor's p50 and the operator's p50 as a multiple of it, for a table cell."""
    p50 = statistics.median(floor)
    return f"{p50 * 1000:.0f} ms ({operator_p50 / p50:.2f})"


def one_block_patch(round_number: int) -> dict[str, Any]:
    """The floor of the issue 5 to 15 tables: one block, no annotations (a quarter of the
    bytes the operator writes to each pool)."""
    block = {"start": f"2001:db8:ffff:{round_number:x}::1",
             "stop": f"2001:db8:ffff:{round_number:x}::9"}  # fmt: skip
    return {"spec": {"blocks": [block]}}


async def measure_floor(
    api: Api,
    names: list[str],
    round_number: int,
    body: Callable[[int], dict[str, Any]],
    *,
    watched: bool = False,
    manager: str | None = FLOOR_MANAGER,
) -> tuple[float, float]:
    """One round of N merge patches of ``body(round_number)``, 64 at a time, straight to
    the API server under the field manager ``manager`` (None: the creator's); its latency
    and the API server's and etcd's CPU seconds for it.

    ``watched``: timed as the operator is, until the same kind of watch has seen the last
    pool. The watch is part of every operator round (it is how the benchmark sees the
    pools change) and costs the API server and the shared cores its own share; the bare
    floor does not pay it."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    patch = body(round_number)
    query = f"?fieldManager={manager}" if manager else ""
    waiter = None
    if watched:
        marker = patch["spec"]["blocks"][1]["start"].removesuffix("::")
        listing = await api.call("GET", POOLS + "?limit=1")
        version = listing["metadata"]["resourceVersion"]
        waiter = asyncio.create_task(wait_all_updated(api, set(names), marker, version))
        await asyncio.sleep(0.05)  # the watch is established

    async def one(name: str) -> None:
        async with semaphore:
            await api.call("PATCH", f"{POOLS}/{name}{query}", patch, merge=True)

    plane_before = plane_cpu(api.plane)
    started = time.monotonic()
    await asyncio.gather(*(one(name) for name in names))
    finished = time.monotonic() if waiter is None else await asyncio.wait_for(waiter, 120)
    await asyncio.sleep(0.5)  # the operator's watch sees the floor's writes too
    return finished - started, plane_cpu(api.plane) - plane_before


FLOORS: dict[str, tuple[Callable[[int], dict[str, Any]], str | None]] = {
    "floor": (operator_like_patch, FLOOR_MANAGER),
    "watched": (operator_like_patch, FLOOR_MANAGER),  # the floor's pools, seen by a watch
    "plain": (operator_like_patch, None),
    "small": (one_block_patch, None),
}
"""Each floor's body and field manager; "watched" writes the "floor" pools."""

KINDS = ("operator", *FLOORS)


def in_turn(kinds: Sequence[str], round_number: int) -> list[str]:
    """The order of the kinds' rounds in round ``round_number``: a balanced (Williams)
    design. Over ``len(kinds)`` rounds, twice that for an odd number of kinds, each kind
    comes first as often as any other and right after each other kind equally often:
    a round inherits some of the one before it (the API server's garbage collection, the
    operator's events), and no kind may always inherit the same one's."""
    count = len(kinds)
    # 0, 1, n-1, 2, n-2, ...: each difference between neighbours occurs once
    first = [0, *((step + 1) // 2 if step % 2 else count - step // 2 for step in range(1, count))]
    orders = [[(index + shift) % count for index in first] for shift in range(count)]
    if count % 2:
        orders += [order[::-1] for order in orders]
    return [kinds[index] for index in orders[round_number % len(orders)]]


WATCHED_ROUNDS_FROM = 1000
"""Round numbers of the watched floor: its blocks differ from the bare floor's (a watch
that started after them could not tell a round's writes from the last one's)."""


def plane_cpu(plane: ControlPlane) -> float:
    """CPU seconds the API server and etcd have used so far."""
    return sum(process_stats(pid)[1] for pid in plane.pids.values())


def process_stats(pid: int) -> tuple[float, float]:
    """Resident memory in MiB and CPU seconds used so far."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024, cpu_seconds(pid)


def cpu_seconds(pid: int) -> float:
    """CPU seconds the process's threads have run, to the nanosecond.

    /proc/PID/stat's utime and stime are counted in timer ticks (10 ms here): an idle
    operator that wakes for about a millisecond every two seconds is charged a whole
    tick or nothing, so 30 s of idling read as a handful of ticks, and 10 ms is the
    resolution of a one-pool change. schedstat is the scheduler's own run-time account
    in nanoseconds. Threads that have exited are not counted; the processes measured
    here keep theirs for their whole life."""
    nanoseconds = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just exited
            nanoseconds += int(task.joinpath("schedstat").read_text().split()[0])
    return nanoseconds / 1e9


async def run_size(
    plane: ControlPlane, n: int, rounds: int, offset: int, pid: int
) -> dict[str, Any]:
    """The operator's rounds and the floors', interleaved (round r of each runs before
    round r + 1 of any, in turns, `in_turn`), so that the machine's drift (other tenants
    of its cores, the API server's and etcd's housekeeping) weighs on all of them alike."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        api = Api(plane, session)
        dp = f"bench-{n}"
        await api.call("POST", f"/apis/{api_path()}", {
            "apiVersion": "dynamic-prefix.io/v1alpha1",
            "kind": "DynamicPrefix", "metadata": {"name": dp},
            "spec": {"acquisition": {"static": {"prefix": f"2001:db8:{offset:x}::/64"}},
                     "addressRanges": [{"name": "lb", "start": "::f000:0:0:0",
                                        "end": "::ffff:ffff:ffff:ffff"}]}})  # fmt: skip
        names = [f"bench-{n}-{i}" for i in range(n)]
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def create(body: dict[str, Any]) -> None:
            async with semaphore:
                await api.call("POST", POOLS, body)

        reference = {api_name(): dp, api_range(): "lb"}
        await asyncio.gather(*(create(user_pool(name, reference)) for name in names))
        floors = {
            kind: [f"{kind}-{n}-{i}" for i in range(n)] for kind in ("floor", "plain", "small")
        }
        await asyncio.gather(*(
            create(floor_pool(name, dp, shaped=kind == "floor"))
            for kind, kind_names in floors.items() for name in kind_names))  # fmt: skip

        async def floor_round(kind: str, round_number: int) -> tuple[float, float]:
            body, manager = FLOORS[kind]
            pools = floors["floor" if kind == "watched" else kind]
            return await measure_floor(api, pools, round_number, body,
                                       manager=manager, watched=kind == "watched")  # fmt: skip

        # one unmeasured round of each: every pool is filled and indexed before measuring
        await measure_operator(api, dp, set(names), 1, offset=offset, pid=pid)
        for kind in ("floor", "plain", "small"):
            await floor_round(kind, 0)
        result: dict[str, Any] = {"n": n, "cpu": [], "control": [], "floor_control": []}
        profiler = start_profiler(pid, n)
        for round_number in range(1, rounds + 1):
            for kind in in_turn(KINDS, round_number):
                if kind == "operator":
                    latency, cpu, control = await measure_operator(
                        api, dp, set(names), 1, offset=offset + round_number, pid=pid
                    )
                    result.setdefault("operator", []).extend(latency)
                    result["cpu"] += cpu
                    result["control"] += control
                    continue
                floor, floor_control = await floor_round(
                    kind, round_number + (WATCHED_ROUNDS_FROM if kind == "watched" else 0)
                )
                result.setdefault(kind, []).append(floor)
                if kind == "floor":
                    result["floor_control"].append(floor_control)
        stop_profiler(profiler)
        return result


def start_profiler(pid: int, n: int) -> subprocess.Popen[bytes] | None:
    """With BENCH_PYSPY=PREFIX, sample the operator during the measured changes of each
    size into PREFIX-N.txt (py-spy's raw format; a developer aid, py-spy is not a
    dependency)."""
    prefix = os.environ.get("BENCH_PYSPY")
    if not prefix:
        return None
    rate = os.environ.get("BENCH_PYSPY_RATE", "250")  # samples per second
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--format", "raw", "-r", rate,
         "-o", f"{prefix}-{n}.txt"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait()


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
            assert operator.process is not None
            for index, n in enumerate(sizes):
                results.append(asyncio.run(run_size(
                    plane, n, args.rounds, 0x100 * (index + 1), operator.process.pid
                )))  # fmt: skip
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
          "| operator CPU p50 | per pool | API server + etcd CPU, operator / floor "
          "| floor seen by a watch p50 (ratio) | plain-pool floor p50 (ratio) "
          "| one-block floor p50 (ratio) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        op = statistics.median(result["operator"])
        print(
            f"| {result['n']} | {op * 1000:.0f} ms | "
            f"{percentile(result['operator'], 0.95) * 1000:.0f} ms | "
            f"{statistics.median(result['floor']) * 1000:.0f} ms | "
            f"{percentile(result['floor'], 0.95) * 1000:.0f} ms | "
            f"{op / statistics.median(result['floor']):.2f} | "
            f"{statistics.median(result['cpu']) * 1000:.0f} ms | "
            f"{statistics.median(result['cpu']) / result['n'] * 1000:.2f} ms | "
            f"{statistics.median(result['control']) * 1000:.0f} / "
            f"{statistics.median(result['floor_control']) * 1000:.0f} ms | "
            f"{ratio_cell(op, result['watched'])} | {ratio_cell(op, result['plain'])} | "
            f"{ratio_cell(op, result['small'])} |"
        )
    idle = 100 * (cpu_after - cpu_before) / 30
    print(
        f"\noperator with {total_pools} pools: resident memory {rss_after:.0f} MiB "
        f"(was {rss:.0f} MiB), idle CPU {idle:.2f}% of one core over 30 s"
    )


if __name__ == "__main__":
    main()
