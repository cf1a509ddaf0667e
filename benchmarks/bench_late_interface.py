"""Latency from an interface appearing to its source's prefix, in the netns test bed.

Run as root from the repository root: ``.venv/bin/python benchmarks/bench_late_interface.py``.
Builds a link (router namespace + veth, the node end in the root namespace with the
kernel's SLAAC on and no default route) with radvd on it. Each round renames the node
end away, starts the source (through the real `SourceManager`, which sees
``InterfaceMissing`` and waits on netlink), renames the interface back, and records the
time from the rename returning to the source's report of the prefix. For the Router
Advertisement source that includes its Router Solicitation and radvd's answer; the
netlink source finds the kernel's address in its first dump. Prints p50/p95/max per
source; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import time
from ipaddress import IPv6Network

from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import (
    Acquisition,
    NetlinkSpec,
    PrefixSourceSpec,
    RouterAdvertisementSpec,
)
from dynamic_prefix.operator.sources import SourceManager, build_source
from testbed.netns import Link, namespaces_supported
from testbed.radvd import PrefixAd, Radvd

PREFIX = IPv6Network("2001:db8:1a7e::/64")
AWAY = "dp-away0"


async def one_round(link: Link, spec: PrefixSourceSpec) -> tuple[float, float]:
    """(interface back -> source started, interface back -> prefix reported)."""
    interface = link.node_ifname
    subprocess.run(["ip", "link", "set", interface, "name", AWAY], check=True)
    missing, started, acquired = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def report(name: str, state: SourceState) -> None:
        if state.reason == "InterfaceMissing":
            missing.set()
        elif missing.is_set() and not started.is_set():
            started.set()
            started_after.append(time.monotonic() - back)
        if state.prefix == PREFIX:
            acquired.set()

    back = 0.0
    started_after: list[float] = []
    sources = SourceManager(report, build_source)
    sources.ensure("bench", Acquisition(sources=(spec,), allow_unique_local=False))
    try:
        await asyncio.wait_for(missing.wait(), 10)
        subprocess.run(["ip", "link", "set", AWAY, "name", interface], check=True)
        subprocess.run(["ip", "link", "set", interface, "up"], check=True)
        back = time.monotonic()
        await asyncio.wait_for(acquired.wait(), 10)
        return started_after[0], time.monotonic() - back
    finally:
        await sources.stop_all()


async def measure(link: Link, rounds: int) -> dict[str, list[tuple[float, float]]]:
    interface = link.node_ifname
    specs: dict[str, PrefixSourceSpec] = {
        "router-advertisement": RouterAdvertisementSpec(
            interface=interface, trusted_routers=frozenset()
        ),
        "netlink": NetlinkSpec(interface=interface),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in specs}
    for _ in range(rounds):
        for name, spec in specs.items():
            results[name].append(await one_round(link, spec))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    supported, reason = namespaces_supported()
    if not supported:
        raise SystemExit(f"network namespaces unavailable: {reason}")
    print(
        f"{platform.node()} {platform.machine()} {platform.python_version()}, {args.rounds} rounds"
    )
    with (
        Link(node_in_root_namespace=True, slaac=True) as link,
        Radvd(link, prefixes=[PrefixAd(PREFIX)]),
    ):
        link.wait_for_node_address(PREFIX)
        results = asyncio.run(measure(link, args.rounds))
    for name, pairs in results.items():
        for index, what in enumerate(("source started", "prefix reported")):
            ms = sorted(pair[index] * 1000 for pair in pairs)
            p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
            print(
                f"{name:22} interface back -> {what:16} p50 {statistics.median(ms):6.1f} ms, "
                f"p95 {p95:6.1f} ms, max {ms[-1]:6.1f} ms"
            )


if __name__ == "__main__":
    main()
