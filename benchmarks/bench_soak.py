"""Soak: memory over many prefix rotations, and where it grows (tracemalloc).

The operator runs in this process (`run_operator`, as `dynamic-prefix run` does) against
a real control plane, with one DynamicPrefix (static source, history 2), one pool of
each list kind and a Calico template, and one opted-in LoadBalancer Service (mode ha).
The prefix is rotated ``--rotations`` times, each time waiting until the Cilium pool
and the Service hold the new prefix. Every ``--every`` rotations the traced memory and
the process's resident memory are printed; at the end, the allocation sites that grew
most since the first checkpoint (the operator's own code and its libraries, not this
driver's).

Run: .venv/bin/python benchmarks/bench_soak.py [--rotations 2000] [--every 250]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp

from dynamic_prefix.kube.config import load_config
from dynamic_prefix.model import api
from dynamic_prefix.operator.observability import Endpoint
from dynamic_prefix.operator.runtime import Endpoints, run_operator
from testbed.controlplane import ControlPlane

ROOT = Path(__file__).parents[1]
DP = "soak"
LB = {"name": "lb", "start": "::f000:0:0:0", "end": "::ffff:ffff:ffff:ffff"}
ANNOTATIONS = {api.ANNOTATION_NAME: DP, api.ANNOTATION_ADDRESS_RANGE: "lb"}
OBJECTS: list[tuple[str, dict[str, Any]]] = [
    (f"/apis/{api.API_VERSION}/{api.PLURAL}", {
        "apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": DP},
        "spec": {"acquisition": {"static": {"prefix": "2001:db8:0:1::/64"}},
                 "addressRanges": [LB], "transition": {"mode": "ha", "maxPrefixHistory": 2}},
    }),
    ("/apis/cilium.io/v2/ciliumloadbalancerippools", {
        "apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": "soak-lb", "annotations": ANNOTATIONS}, "spec": {"blocks": []},
    }),
    ("/apis/metallb.io/v1beta1/namespaces/default/ipaddresspools", {
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "soak-metallb", "namespace": "default", "annotations": ANNOTATIONS},
        "spec": {"addresses": []},
    }),
    ("/apis/projectcalico.org/v3/ippools", {
        "apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": "soak-calico", "annotations": ANNOTATIONS},
        "spec": {"cidr": "fd00:0:0:ffff::/64", "blockSize": 122, "disabled": True},
    }),
    ("/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "soak-web", "namespace": "default", "annotations": {
            api.ANNOTATION_NAME: DP, "dynamic-prefix.io/service-address-range": "lb",
            "dynamic-prefix.io/suffix": "::ffff:0:0:2", "dynamic-prefix.io/lb-provider": "cilium"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
    }),
]  # fmt: skip
OURS = ("dynamic_prefix", "aiohttp", "yarl", "multidict", "asyncio", "json", "ipaddress")


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Driver:
    def __init__(self, plane: ControlPlane, session: aiohttp.ClientSession) -> None:
        self.plane, self.session = plane, session
        self.headers = {"Authorization": f"Bearer {plane.admin_token}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = dict(self.headers)
        if method == "PATCH":
            headers["Content-Type"] = "application/merge-patch+json"
        async with self.session.request(method, self.plane.server + path, json=body,
                                        headers=headers, ssl=False) as response:  # fmt: skip
            text = await response.text()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:300]}")
            return json.loads(text) if text else {}

    async def rotate(self, n: int) -> None:
        prefix = f"2001:db8:{n // 0x10000:x}:{n % 0x10000:x}::/64"
        head = prefix.split("::/", maxsplit=1)[0]
        await self.call("PATCH", f"/apis/{api.API_VERSION}/{api.PLURAL}/{DP}",
                        {"spec": {"acquisition": {"static": {"prefix": prefix}}}})  # fmt: skip
        for _ in range(3000):
            pool = await self.call("GET", "/apis/cilium.io/v2/ciliumloadbalancerippools/soak-lb")
            service = await self.call("GET", "/api/v1/namespaces/default/services/soak-web")
            ips = service["metadata"].get("annotations", {}).get("lbipam.cilium.io/ips", "")
            if head in json.dumps(pool["spec"]) and ips.startswith(head):
                return
            await asyncio.sleep(0.005)
        raise RuntimeError(f"rotation {n} not followed")


def ours(stat: tracemalloc.StatisticDiff) -> bool:
    """Allocated by the operator's code or its libraries, not by this driver (whose calls
    go through the same libraries: its frames are in the traceback)."""
    frames = "".join(frame.filename for frame in stat.traceback)
    return "bench_soak" not in frames and any(part in frames for part in OURS)


async def soak(plane: ControlPlane, rotations: int, every: int) -> None:
    config = load_config(str(plane.kubeconfig))
    endpoints = Endpoints(health=Endpoint("127.0.0.1", 0), metrics=Endpoint("127.0.0.1", 0),
                          metrics_insecure=True)  # fmt: skip
    operator = asyncio.create_task(run_operator(config, endpoints=endpoints))
    async with aiohttp.ClientSession() as session:
        driver = Driver(plane, session)
        for path, obj in OBJECTS:
            await driver.call("POST", path, obj)
        await driver.rotate(2)
        first: tracemalloc.Snapshot | None = None
        print("| rotations | traced (operator's process) | resident |")
        print("|---:|---:|---:|")
        for n in range(3, rotations + 3):
            await driver.rotate(n)
            done = n - 2
            if done % every == 0 or done == 1:
                await asyncio.sleep(0.5)
                gc.collect()
                traced = tracemalloc.get_traced_memory()[0] / 2**20
                print(f"| {done} | {traced:.2f} MiB | {rss_mib():.1f} MiB |", flush=True)
                snapshot = tracemalloc.take_snapshot()
                first = first or snapshot
        assert first is not None
        growth = [s for s in snapshot.compare_to(first, "traceback") if ours(s)]
        print("\nallocation sites that grew most since rotation 1 (size, count):")
        for stat in growth[:12]:
            where = " <- ".join(  # the allocating line first, then its callers
                f"{f.filename.split('/')[-1]}:{f.lineno}" for f in reversed(stat.traceback[-4:])
            )
            print(f"  {stat.size_diff / 1024:+8.1f} KiB {stat.count_diff:+6d}  {where}")
    operator.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await operator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    args = parser.parse_args()
    tracemalloc.start(8)
    with ControlPlane() as plane:
        for crd in ("deploy/crd/dynamicprefixes.yaml", "testbed/crds/cilium-v2.yaml",
                    "testbed/crds/metallb.yaml", "testbed/crds/calico.yaml"):  # fmt: skip
            plane.kubectl("apply", "-f", str(ROOT / crd))
        plane.kubectl("wait", "--for=condition=Established", "crd", "--all")
        asyncio.run(soak(plane, args.rotations, args.every))


if __name__ == "__main__":
    main()
