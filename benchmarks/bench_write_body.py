"""The cost of one pool write, by body and client: what issue 16 asked to measure.

N Cilium pools are written 64 at a time (the operator's concurrency) on a real API
server, the way a prefix change writes them: new blocks and the ownership annotations.
Each variant is one way of saying that write; each round runs every variant once, in
turn, so a busy moment of the machine falls on all of them. Printed per variant: the
wall time of the N writes (p50 over the rounds) and this process's CPU per write, which
is what the operator would spend.

Variants:
- ``floor-body``: the floor's body in bench_propagation.py: one block, no annotations;
- ``merge`` (the operator before issue 16): a merge patch, the body streamed through the
  lease check, the answer decoded with ``json``;
- ``merge-bytes``: the same body given to aiohttp as bytes (a Content-Length body);
- ``merge-bytes-rv``: and the answer read as bytes, only its resourceVersion taken;
- ``json-patch``: a JSON patch (RFC 6902) replacing the blocks and adding annotations;
- ``apply``: server-side apply of the same fields (fieldManager, force);
- ``orjson`` / ``msgspec``: ``merge-bytes`` encoded and decoded with that codec;
- ``httpx-h1`` / ``httpx-h2``: ``merge-bytes`` through httpx, HTTP/1.1 and HTTP/2 (one
  connection, multiplexed).
A variant whose library is not installed is skipped, saying so: orjson, msgspec, httpx
and h2 are not dependencies of the project (``pip install orjson msgspec 'httpx[http2]'``
into the venv to measure them).

Run: .venv/bin/python benchmarks/bench_write_body.py [--pools 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import re
import ssl
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from bench_propagation import plane_cpu

from dynamic_prefix.kube.http1 import Http1Client
from testbed.controlplane import ControlPlane

ROOT = Path(__file__).parents[1]
POOLS = "/apis/cilium.io/v2/ciliumloadbalancerippools"
CONCURRENCY = 64
RESOURCE_VERSION = re.compile(rb'"resourceVersion":"(\d+)"')
RECORD = "dynamic-prefix.io/managed-blocks"
LAST_SYNC = "dynamic-prefix.io/last-sync"

Write = Callable[[str, int], Awaitable[None]]


HISTORY = 3  # prefixes in the pool at once: the current one and two kept from before


def ours(round_number: int) -> list[dict[str, str]]:
    """The operator's ranges: the current prefix's and those of the history."""
    heads = [f"2001:db8:{r + 1:x}:0" for r in range(round_number, round_number - HISTORY, -1)]
    return [{"start": f"{head}:f000::", "stop": f"{head}:ffff:ffff:ffff:ffff"}
            for head in heads]  # fmt: skip


def blocks(round_number: int) -> list[dict[str, str]]:
    """A user's entry and the operator's ranges, as a prefix change writes them."""
    return [{"cidr": "192.0.2.0/24"}, *ours(round_number)]


def record_annotations(round_number: int) -> dict[str, str]:
    return {RECORD: json.dumps(ours(round_number)),
            LAST_SYNC: f"2026-12-05T00:00:{round_number % 60:02d}Z"}  # fmt: skip


def merge_body(round_number: int) -> dict[str, Any]:
    return {"metadata": {"annotations": record_annotations(round_number)},
            "spec": {"blocks": blocks(round_number)}}  # fmt: skip


def json_patch_body(round_number: int) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/metadata/annotations/" + key.replace("/", "~1"), "value": value}
        for key, value in record_annotations(round_number).items()
    ]
    ops.append({"op": "replace", "path": "/spec/blocks", "value": blocks(round_number)})
    return ops


def apply_body(name: str, round_number: int) -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool",
            "metadata": {"name": name, "annotations": record_annotations(round_number)},
            "spec": {"blocks": blocks(round_number)}}  # fmt: skip


async def _streamed(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Aiohttp:
    """The operator's HTTP stack: one aiohttp session, 96 connections at most."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.session = aiohttp.ClientSession(
            base_url=plane.server, connector=aiohttp.TCPConnector(ssl=False, limit=96)
        )
        self.auth = f"Bearer {plane.admin_token}"

    async def send(
        self, name: str, data: Any, content_type: str, *, params: str = "", decode: Any
    ) -> None:
        headers = {"Accept": "application/json", "Authorization": self.auth,
                   "Content-Type": content_type}  # fmt: skip
        async with self.session.patch(f"{POOLS}/{name}{params}", data=data,
                                      headers=headers) as response:  # fmt: skip
            raw = await response.read()
            if response.status >= 400:
                raise RuntimeError(f"{name}: {response.status} {raw[:300]!r}")
            decode(raw)


def _insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def only_version(raw: bytes) -> None:
    match = RESOURCE_VERSION.search(raw)
    if match is None:
        raise RuntimeError("no resourceVersion in the answer")


def variants(plane: ControlPlane, client: Aiohttp) -> dict[str, Write]:
    """Every variant this machine can run, by name."""
    merge = "application/merge-patch+json"

    async def merge_streamed(name: str, r: int) -> None:
        body = json.dumps(merge_body(r)).encode()
        await client.send(name, _streamed(body), merge, decode=json.loads)

    async def floor_body(name: str, r: int) -> None:
        body = {"spec": {"blocks": blocks(r)[1:2]}}
        await client.send(name, json.dumps(body).encode(), merge, decode=json.loads)

    async def merge_bytes(name: str, r: int) -> None:
        await client.send(name, json.dumps(merge_body(r)).encode(), merge, decode=json.loads)

    async def merge_bytes_rv(name: str, r: int) -> None:
        await client.send(name, json.dumps(merge_body(r)).encode(), merge, decode=only_version)

    async def json_patch(name: str, r: int) -> None:
        await client.send(name, json.dumps(json_patch_body(r)).encode(),
                          "application/json-patch+json", decode=json.loads)  # fmt: skip

    async def apply(name: str, r: int) -> None:
        await client.send(name, json.dumps(apply_body(name, r)).encode(),
                          "application/apply-patch+yaml",
                          params="?fieldManager=bench&force=true", decode=json.loads)  # fmt: skip

    lean = Http1Client(plane.server, _insecure(), limit=CONCURRENCY)
    lean_headers = (f"Authorization: Bearer {plane.admin_token}\r\nAccept: application/json\r\n"
                    f"Content-Type: {merge}\r\nUser-Agent: bench\r\n").encode()  # fmt: skip

    def through_http1(decode: Callable[[bytes], object]) -> Write:
        async def write(name: str, r: int) -> None:
            answer = await lean.request("PATCH", f"{POOLS}/{name}", lean_headers,
                                        json.dumps(merge_body(r)).encode(), timeout=30)  # fmt: skip
            if answer.status >= 400:
                raise RuntimeError(f"{name}: {answer.status} {answer.body[:300]!r}")
            decode(answer.body)

        return write

    found: dict[str, Write] = {
        "floor-body": floor_body, "merge": merge_streamed, "merge-bytes": merge_bytes,
        "merge-bytes-rv": merge_bytes_rv, "json-patch": json_patch, "apply": apply,
        "http1": through_http1(json.loads), "http1-rv": through_http1(only_version),
    }  # fmt: skip
    return {**found, **optional_variants(plane, client)}


def optional_variants(plane: ControlPlane, client: Aiohttp) -> dict[str, Write]:
    """The variants that need a library the project does not depend on."""
    merge = "application/merge-patch+json"
    found: dict[str, Write] = {}
    try:
        orjson = importlib.import_module("orjson")

        async def with_orjson(name: str, r: int) -> None:
            await client.send(name, orjson.dumps(merge_body(r)), merge, decode=orjson.loads)

        found["orjson"] = with_orjson
    except ImportError:
        print("orjson not installed: skipped", file=sys.stderr)
    try:
        msgspec = importlib.import_module("msgspec")

        encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder()

        async def with_msgspec(name: str, r: int) -> None:
            await client.send(name, encoder.encode(merge_body(r)), merge, decode=decoder.decode)

        found["msgspec"] = with_msgspec
    except ImportError:
        print("msgspec not installed: skipped", file=sys.stderr)
    try:
        importlib.import_module("h2")  # httpx's HTTP/2 needs it
        httpx = importlib.import_module("httpx")

        headers = {"Accept": "application/json", "Content-Type": merge,
                   "Authorization": f"Bearer {plane.admin_token}"}  # fmt: skip
        limits = httpx.Limits(max_connections=96, max_keepalive_connections=96)
        h1 = httpx.AsyncClient(base_url=plane.server, verify=False, limits=limits)
        h2_client = httpx.AsyncClient(base_url=plane.server, verify=False, http2=True,
                                      http1=False, limits=limits)  # fmt: skip

        def through(http: Any) -> Write:
            async def write(name: str, r: int) -> None:
                body = json.dumps(merge_body(r)).encode()
                response = await http.patch(f"{POOLS}/{name}", headers=headers, content=body)
                if response.status_code >= 400:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
                json.loads(response.content)

            return write

        found["httpx-h1"] = through(h1)
        found["httpx-h2"] = through(h2_client)
    except ImportError:
        print("httpx or h2 not installed: skipped", file=sys.stderr)
    return found


async def run(plane: ControlPlane, pools: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    client = Aiohttp(plane)
    names = [f"write-{i}" for i in range(pools)]
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def create(name: str) -> None:
        async with semaphore:
            body = apply_body(name, 0)
            body["metadata"]["annotations"] = {}
            async with client.session.post(POOLS, json=body, headers={
                    "Authorization": client.auth}) as response:  # fmt: skip
                if response.status >= 400:
                    raise RuntimeError(await response.text())

    await asyncio.gather(*(create(name) for name in names))
    found = variants(plane, client)
    results: dict[str, dict[str, list[float]]] = {
        v: {"wall": [], "cpu": [], "control": []} for v in found
    }
    round_number = 0
    for _ in range(rounds + 1):  # the first round warms up connections and is not kept
        for variant, write in found.items():
            round_number += 1

            async def one(name: str, write: Write = write, r: int = round_number) -> None:
                async with semaphore:
                    await write(name, r)

            control = plane_cpu(plane)
            cpu, wall = time.process_time(), time.monotonic()
            await asyncio.gather(*(one(name) for name in names))
            wall, cpu = time.monotonic() - wall, time.process_time() - cpu
            await asyncio.sleep(0.3)
            if _ > 0:
                results[variant]["wall"].append(wall)
                results[variant]["cpu"].append(cpu)
                results[variant]["control"].append(plane_cpu(plane) - control)
    await client.session.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with ControlPlane() as plane:
        plane.kubectl("apply", "-f", str(ROOT / "testbed/crds/cilium-v2.yaml"))
        plane.kubectl("wait", "--for=condition=Established", "crd", "--all")
        results = asyncio.run(run(plane, args.pools, args.rounds))
    print(f"{args.pools} pools, {CONCURRENCY} in flight, {args.rounds} rounds\n")
    print("| variant | wall p50 | wall min | client CPU per write, p50 "
          "| API server + etcd CPU per write, p50 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for variant, measured in results.items():
        print(f"| {variant} | {statistics.median(measured['wall']) * 1000:.0f} ms | "
              f"{min(measured['wall']) * 1000:.0f} ms | "
              f"{statistics.median(measured['cpu']) / args.pools * 1000:.3f} ms | "
              f"{statistics.median(measured['control']) / args.pools * 1000:.2f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
