"""A small competing DHCPv6-PD client for tests: the project's own sans-IO `PdClient`
(``dynamic_prefix.protocols.dhcpv6_client``) on a UDP socket, in a process of its own.

Run it in a namespace, e.g. on the node end of a test `Link`::

    ip netns exec NS python -m testbed.pd_client --interface vn \\
        [--duid 00030001020000000001] [--iaid 7] [--prefix-length 56] [--hint PREFIX] \\
        [--address fe80::c1] [--release-on-stop] [--solicit-delay 0]

It solicits one IA_PD with its own DUID (a random DUID-LL unless given) and IAID, takes
the prefix delegated, renews and rebinds it as the server's timers say, and prints one
JSON object per line on stdout, flushed, for each thing that happens::

    {"event": "ready", "interface": "vn", "address": "fe80::...", "duid": "...", "iaid": 7}
    {"event": "acquired", "prefix": "2001:db8:100:f00::/56", "preferred": 30, "valid": 40,
     "t1": 10, "t2": 20, "server_id": "000100013..."}
    {"event": "renewing", ...}  {"event": "renewed", ...}  {"event": "changed", "old": ...}
    {"event": "rebinding", ...} {"event": "lost", ...} {"event": "no-prefix", ...}
    {"event": "timed-out", ...} {"event": "dropped", ...} {"event": "releasing", ...}
    {"event": "stopped", "release_acknowledged": null}

Lifetimes and timers are seconds from when the Reply arrived, null for infinity. It
keeps the lease until SIGTERM or SIGINT, then stops without a Release, so the server keeps
the binding (as the operator does on a restart); with ``--release-on-stop`` it releases
first and waits up to ``--release-timeout`` seconds for the server's Reply.

Port 546 on an address can be bound once: a second client on the same interface needs an
address of its own (``--address``, an address already on the interface). From Python,
`PdClientProcess` runs the client on the node end of a `Link`, adds such an address when
asked (and removes it again), and turns the lines back into values.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final, Self

from dynamic_prefix.link.interfaces import parse_if_inet6, usable_link_local
from dynamic_prefix.protocols.dhcpv6 import HARDWARE_TYPE_ETHERNET, DuidLl, build_duid
from dynamic_prefix.protocols.dhcpv6_client import (
    ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
    CLIENT_PORT,
    SERVER_PORT,
    BindingRejected,
    ClientEvent,
    ClientState,
    ClientStopped,
    DelegationChanged,
    ExchangeTimedOut,
    LeaseAcquired,
    LeaseLost,
    LeaseReleased,
    LeaseRenewed,
    MessageDropped,
    NoPrefixAvailable,
    PdClient,
    PdClientConfig,
    RebindStarted,
    RenewStarted,
)
from testbed.lifecycle import Lifecycle, terminate
from testbed.netns import Link, TestbedError, poll_until, tail

log = logging.getLogger(__name__)

MODULE: Final = "testbed.pd_client"
"""What to pass to ``python -m``."""
DEFAULT_RELEASE_TIMEOUT: Final = 2.0
_LINK_LOCAL_TIMEOUT = 10.0
_POLL = 0.05
_MAX_DATAGRAM = 65535
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
_PROC_IF_INET6 = "/proc/net/if_inet6"
_BOUND_EVENTS = frozenset({"acquired", "renewed", "changed"})

JsonObject = dict[str, Any]


class PdClientError(TestbedError):
    """The competing client could not start, died, or did not get what was awaited."""


def random_duid(rng: Callable[[], float] = random.random) -> bytes:
    """A DUID-LL (RFC 8415 section 11.4) of a random, locally administered unicast MAC."""
    octets = bytearray(int(rng() * 256) & 0xFF for _ in range(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return build_duid(DuidLl(HARDWARE_TYPE_ETHERNET, bytes(octets)))


# -- the client process ----------------------------------------------------------------------


def _seconds(deadline: float, now: float) -> int | None:
    return None if math.isinf(deadline) else round(deadline - now)


class _Runner:
    """The socket loop around one `PdClient`: bytes in and out, one timer, JSON lines out."""

    def __init__(
        self,
        *,
        interface: str,
        address: IPv6Address,
        client: PdClient,
        release_on_stop: bool,
        release_timeout: float,
        out: IO[str],
    ) -> None:
        self.interface = interface
        self.client = client
        self.release_on_stop = release_on_stop
        self.release_timeout = release_timeout
        self.out = out
        self.ifindex = socket.if_nametoindex(interface)
        self.stopping = False
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, interface.encode())
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        self.sock.bind((str(address), CLIENT_PORT, 0, self.ifindex))
        self.wake_read, self.wake_write = socket.socketpair()
        self.wake_read.setblocking(False)
        self.wake_write.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ)
        self.selector.register(self.wake_read, selectors.EVENT_READ)

    def close(self) -> None:
        self.selector.close()
        for sock in (self.sock, self.wake_read, self.wake_write):
            sock.close()

    def emit(self, record: JsonObject) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        with contextlib.suppress(OSError):
            self.wake_write.send(b"\0")

    def run(self) -> None:
        now = time.monotonic()
        self.client.start(now)
        self.pump(now)
        while not self.stopping:
            self.step(end=math.inf)
        now = time.monotonic()
        self.client.stop(now, release=self.release_on_stop)
        self.pump(now)
        end = now + self.release_timeout
        while self.client.state is ClientState.RELEASING and time.monotonic() < end:
            self.step(end=end)
        if self.client.state is ClientState.RELEASING:
            self.emit({"event": "stopped", "release_acknowledged": False})

    def step(self, *, end: float) -> None:
        """Wait for a datagram, a signal, the client's next deadline or `end`; act on it."""
        deadline = self.client.next_deadline()
        wake_at = min(end, math.inf if deadline is None else deadline)
        timeout = None if math.isinf(wake_at) else max(0.0, wake_at - time.monotonic())
        for key, _ in self.selector.select(timeout):
            if key.fileobj is self.wake_read:
                with contextlib.suppress(BlockingIOError):
                    self.wake_read.recv(64)
            else:
                self.receive()
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            self.client.advance(now)
        self.pump(now)

    def receive(self) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            now = time.monotonic()
            self.client.receive(data, now)
            self.pump(now)

    def pump(self, now: float) -> None:
        destination = (str(ALL_DHCP_RELAY_AGENTS_AND_SERVERS), SERVER_PORT, 0, self.ifindex)
        for datagram in self.client.datagrams_to_send():
            try:
                self.sock.sendto(datagram, destination)
            except OSError as exc:
                self.emit({"event": "send-failed", "error": str(exc)})
        for event in self.client.next_events():
            self.emit(self.describe(event, now))

    def describe(self, event: ClientEvent, now: float) -> JsonObject:
        match event:
            case LeaseAcquired() | LeaseRenewed() | DelegationChanged():
                name = {LeaseAcquired: "acquired", LeaseRenewed: "renewed"}.get(
                    type(event), "changed"
                )
                prefix = event.new if isinstance(event, DelegationChanged) else event.prefix
                record: JsonObject = {"event": name, "prefix": str(prefix)}
                if isinstance(event, DelegationChanged):
                    record["old"] = str(event.old)
                lease = self.client.lease
                record |= {
                    "preferred": _seconds(event.preferred_until, now),
                    "valid": _seconds(event.valid_until, now),
                    "t1": None if lease is None else _seconds(lease.renew_at, now),
                    "t2": None if lease is None else _seconds(lease.rebind_at, now),
                    "server_id": event.server_id.hex(),
                }
                return record
            case RenewStarted(prefix=prefix, server_id=server_id):
                return {"event": "renewing", "prefix": str(prefix), "server_id": server_id.hex()}
            case RebindStarted(prefix=prefix):
                return {"event": "rebinding", "prefix": str(prefix)}
            case LeaseLost(prefix=prefix, reason=reason):
                return {"event": "lost", "prefix": str(prefix), "reason": str(reason)}
            case LeaseReleased(prefix=prefix, server_id=server_id):
                return {"event": "releasing", "prefix": str(prefix), "server_id": server_id.hex()}
            case BindingRejected(prefix=prefix, message=message):
                return {"event": "binding-rejected", "prefix": str(prefix), "message": message}
            case NoPrefixAvailable(message=message, retry_at=retry_at):
                return {"event": "no-prefix", "message": message, "retry_in": retry_at - now}
            case ExchangeTimedOut(message_type=kind, transmissions=sent):
                return {"event": "timed-out", "message_type": kind.name, "transmissions": sent}
            case MessageDropped(reason=reason, detail=detail):
                return {"event": "dropped", "reason": str(reason), "detail": detail}
            case ClientStopped(release_acknowledged=acknowledged):
                return {"event": "stopped", "release_acknowledged": acknowledged}


def _link_local(interface: str, timeout: float) -> IPv6Address:
    ifindex = socket.if_nametoindex(interface)
    deadline = time.monotonic() + timeout
    while True:
        with open(_PROC_IF_INET6) as file:
            address = usable_link_local(parse_if_inet6(file.read()), ifindex)
        if address is not None:
            return address
        if time.monotonic() > deadline:
            raise OSError(f"{interface} has no usable link-local address after {timeout:g} s")
        time.sleep(_POLL)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.pd_client",
        description="A DHCPv6-PD client for tests: prints what it is delegated as JSON lines.",
    )
    parser.add_argument("--interface", required=True, help="the interface to solicit on")
    parser.add_argument("--duid", type=bytes.fromhex, help="hex; default: a random DUID-LL")
    parser.add_argument("--iaid", type=int, default=1, help="IAID of the IA_PD (default 1)")
    parser.add_argument("--prefix-length", type=int, help="prefix length to hint at")
    parser.add_argument("--hint", type=IPv6Network, help="prefix to ask for")
    parser.add_argument("--address", type=IPv6Address, help="source address (default: LLA)")
    parser.add_argument("--release-on-stop", action="store_true", help="Release on SIGTERM")
    parser.add_argument("--release-timeout", type=float, default=DEFAULT_RELEASE_TIMEOUT)
    parser.add_argument("--solicit-delay", type=float, default=0.0, help="SOL_MAX_DELAY")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the client until SIGTERM or SIGINT; see the module docstring."""
    args = _arguments(argv)
    out = sys.stdout
    try:
        config = PdClientConfig(
            duid=args.duid if args.duid is not None else random_duid(),
            iaid=args.iaid,
            rng=random.random,
            requested_prefix_length=args.prefix_length,
            hint=args.hint,
            solicit_max_delay=args.solicit_delay,
        )
        address = args.address or _link_local(args.interface, _LINK_LOCAL_TIMEOUT)
        runner = _Runner(
            interface=args.interface,
            address=address,
            client=PdClient(config),
            release_on_stop=args.release_on_stop,
            release_timeout=args.release_timeout,
            out=out,
        )
    except (OSError, ValueError) as exc:
        out.write(json.dumps({"event": "error", "message": str(exc)}) + "\n")
        out.flush()
        print(f"pd_client: {exc}", file=sys.stderr)
        return 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, runner.on_signal)
        runner.emit(
            {
                "event": "ready",
                "interface": args.interface,
                "address": str(address),
                "duid": config.duid.hex(),
                "iaid": config.iaid,
            }
        )
        runner.run()
    finally:
        runner.close()
    return 0


# -- driving it from a test ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObtainedLease:
    """What the client was last delegated, as it reported it (seconds; None: infinity)."""

    prefix: IPv6Network
    preferred: int | None
    valid: int | None
    t1: int | None
    t2: int | None
    server_id: bytes

    @classmethod
    def from_record(cls, record: JsonObject) -> ObtainedLease:
        return cls(
            prefix=IPv6Network(record["prefix"]),
            preferred=record["preferred"],
            valid=record["valid"],
            t1=record["t1"],
            t2=record["t2"],
            server_id=bytes.fromhex(record["server_id"]),
        )


class PdClientProcess(Lifecycle):
    """The competing client running on the node end of `link`, started and stopped here.

    start() returns once the client's socket is bound (its ``ready`` line), then
    `wait_for_lease` waits for a delegation. stop() sends SIGTERM: the client stops
    without a Release unless `release_on_stop`, in which case stop() returns after the
    Release exchange (see `release_acknowledged`). With `address`, the client binds that
    address, added to the node end (``nodad``) if it is not there and removed on stop, so
    that several clients can run on one interface.
    """

    def __init__(
        self,
        link: Link,
        *,
        duid: bytes | None = None,
        iaid: int = 1,
        prefix_length: int | None = None,
        hint: IPv6Network | str | None = None,
        address: IPv6Address | str | None = None,
        release_on_stop: bool = False,
        release_timeout: float = DEFAULT_RELEASE_TIMEOUT,
        timeout: float = 10.0,
    ) -> None:
        self.link = link
        self.duid = random_duid() if duid is None else duid
        self.iaid = iaid
        self.release_on_stop = release_on_stop
        self._prefix_length = prefix_length
        self._hint = None if hint is None else IPv6Network(hint)
        self._address = None if address is None else IPv6Address(address)
        self._release_timeout = release_timeout
        self._timeout = timeout
        PdClientConfig(duid=self.duid, iaid=iaid, rng=random.random, hint=self._hint)
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._reader: threading.Thread | None = None
        self._records: list[JsonObject] = []
        self._lock = threading.Lock()
        self._address_added = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._process is not None:
            raise PdClientError("this client is already started")
        return super().start()

    def _start(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="dynamic-prefix-pd-client-"))
        self._add_address()
        with self._stderr_path().open("wb") as stderr:  # the child keeps its own descriptor
            self._process = self.link.popen_in_node(
                *self._argv(), stdout=subprocess.PIPE, stderr=stderr
            )
        self._reader = threading.Thread(
            target=self._read, args=(self._process,), name="pd_client reader", daemon=True
        )
        self._reader.start()
        self._await(lambda records: self._find(records, {"ready"}), "its socket bound")

    def _stop(self) -> None:
        """SIGTERM the client (after its Release, if asked, it exits); remove the address."""
        if self._process is not None:
            grace = self._release_timeout + 3.0
            terminate(self._process, name="pd_client", grace=grace)
            if self._reader is not None:
                self._reader.join(timeout=grace)
            if self._process.stdout is not None:
                self._process.stdout.close()
        if self._address_added and self._address is not None:
            ifname = self.link.node.ifname
            self.link.run_in_node(
                "ip", "addr", "del", f"{self._address}/64", "dev", ifname, check=False
            )
            self._address_added = False
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- access ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self._process is None:
            raise PdClientError("the client is not running")
        return self._process.pid

    @property
    def records(self) -> list[JsonObject]:
        """Every JSON line the client has printed so far, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def lease(self) -> ObtainedLease | None:
        """The latest delegation the client reported (acquired, renewed or changed)."""
        found = [r for r in self.records if r.get("event") in _BOUND_EVENTS]
        return ObtainedLease.from_record(found[-1]) if found else None

    @property
    def prefix(self) -> IPv6Network | None:
        lease = self.lease
        return None if lease is None else lease.prefix

    @property
    def release_acknowledged(self) -> bool | None:
        """From the client's last line: True if the server answered its Release, False if
        not, None if nothing was released (or the client has not stopped)."""
        stopped = self._find(self.records, {"stopped"})
        return None if stopped is None else stopped.get("release_acknowledged")

    def wait_for_lease(self, *, timeout: float | None = None) -> ObtainedLease:
        """Wait until the client reports a delegated prefix; return it."""
        record = self._await(
            lambda records: self._find(records, _BOUND_EVENTS), "a delegated prefix", timeout
        )
        return ObtainedLease.from_record(record)

    def wait_for_event(self, event: str, *, timeout: float | None = None) -> JsonObject:
        """Wait until the client prints a line with this ``event``; return the latest."""
        return self._await(lambda records: self._find(records, {event}), event, timeout)

    # -- internals -------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        argv = [
            *(sys.executable, "-u", "-m", MODULE),
            *("--interface", self.link.node.ifname),
            *("--duid", self.duid.hex(), "--iaid", str(self.iaid)),
            *("--release-timeout", repr(self._release_timeout)),
        ]
        if self._prefix_length is not None:
            argv += ["--prefix-length", str(self._prefix_length)]
        if self._hint is not None:
            argv += ["--hint", str(self._hint)]
        if self._address is not None:
            argv += ["--address", str(self._address)]
        if self.release_on_stop:
            argv.append("--release-on-stop")
        return argv

    def _add_address(self) -> None:
        if self._address is None:
            return
        node = self.link.node
        if any(info.address == self._address for info in self.link.addresses(node, scope=None)):
            return
        self.link.run_in_node(
            "ip", "addr", "add", f"{self._address}/64", "dev", node.ifname, "nodad"
        )
        self._address_added = True

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        if process.stdout is None:  # not started with stdout=PIPE
            return
        for raw in process.stdout:
            try:
                record = json.loads(raw)
            except ValueError:
                record = {"event": "unparsed", "line": raw.decode(errors="replace")}
            with self._lock:
                self._records.append(record)

    @staticmethod
    def _find(records: list[JsonObject], events: frozenset[str] | set[str]) -> JsonObject | None:
        return next((r for r in reversed(records) if r.get("event") in events), None)

    def _alive(self) -> None:
        process = self._process
        if process is None:
            raise PdClientError("the client is not running")
        if process.poll() is not None:
            raise PdClientError(
                f"pd_client exited with status {process.returncode}: {self._stderr_text()}"
            )

    def _stderr_path(self) -> Path:
        if self._workdir is None:
            raise PdClientError("the client is not running")
        return self._workdir / "stderr.log"

    def _stderr_text(self) -> str:
        path = self._stderr_path()
        return tail(path.read_text(errors="replace")) if path.exists() else ""

    def _await(
        self,
        probe: Callable[[list[JsonObject]], JsonObject | None],
        what: str,
        timeout: float | None = None,
    ) -> JsonObject:
        try:
            return poll_until(
                lambda: probe(self.records),
                timeout=self._timeout if timeout is None else timeout,
                what=f"pd_client: {what}",
                alive=self._alive,
            )
        except PdClientError:
            raise
        except TestbedError as err:
            raise PdClientError(f"{err}; it printed: {self.records}") from err


if __name__ == "__main__":
    sys.exit(main())
