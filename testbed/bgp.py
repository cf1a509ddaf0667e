"""BGP on a test `Link`: the home router (FRR or BIRD 2) and a stand-in for the cluster.

The operator writes pools; the cluster's BGP speaker (Cilium, MetalLB, Calico) announces
them; the home router must accept exactly the subnets of its delegated prefix that carry
the operator's community. The router configurations the README documents
(docs/router/frr.conf, docs/router/bird.conf) are only worth documenting if a real router
accepts what it should and nothing else, so these classes run real daemons:

- `FrrRouter`: zebra + bgpd in the router namespace, started with an frr.conf text.
- `BirdRouter`: BIRD 2 in the router namespace, started with a bird.conf text.
- `BirdSpeaker`: BIRD 2 on the node side, announcing given prefixes with given
  communities as the cluster's speaker would (AS 65001), and able to change them.

Both routers answer the same questions (`BgpRouter`): is the session Established, which
routes did the router accept from the cluster, which did it receive and filter out, what
does it announce back, and what did it install in the router namespace's kernel table.

The link gets the ULA addresses the documented configs name (`ROUTER_ADDRESS` on the
router end, `SPEAKER_ADDRESS` on the node end), added on start and removed on stop, so
the configs run verbatim: nothing in them is substituted. Each instance has a temporary
directory of its own for config, sockets, pid files and logs, so several instances (two
BIRDs in two namespaces) never share a file; processes are stopped by PID.
See ../shared/TESTBED.md section 6.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any, Final, Literal, Self, TypeVar

from testbed.lifecycle import Lifecycle, terminate
from testbed.netns import (
    CommandError,
    Link,
    TestbedError,
    TestbedTimeoutError,
    in_namespace,
    poll_until,
    run_command,
    tail,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

ROUTER_ADDRESS: Final = IPv6Interface("fd12:3456:789a:1::1/64")
"""The home router's LAN address the documented configs peer from (a ULA: it survives
renumbering, unlike an address in the ISP's prefix)."""
SPEAKER_ADDRESS: Final = IPv6Interface("fd12:3456:789a:1::10/64")
"""The node running the cluster's BGP speaker, as the documented configs name it."""
ROUTER_AS: Final = 65000
CLUSTER_AS: Final = 65001
SPEAKER_ROUTER_ID: Final = "192.168.1.10"
BIRD_PROTOCOL: Final = "kubernetes"
"""The name of the BGP protocol towards the cluster in docs/router/bird.conf."""

FRR_DIR: Final = Path("/usr/lib/frr")
FRR_USER: Final = "frr"
_FRR_CRASHLOG_DIR = Path("/var/tmp/frr")  # FRR keeps <daemon>.<pid>/ here while running

_STARTUP_TIMEOUT = 15.0
_SESSION_TIMEOUT = 30.0
_QUERY_INTERVAL = 0.05  # each poll runs vtysh or birdc: not every 10 ms
_ROUTE_LINE = re.compile(r"^([0-9A-Fa-f:.]+/\d+)\s")

Side = Literal["router", "node"]


class BgpError(TestbedError):
    """A BGP daemon refused its configuration, did not start, died, or could not be asked."""


def as_network(value: IPv6Network | str) -> IPv6Network:
    """`value` as a network; a bare address is a /128, ``default`` is ``::/0`` (as `ip` says)."""
    if isinstance(value, IPv6Network):
        return value
    if value == "default":
        return IPv6Network("::/0")
    return IPv6Network(value if "/" in value else f"{value}/128")


def _networks(values: Iterable[IPv6Network | str]) -> set[IPv6Network]:
    return {as_network(value) for value in values}


def _community(text: str) -> tuple[int, ...]:
    """``"65001:42"`` (standard, two 16-bit parts) or ``"65001:1:2"`` (large, three 32-bit)."""
    parts = text.split(":")
    limit = {2: 0xFFFF, 3: 0xFFFF_FFFF}.get(len(parts))
    if limit is None or not all(part.isdigit() for part in parts):
        raise ValueError(f"not a community (ASN:VALUE or ASN:V1:V2): {text!r}")
    numbers = tuple(int(part) for part in parts)
    if any(number > limit for number in numbers):
        raise ValueError(f"community {text!r}: each part is at most {limit}")
    return numbers


@dataclass(frozen=True, slots=True)
class Announcement:
    """One route the speaker announces, with its communities (``"65001:42"``; three parts
    for a large community)."""

    prefix: IPv6Network | str
    communities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        as_network(self.prefix)  # raises ValueError early for a malformed prefix
        for community in self.communities:
            _community(community)

    @property
    def network(self) -> IPv6Network:
        return as_network(self.prefix)

    def bird_route(self) -> str:
        """The route as a BIRD static route: unreachable locally, attributes attached."""
        statements = []
        for community in self.communities:
            numbers = _community(community)
            attribute = "bgp_community" if len(numbers) == 2 else "bgp_large_community"
            statements.append(f"{attribute}.add(({', '.join(map(str, numbers))}));")
        block = f" {{ {' '.join(statements)} }}" if statements else ""
        return f"\troute {self.network} unreachable{block};\n"


def announce(prefix: IPv6Network | str, *communities: str) -> Announcement:
    """Shorthand: ``announce("2001:db8:100:ff::/64", "65001:42")``."""
    return Announcement(prefix, tuple(communities))


# -- what every daemon here shares ------------------------------------------------------------


class _BgpDaemon(Lifecycle):
    """A daemon (or two) on one side of `link`: a work directory, the side's address, logs,
    processes stopped by PID, and polling that notices at once when a daemon dies."""

    _name = "bgp"

    def __init__(
        self,
        link: Link,
        *,
        side: Side,
        address: IPv6Interface | str | None,
        startup_timeout: float = _STARTUP_TIMEOUT,
        session_timeout: float = _SESSION_TIMEOUT,
    ) -> None:
        self.link = link
        self.side: Side = side
        self.address = None if address is None else IPv6Interface(address)
        self.startup_timeout = startup_timeout
        self.session_timeout = session_timeout
        self._workdir: Path | None = None
        self._processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._address_added = False
        self._launched_at: float | None = None
        self.established_seconds: float | None = None
        """From launching the daemon to the session first seen Established."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._workdir is not None:
            raise BgpError(f"this {self._name} is already started")
        return super().start()

    def _start(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix=f"dynamic-prefix-{self._name}-"))
        self._add_address()
        self._launched_at = time.monotonic()
        self._launch()

    @abstractmethod
    def _launch(self) -> None:
        """Start the daemon(s) and return once they answer queries."""

    def _stop(self) -> None:
        for name, process, _ in reversed(self._processes):
            terminate(process, name=name)
        self._processes.clear()
        self._remove_address()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- the side's address ------------------------------------------------------------------

    @property
    def namespace(self) -> str | None:
        """The network namespace the daemon runs in (None: the root namespace)."""
        return self.link.router_namespace if self.side == "router" else self.link.node_namespace

    @property
    def ifname(self) -> str:
        return self.link.router_ifname if self.side == "router" else self.link.node_ifname

    def _has_address(self, address: IPv6Interface) -> bool:
        endpoint = self.link.router if self.side == "router" else self.link.node
        return any(info.interface == address for info in self.link.addresses(endpoint))

    def _add_address(self) -> None:
        if self.address is None or self._has_address(self.address):
            return  # someone else's: left alone on stop
        self.run("ip", "-6", "addr", "add", str(self.address), "dev", self.ifname, "nodad")
        self._address_added = True

    def _remove_address(self) -> None:
        if self._address_added and self.address is not None:
            argv = ("ip", "-6", "addr", "del", str(self.address), "dev", self.ifname)
            self.run(*argv, check=False)  # gone already if the link went first
            self._address_added = False

    # -- processes ---------------------------------------------------------------------------

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command to completion in this daemon's namespace."""
        try:
            return run_command(in_namespace(self.namespace, argv), check=check)
        except CommandError as err:
            raise BgpError(str(err)) from err

    def _spawn(self, name: str, argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
        popen = self.link.popen_in_router if self.side == "router" else self.link.popen_in_node
        with log_path.open("ab") as log_file:  # the child keeps its own descriptor
            process = popen(*argv, stdout=log_file, stderr=subprocess.STDOUT)
        self._processes.append((name, process, log_path))
        return process

    @property
    def workdir(self) -> Path | None:
        """The directory of this instance's config, sockets, pid files and logs (None when
        stopped: it is removed on stop)."""
        return self._workdir

    @property
    def pids(self) -> dict[str, int]:
        """The PID of each daemon process, by name."""
        return {name: process.pid for name, process, _ in self._processes}

    def log_text(self) -> str:
        """Every daemon's log so far, one after the other."""
        return "".join(
            f"== {name}\n{path.read_text(errors='replace')}"
            for name, _, path in self._processes
            if path.exists()
        )

    def _dir(self) -> Path:
        if self._workdir is None:
            raise BgpError(f"{self._name} is not running")
        return self._workdir

    def _alive(self) -> None:
        for name, process, path in self._processes:
            if process.poll() is not None:
                text = path.read_text(errors="replace") if path.exists() else ""
                raise BgpError(
                    f"{name} (pid {process.pid}) exited with status {process.returncode}; "
                    f"last lines of its log:\n{tail(text)}"
                )

    # -- waiting -----------------------------------------------------------------------------

    def wait_for(
        self,
        probe: Callable[[], _T | None],
        *,
        what: str,
        timeout: float | None = None,
        state: Callable[[], object] | None = None,
    ) -> _T:
        """Poll `probe` until it returns something other than None; fail at once if a daemon
        dies. On timeout the error shows `state()` (what was seen last) and the logs."""
        try:
            return poll_until(
                probe,
                timeout=self.session_timeout if timeout is None else timeout,
                what=what,
                alive=self._alive,
                interval=_QUERY_INTERVAL,
            )
        except TestbedTimeoutError as err:
            seen = "" if state is None else f"; last seen: {state()!r}"
            raise BgpError(f"{err}{seen}; logs:\n{tail(self.log_text(), 40)}") from err

    @abstractmethod
    def established(self) -> bool:
        """Whether the BGP session to the other side is Established now."""

    def wait_established(self, *, timeout: float | None = None) -> float:
        """Wait until the session is Established; return the seconds since launch."""
        self.wait_for(
            lambda: True if self.established() else None,
            what=f"{self._name}'s BGP session Established",
            timeout=timeout,
        )
        seconds = time.monotonic() - (self._launched_at or time.monotonic())
        if self.established_seconds is None:
            self.established_seconds = seconds
            log.info("%s: session Established %.3f s after launch", self._name, seconds)
        return seconds


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BgpError(f"{what}: not JSON: {text[:500]!r}") from err


# -- BIRD ----------------------------------------------------------------------------------------


class _Bird:
    """One BIRD 2 process: config, control socket, pid file and log in a directory of its own.

    Run with ``-d``: in the foreground, logging to stderr (here, a file) without a ``log``
    line in the config, so a documented config runs as it is.
    """

    def __init__(self, daemon: _BgpDaemon, workdir: Path) -> None:
        self.daemon = daemon
        self.config_path = workdir / "bird.conf"
        self.socket_path = workdir / "bird.ctl"
        self.pid_path = workdir / "bird.pid"
        self.log_path = workdir / "bird.log"

    def write_config(self, text: str) -> None:
        """Write `text` where BIRD reads it, once ``bird -p`` accepts it."""
        candidate = self.config_path.with_name("candidate.conf")
        candidate.write_text(text)
        result = run_command(["bird", "-p", "-c", str(candidate)], check=False)
        if result.returncode != 0:
            raise BgpError(
                f"BIRD refused this configuration: {(result.stderr or result.stdout).strip()}"
                f"\n{_numbered(text)}"
            )
        candidate.replace(self.config_path)

    def launch(self, text: str) -> None:
        self.write_config(text)
        argv = ["bird", "-d", "-c", str(self.config_path), "-s", str(self.socket_path)]
        argv += ["-P", str(self.pid_path)]
        self.daemon._spawn("bird", argv, self.log_path)
        self.daemon.wait_for(
            lambda: True if self.socket_path.exists() and self._up() else None,
            what="BIRD's control socket",
            timeout=self.daemon.startup_timeout,
        )

    def _up(self) -> bool:
        result = run_command(["birdc", "-s", str(self.socket_path), "show", "status"], check=False)
        return result.returncode == 0 and "Daemon is up and running" in result.stdout

    def birdc(self, *command: str) -> str:
        """Run one birdc command; its output without the greeting line."""
        argv = ["birdc", "-s", str(self.socket_path), *command]
        try:
            result = run_command(argv)
        except CommandError as err:
            raise BgpError(str(err)) from err
        lines = result.stdout.splitlines()
        if lines and lines[0].startswith("BIRD ") and lines[0].endswith("ready."):
            lines = lines[1:]
        text = "\n".join(lines)
        if text.startswith(("syntax error", "Unknown command")):
            raise BgpError(f"birdc {' '.join(command)}: {text}")
        return text

    def routes(self, *command: str) -> set[IPv6Network]:
        """The networks a ``show route ...`` command lists."""
        found: set[IPv6Network] = set()
        for line in self.birdc("show", "route", *command).splitlines():
            match = _ROUTE_LINE.match(line)
            if match:
                found.add(IPv6Network(match.group(1)))
        return found

    def established(self, protocol: str) -> bool:
        for line in self.birdc("show", "protocols", protocol).splitlines():
            words = line.split()
            if words and words[0] == protocol:
                return "Established" in words
        raise BgpError(f"BIRD has no protocol {protocol!r}")

    def configure(self, text: str) -> None:
        """Load a new config into the running BIRD (``birdc configure``)."""
        self.write_config(text)
        reply = self.birdc("configure", f'"{self.config_path}"')
        if "Reconfigured" not in reply and "Reconfiguration in progress" not in reply:
            raise BgpError(f"BIRD did not reconfigure: {reply}")


def _exists(path: Path) -> Callable[[], bool | None]:
    return lambda: True if path.exists() else None


def _numbered(text: str) -> str:
    return "\n".join(f"{n:3} {line}" for n, line in enumerate(text.splitlines(), 1))


# -- routers ---------------------------------------------------------------------------------------


class BgpRouter(_BgpDaemon):
    """The home router, on the router side of a `Link`, peering with the cluster's speaker.

    Queries answer for now; the ``wait_for_*`` methods poll until the answer is as asked,
    since routes arrive some time after the session comes up (one UPDATE per set of
    attributes: a route with other communities may come tens of milliseconds later).
    """

    kernel_protocol: str = ""
    """The ``proto`` of the routes this daemon installs in the kernel (`ip route`)."""

    def __init__(
        self,
        link: Link,
        config: str,
        *,
        address: IPv6Interface | str | None = ROUTER_ADDRESS,
        startup_timeout: float = _STARTUP_TIMEOUT,
        session_timeout: float = _SESSION_TIMEOUT,
    ) -> None:
        super().__init__(
            link,
            side="router",
            address=address,
            startup_timeout=startup_timeout,
            session_timeout=session_timeout,
        )
        self.config = config

    @abstractmethod
    def accepted_routes(self) -> set[IPv6Network]:
        """Routes learned from the cluster that passed the import policy (in the BGP table)."""

    @abstractmethod
    def filtered_routes(self) -> set[IPv6Network]:
        """Routes the cluster sent that the import policy rejected (kept for inspection)."""

    @abstractmethod
    def advertised_routes(self) -> set[IPv6Network]:
        """Routes the router announces to the cluster."""

    @abstractmethod
    def table_routes(self) -> set[IPv6Network]:
        """Every route in the router's BGP (or master) table, from any source."""

    def kernel_routes(self) -> set[IPv6Network]:
        """The routes this daemon installed in the router namespace's kernel table."""
        result = self.run("ip", "-j", "-6", "route", "show", "proto", self.kernel_protocol)
        return {as_network(str(route["dst"])) for route in json.loads(result.stdout or "[]")}

    def wait_for_accepted(
        self, prefixes: Iterable[IPv6Network | str], *, timeout: float | None = None
    ) -> set[IPv6Network]:
        """Wait until every one of `prefixes` is accepted; return all accepted then."""
        wanted = _networks(prefixes)
        return self.wait_for(
            lambda: routes if wanted <= (routes := self.accepted_routes()) else None,
            what=f"{self._name} to accept {sorted(map(str, wanted))}",
            timeout=timeout,
            state=self.accepted_routes,
        )

    def wait_for_withdrawn(
        self, prefixes: Iterable[IPv6Network | str], *, timeout: float | None = None
    ) -> set[IPv6Network]:
        """Wait until none of `prefixes` is accepted any more; return all accepted then."""
        gone = _networks(prefixes)
        return self.wait_for(
            lambda: routes if not gone & (routes := self.accepted_routes()) else None,
            what=f"{self._name} to drop {sorted(map(str, gone))}",
            timeout=timeout,
            state=self.accepted_routes,
        )

    def wait_for_filtered(
        self, prefixes: Iterable[IPv6Network | str], *, timeout: float | None = None
    ) -> set[IPv6Network]:
        """Wait until every one of `prefixes` has been received and filtered out."""
        wanted = _networks(prefixes)
        return self.wait_for(
            lambda: routes if wanted <= (routes := self.filtered_routes()) else None,
            what=f"{self._name} to receive and filter {sorted(map(str, wanted))}",
            timeout=timeout,
            state=self.filtered_routes,
        )

    def wait_for_kernel_routes(
        self, prefixes: Iterable[IPv6Network | str], *, timeout: float | None = None
    ) -> set[IPv6Network]:
        """Wait until every one of `prefixes` is in the router namespace's kernel table."""
        wanted = _networks(prefixes)
        return self.wait_for(
            lambda: routes if wanted <= (routes := self.kernel_routes()) else None,
            what=f"{sorted(map(str, wanted))} in {self.namespace}'s kernel table",
            timeout=timeout,
            state=self.kernel_routes,
        )


class FrrRouter(BgpRouter):
    """FRR (zebra + bgpd) as the home router, started with an frr.conf text for bgpd.

    Run as user frr, as packaged, with a vty socket directory of its own (owned by frr)
    so that ``vtysh --vty_socket DIR`` reaches this instance and no other. zebra is needed
    even for BGP alone: it installs the routes in the kernel and resolves next hops (bgpd
    ``-Z`` without zebra fails for link-local next hops). The TCP vty is off (``-P 0``).
    The config is checked with ``vtysh -C`` first, since bgpd itself merely logs the lines
    it does not understand.

    `neighbor` is the cluster's address as the config names it; the queries ask about it.
    """

    _name = "frr"
    kernel_protocol = "bgp"

    def __init__(
        self,
        link: Link,
        config: str,
        *,
        neighbor: IPv6Address | str = SPEAKER_ADDRESS.ip,
        address: IPv6Interface | str | None = ROUTER_ADDRESS,
        startup_timeout: float = _STARTUP_TIMEOUT,
        session_timeout: float = _SESSION_TIMEOUT,
    ) -> None:
        super().__init__(
            link,
            config,
            address=address,
            startup_timeout=startup_timeout,
            session_timeout=session_timeout,
        )
        self.neighbor = IPv6Address(neighbor)

    def start(self) -> Self:
        for binary in (FRR_DIR / "zebra", FRR_DIR / "bgpd"):
            if not binary.exists():
                raise BgpError(f"{binary} is missing: see scripts/install-system-deps.sh")
        if shutil.which("vtysh") is None:
            raise BgpError("vtysh is missing: FRR is not installed")
        return super().start()

    def _launch(self) -> None:
        workdir = self._dir()
        zebra_conf = workdir / "zebra.conf"
        zebra_conf.write_text("! zebra: interfaces come from the kernel, nothing to set\n")
        bgpd_conf = workdir / "bgpd.conf"
        bgpd_conf.write_text(self.config)
        checked = run_command(["vtysh", "-C", "-f", str(bgpd_conf)], check=False)
        if checked.returncode != 0:
            raise BgpError(
                "FRR refused this configuration: "
                f"{(checked.stdout + checked.stderr).strip()}\n{_numbered(self.config)}"
            )
        for path in (workdir, zebra_conf, bgpd_conf):
            shutil.chown(path, FRR_USER, FRR_USER)
        for daemon, config in (("zebra", zebra_conf), ("bgpd", bgpd_conf)):
            argv = [
                str(FRR_DIR / daemon),
                *("-u", FRR_USER, "-g", FRR_USER),
                *("-f", str(config), "-i", str(workdir / f"{daemon}.pid")),
                *("-z", str(workdir / "zserv.api"), "--vty_socket", str(workdir)),
                *("-P", "0", "--log", "stdout", "--log-level", "informational"),
            ]
            self._spawn(daemon, argv, workdir / f"{daemon}.log")
            self.wait_for(
                _exists(workdir / f"{daemon}.vty"),
                what=f"{daemon}'s vty socket",
                timeout=self.startup_timeout,
            )

    def _stop(self) -> None:
        pids = self.pids
        super()._stop()
        for name, pid in pids.items():  # FRR removes its own only when it exits cleanly
            shutil.rmtree(_FRR_CRASHLOG_DIR / f"{name}.{pid}", ignore_errors=True)

    def vtysh(self, command: str) -> str:
        """Run one command in this instance's bgpd (``vtysh --vty_socket DIR -d bgpd``)."""
        argv = ["vtysh", "--vty_socket", str(self._dir()), "-d", "bgpd", "-c", command]
        try:
            return run_command(argv).stdout
        except CommandError as err:
            raise BgpError(str(err)) from err

    def vtysh_json(self, command: str) -> Any:
        return _parse_json(self.vtysh(f"{command} json"), command)

    def established(self) -> bool:
        neighbor = self.vtysh_json(f"show bgp neighbors {self.neighbor}").get(str(self.neighbor))
        return isinstance(neighbor, dict) and neighbor.get("bgpState") == "Established"

    def _table(self) -> dict[str, list[dict[str, Any]]]:
        routes = self.vtysh_json("show bgp ipv6 unicast").get("routes", {})
        return routes if isinstance(routes, dict) else {}

    def table_routes(self) -> set[IPv6Network]:
        return {as_network(prefix) for prefix in self._table()}

    def accepted_routes(self) -> set[IPv6Network]:
        return {
            as_network(prefix)
            for prefix, paths in self._table().items()
            if any(self._from_neighbor(path) and path.get("valid") for path in paths)
        }

    def _from_neighbor(self, path: dict[str, Any]) -> bool:
        try:
            return IPv6Address(str(path.get("peerId", ""))) == self.neighbor
        except ValueError:
            return False

    def received_routes(self) -> set[IPv6Network]:
        """All the cluster sent, accepted or not (needs soft-reconfiguration inbound)."""
        command = f"show bgp ipv6 unicast neighbors {self.neighbor} received-routes"
        reply = self.vtysh_json(command)
        if "receivedRoutes" not in reply:
            if reply.get("totalPrefixCounter") == 0 or reply == {}:
                return set()
            raise BgpError(f"{command}: {reply} (is soft-reconfiguration inbound set?)")
        return {as_network(prefix) for prefix in reply["receivedRoutes"]}

    def filtered_routes(self) -> set[IPv6Network]:
        return self.received_routes() - self.accepted_routes()

    def advertised_routes(self) -> set[IPv6Network]:
        command = f"show bgp ipv6 unicast neighbors {self.neighbor} advertised-routes"
        routes = self.vtysh_json(command).get("advertisedRoutes", {})
        return {as_network(prefix) for prefix in routes}


class BirdRouter(BgpRouter):
    """BIRD 2 as the home router, started with a bird.conf text.

    `protocol` is the name of the BGP protocol towards the cluster in that config; the
    queries ask about it. Filtered routes need ``import keep filtered on`` in its channel.
    """

    _name = "bird-router"
    kernel_protocol = "bird"

    def __init__(
        self,
        link: Link,
        config: str,
        *,
        protocol: str = BIRD_PROTOCOL,
        address: IPv6Interface | str | None = ROUTER_ADDRESS,
        startup_timeout: float = _STARTUP_TIMEOUT,
        session_timeout: float = _SESSION_TIMEOUT,
    ) -> None:
        super().__init__(
            link,
            config,
            address=address,
            startup_timeout=startup_timeout,
            session_timeout=session_timeout,
        )
        self.protocol = protocol
        self._bird: _Bird | None = None

    def start(self) -> Self:
        _require_bird()
        return super().start()

    def _launch(self) -> None:
        self._bird = _Bird(self, self._dir())
        self._bird.launch(self.config)

    def _stop(self) -> None:
        super()._stop()
        self._bird = None

    @property
    def bird(self) -> _Bird:
        if self._bird is None:
            raise BgpError("BIRD is not running")
        return self._bird

    def birdc(self, *command: str) -> str:
        """Run one birdc command against this instance; its output."""
        return self.bird.birdc(*command)

    def established(self) -> bool:
        return self.bird.established(self.protocol)

    def accepted_routes(self) -> set[IPv6Network]:
        return self.bird.routes("protocol", self.protocol)

    def filtered_routes(self) -> set[IPv6Network]:
        return self.bird.routes("filtered", "protocol", self.protocol)

    def advertised_routes(self) -> set[IPv6Network]:
        return self.bird.routes("export", self.protocol)

    def table_routes(self) -> set[IPv6Network]:
        return self.bird.routes()


def _require_bird() -> None:
    if shutil.which("bird") is None or shutil.which("birdc") is None:
        raise BgpError("BIRD 2 is not installed (see scripts/install-system-deps.sh)")


# -- the cluster's side ------------------------------------------------------------------------


class BirdSpeaker(_BgpDaemon):
    """BIRD 2 on the node side, standing in for the cluster's BGP speaker.

    Announces each `Announcement` as a static route (unreachable here: the speaker only
    needs to announce it) with its communities, over eBGP from `local_as` to the router at
    `router_address`, next hop itself, as Cilium or MetalLB would. It takes whatever the
    router sends (to show that the router sends nothing). Short connect timers: the
    session comes up within about a second whichever side starts first (BIRD delays its
    first connect by at least a second).

    On a link whose node end is in the root namespace, the speaker runs there too: it
    then listens on port 179 of the root namespace and puts `address` on the root end,
    so two such speakers must not run at once on one machine.
    """

    _name = "bird-speaker"
    protocol: Final = "home_router"

    def __init__(
        self,
        link: Link,
        announcements: Iterable[Announcement] = (),
        *,
        address: IPv6Interface | str | None = SPEAKER_ADDRESS,
        router_address: IPv6Address | str = ROUTER_ADDRESS.ip,
        local_as: int = CLUSTER_AS,
        router_as: int = ROUTER_AS,
        router_id: str = SPEAKER_ROUTER_ID,
        startup_timeout: float = _STARTUP_TIMEOUT,
        session_timeout: float = _SESSION_TIMEOUT,
    ) -> None:
        super().__init__(
            link,
            side="node",
            address=address,
            startup_timeout=startup_timeout,
            session_timeout=session_timeout,
        )
        self.announcements = tuple(announcements)
        self.router_address = IPv6Address(router_address)
        self.local_as = local_as
        self.router_as = router_as
        self.router_id = router_id
        self._bird: _Bird | None = None

    def start(self) -> Self:
        _require_bird()
        return super().start()

    def render(self, announcements: Iterable[Announcement]) -> str:
        """The speaker's bird.conf announcing `announcements`."""
        local = "" if self.address is None else f"{self.address.ip} "
        return (
            f"router id {self.router_id};\n"
            "protocol device {\n}\n"
            "protocol static announced {\n"
            "\tipv6;\n"
            f"{''.join(a.bird_route() for a in announcements)}"
            "}\n"
            f"protocol bgp {self.protocol} {{\n"
            f"\tlocal {local}as {self.local_as};\n"
            f"\tneighbor {self.router_address} as {self.router_as};\n"
            "\tconnect delay time 0;\n"
            "\tconnect retry time 1;\n"
            "\terror wait time 1, 5;\n"
            "\tipv6 {\n"
            "\t\timport all;\n"
            '\t\texport where proto = "announced";\n'
            "\t};\n"
            "}\n"
        )

    def _launch(self) -> None:
        self._bird = _Bird(self, self._dir())
        self._bird.launch(self.render(self.announcements))

    def _stop(self) -> None:
        super()._stop()
        self._bird = None

    @property
    def bird(self) -> _Bird:
        if self._bird is None:
            raise BgpError("BIRD is not running")
        return self._bird

    def birdc(self, *command: str) -> str:
        """Run one birdc command against this instance; its output."""
        return self.bird.birdc(*command)

    def announce(self, announcements: Iterable[Announcement]) -> None:
        """Announce `announcements` from now on instead (``birdc configure``: the session
        stays up; BIRD sends the new routes and withdraws the old ones)."""
        announcements = tuple(announcements)
        self.bird.configure(self.render(announcements))
        self.announcements = announcements

    def established(self) -> bool:
        return self.bird.established(self.protocol)

    def exported_routes(self) -> set[IPv6Network]:
        """What the speaker announces to the router now."""
        return self.bird.routes("export", self.protocol)

    def received_routes(self) -> set[IPv6Network]:
        """What the router announced to the speaker."""
        return self.bird.routes("protocol", self.protocol)
