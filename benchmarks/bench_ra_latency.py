"""Latency from radvd's SIGHUP to each source's report of the new prefix, in the netns test bed.

Run as root from the repository root: ``.venv/bin/python benchmarks/bench_ra_latency.py``.
Builds a link (router namespace + veth, the node end in the root namespace with the
kernel's SLAAC on and no default route), starts radvd on it, and runs the Router
Advertisement source and the netlink source side by side in one event loop. Then, again
and again, it renumbers: rewrites radvd's configuration to announce a new /64 and withdraw
the current one (lifetimes 0), sends SIGHUP, and records when each source reports the new
prefix (a ``Changed`` report). Times are the event loop's monotonic clock, from just
before the signal to the report callback. Prints p50/p95/max per source; asserts nothing
about them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import platform
import signal
import statistics
import sys
from collections.abc import Callable
from ipaddress import IPv6Network

from dynamic_prefix.sources.base import SourceState
from dynamic_prefix.sources.netlink import NetlinkSource
from dynamic_prefix.sources.router_advertisement import (
    RouterAdvertisementSource,
    SolicitationPacing,
)
from testbed.netns import Link, namespaces_supported
from testbed.radvd import PrefixAd, Radvd

TIMEOUT = 10.0


def prefix(number: int) -> IPv6Network:
    return IPv6Network(f"2001:db8:0:{number:x}::/64")


class Watch:
    """A report callback that resolves a future when a wanted prefix is reported."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wanted: IPv6Network | None = None
        self.reached: asyncio.Future[tuple[float, SourceState]] = loop.create_future()

    def expect(self, wanted: IPv6Network) -> asyncio.Future[tuple[float, SourceState]]:
        self.wanted = wanted
        self.reached = self.loop.create_future()
        return self.reached

    def __call__(self, state: SourceState) -> None:
        if state.prefix == self.wanted and not self.reached.done():
            self.reached.set_result((self.loop.time(), state))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def summary(label: str, latencies: list[float]) -> str:
    ms = [value * 1000 for value in latencies]
    return (
        f"{label:<22} n={len(ms):<3} p50 {percentile(ms, 0.50):7.2f} ms   "
        f"p95 {percentile(ms, 0.95):7.2f} ms   max {max(ms):7.2f} ms   "
        f"mean {statistics.fmean(ms):7.2f} ms"
    )


async def measure(changes: int, pause: float) -> dict[str, list[float]]:
    loop = asyncio.get_running_loop()
    latencies: dict[str, list[float]] = {"router-advertisement": [], "netlink": []}
    with Link(node_in_root_namespace=True, slaac=True) as link:
        # The kernel keeps a withdrawn prefix's address for up to two hours and makes at
        # most max_addresses (16) per interface: lift the cap for this many renumberings.
        link.run_in_node("sysctl", "-qw", f"net.ipv6.conf.{link.node_ifname}.max_addresses=0")
        current = prefix(1)
        radvd = Radvd(link, prefixes=[PrefixAd(current)])
        await asyncio.to_thread(radvd.start)
        try:
            watches = {name: Watch(loop) for name in latencies}
            sources: dict[str, Callable[[Watch], asyncio.Task[None]]] = {
                "router-advertisement": lambda watch: loop.create_task(
                    RouterAdvertisementSource(
                        link.node_ifname, pacing=SolicitationPacing(max_delay=0)
                    ).run(watch)
                ),
                "netlink": lambda watch: loop.create_task(
                    NetlinkSource(link.node_ifname).run(watch)
                ),
            }
            first = [watch.expect(current) for watch in watches.values()]
            tasks = [start(watches[name]) for name, start in sources.items()]
            try:
                await asyncio.wait_for(asyncio.gather(*first), TIMEOUT)
                for number in range(2, changes + 2):
                    new = prefix(number)
                    config = dataclasses.replace(
                        radvd.config, prefixes=(PrefixAd(new), PrefixAd(current).withdrawn())
                    )
                    radvd.config_path.write_text(config.render())
                    waiting = {name: watch.expect(new) for name, watch in watches.items()}
                    signalled = loop.time()
                    os.kill(radvd.pid, signal.SIGHUP)
                    for name, future in waiting.items():
                        reported, state = await asyncio.wait_for(future, TIMEOUT)
                        if state.reason != "Changed":
                            print(f"  note: {name} reported {state.reason}: {state.message}")
                        latencies[name].append(reported - signalled)
                    current = new
                    await asyncio.sleep(pause)  # let radvd settle before the next reload
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            await asyncio.to_thread(radvd.stop)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=25, help="renumberings (at least 20)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between renumberings")
    arguments = parser.parse_args()
    supported, reason = namespaces_supported()
    if not supported:
        sys.exit(f"cannot build the test bed: {reason}")
    logging.basicConfig(level=logging.WARNING)

    print(
        f"Python {sys.version.split()[0]} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}; {arguments.changes} renumberings, "
        f"{arguments.pause:g} s apart"
    )
    latencies = asyncio.run(measure(arguments.changes, arguments.pause))
    print("From SIGHUP to the report of the new prefix (radvd's reload included):")
    for name, values in latencies.items():
        print(summary(name, values))


if __name__ == "__main__":
    main()
