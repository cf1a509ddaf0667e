"""Router Advertisements on a test `Link`: a real radvd, and hand-crafted RAs.

`Radvd` runs radvd in the router namespace and can change what it advertises while
running (config rewrite + SIGHUP). `send_crafted_ra` and `send_crafted_ras` put any
ICMPv6 message, well-formed or not, on the link from the router side.
See ../shared/TESTBED.md sections 3 and 4.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Final, Literal, Self

from testbed.lifecycle import Lifecycle, terminate
from testbed.netns import CommandError, Link, TestbedError, poll_until, tail

log = logging.getLogger(__name__)

INFINITY: Final = 0xFFFF_FFFF
"""A lifetime of all ones means forever; written as ``infinity`` in radvd's config."""

MIN_RTR_ADV_INTERVAL: Final = 3.0
"""radvd refuses a smaller MinRtrAdvInterval at run time (`radvd -c` does not notice)."""
MIN_MAX_RTR_ADV_INTERVAL: Final = 4.0

_DEBUG_LEVEL = 5  # the lowest level at which radvd logs each RA it sends
_SENT_MARK = "sending RA to"
_RELOADING_MARK = "attempting to reread config file"

Preference = Literal["low", "medium", "high"]


class RadvdError(TestbedError):
    """radvd refused its configuration, did not start, or died."""


def _network(value: IPv6Network | str) -> IPv6Network:
    return value if isinstance(value, IPv6Network) else IPv6Network(value)


def _lifetime(seconds: int) -> str:
    if not 0 <= seconds <= INFINITY:
        raise ValueError(f"a lifetime is 0 to {INFINITY} seconds, not {seconds}")
    return "infinity" if seconds == INFINITY else str(seconds)


@dataclass(frozen=True, slots=True)
class PrefixAd:
    """A Prefix Information option radvd should send (RFC 4861 section 4.6.2)."""

    prefix: IPv6Network | str
    valid: int = 86400
    preferred: int = 14400
    on_link: bool = True
    autonomous: bool = True

    def __post_init__(self) -> None:
        _network(self.prefix)  # raises ValueError early for a malformed prefix
        _lifetime(self.valid)
        _lifetime(self.preferred)

    @property
    def network(self) -> IPv6Network:
        return _network(self.prefix)

    def withdrawn(self) -> PrefixAd:
        """The same prefix with valid and preferred lifetime 0: how a router withdraws it."""
        return replace(self, valid=0, preferred=0)

    def config(self) -> str:
        return (
            f"  prefix {self.network} {{\n"
            f"    AdvOnLink {_on(self.on_link)};\n"
            f"    AdvAutonomous {_on(self.autonomous)};\n"
            f"    AdvValidLifetime {_lifetime(self.valid)};\n"
            f"    AdvPreferredLifetime {_lifetime(self.preferred)};\n"
            "  };\n"
        )


@dataclass(frozen=True, slots=True)
class RouteAd:
    """A Route Information option (RFC 4191 section 2.3)."""

    prefix: IPv6Network | str
    lifetime: int = 1800
    preference: Preference = "medium"

    def __post_init__(self) -> None:
        _network(self.prefix)
        _lifetime(self.lifetime)

    def config(self) -> str:
        return (
            f"  route {_network(self.prefix)} {{\n"
            f"    AdvRouteLifetime {_lifetime(self.lifetime)};\n"
            f"    AdvRoutePreference {self.preference};\n"
            "  };\n"
        )


@dataclass(frozen=True, slots=True)
class RdnssAd:
    """A Recursive DNS Server option (RFC 8106 section 5.1).

    radvd wants a lifetime of 0 or at least MaxRtrAdvInterval; None means its default,
    2 * MaxRtrAdvInterval.
    """

    servers: tuple[IPv6Address | str, ...]
    lifetime: int | None = None

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("an RDNSS option needs at least one server")
        for server in self.servers:
            IPv6Address(server)
        if self.lifetime is not None:
            _lifetime(self.lifetime)

    def config(self) -> str:
        servers = " ".join(str(IPv6Address(server)) for server in self.servers)
        lifetime = "" if self.lifetime is None else f"AdvRDNSSLifetime {_lifetime(self.lifetime)};"
        return f"  RDNSS {servers} {{ {lifetime} }};\n"


def _on(flag: bool) -> str:
    return "on" if flag else "off"


@dataclass(frozen=True, slots=True)
class RadvdConfig:
    """Everything radvd advertises on one interface."""

    ifname: str
    prefixes: tuple[PrefixAd, ...] = ()
    routes: tuple[RouteAd, ...] = ()
    rdnss: tuple[RdnssAd, ...] = ()
    min_interval: float = MIN_RTR_ADV_INTERVAL
    max_interval: float = MIN_MAX_RTR_ADV_INTERVAL
    router_lifetime: int | None = None
    """AdvDefaultLifetime: 0 (not a default router) or MaxRtrAdvInterval..9000; None: 3 * max."""
    managed: bool = False
    other_config: bool = False

    def __post_init__(self) -> None:
        if self.min_interval < MIN_RTR_ADV_INTERVAL:
            raise ValueError(
                f"radvd refuses MinRtrAdvInterval {self.min_interval} < {MIN_RTR_ADV_INTERVAL}"
            )
        if self.max_interval < max(MIN_MAX_RTR_ADV_INTERVAL, self.min_interval):
            raise ValueError(
                f"MaxRtrAdvInterval {self.max_interval} must be at least "
                f"{MIN_MAX_RTR_ADV_INTERVAL} and at least MinRtrAdvInterval"
            )

    def render(self) -> str:
        lines = [
            f"interface {self.ifname} {{\n",
            "  AdvSendAdvert on;\n",
            f"  MinRtrAdvInterval {self.min_interval:g};\n",
            f"  MaxRtrAdvInterval {self.max_interval:g};\n",
            f"  AdvManagedFlag {_on(self.managed)};\n",
            f"  AdvOtherConfigFlag {_on(self.other_config)};\n",
        ]
        if self.router_lifetime is not None:
            lines.append(f"  AdvDefaultLifetime {self.router_lifetime};\n")
        lines += [prefix.config() for prefix in self.prefixes]
        lines += [route.config() for route in self.routes]
        lines += [rdnss.config() for rdnss in self.rdnss]
        lines.append("};\n")
        return "".join(lines)


DEFAULT_PREFIXES: Final = (PrefixAd("2001:db8:1::/64", valid=3600, preferred=1800),)


class Radvd(Lifecycle):
    """radvd advertising on the router end of `link`, started and stopped by this object.

    Use as a context manager, or call start() and stop(); stop() is also registered with
    atexit. start() returns once radvd has sent its first RA (seen in its debug log).
    """

    def __init__(
        self,
        link: Link,
        *,
        prefixes: Sequence[PrefixAd] = DEFAULT_PREFIXES,
        routes: Sequence[RouteAd] = (),
        rdnss: Sequence[RdnssAd] = (),
        min_interval: float = MIN_RTR_ADV_INTERVAL,
        max_interval: float = MIN_MAX_RTR_ADV_INTERVAL,
        router_lifetime: int | None = None,
        managed: bool = False,
        other_config: bool = False,
        startup_timeout: float = 10.0,
    ) -> None:
        self.link = link
        self._config = RadvdConfig(
            ifname=link.router_ifname,
            prefixes=tuple(prefixes),
            routes=tuple(routes),
            rdnss=tuple(rdnss),
            min_interval=min_interval,
            max_interval=max_interval,
            router_lifetime=router_lifetime,
            managed=managed,
            other_config=other_config,
        )
        self._timeout = startup_timeout
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.first_ra_seconds: float | None = None
        """From launching radvd to its first RA, for benchmarks and reports."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Check the config, launch radvd and return once it has sent its first RA."""
        if self._workdir is not None:
            raise RadvdError("this radvd is already started")
        if shutil.which("radvd") is None:
            raise RadvdError("radvd is not installed (see scripts/install-system-deps.sh)")
        return super().start()

    def _start(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="dynamic-prefix-radvd-"))
        self._write_config(self._config)
        began = time.monotonic()
        with self.log_path.open("wb") as log_file:  # the child keeps its own descriptor
            self._process = self.link.popen_in_router(
                "radvd",
                "--nodaemon",
                "--config",
                str(self.config_path),
                "--pidfile",
                str(self._workdir / "radvd.pid"),
                "--logmethod",
                "stderr",
                "--debug",
                str(_DEBUG_LEVEL),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self._wait_for(_SENT_MARK, after=0, what="radvd's first RA")
        self.first_ra_seconds = time.monotonic() - began
        log.info(
            "radvd (pid %s) sent its first RA %.3f s after launch",
            self.pid,
            self.first_ra_seconds,
        )

    def _stop(self) -> None:
        """SIGTERM radvd (it sends a final RA with router lifetime 0), SIGKILL if it hangs;
        remove its files."""
        if self._process is not None:
            terminate(self._process, name="radvd")
            self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- changing what is advertised ------------------------------------------------------

    def set_prefixes(
        self, prefixes: Sequence[PrefixAd], *, withdraw: Iterable[IPv6Network | str] = ()
    ) -> None:
        """Advertise `prefixes` from now on, plus each of `withdraw` with lifetimes 0.

        SIGHUP alone does not withdraw a prefix that is no longer in the config: hosts keep
        it until it expires. Returns once radvd has sent an RA with the new config.
        """
        ads = list(prefixes) + [PrefixAd(prefix).withdrawn() for prefix in withdraw]
        self.reconfigure(prefixes=ads)

    def reconfigure(
        self,
        *,
        prefixes: Sequence[PrefixAd] | None = None,
        routes: Sequence[RouteAd] | None = None,
        rdnss: Sequence[RdnssAd] | None = None,
        router_lifetime: int | None = None,
    ) -> None:
        """Change some of what is advertised (None: keep as is), reload with SIGHUP and
        return once radvd has sent an RA with the new config."""
        config = self._config
        if prefixes is not None:
            config = replace(config, prefixes=tuple(prefixes))
        if routes is not None:
            config = replace(config, routes=tuple(routes))
        if rdnss is not None:
            config = replace(config, rdnss=tuple(rdnss))
        if router_lifetime is not None:
            config = replace(config, router_lifetime=router_lifetime)
        process = self._running()
        offset = self.log_path.stat().st_size
        self._write_config(config)
        process.send_signal(signal.SIGHUP)
        self._wait_for(_RELOADING_MARK, _SENT_MARK, after=offset, what="an RA after the reload")

    # -- access ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._running().pid

    @property
    def config(self) -> RadvdConfig:
        """What radvd was last configured with."""
        return self._config

    @property
    def config_path(self) -> Path:
        return self._dir() / "radvd.conf"

    @property
    def log_path(self) -> Path:
        return self._dir() / "radvd.log"

    def log_text(self) -> str:
        """Everything radvd has logged so far (debug level 5: each RA sent and received)."""
        return self.log_path.read_text(errors="replace")

    def ras_sent(self) -> int:
        """How many RAs radvd has sent so far, multicast and solicited ones alike."""
        return self.log_text().count(_SENT_MARK)

    # -- internals -------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self._workdir is None:
            raise RadvdError("radvd is not running")
        return self._workdir

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RadvdError("radvd is not running")
        return self._process

    def _write_config(self, config: RadvdConfig) -> None:
        """Write `config` where radvd reads it, once `radvd -c` accepts it."""
        candidate = self._dir() / "candidate.conf"
        candidate.write_text(config.render())
        candidate.chmod(0o644)  # radvd refuses a config file others may write to
        try:
            self.link.run_in_router("radvd", "--configtest", "--config", str(candidate))
        except CommandError as err:
            raise RadvdError(
                f"radvd refused this configuration: {err.stderr.strip()}\n{config.render()}"
            ) from err
        candidate.replace(self.config_path)
        self._config = config

    def _alive(self) -> None:
        process = self._running()
        if process.poll() is not None:
            raise RadvdError(
                f"radvd exited with status {process.returncode}; last lines of its log:\n"
                f"{tail(self.log_text())}"
            )

    def _wait_for(self, *marks: str, after: int, what: str) -> None:
        """Wait until `marks` appear in the log, in order, past byte `after`."""

        def seen() -> bool | None:
            with self.log_path.open("rb") as file:
                file.seek(after)
                text = file.read().decode(errors="replace")
            position = 0
            for mark in marks:
                position = text.find(mark, position)
                if position < 0:
                    return None
            return True

        try:
            poll_until(seen, timeout=self._timeout, what=what, alive=self._alive)
        except TestbedError as err:
            if isinstance(err, RadvdError):
                raise
            raise RadvdError(f"{err}; last lines of radvd's log:\n{tail(self.log_text())}") from err


# -- crafted RAs -------------------------------------------------------------------------------

_SENDER = r"""
import errno, socket, sys, time
ifname, destination = sys.argv[1], sys.argv[2]
hop_limit, interval = int(sys.argv[3]), float(sys.argv[4])
index = socket.if_nametoindex(ifname)
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hop_limit)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hop_limit)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)  # not back to radvd in R
sent = 0
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    packet = bytes.fromhex(line)
    while True:
        try:
            sock.sendto(packet, (destination, 0, 0, index))
            break
        except OSError as err:
            if err.errno != errno.ENOBUFS:
                raise
            time.sleep(0.001)
    sent += 1
    if interval:
        time.sleep(interval)
print(sent)
"""


def send_crafted_ras(
    link: Link,
    payloads: Sequence[bytes],
    *,
    hop_limit: int = 255,
    destination: IPv6Address | str = "ff02::1",
    interval: float = 0.0,
    timeout: float = 120.0,
) -> int:
    """Send each payload as one ICMPv6 message from the router end, in one subprocess.

    A payload is the whole ICMPv6 message from the type octet on (134 for an RA); the
    kernel fills in the checksum, whatever the payload holds there. The IPv6 source is
    the router end's link-local address; the hop limit is `hop_limit` (255 for a genuine
    RA, lower to imitate an off-link sender). `interval` seconds pass between packets.
    Returns the number sent; floods of 10,000 take well under a second.
    """
    if not 0 <= hop_limit <= 255:
        raise ValueError(f"a hop limit is 0 to 255, not {hop_limit}")
    argv = (
        sys.executable,
        "-I",
        "-c",
        _SENDER,
        link.router_ifname,
        str(IPv6Address(destination)),
        str(hop_limit),
        repr(float(interval)),
    )
    stdin = "".join(payload.hex() + "\n" for payload in payloads)
    try:
        result = link.run_in_router(*argv, input=stdin, timeout=timeout)
    except CommandError as err:
        raise TestbedError(f"sending {len(payloads)} crafted packets failed: {err}") from err
    return int(result.stdout.strip())


def send_crafted_ra(
    link: Link,
    payload: bytes,
    *,
    hop_limit: int = 255,
    destination: IPv6Address | str = "ff02::1",
) -> None:
    """Send one ICMPv6 message from the router end of `link`; see `send_crafted_ras`."""
    send_crafted_ras(link, [payload], hop_limit=hop_limit, destination=destination)
