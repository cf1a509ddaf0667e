"""Runs a `Dhcpv6PdSource` and prints what it reports, one JSON object a line.

Started by the Kea integration tests and the benchmark inside the node's network namespace
(``ip netns exec NS python tests/sources/dhcpv6_driver.py --interface vn ...``), because
the source is asyncio code that must live in that namespace. Lines on stdout:

- ``{"kind": "starting", "at": <unix time>}`` just before the source runs;
- ``{"kind": "state", "at": <unix time>, "state": {...}}`` for every report;
- ``{"kind": "error", "message": "..."}`` and exit status 3 on a `SourceError`;
- ``{"kind": "stopped", "state": {...}, "drop_counts": {...}}`` after SIGTERM or SIGINT
  cancelled the source (having released the lease, if configured), exit status 0.

``at`` is the wall-clock time of the report, so a test can compare it with the deadlines
in the state (also wall clock) without a clock of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from typing import Any

from dynamic_prefix.protocols.dhcpv6_client import SOL_MAX_DELAY
from dynamic_prefix.sources.base import IdentityStore, SourceError, SourceState
from dynamic_prefix.sources.dhcpv6 import Dhcpv6PdSource
from dynamic_prefix.sources.dhcpv6_identity import FileIdentityStore, InMemoryIdentityStore

ERROR_EXIT_STATUS = 3


def state_json(state: SourceState) -> dict[str, Any]:
    """``state`` as JSON-ready values (deadlines as Unix times, None for infinite)."""
    return {
        "source": state.source,
        "prefix": None if state.prefix is None else str(state.prefix),
        "preferred_until": (
            None if state.preferred_until is None else state.preferred_until.timestamp()
        ),
        "valid_until": None if state.valid_until is None else state.valid_until.timestamp(),
        "origin": state.origin,
        "reason": state.reason,
        "message": state.message,
    }


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def drive(source: Dhcpv6PdSource) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("drive() runs in a task")
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)

    def report(state: SourceState) -> None:
        emit({"kind": "state", "at": time.time(), "state": state_json(state)})

    emit({"kind": "starting", "at": time.time()})
    try:
        await source.run(report)
    except SourceError as exc:
        emit({"kind": "error", "message": str(exc)})
        return ERROR_EXIT_STATUS
    except asyncio.CancelledError:
        emit(
            {
                "kind": "stopped",
                "state": state_json(source.state),
                "drop_counts": dict(source.drop_counts),
            }
        )
        return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interface", required=True)
    parser.add_argument("--prefix-length", type=int, default=56)
    parser.add_argument("--store", help="a FileIdentityStore path; in memory when left out")
    parser.add_argument("--no-release", action="store_true", help="do not release on stop")
    parser.add_argument("--solicit-max-delay", type=float, default=SOL_MAX_DELAY)
    parser.add_argument("--link-local-timeout", type=float, default=10.0)
    parser.add_argument("--log-level", default="INFO", help="for the log on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    store: IdentityStore = (
        InMemoryIdentityStore() if args.store is None else FileIdentityStore(args.store)
    )
    source = Dhcpv6PdSource(
        args.interface,
        requested_prefix_length=args.prefix_length,
        identity_store=store,
        release_on_stop=not args.no_release,
        solicit_max_delay=args.solicit_max_delay,
        link_local_timeout=args.link_local_timeout,
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(drive(source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
