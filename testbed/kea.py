"""A DHCPv6 server delegating prefixes on a test `Link`: a real kea-dhcp6.

`Kea` runs kea-dhcp6 in the router namespace with a memfile lease database (kept on
disk by default, in its own temporary directory, so tests can read what Kea believes
with `leases()`) and can move its pools while running (config rewrite + SIGHUP).
See ../shared/TESTBED.md section 5.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any, Final, Self

from testbed.lifecycle import Lifecycle, terminate
from testbed.netns import CommandError, Link, TestbedError, poll_until, tail

log = logging.getLogger(__name__)

DHCPV6_SERVER_PORT: Final = 547

_STARTED_MARK = "DHCP6_STARTED"
_RELOADED_MARK = "DHCP6_DYNAMIC_RECONFIGURATION_SUCCESS"
_RELOAD_FAILED_MARK = "DHCP6_DYNAMIC_RECONFIGURATION_FAIL"


class KeaError(TestbedError):
    """Kea refused its configuration, did not start, died, or has no lease file to read."""


@dataclass(frozen=True, slots=True)
class PdPool:
    """A prefix-delegation pool: `prefix`/`prefix_len` cut into `/delegated_len` pieces."""

    prefix: IPv6Address | str
    prefix_len: int
    delegated_len: int

    def __post_init__(self) -> None:
        IPv6Network(f"{self.prefix}/{self.prefix_len}")  # raises ValueError if malformed

    @property
    def network(self) -> IPv6Network:
        return IPv6Network(f"{self.prefix}/{self.prefix_len}")

    def config(self) -> dict[str, Any]:
        return {
            "prefix": str(IPv6Address(self.prefix)),
            "prefix-len": self.prefix_len,
            "delegated-len": self.delegated_len,
        }


class LeaseType(IntEnum):
    """The lease_type column of Kea's lease6 file."""

    NA = 0
    TA = 1
    PD = 2


class LeaseState(IntEnum):
    """The state column of Kea's lease6 file."""

    DEFAULT = 0
    DECLINED = 1
    EXPIRED_RECLAIMED = 2


@dataclass(frozen=True, slots=True)
class Lease6:
    """One row of Kea's memfile lease6 CSV file."""

    address: IPv6Address
    prefix_len: int
    lease_type: int
    """A `LeaseType`; kept as int so that a value this module does not know survives."""
    state: int
    """A `LeaseState`, likewise."""
    valid_lifetime: int
    preferred_lifetime: int
    expire: int
    """Unix time at which the lease expires (last transmission + valid lifetime)."""
    duid: bytes
    iaid: int
    subnet_id: int

    @property
    def prefix(self) -> IPv6Network:
        """The delegated prefix (for an address lease, the address as a /128)."""
        return IPv6Network(f"{self.address}/{self.prefix_len}")

    @property
    def removed(self) -> bool:
        """Kea appends a copy with valid lifetime 0 when it deletes a lease (e.g. on RELEASE)."""
        return self.valid_lifetime == 0


def parse_lease6_file(text: str) -> list[Lease6]:
    """Every row of a Kea memfile lease6 CSV file, in file order (oldest first)."""
    rows: list[Lease6] = []
    for row in csv.DictReader(io.StringIO(text)):
        duid = row.get("duid", "")
        rows.append(
            Lease6(
                address=IPv6Address(row["address"]),
                prefix_len=int(row["prefix_len"]),
                lease_type=int(row["lease_type"]),
                state=int(row.get("state") or 0),
                valid_lifetime=int(row["valid_lifetime"]),
                preferred_lifetime=int(row["pref_lifetime"]),
                expire=int(row["expire"]),
                duid=bytes.fromhex(duid.replace(":", "")),
                iaid=int(row["iaid"]),
                subnet_id=int(row["subnet_id"]),
            )
        )
    return rows


def current_leases(records: Sequence[Lease6]) -> list[Lease6]:
    """The leases a memfile of `records` holds: the last row of each lease, unless removed."""
    latest: dict[tuple[int, IPv6Address], Lease6] = {}
    for record in records:
        key = (record.lease_type, record.address)
        latest.pop(key, None)  # re-insert to keep the order of last change
        latest[key] = record
    return [lease for lease in latest.values() if not lease.removed]


@dataclass(frozen=True, slots=True)
class KeaConfig:
    """One subnet on one interface, with prefix-delegation pools (and address pools)."""

    ifname: str
    subnet: IPv6Network
    pools: tuple[PdPool, ...]
    address_pools: tuple[str, ...] = ()
    """Address pools as Kea writes them: "2001:db8:1::100-2001:db8:1::1ff" or a prefix."""
    renew: int = 1000
    rebind: int = 2000
    preferred: int = 3000
    valid: int = 4000
    rapid_commit: bool = False
    lease_file: Path | None = None
    """Where the memfile lease database persists; None keeps leases in memory only."""

    def render(self) -> dict[str, Any]:
        lease_database: dict[str, Any] = {
            "type": "memfile",
            "persist": self.lease_file is not None,
            "lfc-interval": 0,  # append-only: every change stays readable in the file
        }
        if self.lease_file is not None:
            lease_database["name"] = str(self.lease_file)
        subnet: dict[str, Any] = {
            "id": 1,
            "subnet": str(self.subnet),
            "interface": self.ifname,
            "rapid-commit": self.rapid_commit,
            "pd-pools": [pool.config() for pool in self.pools],
        }
        if self.address_pools:
            subnet["pools"] = [{"pool": pool} for pool in self.address_pools]
        return {
            "Dhcp6": {
                "interfaces-config": {"interfaces": [self.ifname]},
                # Link-layer DUID, not written to /var/lib/kea.
                "server-id": {"type": "LL", "persist": False},
                "lease-database": lease_database,
                "renew-timer": self.renew,
                "rebind-timer": self.rebind,
                "preferred-lifetime": self.preferred,
                "valid-lifetime": self.valid,
                "subnet6": [subnet],
                "loggers": [
                    {
                        "name": "kea-dhcp6",
                        "output_options": [{"output": "stdout", "flush": True}],
                        "severity": "INFO",
                    }
                ],
            }
        }


DEFAULT_POOLS: Final = (PdPool("2001:db8:100::", 40, 56),)


class Kea(Lifecycle):
    """kea-dhcp6 serving the router end of `link`, started and stopped by this object.

    The router end gets `router_address` (inside `subnet`) so Kea serves the interface;
    it is removed again on stop. Use as a context manager, or call start() and stop();
    stop() is also registered with atexit. start() returns once Kea logged DHCP6_STARTED
    and listens on port 547 in the router namespace. stop() deletes the lease file too:
    read `leases()` before stopping.
    """

    def __init__(
        self,
        link: Link,
        *,
        pools: Sequence[PdPool] = DEFAULT_POOLS,
        subnet: IPv6Network | str = "2001:db8:1::/64",
        router_address: IPv6Interface | str | None = "2001:db8:1::1/64",
        address_pools: Sequence[str] = (),
        renew: int = 1000,
        rebind: int = 2000,
        preferred: int = 3000,
        valid: int = 4000,
        rapid_commit: bool = False,
        persist: bool = True,
        startup_timeout: float = 10.0,
    ) -> None:
        self.link = link
        self._subnet = IPv6Network(subnet)
        self._router_address = None if router_address is None else IPv6Interface(router_address)
        if self._router_address is not None and self._router_address.ip not in self._subnet:
            raise ValueError(f"router address {self._router_address} is not in {self._subnet}")
        self._config = KeaConfig(
            ifname=link.router_ifname,
            subnet=self._subnet,
            pools=tuple(pools),
            address_pools=tuple(address_pools),
            renew=renew,
            rebind=rebind,
            preferred=preferred,
            valid=valid,
            rapid_commit=rapid_commit,
        )
        self._persist = persist
        self._timeout = startup_timeout
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._address_added = False
        self.startup_seconds: float | None = None
        """From launching kea-dhcp6 to listening, for benchmarks and reports."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Check the config (`kea-dhcp6 -t`), launch Kea, return once it listens."""
        if self._workdir is not None:
            raise KeaError("this Kea is already started")
        if shutil.which("kea-dhcp6") is None:
            raise KeaError("kea-dhcp6 is not installed (see scripts/install-system-deps.sh)")
        return super().start()

    def _start(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="dynamic-prefix-kea-"))
        if self._persist:
            self._config = replace(self._config, lease_file=self._workdir / "leases6.csv")
        self._add_router_address()
        self._write_config(self._config)
        began = time.monotonic()
        with self.log_path.open("wb") as log_file:  # the child keeps its own descriptor
            self._process = self.link.popen_in_router(
                "kea-dhcp6",
                "-c",
                str(self.config_path),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env(),
            )
        self._wait(lambda: _STARTED_MARK in self.log_text() or None, "DHCP6_STARTED")
        self._wait(self._listening, f"a socket on port {DHCPV6_SERVER_PORT}")
        self.startup_seconds = time.monotonic() - began
        log.info("kea-dhcp6 (pid %s) listening %.3f s after launch", self.pid, self.startup_seconds)

    def _stop(self) -> None:
        """SIGTERM Kea (SIGKILL if it hangs), remove the router address and Kea's files
        (the lease file too)."""
        if self._process is not None:
            terminate(self._process, name="kea-dhcp6")
            self._process = None
        if self._address_added and self._router_address is not None:
            address, ifname = str(self._router_address), self.link.router_ifname
            self.link.run_in_router("ip", "addr", "del", address, "dev", ifname, check=False)
            self._address_added = False
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- changing the pools ----------------------------------------------------------------

    def reconfigure(
        self,
        *,
        pools: Sequence[PdPool] | None = None,
        address_pools: Sequence[str] | None = None,
        renew: int | None = None,
        rebind: int | None = None,
        preferred: int | None = None,
        valid: int | None = None,
    ) -> None:
        """Change pools or timers (None: keep as is), reload with SIGHUP, and return once
        Kea reports the new configuration in use. Clients with leases from an old pool get
        a prefix from the new one at their next exchange."""
        config = self._config
        if pools is not None:
            config = replace(config, pools=tuple(pools))
        if address_pools is not None:
            config = replace(config, address_pools=tuple(address_pools))
        config = replace(
            config,
            renew=config.renew if renew is None else renew,
            rebind=config.rebind if rebind is None else rebind,
            preferred=config.preferred if preferred is None else preferred,
            valid=config.valid if valid is None else valid,
        )
        process = self._running()
        offset = self.log_path.stat().st_size
        self._write_config(config)
        process.send_signal(signal.SIGHUP)

        def reloaded() -> bool | None:
            with self.log_path.open("rb") as file:
                file.seek(offset)
                text = file.read().decode(errors="replace")
            if _RELOAD_FAILED_MARK in text:
                raise KeaError(f"Kea refused the new configuration:\n{tail(text)}")
            return True if _RELOADED_MARK in text else None

        self._wait(reloaded, "the reload to complete")

    # -- access ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._running().pid

    @property
    def config(self) -> KeaConfig:
        """What Kea was last configured with."""
        return self._config

    @property
    def config_path(self) -> Path:
        return self._dir() / "kea-dhcp6.json"

    @property
    def log_path(self) -> Path:
        return self._dir() / "kea-dhcp6.log"

    @property
    def lease_file(self) -> Path:
        if self._config.lease_file is None:
            raise KeaError("this Kea keeps its leases in memory only (persist=False)")
        return self._config.lease_file

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lease_records(self) -> list[Lease6]:
        """Every row Kea has appended to its lease file so far, oldest first.

        Each grant, renewal and removal appends a row; a removal has valid lifetime 0.
        """
        path = self.lease_file
        if not path.exists():  # Kea creates it at start-up; not there before
            return []
        return parse_lease6_file(path.read_text())

    def leases(self) -> list[Lease6]:
        """The leases Kea holds now, as its lease file says (released ones are gone)."""
        return current_leases(self.lease_records())

    # -- internals -------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self._workdir is None:
            raise KeaError("Kea is not running")
        return self._workdir

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise KeaError("Kea is not running")
        return self._process

    def _env(self) -> dict[str, str]:
        directory = str(self._dir())
        return {**os.environ, "KEA_LOCKFILE_DIR": directory, "KEA_PIDFILE_DIR": directory}

    def _add_router_address(self) -> None:
        if self._router_address is None:
            return
        ifname = self.link.router_ifname
        present = self.link.addresses(self.link.router, scope=None)
        if any(info.interface == self._router_address for info in present):
            return
        self.link.run_in_router(
            "ip", "addr", "add", str(self._router_address), "dev", ifname, "nodad"
        )
        self._address_added = True

    def _write_config(self, config: KeaConfig) -> None:
        """Write `config` where Kea reads it, once `kea-dhcp6 -t` accepts it (in the router
        namespace: outside it, the interface does not exist)."""
        text = json.dumps(config.render(), indent=2) + "\n"
        candidate = self._dir() / "candidate.json"
        candidate.write_text(text)
        try:
            self.link.run_in_router("kea-dhcp6", "-t", str(candidate), env=self._env())
        except CommandError as err:
            output = f"{err.stdout or ''}{err.stderr or ''}".strip()
            errors = [line for line in output.splitlines() if "ERROR" in line or "Error" in line]
            reason = "\n".join(errors) or tail(output, 5)
            raise KeaError(
                f"kea-dhcp6 -t refused this configuration: {reason}\n"
                f"configuration: {json.dumps(config.render())}"
            ) from err
        candidate.replace(self.config_path)
        self._config = config

    def _listening(self) -> bool | None:
        result = self.link.run_in_router(
            "ss", "-H", "-u", "-l", "-n", f"sport = :{DHCPV6_SERVER_PORT}", check=False
        )
        return True if result.returncode == 0 and result.stdout.strip() else None

    def _alive(self) -> None:
        process = self._running()
        if process.poll() is not None:
            raise KeaError(
                f"kea-dhcp6 exited with status {process.returncode}; last lines of its log:\n"
                f"{tail(self.log_text())}"
            )

    def _wait(self, probe: Callable[[], bool | None], what: str) -> None:
        try:
            poll_until(probe, timeout=self._timeout, what=f"Kea: {what}", alive=self._alive)
        except TestbedError as err:
            if isinstance(err, KeaError):
                raise
            raise KeaError(f"{err}; last lines of Kea's log:\n{tail(self.log_text())}") from err
