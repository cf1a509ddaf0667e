"""Service propagation: a prefix change to the last of N LoadBalancer Services annotated.

For N = 1, 100, 1000 LoadBalancer Services opted in to one DynamicPrefix (static source,
``transition.mode: ha``, Cilium LB-IPAM), the time from the spec patch to the moment the
last Service's ``lbipam.cilium.io/ips`` starts with its address in the new prefix, seen
through a watch on the Services. The floor: the same N Service annotation updates issued
directly by a minimal concurrent PATCH loop (same concurrency as the operator, 64), no
operator involved, writing as many bytes as the operator does to Services shaped as the
operator's are (the same annotations, created by one field manager and written by
another); beside it the floor of the tables before 2026-12-06 (Services without
annotations, written under their creator's manager) and the floor seen by a watch. The
rounds of the operator and of the floors are interleaved. Also the operator's CPU
time per change (steadier than latency on a shared machine), its resident memory while
it holds the N Services, and then with 1000 pools and 1000 Services at once.

Run: .venv/bin/python benchmarks/bench_service_propagation.py [--sizes 1,100,1000] [--rounds 8]
Prints a Markdown table; results go to docs/benchmarks.md by hand, with machine and date.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from ipaddress import IPv6Address, IPv6Network, ip_address
from pathlib import Path
from typing import Any

import aiohttp
from bench_propagation import (
    FLOOR_DOMAIN,
    FLOOR_MANAGER,
    Api,
    api_path,
    in_turn,
    percentile,
    process_stats,
    ratio_cell,
    start_profiler,
    stop_profiler,
    user_pool,
)

from dynamic_prefix.model import api
from testbed.controlplane import ControlPlane
from testbed.harness import OperatorProcess

ROOT = Path(__file__).parents[1]
SERVICES = "/api/v1/namespaces/default/services"
POOLS = "/apis/cilium.io/v2/ciliumloadbalancerippools"
CONCURRENCY = 64
IPS = "lbipam.cilium.io/ips"
DNS_TARGET = "external-dns.alpha.kubernetes.io/target"
LABEL = "dynamic-prefix-bench"
STALL = 10.0
SUFFIX_BASE = 0xFFFF << 48  # ::ffff:0:0:0, inside the "lb" range


def service_name(index: int) -> str:
    return f"bench-svc-{index}"


def expected_addresses(prefix: str, count: int) -> dict[str, IPv6Address]:
    """Each Service's address in ``prefix``: the prefix's network | the Service's suffix."""
    network = int(IPv6Network(prefix).network_address)
    return {service_name(i): IPv6Address(network | SUFFIX_BASE | (i + 1)) for i in range(count)}


def _updated(obj: dict[str, Any], expected: dict[str, IPv6Address]) -> bool:
    """Whether the Service's IPAM annotation starts with its address in the new prefix."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    first = str(annotations.get(IPS, "")).split(",", 1)[0].strip()
    try:
        return ip_address(first) == expected[obj["metadata"]["name"]]
    except ValueError:
        return False


async def wait_all_updated(
    kube: Api, expected: dict[str, IPv6Address], ready: asyncio.Event, role: str = "operator"
) -> float:
    """Watch the bench Services until every one carries its address in the new prefix.

    The first watch starts from the current state (no resourceVersion: one ADDED event per
    Service, then the changes), so ``ready`` is set once it is surely established. The
    API server closes a watch whose reader falls behind, and a watch that stays silent
    for `STALL` seconds while Services are pending is given up (a stderr note says so);
    then the Services are listed (what is done by then counts at the time of the list)
    and watching resumes from the list.
    """
    pending = set(expected)
    added = 0
    version = ""
    selector = f"labelSelector={LABEL}%3D{role}"
    while True:
        since = f"&resourceVersion={version}" if version else ""
        url = f"{kube.plane.server}{SERVICES}?watch=true&{selector}{since}"
        async with kube.session.get(url, headers=kube.headers, ssl=False) as response:
            while True:
                try:
                    line = await asyncio.wait_for(response.content.readline(), STALL)
                except TimeoutError:
                    print(f"watch silent for {STALL} s, {len(pending)} pending: relisting",
                          file=sys.stderr)  # fmt: skip
                    break
                if not line:
                    break
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    break
                if event["type"] == "ADDED" and not ready.is_set():
                    added += 1
                    if added == len(expected):
                        ready.set()
                version = obj["metadata"]["resourceVersion"]
                name = obj["metadata"]["name"]
                if name in pending and _updated(obj, expected):
                    pending.discard(name)
                    if not pending:
                        return time.monotonic()
        listing = await kube.call("GET", f"{SERVICES}?{selector}")
        listed_at = time.monotonic()
        ready.set()
        for obj in listing["items"]:
            name = obj["metadata"]["name"]
            if name in pending and _updated(obj, expected):
                pending.discard(name)
        if not pending:
            return listed_at
        version = listing["metadata"]["resourceVersion"]


async def report_stragglers(kube: Api, expected: dict[str, IPv6Address]) -> None:
    """Which Services do not show their new address yet, and what they show instead."""
    listing = await kube.call("GET", f"{SERVICES}?labelSelector={LABEL}%3Doperator")
    late = [obj for obj in listing["items"] if not _updated(obj, expected)]
    print(f"{len(late)} of {len(expected)} Services without their new address, e.g.:")
    for obj in late[:5]:
        annotations = obj["metadata"].get("annotations") or {}
        print(f"  {obj['metadata']['name']}: {IPS}={annotations.get(IPS)!r}")


async def measure_operator(
    kube: Api, dp: str, n: int, rounds: int, *, offset: int, pid: int
) -> tuple[list[float], list[float]]:
    """Latency of each round, and the operator's CPU seconds for it (less noisy on a
    shared machine: what our code costs, whatever the API server's share of the cores)."""
    latencies, cpu = [], []
    for round_number in range(rounds):
        prefix = f"2001:db8:{offset + round_number + 1:x}::/64"
        expected = expected_addresses(prefix, n)
        ready = asyncio.Event()
        waiter = asyncio.create_task(wait_all_updated(kube, expected, ready))
        await asyncio.wait_for(ready.wait(), 60)  # the watch is established
        cpu_before = process_stats(pid)[1]
        started = time.monotonic()
        await kube.call(
            "PATCH",
            f"/apis/{api_path()}/{dp}",
            {"spec": {"acquisition": {"static": {"prefix": prefix}}}},
            merge=True,
        )
        try:
            finished = await asyncio.wait_for(waiter, 180)
        except TimeoutError:
            await report_stragglers(kube, expected)
            raise
        latencies.append(finished - started)
        # the operator is idle again: the batch's status update and event are written
        await asyncio.sleep(0.5 + n / 1000)
        cpu.append(process_stats(pid)[1] - cpu_before)
    return latencies, cpu


async def measure_floor(
    kube: Api, names: list[str], round_number: int, *, watched: bool = False, shaped: bool = True
) -> float:
    """One round of N merge patches of Service annotations (the IPAM's, the DNS target,
    and records of the same size as the operator's), 64 at a time, straight to the API
    server; its latency.

    ``shaped``: what the operator writes (with last-sync), under a field manager of the
    floor's own, to Services shaped as the operator's are (`floor_services`); else the
    floor of the tables before 2026-12-06 (no last-sync, the creator's manager, Services
    without annotations). ``watched``: timed as the operator is, until a watch of the
    floor's Services has seen the last one (that watch costs the API server and the
    shared cores their share)."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    query = f"?fieldManager={FLOOR_MANAGER}" if shaped else ""

    async def one(index: int, name: str) -> None:
        # what the operator writes with maxPrefixHistory 2: the new address and the two
        # before it, the DNS target, and its records (under other names: the operator
        # would take its own records on a Service it does not serve back)
        ips = ",".join(f"2001:db8:ffff:{r:x}:ffff:0:0:{index + 1:x}"
                       for r in range(round_number + 2, round_number - 1, -1))  # fmt: skip
        new = ips.split(",", 1)[0]
        annotations = {IPS: ips, f"{FLOOR_DOMAIN}/managed-ips": ips, DNS_TARGET: new,
                       f"{FLOOR_DOMAIN}/managed-targets": new}  # fmt: skip
        if shaped:
            annotations[f"{FLOOR_DOMAIN}/last-sync"] = "2026-12-05T00:00:00Z"
        body = {"metadata": {"annotations": annotations}}
        async with semaphore:
            await kube.call("PATCH", f"{SERVICES}/{name}{query}", body, merge=True)

    waiter = None
    if watched:
        head = f"2001:db8:ffff:{round_number + 2:x}:ffff:0:0"  # the first address
        expected = {name: IPv6Address(f"{head}:{index + 1:x}")
                    for index, name in enumerate(names)}  # fmt: skip
        ready = asyncio.Event()
        waiter = asyncio.create_task(wait_all_updated(kube, expected, ready, role="floor"))
        await asyncio.wait_for(ready.wait(), 60)  # the watch is established
    started = time.monotonic()
    await asyncio.gather(*(one(index, name) for index, name in enumerate(names)))
    finished = time.monotonic() if waiter is None else await asyncio.wait_for(waiter, 180)
    await asyncio.sleep(0.5)  # the operator's watch sees the floor's writes too
    return finished - started


WATCHED_ROUNDS_FROM = 1000
"""Round numbers of the watched floor: its addresses differ from the bare floor's (a
watch that started after them could not tell a round's writes from the last one's)."""


def service_body(name: str, role: str, annotations: dict[str, str]) -> dict[str, Any]:
    metadata = {"name": name, "namespace": "default", "labels": {LABEL: role},
                "annotations": annotations}  # fmt: skip
    spec = {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


async def create_ha_prefix(kube: Api, dp: str, prefix: str) -> None:
    """A DynamicPrefix with a static source, the "lb" range and ``transition.mode: ha``."""
    await kube.call("POST", f"/apis/{api_path()}", {
        "apiVersion": api.API_VERSION, "kind": "DynamicPrefix", "metadata": {"name": dp},
        "spec": {"acquisition": {"static": {"prefix": prefix}},
                 "addressRanges": [{"name": "lb", "start": "::f000:0:0:0",
                                    "end": "::ffff:ffff:ffff:ffff"}],
                 "transition": {"mode": "ha", "maxPrefixHistory": 2}}})  # fmt: skip


def opted_in_services(dp: str, names: list[str]) -> list[dict[str, Any]]:
    """LoadBalancer Services opted in to ``dp``'s "lb" range, each with its own suffix."""
    return [
        service_body(name, "operator", {
            api.ANNOTATION_NAME: dp, f"{api.GROUP}/service-address-range": "lb",
            f"{api.GROUP}/suffix": str(IPv6Address(SUFFIX_BASE | (i + 1))),
            f"{api.GROUP}/lb-provider": "cilium"})
        for i, name in enumerate(names)
    ]  # fmt: skip


def floor_services(dp: str, names: list[str]) -> list[dict[str, Any]]:
    """Services for the floor to write, shaped as `opted_in_services` are: the same
    annotations under `FLOOR_DOMAIN` (the operator does not serve them)."""
    return [
        service_body(name, "floor", {
            f"{FLOOR_DOMAIN}/name": dp, f"{FLOOR_DOMAIN}/service-address-range": "lb",
            f"{FLOOR_DOMAIN}/suffix": str(IPv6Address(SUFFIX_BASE | (i + 1))),
            f"{FLOOR_DOMAIN}/lb-provider": "cilium"})
        for i, name in enumerate(names)
    ]  # fmt: skip


async def create_services(kube: Api, bodies: list[dict[str, Any]]) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def create(body: dict[str, Any]) -> None:
        async with semaphore:
            await kube.call("POST", SERVICES, body)

    await asyncio.gather(*(create(body) for body in bodies))


async def delete_services(kube: Api, names: list[str]) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def delete(name: str) -> None:
        async with semaphore:
            await kube.call("DELETE", f"{SERVICES}/{name}", missing=True)

    await asyncio.gather(*(delete(name) for name in names))


async def delete_prefix(kube: Api, dp: str) -> None:
    """Delete the DynamicPrefix and wait until it is gone (the operator may finalise it)."""
    await kube.call("DELETE", f"/apis/{api_path()}/{dp}", missing=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await kube.call("GET", f"/apis/{api_path()}/{dp}", missing=True) is None:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"DynamicPrefix {dp} still there 60 s after its deletion")


async def run_size(
    plane: ControlPlane, n: int, rounds: int, offset: int, pid: int
) -> dict[str, Any]:
    """The operator's rounds and the floors', interleaved (round r of each runs before
    round r + 1 of any, in turns, `in_turn`), so that the machine's drift weighs on all
    of them alike."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        kube = Api(plane, session)
        dp = f"bench-svc-{n}"
        await create_ha_prefix(kube, dp, f"2001:db8:{offset:x}::/64")
        names = [service_name(i) for i in range(n)]
        floor_names = [f"floor-svc-{i}" for i in range(n)]
        plain_names = [f"plain-svc-{i}" for i in range(n)]
        created = time.monotonic()
        await create_services(kube, opted_in_services(dp, names))
        create_seconds = time.monotonic() - created
        await create_services(kube, floor_services(dp, floor_names))
        await create_services(kube, [service_body(name, "plain", {}) for name in plain_names])
        result: dict[str, Any] = {"n": n, "create": create_seconds, "operator": [], "cpu": [],
                                  "floor": [], "watched": [], "plain": []}  # fmt: skip
        try:
            # one unmeasured round of each: every Service is served and indexed first
            await measure_operator(kube, dp, n, 1, offset=offset, pid=pid)
            await measure_floor(kube, floor_names, 0)
            await measure_floor(kube, plain_names, 0, shaped=False)
            profiler = start_profiler(pid, n)
            for round_number in range(1, rounds + 1):
                for kind in in_turn(("operator", "floor", "watched", "plain"), round_number):
                    if kind == "operator":
                        latency, cpu = await measure_operator(
                            kube, dp, n, 1, offset=offset + round_number, pid=pid
                        )
                        result["operator"] += latency
                        result["cpu"] += cpu
                    elif kind == "watched":
                        watched_round = WATCHED_ROUNDS_FROM + round_number
                        result["watched"].append(
                            await measure_floor(kube, floor_names, watched_round, watched=True)
                        )
                    else:
                        shaped = kind == "floor"
                        result[kind].append(await measure_floor(
                            kube, floor_names if shaped else plain_names, round_number,
                            shaped=shaped))  # fmt: skip
            stop_profiler(profiler)
            result["rss"] = process_stats(pid)[0]
        finally:
            await delete_services(kube, names + floor_names + plain_names)
            await delete_prefix(kube, dp)
        await asyncio.sleep(1)  # the operator sees the deletions before the next size
        return result


async def measure_memory(plane: ControlPlane, pid: int, count: int) -> tuple[float, float]:
    """The operator's resident memory holding ``count`` annotated pools and ``count``
    ha Services of one DynamicPrefix, after two prefix changes (every object written
    and held as written), and its CPU while idle then, in % of a core over 30 s."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        kube = Api(plane, session)
        dp = "bench-memory"
        await create_ha_prefix(kube, dp, "2001:db8:f00::/64")
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def pool(index: int) -> None:
            async with semaphore:
                await kube.call("POST", POOLS, user_pool(f"memory-{index}", {
                    api.ANNOTATION_NAME: dp, api.ANNOTATION_ADDRESS_RANGE: "lb"}))  # fmt: skip

        await asyncio.gather(*(pool(i) for i in range(count)))
        names = [service_name(i) for i in range(count)]
        await create_services(kube, opted_in_services(dp, names))
        await measure_operator(kube, dp, count, 2, offset=0xF00, pid=pid)
        await asyncio.sleep(2)
        rss, cpu_before = process_stats(pid)
        await asyncio.sleep(30)
        idle = 100 * (process_stats(pid)[1] - cpu_before) / 30
        await delete_services(kube, names)
        return rss, idle


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000")
    # a multiple of 4: the rounds of the four kinds are balanced over 4 (`in_turn`)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--memory",
        type=int,
        default=1000,
        metavar="N",
        help="then hold N pools and N Services and measure (0: skip)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # the operator's Services and the floors' (3,000 at N = 1,000) each take a node port
    node_ports = {"--service-node-port-range": "30000-34999"}
    with (
        ControlPlane(apiserver_flags=node_ports) as plane,
        tempfile.TemporaryDirectory() as scratch,
    ):
        plane.kubectl("apply", "-f", str(ROOT / "deploy/crd/dynamicprefixes.yaml"))
        plane.kubectl("apply", "-f", str(ROOT / "testbed/crds/cilium-v2.yaml"))
        plane.kubectl("wait", "--for=condition=Established", "crd", "--all")
        operator = OperatorProcess(
            plane, Path(os.environ.get("BENCH_OPERATOR_LOG", Path(scratch) / "operator.log"))
        ).start()
        try:
            assert operator.process is not None
            pid = operator.process.pid
            idle_rss = 0.0
            results = []
            for index, n in enumerate(sizes):
                if index == 0:
                    time.sleep(2)  # started and listed: its footprint with no Service
                    idle_rss = process_stats(pid)[0]
                results.append(
                    asyncio.run(run_size(plane, n, args.rounds, 0x100 * (index + 1), pid))
                )
            memory = asyncio.run(measure_memory(plane, pid, args.memory)) if args.memory else None
        finally:
            operator.stop()
    print(
        f"rounds per size: {args.rounds}; concurrency {CONCURRENCY}; static source; "
        f"ha mode, Cilium LB-IPAM annotation\n"
    )
    print("| Services | operator p50 | operator p95 | floor p50 | floor p95 | p50 ratio "
          "| operator CPU per change, p50 | operator RSS with N Services "
          "| floor seen by a watch p50 (ratio) | plain-Service floor p50 (ratio) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        op = statistics.median(result["operator"])
        print(
            f"| {result['n']} | {op * 1000:.0f} ms | "
            f"{percentile(result['operator'], 0.95) * 1000:.0f} ms | "
            f"{statistics.median(result['floor']) * 1000:.0f} ms | "
            f"{percentile(result['floor'], 0.95) * 1000:.0f} ms | "
            f"{op / statistics.median(result['floor']):.2f} | "
            f"{statistics.median(result['cpu']) * 1000:.0f} ms | {result['rss']:.0f} MiB | "
            f"{ratio_cell(op, result['watched'])} | {ratio_cell(op, result['plain'])} |"
        )
    print(f"\noperator resident memory before any Service: {idle_rss:.0f} MiB")
    if memory is not None:
        print(f"operator with {args.memory} pools and {args.memory} Services, after two "
              f"changes: resident memory {memory[0]:.0f} MiB, idle CPU {memory[1]:.2f}% "
              "of one core over 30 s")  # fmt: skip
    for result in results:
        print(
            f"creating {result['n']} Services ({CONCURRENCY} in flight): {result['create']:.1f} s"
        )


if __name__ == "__main__":
    main()
