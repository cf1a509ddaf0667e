"""Router Advertisements from dnsmasq on a test `Link`: a second RA sender besides radvd.

`Dnsmasq` gives the router end a global address and runs dnsmasq in the router namespace
with DNS and DHCP off, advertising the /64 of that address
(``dhcp-range=::,constructor:IFACE,ra-only,64,...``). `Dnsmasq.renumber` moves the router
to another /64: by default the way a router reboots into a new prefix (new address, old
one removed, dnsmasq restarted with a new file), or live, leaving dnsmasq to notice.
See ../shared/TESTBED.md section 8.

How dnsmasq's RAs differ from radvd's (dnsmasq 2.90; seen here, and read in its radv.c):

- Timing: the first RA goes out 0-5 s after start; during the first minute one follows
  every 5-20 s whatever the interval; only then every 3/4 to 1 times the interval of
  ``ra-param``, which dnsmasq clamps to 4-1800 s. A Router Solicitation is answered at
  once, by unicast to the soliciting node.
- Contents: Prefix Information (on-link and autonomous in ``ra-only`` mode, M and O flags
  clear), MTU and Source Link-Layer Address options; no RDNSS, since DNS is off (port 0).
  The router lifetime is 3 times the interval unless set. Prefix lifetimes are the lease
  time of the range, raised to at least 120 s and to at least 3 times the interval.
- Every global /64 on the interface is advertised, not only the one given here: an
  address Kea or dhcpd puts on the same router end is advertised too.
- dnsmasq follows the interface's addresses over netlink: a new address is advertised
  about a second after it appears, a removed one as an "old prefix" with preferred
  lifetime 0 (valid lifetime counting down) until it expires. A restarted dnsmasq has
  forgotten the removed prefix and no longer mentions it.
- dnsmasq hears its own multicast RAs. A router end that accepts RAs (forwarding off,
  accept_ra 1, or accept_ra 2) would make a SLAAC address from them, keep the old prefix
  on the interface after a renumbering and so advertise it for ever; start() therefore
  sets accept_ra to 0 on the router end, and stop() restores it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Interface, IPv6Network
from pathlib import Path
from typing import Final, Self

from testbed.lifecycle import Lifecycle, terminate
from testbed.netns import CommandError, Link, TestbedError, poll_until, tail

log = logging.getLogger(__name__)

MIN_INTERVAL: Final = 4
"""dnsmasq raises a smaller RA interval to 4 s (and lowers one above 1800 s to 1800)."""
MAX_INTERVAL: Final = 1800
MIN_LEASE_TIME: Final = 120
"""dnsmasq raises a shorter lease time, and so the prefix lifetimes, to 2 minutes."""
MAX_ROUTER_LIFETIME: Final = 9000
PREFIX_LENGTH: Final = 64
"""Only a /64 can be used for SLAAC, and the constructed range is a /64."""

DEFAULT_PREFIX: Final = IPv6Network("2001:db8:d::/64")

_ADVERT_MARK = "RTR-ADVERT("


class DnsmasqError(TestbedError):
    """dnsmasq refused its configuration, did not start, did not advertise, or died."""


def _slash64(value: IPv6Network | str) -> IPv6Network:
    network = value if isinstance(value, IPv6Network) else IPv6Network(value)
    if network.prefixlen != PREFIX_LENGTH:
        raise ValueError(f"dnsmasq advertises the /64 of an address; {network} is not a /64")
    return network


@dataclass(frozen=True, slots=True)
class DnsmasqConfig:
    """What dnsmasq is told: send RAs on one interface, and nothing else."""

    ifname: str
    interval: int = MIN_INTERVAL
    """RA interval (``ra-param``); only used after dnsmasq's first minute."""
    router_lifetime: int | None = None
    """Router lifetime in seconds, 0 for "not a default router"; None: 3 * interval."""
    lease_time: int = 3600
    """The range's lease time: the valid and preferred lifetime of the advertised prefix."""
    extra: tuple[str, ...] = ()
    """More lines for the file, as in dnsmasq.conf(5), e.g. ``dhcp-option=...``."""

    def __post_init__(self) -> None:
        if not MIN_INTERVAL <= self.interval <= MAX_INTERVAL:
            raise ValueError(
                f"dnsmasq clamps the RA interval to {MIN_INTERVAL}-{MAX_INTERVAL} s, "
                f"so {self.interval} would not be what is sent"
            )
        lifetime = self.router_lifetime
        if lifetime and not self.interval <= lifetime <= MAX_ROUTER_LIFETIME:
            raise ValueError(
                f"dnsmasq clamps a router lifetime other than 0 to the interval "
                f"({self.interval} s) to {MAX_ROUTER_LIFETIME} s; {lifetime} is outside"
            )
        if self.lease_time < MIN_LEASE_TIME:
            raise ValueError(
                f"dnsmasq raises a lease time below {MIN_LEASE_TIME} s; {self.lease_time} "
                "would not be what is sent"
            )
        for line in self.extra:
            if "\n" in line:
                raise ValueError(f"an extra option is one line, not {line!r}")

    def render(self, workdir: Path) -> str:
        """The config file, keeping dnsmasq's own files in `workdir`."""
        ra_param = f"{self.ifname},{self.interval}"
        if self.router_lifetime is not None:
            ra_param += f",{self.router_lifetime}"
        lines = [
            "# dnsmasq as a Router Advertisement sender only; see testbed.dnsmasq",
            f"pid-file={workdir / 'dnsmasq.pid'}",
            f"dhcp-leasefile={workdir / 'dnsmasq.leases'}",
            "port=0",  # no DNS: no port 53, no RDNSS option
            "no-resolv",
            "no-hosts",
            "log-facility=-",  # stderr, which goes to our log file
            f"interface={self.ifname}",
            "bind-interfaces",
            "enable-ra",
            f"dhcp-range=::,constructor:{self.ifname},ra-only,{PREFIX_LENGTH},{self.lease_time}",
            f"ra-param={ra_param}",
            *self.extra,
        ]
        return "".join(line + "\n" for line in lines)


class Dnsmasq(Lifecycle):
    """dnsmasq advertising `prefix` on the router end of `link`, started and stopped here.

    The router end gets the address `host` of `prefix` (``2001:db8:d::1/64`` by default);
    dnsmasq advertises its /64. Use as a context manager, or call start() and stop();
    stop() is also registered with atexit. start() returns once dnsmasq has logged its
    first RA for `prefix` (which dnsmasq logs just before sending it), 0-5 s after launch.
    """

    def __init__(
        self,
        link: Link,
        *,
        prefix: IPv6Network | str = DEFAULT_PREFIX,
        host: int = 1,
        interval: int = MIN_INTERVAL,
        router_lifetime: int | None = None,
        lease_time: int = 3600,
        extra_options: Sequence[str] = (),
        startup_timeout: float = 15.0,
    ) -> None:
        self.link = link
        self._prefix = _slash64(prefix)
        if not 0 < host < 2**64:
            raise ValueError(f"host {host} is not an interface identifier of a /64")
        self._host = host
        self._config = DnsmasqConfig(
            ifname=link.router_ifname,
            interval=interval,
            router_lifetime=router_lifetime,
            lease_time=lease_time,
            extra=tuple(extra_options),
        )
        self._timeout = startup_timeout
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._added: list[IPv6Interface] = []
        self._saved_accept_ra: str | None = None
        self.first_ra_seconds: float | None = None
        """From launching dnsmasq to its first RA, for benchmarks and reports."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Check the config, add the router address, launch dnsmasq and return once it
        has sent its first RA."""
        if self._workdir is not None:
            raise DnsmasqError("this dnsmasq is already started")
        if shutil.which("dnsmasq") is None:
            raise DnsmasqError(
                "dnsmasq is not installed (package dnsmasq-base; see "
                "scripts/install-system-deps.sh)"
            )
        return super().start()

    def _start(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="dynamic-prefix-dnsmasq-"))
        self._ignore_own_ras()
        self._add_address(self.router_address)
        self._write_config()
        self._launch()

    def _stop(self) -> None:
        """SIGTERM dnsmasq (SIGKILL if it hangs), remove the addresses added here, restore
        accept_ra, remove dnsmasq's files."""
        self._terminate()
        ifname = self.link.router_ifname
        for address in reversed(self._added):
            self.link.run_in_router("ip", "addr", "del", str(address), "dev", ifname, check=False)
        self._added.clear()
        if self._saved_accept_ra is not None:
            self.link.run_in_router(
                "sysctl",
                "-qw",
                f"net.ipv6.conf.{ifname}.accept_ra={self._saved_accept_ra}",
                check=False,
            )
            self._saved_accept_ra = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- renumbering -----------------------------------------------------------------------

    def renumber(self, new_prefix: IPv6Network | str, *, restart: bool = True) -> None:
        """Move the router to `new_prefix` (a /64) and return once dnsmasq advertises it.

        The router end gets the same host address in `new_prefix` and loses the one in the
        old prefix (if this object added it). With `restart` (the default), dnsmasq is
        restarted with a new config file, like a router rebooting into a new prefix: the
        old prefix is simply no longer advertised, and hosts keep it until it expires.
        Without, dnsmasq sees the change itself and advertises the old prefix with
        preferred lifetime 0 next to the new one.
        """
        network = _slash64(new_prefix)
        self._running()
        if restart:
            # Before the addresses change: a running dnsmasq would notice and advertise.
            self._terminate()
        offset = self.log_path.stat().st_size
        old = self.router_address
        self._prefix = network
        self._add_address(self.router_address)
        if old in self._added:
            self.link.run_in_router(
                "ip", "addr", "del", str(old), "dev", self.link.router_ifname, check=False
            )
            self._added.remove(old)
        else:
            log.warning("%s was not added by this dnsmasq; it stays, and stays advertised", old)
        if restart:
            self._write_config()
            self._launch()
        else:
            self._wait(lambda: self._advertised(network, after=offset), f"an RA for {network}")

    # -- access ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._running().pid

    @property
    def prefix(self) -> IPv6Network:
        """The /64 advertised now (the one of `router_address`)."""
        return self._prefix

    @property
    def router_address(self) -> IPv6Interface:
        """The router end's global address whose /64 dnsmasq advertises."""
        address = self._prefix.network_address + self._host
        return IPv6Interface(f"{address}/{PREFIX_LENGTH}")

    @property
    def config(self) -> DnsmasqConfig:
        return self._config

    @property
    def config_path(self) -> Path:
        return self._dir() / "dnsmasq.conf"

    @property
    def log_path(self) -> Path:
        """dnsmasq's log; appended to by each run, across restarts."""
        return self._dir() / "dnsmasq.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ras_logged(self, prefix: IPv6Network | str | None = None) -> int:
        """How many RAs dnsmasq has logged so far advertising `prefix` (None: the current
        one), in every run; "old prefix" mentions are not counted."""
        network = self._prefix if prefix is None else IPv6Network(prefix)
        return sum(1 for line in self.log_text().splitlines() if self._is_advert(line, network))

    # -- internals -------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self._workdir is None:
            raise DnsmasqError("dnsmasq is not running")
        return self._workdir

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise DnsmasqError("dnsmasq is not running")
        return self._process

    def _terminate(self) -> None:
        if self._process is not None:
            terminate(self._process, name="dnsmasq")
            self._process = None

    def _ignore_own_ras(self) -> None:
        key = f"net.ipv6.conf.{self.link.router_ifname}.accept_ra"
        self._saved_accept_ra = self.link.run_in_router("sysctl", "-n", key).stdout.strip()
        self.link.run_in_router("sysctl", "-qw", f"{key}=0")

    def _add_address(self, address: IPv6Interface) -> None:
        present = self.link.addresses(self.link.router, scope=None)
        if any(info.interface == address for info in present):
            return
        self.link.run_in_router(
            "ip", "addr", "add", str(address), "dev", self.link.router_ifname, "nodad"
        )
        self._added.append(address)

    def _write_config(self) -> None:
        """Write a new config file, once `dnsmasq --test` accepts it."""
        candidate = self._dir() / "candidate.conf"
        text = self._config.render(self._dir())
        candidate.write_text(text)
        try:
            self.link.run_in_router("dnsmasq", "--test", "-C", str(candidate))
        except CommandError as err:
            output = f"{err.stdout or ''}{err.stderr or ''}".strip()
            raise DnsmasqError(
                f"dnsmasq --test refused this configuration: {tail(output, 5)}\n"
                f"configuration:\n{text}"
            ) from err
        candidate.replace(self.config_path)

    def _launch(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        began = time.monotonic()
        with self.log_path.open("ab") as log_file:  # the child keeps its own descriptor
            self._process = self.link.popen_in_router(
                "dnsmasq",
                "--keep-in-foreground",
                "--user=root",  # no change of user: the files are root's
                "-C",
                str(self.config_path),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        network = self._prefix
        self._wait(lambda: self._advertised(network, after=offset), f"a first RA for {network}")
        self.first_ra_seconds = time.monotonic() - began
        log.info(
            "dnsmasq (pid %s) advertised %s %.3f s after launch",
            self.pid,
            network,
            self.first_ra_seconds,
        )

    def _is_advert(self, line: str, network: IPv6Network) -> bool:
        return line.endswith(f"{_ADVERT_MARK}{self.link.router_ifname}) {network.network_address}")

    def _advertised(self, network: IPv6Network, *, after: int) -> bool | None:
        with self.log_path.open("rb") as file:
            file.seek(after)
            lines = file.read().decode(errors="replace").splitlines()
        return True if any(self._is_advert(line, network) for line in lines) else None

    def _alive(self) -> None:
        process = self._running()
        if process.poll() is not None:
            raise DnsmasqError(
                f"dnsmasq exited with status {process.returncode}; last lines of its log:\n"
                f"{tail(self.log_text())}"
            )

    def _wait(self, probe: Callable[[], bool | None], what: str) -> None:
        try:
            poll_until(probe, timeout=self._timeout, what=f"dnsmasq: {what}", alive=self._alive)
        except TestbedError as err:
            if isinstance(err, DnsmasqError):
                raise
            raise DnsmasqError(
                f"{err}; last lines of dnsmasq's log:\n{tail(self.log_text())}"
            ) from err
