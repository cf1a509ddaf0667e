"""Time from starting the DHCPv6 PD source to its first prefix (LeaseAcquired), against Kea.

Runs in the network-namespace test bed (root needed; ../shared/TESTBED.md section 5): Kea
in the router namespace, the source in the node namespace through
``tests/sources/dhcpv6_driver.py``, one fresh process per run. Each run is timed inside
the driver, from just before ``Dhcpv6PdSource.run`` to the report with the prefix (so
interpreter start-up is left out; it is printed separately as "from spawn"). The lease is
released at the end of each run, so every run is a full Solicit/Advertise/Request/Reply.

Three variants:

- ``default``: SOL_MAX_DELAY as the RFC says, a random wait of 0-1 s before the first
  Solicit (RFC 8415 section 18.2.1), then Advertises are collected for the first
  retransmission timeout (about 1.0-1.1 s) unless one has preference 255;
- ``no-delay``: the same with the random wait set to 0;
- ``no-delay, pref 255``: Kea also sends a Preference option of 255, which lets the client
  take the Advertise at once: only the exchange itself remains.

Run as root:

    .venv/bin/python benchmarks/bench_dhcpv6_kea.py [--runs 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.kea import Kea, KeaConfig
from testbed.netns import Link, namespaces_supported

DRIVER = Path(__file__).parents[1] / "tests" / "sources" / "dhcpv6_driver.py"
RUN_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class _PreferenceConfig(KeaConfig):
    """Kea's configuration plus a global Preference option (RFC 8415 section 21.8)."""

    preference: int = 255

    def render(self) -> dict[str, Any]:
        rendered = KeaConfig.render(self)
        rendered["Dhcp6"]["option-data"] = [
            # Sent only when asked for in the Option Request, unless always-send.
            {"name": "preference", "data": str(self.preference), "always-send": True}
        ]
        return rendered


@dataclass(frozen=True, slots=True)
class Sample:
    to_prefix: float  # from Dhcpv6PdSource.run to LeaseAcquired
    from_spawn: float  # from starting the process to LeaseAcquired


def one_run(link: Link, solicit_max_delay: float) -> Sample:
    argv = [sys.executable, "-u", str(DRIVER), "--interface", link.node_ifname]
    argv += ["--solicit-max-delay", str(solicit_max_delay), "--log-level", "WARNING"]
    spawned = time.time()
    process = link.popen_in_node(*argv, stderr=subprocess.DEVNULL)
    watchdog = threading.Timer(RUN_TIMEOUT, process.kill)
    watchdog.start()
    try:
        starting: float | None = None
        assert process.stdout is not None
        for raw in process.stdout:
            line = json.loads(raw)
            if line["kind"] == "starting":
                starting = line["at"]
            elif line["kind"] == "state" and line["state"]["reason"] == "LeaseAcquired":
                if starting is None:
                    raise RuntimeError("LeaseAcquired before the driver said it was starting")
                sample = Sample(line["at"] - starting, line["at"] - spawned)
                break
            elif line["kind"] == "error":
                raise RuntimeError(line["message"])
        else:
            raise RuntimeError(f"the driver exited ({process.wait()}) without a prefix")
        process.send_signal(signal.SIGTERM)  # releases the lease: the next run starts afresh
        for raw in process.stdout:
            if json.loads(raw)["kind"] == "stopped":
                break
        process.wait()
        return sample
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def summary(name: str, samples: list[Sample]) -> str:
    def row(values: list[float]) -> str:
        return (
            f"p50 {statistics.median(values) * 1000:7.1f} ms  "
            f"p95 {percentile(values, 0.95) * 1000:7.1f} ms  "
            f"min {min(values) * 1000:7.1f}  max {max(values) * 1000:7.1f}"
        )

    return (
        f"{name:<20} to prefix  {row([s.to_prefix for s in samples])}\n"
        f"{'':<20} from spawn {row([s.from_spawn for s in samples])}"
    )


def bench(runs: int, *, solicit_max_delay: float, preference: bool) -> list[Sample]:
    with Link() as link:
        kea = Kea(link)  # long lifetimes: no renewals during the runs
        if preference:
            # The Kea helper has no option-data parameter; swap in a config that adds it.
            fields = {f.name: getattr(kea.config, f.name) for f in dataclasses.fields(KeaConfig)}
            kea._config = _PreferenceConfig(**fields)
        with kea:
            return [one_run(link, solicit_max_delay) for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    supported, reason = namespaces_supported()
    if not supported:
        raise SystemExit(f"cannot run the test bed: {reason}")
    variants = [
        ("default (0-1 s delay)", 1.0, False),
        ("no-delay", 0.0, False),
        ("no-delay, pref 255", 0.0, True),
    ]
    print(f"DHCPv6 PD against Kea, {args.runs} runs each: start -> LeaseAcquired")
    for name, delay, preference in variants:
        samples = bench(args.runs, solicit_max_delay=delay, preference=preference)
        print(summary(name, samples), flush=True)


if __name__ == "__main__":
    main()
