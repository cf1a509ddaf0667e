"""Router Advertisement parse throughput on one core, and the CPU cost of one parse.

Run from the repository root: ``.venv/bin/python benchmarks/bench_ra_parse.py``.
Parses the golden packets of ``tests/protocols/packets`` in a loop, timing the loop with
``time.perf_counter`` (wall clock) and ``time.process_time`` (CPU of this process), and
also times parse plus `PrefixTracker.observe_advertisement`, the receiver's whole pure
path for one RA. Prints numbers; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from ipaddress import IPv6Address
from pathlib import Path

from dynamic_prefix.protocols.ndp import parse_router_advertisement
from dynamic_prefix.protocols.tracker import PrefixTracker, TrackerPolicy

PACKETS = Path(__file__).resolve().parent.parent / "tests" / "protocols" / "packets"


def packet(name: str) -> bytes:
    """A golden packet: hex octets, whitespace and ``#`` comments ignored."""
    text = (PACKETS / name).read_text()
    return bytes.fromhex("".join(line.partition("#")[0] for line in text.splitlines()))


def measure(label: str, count: int, run_once: Callable[[int], object]) -> None:
    """Run ``run_once`` ``count`` times and print rate and per-call costs."""
    for warm_up in range(min(count, 10_000)):
        run_once(warm_up)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for index in range(count):
        run_once(index)
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    print(
        f"{label:<52} {count / wall:>12,.0f} /s   "
        f"{wall / count * 1e6:6.2f} us wall   {cpu / count * 1e6:6.2f} us CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="iterations per case")
    count = parser.parse_args().count

    print(f"Python {sys.version.split()[0]} on {platform.machine()}, {count:,} iterations each")
    radvd = packet("ra-radvd.hex")
    rich = packet("ra-rdnss-route.hex")
    measure(
        f"parse radvd RA ({len(radvd)} octets: PI, MTU, SLLA)",
        count,
        lambda _: parse_router_advertisement(radvd),
    )
    measure(
        f"parse rich RA ({len(rich)} octets: PI, 3 RIO, RDNSS, SLLA)",
        count,
        lambda _: parse_router_advertisement(rich),
    )

    tracker = PrefixTracker(TrackerPolicy(trusted_routers=frozenset({IPv6Address("fe80::1")})))
    router = IPv6Address("fe80::1")
    measure(
        "parse radvd RA + tracker.observe_advertisement",
        count,
        lambda index: tracker.observe_advertisement(
            parse_router_advertisement(radvd), router=router, now=float(index)
        ),
    )


if __name__ == "__main__":
    main()
