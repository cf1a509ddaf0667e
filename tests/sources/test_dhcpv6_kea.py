"""The DHCPv6 prefix delegation source against a real Kea server (TESTBED.md section 5).

Kea runs in the router namespace of a `Link`; the source runs in the node namespace in
its own process (`dhcpv6_driver.py`, which prints every report as a JSON line, or
`SOURCE_CODE` around it, for a source with defaults, a hint, and SIGUSR1 to release and
stop), since a socket belongs to the namespace its process is in. Kea's short timers
make renew, rebind and expiry happen within seconds; tests wait for reports with
deadlines and assert on the order and the values of what is reported, never on how long
something took.

A few tests at the end need no namespace: the identity stores, the address parsing and
the errors for an interface that does not exist (`InterfaceMissing`) or has no
link-local address.
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv6Network
from pathlib import Path
from typing import Any

import pytest

from dynamic_prefix.protocols.dhcpv6 import (
    HARDWARE_TYPE_ETHERNET,
    DuidLl,
    DuidType,
    Message,
    MessageType,
    build_duid,
    build_message,
)
from dynamic_prefix.sources.base import Dhcpv6Identity, InterfaceMissing, SourceError, SourceState
from dynamic_prefix.sources.dhcpv6 import Dhcpv6PdSource
from dynamic_prefix.sources.dhcpv6_identity import (
    FileIdentityStore,
    InMemoryIdentityStore,
    new_identity,
)
from testbed.kea import Kea, Lease6, PdPool
from testbed.netns import Link, poll_until
from tests.requirements import needs_namespaces, unavailable

DRIVER = Path(__file__).with_name("dhcpv6_driver.py")
FIRST_POOL = PdPool("2001:db8:100::", 40, 56)
SECOND_POOL = PdPool("2001:db8:200::", 40, 56)
# Deadlines for things that happen within a few seconds; generous so a loaded machine
# does not fail a test, which only ever waits as long as it must.
EXCHANGE_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# How far from the valid lifetime's end the loss may be reported: timer slack only.
EXPIRY_TOLERANCE = 0.25

netns = pytest.mark.netns

SOURCE_CODE = """
import asyncio, logging, signal, sys
from ipaddress import IPv6Network
sys.path.insert(0, sys.argv[1])
import dhcpv6_driver
from dynamic_prefix.sources.dhcpv6 import (
    Dhcpv6PdSource, FileIdentityStore, InMemoryIdentityStore,
)
from dynamic_prefix.sources.base import InterfaceMissing

interface, store, hint = sys.argv[2:5]


class Source(Dhcpv6PdSource):
    async def run(self, report):
        try:
            await super().run(report)
        except InterfaceMissing as missing:
            dhcpv6_driver.emit(
                {
                    "kind": "interface-missing",
                    "interface": missing.interface,
                    "drop_counts": dict(self.drop_counts),
                }
            )
            raise


async def main():
    source = Source(
        interface,
        requested_prefix_length=56,
        identity_store=FileIdentityStore(store) if store else InMemoryIdentityStore(),
        hint=IPv6Network(hint) if hint else None,
        solicit_max_delay=0,
    )
    task = asyncio.current_task()

    def release_and_stop():
        source.release_on_stop = True  # what the source manager does for a retired source
        task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, release_and_stop)
    return await dhcpv6_driver.drive(source)


logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
sys.exit(asyncio.run(main()))
"""
"""A `Dhcpv6PdSource` with its defaults (but no Solicit delay) in `dhcpv6_driver`'s JSON
lines, plus an ``interface-missing`` line before an `InterfaceMissing` error. Arguments:
the driver's directory, the interface, a `FileIdentityStore` path or "", a hint or ""."""


# --- Running the source in the node namespace ------------------------------------------


class Driver:
    """One `dhcpv6_driver.py` process: its JSON lines, read with deadlines."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        stdout = self.process.stdout
        if stdout is None:
            raise RuntimeError("the driver's stdout is not a pipe")
        for raw in stdout:
            self._queue.put(json.loads(raw))
        self._queue.put(None)

    def _read_stderr(self) -> None:
        stderr = self.process.stderr
        if stderr is None:
            raise RuntimeError("the driver's stderr is not a pipe")
        for raw in stderr:
            self._stderr.append(raw.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self._stderr[-40:])

    def next_line(
        self, matches: Callable[[dict[str, Any]], bool], *, what: str, timeout: float
    ) -> dict[str, Any]:
        """The next line (after those already taken) that ``matches``; lines skipped on
        the way are kept in `lines` too."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no {what} within {timeout:g} s; seen {self.lines}\n{self.log}"
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._queue.put(None)  # stay at end of file for later calls
                raise AssertionError(
                    f"the driver exited ({self.process.wait()}) before {what}; "
                    f"seen {self.lines}\n{self.log}"
                )
            self.lines.append(line)
            if matches(line):
                return line

    def next_state(
        self,
        matches: Callable[[dict[str, Any]], bool],
        *,
        what: str,
        timeout: float = EXCHANGE_TIMEOUT,
    ) -> dict[str, Any]:
        """The ``state`` of the next reported state that ``matches``."""
        line = self.next_line(
            lambda line: line["kind"] == "state" and matches(line["state"]),
            what=what,
            timeout=timeout,
        )
        state: dict[str, Any] = line["state"]
        return state

    def acquired(self) -> dict[str, Any]:
        """The next LeaseAcquired line."""
        return self.next_line(
            lambda line: line["kind"] == "state" and line["state"]["reason"] == "LeaseAcquired",
            what="LeaseAcquired",
            timeout=EXCHANGE_TIMEOUT,
        )

    def error(self) -> str:
        """The SourceError message the driver exited with."""
        line = self.next_line(
            lambda line: line["kind"] == "error", what="an error", timeout=EXCHANGE_TIMEOUT
        )
        assert self.process.wait(timeout=STOP_TIMEOUT) == 3
        return str(line["message"])

    def stop(self, signum: int = signal.SIGTERM) -> dict[str, Any]:
        """Send ``signum`` (SIGUSR1 to a `SOURCE_CODE` process: release, then stop), then
        wait for the "stopped" line (after the Release, if any)."""
        self.process.send_signal(signum)
        line = self.next_line(
            lambda line: line["kind"] == "stopped", what="stopped", timeout=STOP_TIMEOUT
        )
        assert self.process.wait(timeout=STOP_TIMEOUT) == 0
        return line

    def states_since(self, line: dict[str, Any]) -> list[dict[str, Any]]:
        """The states of the lines seen after ``line`` (by identity)."""
        index = next(i for i, seen in enumerate(self.lines) if seen is line)
        return [seen["state"] for seen in self.lines[index + 1 :] if seen["kind"] == "state"]


StartDriver = Callable[..., Driver]
StartSource = Callable[..., Driver]


@pytest.fixture
def link() -> Iterator[Link]:
    """A router namespace and a node namespace joined by a veth (deleted after the test)."""
    needs_namespaces()
    with Link() as made:
        yield made


@pytest.fixture
def start_kea(link: Link) -> Iterator[Callable[..., Kea]]:
    """Starts Kea on the link with the given timers and pools; stopped after the test."""
    started: list[Kea] = []

    def start(**options: Any) -> Kea:
        kea = Kea(link, **{"pools": [FIRST_POOL], **options})
        kea.start()
        started.append(kea)
        return kea

    yield start
    for kea in started:
        kea.stop()


@pytest.fixture
def start_driver(link: Link, start_kea: Callable[..., Kea]) -> Iterator[StartDriver]:
    """Starts the source in the node namespace; torn down before Kea, so a Release on the
    way out is answered rather than waited for."""
    started: list[Driver] = []

    def start(*options: str, user: int | None = None) -> Driver:
        argv = [sys.executable, "-u", str(DRIVER), "--interface", link.node_ifname]
        argv += ["--solicit-max-delay", "0", *options]
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
        driver = Driver(link.popen_in_node(*argv))
        started.append(driver)
        return driver

    yield start
    stop_drivers(started)


@pytest.fixture
def start_source(link: Link, start_kea: Callable[..., Kea]) -> Iterator[StartSource]:
    """Starts `SOURCE_CODE` in the node namespace; torn down before Kea."""
    started: list[Driver] = []

    def start(*, store: Path | None = None, hint: str = "", interface: str | None = None) -> Driver:
        driver = Driver(
            link.python_in_node(
                SOURCE_CODE,
                str(DRIVER.parent),
                interface or link.node_ifname,
                "" if store is None else str(store),
                hint,
            )
        )
        started.append(driver)
        return driver

    yield start
    stop_drivers(started)


def stop_drivers(started: list[Driver]) -> None:
    for driver in started:
        if driver.process.poll() is None:
            driver.process.send_signal(signal.SIGTERM)
            try:
                driver.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                driver.process.kill()
                driver.process.wait()


def network(state: dict[str, Any]) -> IPv6Network:
    return IPv6Network(state["prefix"])


def server_duid(link: Link) -> str:
    """Kea's server DUID: DUID-LL of the router end's MAC (``server-id`` type LL)."""
    mac = bytes.fromhex(link.router.mac.replace(":", ""))
    return build_duid(DuidLl(HARDWARE_TYPE_ETHERNET, mac)).hex()


def stored_duid(path: Path) -> bytes:
    return bytes.fromhex(json.loads(path.read_text())["duid"])


# --- Against Kea ------------------------------------------------------------------------


@netns
def test_a_56_is_delegated_from_the_pool_and_renewed_with_the_same_prefix(
    link: Link, start_kea: Callable[..., Kea], start_driver: StartDriver, tmp_path: Path
) -> None:
    kea = start_kea(renew=1, rebind=2, preferred=3, valid=4)
    store = tmp_path / "identity.json"
    driver = start_driver("--store", str(store))

    acquired_line = driver.acquired()
    acquired = acquired_line["state"]
    prefix = network(acquired)
    assert prefix.prefixlen == 56
    assert prefix.subnet_of(FIRST_POOL.network)
    assert acquired["source"] == "dhcpv6-pd"
    assert acquired["origin"] == server_duid(link)
    # Lifetimes as configured in Kea, counted from the report.
    assert acquired["preferred_until"] - acquired_line["at"] == pytest.approx(3, abs=0.5)
    assert acquired["valid_until"] - acquired_line["at"] == pytest.approx(4, abs=0.5)
    # Kea holds the binding for the identity that was saved before the first Solicit.
    leases = [lease for lease in kea.leases() if lease.prefix == prefix]
    assert [lease.duid for lease in leases] == [stored_duid(store)]

    renewed = driver.next_state(
        lambda state: state["reason"] == "LeaseRenewed", what="LeaseRenewed"
    )
    assert network(renewed) == prefix
    assert renewed["valid_until"] > acquired["valid_until"]
    reasons = [state["reason"] for state in driver.states_since(acquired_line)]
    assert reasons == ["Renewing", "LeaseRenewed"]


@netns
def test_moving_kea_to_another_pool_is_reported_as_a_prefix_change_at_the_next_renew(
    start_kea: Callable[..., Kea], start_driver: StartDriver
) -> None:
    # What Kea does: it answers the next Renew with a prefix from the new pool and the
    # old prefix with lifetimes 0 (withdrawn), in one Reply; no NoBinding.
    kea = start_kea(renew=1, rebind=2, preferred=3, valid=4)
    driver = start_driver()
    acquired_line = driver.acquired()
    old = network(acquired_line["state"])
    assert old.subnet_of(FIRST_POOL.network)

    kea.reconfigure(pools=[SECOND_POOL])
    changed = driver.next_state(
        lambda state: state["reason"] not in {"Renewing", "LeaseRenewed"},
        what="the report after the reload",
    )

    assert changed["reason"] == "PrefixChanged"
    new = network(changed)
    assert new.prefixlen == 56
    assert new.subnet_of(SECOND_POOL.network)
    assert str(old) in changed["message"]
    # Only renewals of the old prefix came before (one may have raced with the reload).
    before = driver.states_since(acquired_line)[:-1]
    assert all(network(state) == old for state in before)
    poll_until(
        lambda: [lease.prefix for lease in kea.leases()] == [new] or None,
        timeout=EXCHANGE_TIMEOUT,
        what=f"Kea holding only {new}",
    )
    renewing = driver.next_state(lambda state: True, what="the next report")
    assert (renewing["reason"], network(renewing)) == ("Renewing", new)
    renewed = driver.next_state(lambda state: True, what="the report after it")
    assert (renewed["reason"], network(renewed)) == ("LeaseRenewed", new)


@netns
def test_with_kea_gone_the_client_rebinds_and_loses_the_lease_when_its_valid_lifetime_ends(
    start_kea: Callable[..., Kea], start_driver: StartDriver
) -> None:
    kea = start_kea(renew=2, rebind=3, preferred=4, valid=5)
    driver = start_driver()
    acquired_line = driver.acquired()
    prefix = network(acquired_line["state"])

    kea.stop()
    lost_line = driver.next_line(
        lambda line: line["kind"] == "state" and line["state"]["reason"] == "LeaseLost",
        what="LeaseLost",
        timeout=EXCHANGE_TIMEOUT,
    )

    states = [acquired_line["state"], *driver.states_since(acquired_line)]
    reasons = [state["reason"] for state in states]
    # Renewals may have happened before Kea went away; then Renew at T1 goes unanswered,
    # Rebind at T2, and only the end of the valid lifetime loses the lease.
    assert reasons[-3:] == ["Renewing", "Rebinding", "LeaseLost"]
    assert set(reasons[1:-3]) <= {"Renewing", "LeaseRenewed"}
    rebinding = states[-2]
    assert network(rebinding) == prefix
    last_valid_until = states[-3]["valid_until"]
    assert rebinding["valid_until"] == last_valid_until
    assert lost_line["state"]["prefix"] is None
    assert str(prefix) in lost_line["state"]["message"]
    assert "valid-lifetime-expired" in lost_line["state"]["message"]
    assert lost_line["at"] >= last_valid_until - 0.01
    assert lost_line["at"] == pytest.approx(last_valid_until, abs=EXPIRY_TOLERANCE)


@netns
def test_when_another_server_replaces_kea_the_rebind_keeps_the_prefix(
    link: Link, start_kea: Callable[..., Kea], start_driver: StartDriver
) -> None:
    timers = {"renew": 2, "rebind": 4, "preferred": 5, "valid": 6}
    first = start_kea(**timers)
    driver = start_driver()
    acquired_line = driver.acquired()
    prefix = network(acquired_line["state"])

    # A new server (another DUID, no leases) ignores the Renew meant for the old one,
    # but answers the Rebind, which goes to any server.
    first.stop()
    new_mac = "02:00:5e:00:53:01"
    link.run_in_router("ip", "link", "set", link.router_ifname, "address", new_mac)
    start_kea(**timers)
    renewed = driver.next_state(lambda state: state["reason"] == "LeaseRenewed", what="a Reply")

    reasons = [state["reason"] for state in driver.states_since(acquired_line)]
    assert reasons == ["Renewing", "Rebinding", "LeaseRenewed"]
    assert network(renewed) == prefix
    new_duid = build_duid(DuidLl(HARDWARE_TYPE_ETHERNET, bytes.fromhex(new_mac.replace(":", ""))))
    assert renewed["origin"] == new_duid.hex() != acquired_line["state"]["origin"]
    assert renewed["valid_until"] > acquired_line["state"]["valid_until"]


@netns
def test_a_restarted_client_with_its_persisted_identity_gets_the_same_prefix_back(
    link: Link, start_kea: Callable[..., Kea], start_driver: StartDriver, tmp_path: Path
) -> None:
    kea = start_kea()  # long lifetimes: nothing expires during the test
    store = tmp_path / "identity.json"
    first = start_driver("--store", str(store), "--no-release")
    prefix = network(first.acquired()["state"])
    stopped = first.stop()
    assert stopped["state"]["prefix"] == str(prefix)  # kept, not released
    assert prefix in [lease.prefix for lease in kea.leases()]

    # A new node (another MAC) would make another DUID-LL: only the stored one helps.
    link.run_in_node("ip", "link", "set", link.node_ifname, "address", "02:00:5e:00:53:99")
    stranger = start_driver("--no-release")  # a fresh identity, from the new MAC
    other = network(stranger.acquired()["state"])
    stranger.stop()
    assert other != prefix

    restarted = start_driver("--store", str(store))
    assert network(restarted.acquired()["state"]) == prefix
    holders = {lease.prefix: lease.duid for lease in kea.leases()}
    assert holders[prefix] == stored_duid(store)


@netns
def test_stopping_after_release_on_stop_is_set_releases_the_lease_and_kea_forgets_it(
    start_kea: Callable[..., Kea], start_source: StartSource
) -> None:
    kea = start_kea()
    driver = start_source()
    prefix = network(driver.acquired()["state"])
    assert prefix in [lease.prefix for lease in kea.leases()]

    stopped = driver.stop(signal.SIGUSR1)  # release_on_stop = True, then cancel

    assert stopped["state"]["reason"] == "LeaseReleased"
    assert stopped["state"]["prefix"] is None
    assert driver.lines[-2]["state"]["reason"] == "LeaseReleased"  # reported, too
    assert stopped["drop_counts"] == {}  # every answer from Kea was used
    poll_until(
        lambda: prefix not in [lease.prefix for lease in kea.leases()] or None,
        timeout=EXCHANGE_TIMEOUT,
        what=f"Kea to drop {prefix}",
    )
    last = [record for record in kea.lease_records() if record.prefix == prefix][-1]
    assert last.valid_lifetime == 0


def removals(kea: Kea, prefix: IPv6Network) -> list[Lease6]:
    """The rows of Kea's lease file that removed ``prefix`` (a Release, an expiry)."""
    return [record for record in kea.lease_records() if record.prefix == prefix and record.removed]


@netns
def test_stopping_by_default_keeps_the_lease_and_the_same_identity_gets_it_back(
    start_kea: Callable[..., Kea], start_source: StartSource, tmp_path: Path
) -> None:
    kea = start_kea()  # long lifetimes: nothing expires during the test
    store = tmp_path / "identity.json"
    first = start_source(store=store)
    acquired_line = first.acquired()
    prefix = network(acquired_line["state"])

    stopped = first.stop()  # SIGTERM: cancelled with release_on_stop left False

    assert (stopped["state"]["reason"], stopped["state"]["prefix"]) == (
        "LeaseAcquired",
        str(prefix),
    )
    assert first.states_since(acquired_line) == []  # nothing reported on the way out
    restarted = start_source(store=store)
    assert network(restarted.acquired()["state"]) == prefix
    # Kea answered the new Solicit after anything the first source sent: no Release came.
    assert removals(kea, prefix) == []
    assert {lease.prefix: lease.duid for lease in kea.leases()} == {prefix: stored_duid(store)}


@netns
def test_a_hint_asks_kea_for_that_prefix(
    start_kea: Callable[..., Kea], start_source: StartSource
) -> None:
    start_kea()
    hint = IPv6Network("2001:db8:100:4200::/56")  # in FIRST_POOL, and not the first free one
    driver = start_source(hint=str(hint))

    soliciting = driver.next_state(lambda state: state["reason"] == "Soliciting", what="Soliciting")
    acquired = driver.acquired()["state"]

    assert f"soliciting {hint} on" in soliciting["message"]
    assert network(acquired) == hint


@netns
def test_t1_is_reported_as_renewing_with_the_prefix_and_its_deadlines(
    link: Link, start_kea: Callable[..., Kea], start_source: StartSource
) -> None:
    start_kea(renew=1, rebind=2, preferred=3, valid=4)
    driver = start_source()
    acquired_line = driver.acquired()
    acquired = acquired_line["state"]

    renewing = driver.next_state(lambda state: True, what="the report after LeaseAcquired")
    renewed = driver.next_state(lambda state: True, what="the report after Renewing")

    assert renewing["reason"] == "Renewing"
    for field in ("prefix", "preferred_until", "valid_until", "origin"):
        assert renewing[field] == acquired[field], field
    message = renewing["message"]
    assert message.startswith(f"renewing {acquired['prefix']} with {link.router.link_local} ")
    assert "(T1 reached); valid until " in message
    assert (renewed["reason"], renewed["prefix"]) == ("LeaseRenewed", acquired["prefix"])
    assert renewed["valid_until"] > acquired["valid_until"]


@netns
@pytest.mark.parametrize("how", ["deleted", "renamed"])
def test_an_interface_going_away_stops_the_client_without_a_release(
    link: Link,
    start_kea: Callable[..., Kea],
    start_source: StartSource,
    tmp_path: Path,
    how: str,
) -> None:
    kea = start_kea()
    store = tmp_path / "identity.json"
    driver = start_source(store=store)
    acquired_line = driver.acquired()
    prefix = network(acquired_line["state"])

    if how == "deleted":  # the router end goes with it
        link.run_in_node("ip", "link", "del", link.node_ifname)
    else:  # still up, so a Release would reach Kea
        link.run_in_node("ip", "link", "set", link.node_ifname, "name", "vnaway")
    missing = driver.next_line(
        lambda line: line["kind"] == "interface-missing", what="InterfaceMissing", timeout=5
    )
    message = driver.error()

    assert missing["interface"] == link.node_ifname
    assert "send-failed" not in missing["drop_counts"]  # no Release was even tried
    assert message.startswith(f"interface {link.node_ifname} went away (deleted or renamed); ")
    assert f"the server keeps the lease on {prefix} until " in message
    states = driver.states_since(acquired_line)
    assert [(state["reason"], state["prefix"]) for state in states] == [("InterfaceMissing", None)]
    assert states[-1]["message"] == message
    if how == "renamed":  # the same identity on the renamed link: Kea kept the binding
        again = start_source(store=store, interface="vnaway")
        assert network(again.acquired()["state"]) == prefix
    assert removals(kea, prefix) == []
    assert prefix in [lease.prefix for lease in kea.leases()]


@netns
def test_an_interface_going_away_while_waiting_for_its_link_local_is_missing(
    link: Link, start_source: StartSource, tmp_path: Path
) -> None:
    # a veth pair inside the node namespace (this kernel has no dummy links)
    link.run_in_node("ip", "link", "add", "dpd0", "type", "veth", "peer", "name", "dpd1")
    link.run_in_node("ip", "link", "set", "dpd0", "addrgenmode", "none")
    link.run_in_node("ip", "link", "set", "dpd0", "up")  # up, but no link-local address
    store = tmp_path / "identity.json"
    driver = start_source(store=store, interface="dpd0")
    # The identity is saved just before the wait for a link-local address begins.
    poll_until(lambda: store.exists() or None, timeout=EXCHANGE_TIMEOUT, what="the identity")

    link.run_in_node("ip", "link", "del", "dpd0")
    missing = driver.next_line(
        lambda line: line["kind"] == "interface-missing", what="InterfaceMissing", timeout=5
    )

    assert missing["interface"] == "dpd0"
    assert driver.error().startswith("interface dpd0 went away (deleted or renamed); ")


@netns
def test_a_reconfigure_from_the_link_is_dropped_and_counted(
    link: Link, start_kea: Callable[..., Kea], start_driver: StartDriver
) -> None:
    start_kea(renew=1, rebind=2, preferred=3, valid=4)
    driver = start_driver()
    acquired_line = driver.acquired()
    reconfigure = build_message(Message(MessageType.RECONFIGURE, 0, ()))
    sender = link.python_in_router(
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        "scope = socket.if_nametoindex(sys.argv[3])\n"
        "s.sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], 546, 0, scope))\n",
        reconfigure.hex(),
        str(link.node.link_local),
        link.router_ifname,
    )
    assert sender.wait(timeout=STOP_TIMEOUT) == 0
    # The second renewal began after the Reconfigure was queued on the client's socket.
    for _ in range(2):
        driver.next_state(lambda state: state["reason"] == "LeaseRenewed", what="LeaseRenewed")

    stopped = driver.stop()

    assert stopped["drop_counts"] == {"reconfigure-ignored": 1}
    assert {state["prefix"] for state in driver.states_since(acquired_line)[:-1]} == {
        acquired_line["state"]["prefix"]
    }


@netns
def test_port_546_in_use_is_a_clear_error(link: Link, start_driver: StartDriver) -> None:
    holder = link.python_in_node(
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        "s.bind(('::', 546))\n"
        "print('bound', flush=True)\n"
        "time.sleep(60)\n"
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"bound\n"

    message = start_driver().error()

    assert "port 546" in message
    assert "in use" in message
    assert "another DHCPv6 client (dhcpcd, systemd-networkd, NetworkManager)" in message


@netns
def test_binding_port_546_without_privilege_is_a_clear_error(start_driver: StartDriver) -> None:
    if shutil.which("setpriv") is None:
        unavailable("util-linux's setpriv is needed to drop root")
    message = start_driver(user=65534).error()  # nobody, no capabilities

    assert "needs root or CAP_NET" in message


# --- Without namespaces -----------------------------------------------------------------


def never_report(state: SourceState) -> None:
    raise AssertionError(f"reported {state} though it cannot start")


async def test_an_interface_that_does_not_exist_is_missing_to_wait_for() -> None:
    store = InMemoryIdentityStore()
    source = Dhcpv6PdSource("nosuch0", requested_prefix_length=56, identity_store=store)

    with pytest.raises(InterfaceMissing) as raised:
        await source.run(never_report)

    assert raised.value.interface == "nosuch0"
    assert str(raised.value).startswith(
        "interface nosuch0 does not exist on this node yet; the DHCPv6-PD client starts when "
        "it appears"
    )
    assert store.identity is None  # nothing created for an interface that is not there


async def test_an_interface_without_a_link_local_address_is_a_clear_error_after_waiting() -> None:
    store = InMemoryIdentityStore()
    source = Dhcpv6PdSource(
        "lo", requested_prefix_length=56, identity_store=store, link_local_timeout=0.2
    )

    with pytest.raises(SourceError, match=r"lo has no usable IPv6 link-local address after 0\.2 s"):
        await source.run(never_report)
    assert store.identity is not None  # created and saved before anything else


async def test_a_stored_identity_is_used_rather_than_a_new_one() -> None:
    stored = Dhcpv6Identity(duid=bytes.fromhex("00040123456789abcdef0123456789abcdef"), iaid=7)
    store = InMemoryIdentityStore(stored)
    source = Dhcpv6PdSource(
        "lo", requested_prefix_length=56, identity_store=store, link_local_timeout=0
    )

    with pytest.raises(SourceError):
        await source.run(never_report)
    assert (source.identity, store.saves) == (stored, 0)


async def test_an_unusable_stored_identity_is_a_clear_error() -> None:
    store = InMemoryIdentityStore(Dhcpv6Identity(duid=b"\x00", iaid=1))
    source = Dhcpv6PdSource("lo", requested_prefix_length=56, identity_store=store)

    with pytest.raises(SourceError, match="stored DHCPv6 identity is not usable"):
        await source.run(never_report)


async def test_the_file_store_round_trips_and_starts_empty(tmp_path: Path) -> None:
    store = FileIdentityStore(tmp_path / "sub" / "identity.json")
    identity = Dhcpv6Identity(duid=bytes.fromhex("00030001020000000001"), iaid=0xFFFFFFFF)

    assert await store.load() is None
    await store.save(identity)

    assert await FileIdentityStore(store.path).load() == identity
    assert json.loads(store.path.read_text()) == {
        "duid": "00030001020000000001",
        "iaid": 4294967295,
    }
    assert [path.name for path in store.path.parent.iterdir()] == ["identity.json"]


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"duid": "zz", "iaid": 1}', '{"duid": "0003"}', '{"duid": "00", "iaid": "1"}'],
)
async def test_a_damaged_identity_file_is_an_error_not_a_new_identity(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "identity.json"
    path.write_text(text)

    with pytest.raises(SourceError, match="is not valid"):
        await FileIdentityStore(path).load()


def test_a_new_identity_is_the_duid_ll_of_the_mac_and_an_iaid_from_the_name() -> None:
    mac = bytes.fromhex("020000000001")

    identity = new_identity("eth0", hardware_type=1, link_layer_address=mac)

    assert identity.duid == bytes.fromhex("00030001020000000001")
    assert identity == new_identity("eth0", hardware_type=1, link_layer_address=mac)
    assert identity.iaid != new_identity("eth1", hardware_type=1, link_layer_address=mac).iaid


@pytest.mark.parametrize(
    ("hardware_type", "address"), [(65534, b""), (1, b""), (1, bytes(6)), (772, bytes(6))]
)
def test_an_interface_without_an_ethernet_address_gets_a_random_duid_uuid(
    hardware_type: int, address: bytes
) -> None:
    identity = new_identity("wg0", hardware_type=hardware_type, link_layer_address=address)

    assert identity.duid[:2] == DuidType.UUID.to_bytes(2, "big")
    assert len(identity.duid) == 18


def test_before_running_the_state_is_starting_without_a_prefix() -> None:
    source = Dhcpv6PdSource(
        "eth0", requested_prefix_length=56, identity_store=InMemoryIdentityStore()
    )

    assert (source.name, source.state.source) == ("dhcpv6-pd", "dhcpv6-pd")
    assert (source.state.prefix, source.state.reason) == (None, "Starting")
    assert source.identity is None
    assert source.drop_counts == {}
