"""A second DHCPv6 server delegating prefixes on a test `Link`: ISC dhcpd (``dhcpd -6``).

`Dhcpd` gives the router end an address inside its ``subnet6`` (dhcpd serves only an
interface with an address in a declared subnet) and runs dhcpd in the router namespace
with its config, lease file and PID file in its own temporary directory. Tests read what
dhcpd believes from that lease file with `Dhcpd.leases`; `parse_lease_file` reads one
given as text. See ../shared/TESTBED.md section 8.

How dhcpd differs from Kea here (ISC DHCP 4.4.3, seen on this machine):

- It binds the wildcard ``*:547`` of the whole router namespace, so Kea cannot serve the
  same router namespace at the same time. It has no reload: a new config means a restart.
- Its lease file is a log: each grant, renewal and Release appends the whole IA again,
  and the last copy of a prefix says what holds. A released prefix stays in the file, in
  binding state ``released``; an expired one turns ``expired``.
- The server DUID is a DUID-LLT made at first start and kept in the lease file: with an
  empty lease file, a restarted dhcpd answers with a new DUID.
- Pool prefixes are not handed out in order: here the first client got the pool's last
  /56, the next one the /56 before it.
- ``dhcp-cache-threshold 0`` is set: by default dhcpd answers a renewal within 25% of the
  lifetime with the old lease's remaining lifetimes and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Final, Self

from testbed.lifecycle import Lifecycle, terminate
from testbed.netns import CommandError, Link, TestbedError, poll_until, tail

log = logging.getLogger(__name__)

DHCPV6_SERVER_PORT: Final = 547

_STARTED_MARK = "Server starting service."
_RELEASE_MARK = re.compile(r"^Client (?P<duid>\S+) releases prefix (?P<prefix>\S+)$", re.M)
_IAID_LENGTH = 4
_IA_KINDS = frozenset({"ia-pd", "ia-na", "ia-ta"})  # the manual writes ia_pd, files ia-pd
_MAX_LIFETIME = 0xFFFF_FFFF


class DhcpdError(TestbedError):
    """dhcpd refused its configuration, did not start, died, or has no lease file to read."""


class BindingState(enum.StrEnum):
    """The ``binding state`` of an address or prefix in dhcpd's lease file."""

    ACTIVE = "active"
    EXPIRED = "expired"
    RELEASED = "released"
    ABANDONED = "abandoned"
    FREE = "free"


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrefixPool:
    """``prefix6 FIRST LAST /LEN``: the /`delegated_len` prefixes from `first` to `last`."""

    first: IPv6Address | str
    last: IPv6Address | str
    delegated_len: int

    def __post_init__(self) -> None:
        if not 1 <= self.delegated_len <= 128:
            raise ValueError(f"a delegated length is 1 to 128, not {self.delegated_len}")
        first, last = self.first_prefix, self.last_prefix  # raise for host bits set
        if first.network_address > last.network_address:
            raise ValueError(f"pool starts at {first} after its end {last}")

    @classmethod
    def of(cls, network: IPv6Network | str, delegated_len: int) -> PrefixPool:
        """Every /`delegated_len` inside `network`."""
        whole = IPv6Network(network)
        if delegated_len < whole.prefixlen:
            raise ValueError(f"/{delegated_len} prefixes do not fit in {whole}")
        last = IPv6Address(int(whole.broadcast_address) - (1 << (128 - delegated_len)) + 1)
        return cls(whole.network_address, last, delegated_len)

    @property
    def first_prefix(self) -> IPv6Network:
        return IPv6Network(f"{self.first}/{self.delegated_len}")

    @property
    def last_prefix(self) -> IPv6Network:
        return IPv6Network(f"{self.last}/{self.delegated_len}")

    @property
    def size(self) -> int:
        """How many prefixes the pool holds."""
        span = int(self.last_prefix.network_address) - int(self.first_prefix.network_address)
        return (span >> (128 - self.delegated_len)) + 1

    def __contains__(self, prefix: object) -> bool:
        if not isinstance(prefix, IPv6Network) or prefix.prefixlen != self.delegated_len:
            return False
        start, end = self.first_prefix.network_address, self.last_prefix.network_address
        return start <= prefix.network_address <= end

    def config(self) -> str:
        first, last = self.first_prefix.network_address, self.last_prefix.network_address
        return f"  prefix6 {first} {last} /{self.delegated_len};\n"


def _lifetime(name: str, seconds: int) -> int:
    if not 0 < seconds < _MAX_LIFETIME:
        raise ValueError(f"{name} is 1 to {_MAX_LIFETIME - 1} seconds, not {seconds}")
    return seconds


@dataclass(frozen=True, slots=True)
class DhcpdConfig:
    """One ``subnet6`` with prefix-delegation pools, and the lifetimes and timers given."""

    subnet: IPv6Network
    pools: tuple[PrefixPool, ...]
    renew: int | None = 1000
    """T1 (``option dhcp-renewal-time``); None leaves it to dhcpd."""
    rebind: int | None = 2000
    """T2 (``option dhcp-rebinding-time``); None leaves it to dhcpd."""
    preferred: int = 3000
    valid: int = 4000
    """The valid lifetime (``default-lease-time``, and ``max-lease-time``)."""

    def __post_init__(self) -> None:
        if not self.pools:
            raise ValueError("dhcpd needs at least one prefix6 pool to delegate from")
        _lifetime("the valid lifetime", self.valid)
        _lifetime("the preferred lifetime", self.preferred)
        if self.preferred > self.valid:
            raise ValueError(f"preferred lifetime {self.preferred} exceeds valid {self.valid}")
        for name, timer in (("renew", self.renew), ("rebind", self.rebind)):
            if timer is not None:
                _lifetime(f"the {name} timer", timer)
        if self.renew is not None and self.rebind is not None and self.renew > self.rebind:
            raise ValueError(f"renew timer {self.renew} exceeds rebind timer {self.rebind}")

    def render(self) -> str:
        lines = [
            "# ISC dhcpd as a DHCPv6-PD server; see testbed.dhcpd\n",
            f"default-lease-time {self.valid};\n",
            f"max-lease-time {self.valid};\n",
            f"preferred-lifetime {self.preferred};\n",
        ]
        if self.renew is not None:
            lines.append(f"option dhcp-renewal-time {self.renew};\n")
        if self.rebind is not None:
            lines.append(f"option dhcp-rebinding-time {self.rebind};\n")
        lines += [
            "dhcp-cache-threshold 0;\n",  # every renewal gets full lifetimes, and is written
            "lease-id-format hex;\n",  # client ids and DUIDs as readable hex in the lease file
            f"subnet6 {self.subnet} {{\n",
            *(pool.config() for pool in self.pools),
            "}\n",
        ]
        return "".join(lines)


# -- the lease file ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DhcpdLease:
    """One address or prefix of one IA as one entry of dhcpd's lease file says."""

    kind: str
    """``ia-pd`` for a delegated prefix, ``ia-na`` or ``ia-ta`` for an address."""
    iaid: int
    client_id: bytes | None
    """The client's DUID (the IAID_DUID after its 4-octet IAID), if the entry has one."""
    prefix: IPv6Network
    """The delegated prefix; an address as a /128."""
    state: str
    """A `BindingState`; kept as str so that a state this module does not know survives."""
    preferred_lifetime: int | None
    valid_lifetime: int | None
    ends: dt.datetime | None
    """When the lease ends (UTC); None for never or not stated."""
    cltt: dt.datetime | None
    """The client's last transaction time (UTC), if stated."""

    @property
    def active(self) -> bool:
        return self.state == BindingState.ACTIVE


@dataclass(frozen=True, slots=True)
class _Statement:
    """One statement of dhcpd's file grammar: words (quoted strings as bytes), maybe a block."""

    words: tuple[str | bytes, ...]
    body: tuple[_Statement, ...] | None


_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<punct>[{};])
    |(?P<word>[^\s{};"\#]+)""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(rb"\\([0-7]{3}|.)", re.DOTALL)


def _unquote(token: str) -> bytes:
    """The octets of a quoted string: ``\\ooo`` is an octal escape, ``\\c`` is ``c``."""
    raw = token[1:-1].encode("latin-1")

    def octet(match: re.Match[bytes]) -> bytes:
        escaped = match.group(1)
        return bytes([int(escaped, 8) & 0xFF]) if len(escaped) == 3 else escaped

    return _ESCAPE.sub(octet, raw)


def _tokens(text: str) -> Iterator[str | bytes]:
    for match in _TOKEN.finditer(text):
        if match.group("string") is not None:
            yield _unquote(match.group("string"))
        elif match.group("punct") is not None or match.group("word") is not None:
            yield match.group(0)


def _statements(text: str) -> tuple[_Statement, ...]:
    """The top-level statements of `text`; a truncated last statement is left out."""
    stack: list[tuple[tuple[str | bytes, ...], list[_Statement]]] = [((), [])]
    words: list[str | bytes] = []
    for token in _tokens(text):
        if token == ";":
            stack[-1][1].append(_Statement(tuple(words), None))
            words = []
        elif token == "{":
            stack.append((tuple(words), []))
            words = []
        elif token == "}":
            if len(stack) == 1:
                raise ValueError("dhcpd lease file: '}' without '{'")
            head, body = stack.pop()
            stack[-1][1].append(_Statement(head, tuple(body)))
            words = []
        else:
            words.append(token)
    return tuple(stack[0][1])


def _octets(word: str | bytes) -> bytes:
    """An identifier written as a quoted string or as colon-separated hex."""
    if isinstance(word, bytes):
        return word
    return bytes(int(part, 16) for part in word.split(":"))


def _date(words: Sequence[str | bytes]) -> dt.datetime | None:
    """``W YYYY/MM/DD HH:MM:SS`` (UTC), ``epoch N``, or ``never``."""
    text = [word for word in words if isinstance(word, str)]
    if len(text) >= 2 and text[0] == "epoch":
        return dt.datetime.fromtimestamp(int(text[1]), dt.UTC)
    if len(text) >= 3:
        moment = dt.datetime.strptime(f"{text[1]} {text[2]}", "%Y/%m/%d %H:%M:%S")
        return moment.replace(tzinfo=dt.UTC)
    return None


def _leases_of(ia: _Statement, kind: str, byteorder: str) -> Iterator[DhcpdLease]:
    key = _octets(ia.words[1])
    iaid = int.from_bytes(key[:_IAID_LENGTH], "little" if byteorder == "little" else "big")
    client_id = key[_IAID_LENGTH:] or None
    body = ia.body or ()
    cltt = next((_date(s.words[1:]) for s in body if s.words[:1] == ("cltt",)), None)
    for entry in body:
        if entry.body is None or entry.words[:1] not in (("iaprefix",), ("iaaddr",)):
            continue
        prefix = IPv6Network(str(entry.words[1]))
        fields: dict[str, tuple[str | bytes, ...]] = {}
        for statement in entry.body:
            if statement.words[:2] == ("binding", "state"):
                fields["state"] = statement.words[2:]
            elif statement.words:
                fields[str(statement.words[0])] = statement.words[1:]
        yield DhcpdLease(
            kind=kind,
            iaid=iaid,
            client_id=client_id,
            prefix=prefix,
            state=str(fields["state"][0]) if fields.get("state") else "",
            preferred_lifetime=_number(fields.get("preferred-life")),
            valid_lifetime=_number(fields.get("max-life")),
            ends=_date(fields["ends"]) if "ends" in fields else None,
            cltt=cltt,
        )


def _number(words: tuple[str | bytes, ...] | None) -> int | None:
    if not words or not isinstance(words[0], str) or not words[0].isdigit():
        return None
    return int(words[0])


def _byteorder(statements: Sequence[_Statement]) -> str:
    for statement in statements:
        if statement.words[:1] == ("authoring-byte-order",) and len(statement.words) > 1:
            return "big" if statement.words[1] == "big-endian" else "little"
    return sys.byteorder  # the file says nothing: written on a machine like this one


def parse_lease_file(text: str) -> list[DhcpdLease]:
    """Every address and prefix entry of a dhcpd (v6) lease file, in file order.

    dhcpd appends an IA whenever it changes, so one prefix may appear many times; the
    last entry is the one in effect (see `current_leases`). IAIDs are decoded in the
    ``authoring-byte-order`` the file states.
    """
    statements = _statements(text)
    byteorder = _byteorder(statements)
    records: list[DhcpdLease] = []
    for statement in statements:
        kind = str(statement.words[0]).replace("_", "-") if statement.words else ""
        if statement.body is not None and kind in _IA_KINDS and len(statement.words) > 1:
            records.extend(_leases_of(statement, kind, byteorder))
    return records


def parse_server_duid(text: str) -> bytes | None:
    """The server DUID a dhcpd lease file records (the last one), if any."""
    duid = None
    for statement in _statements(text):
        if statement.words[:1] == ("server-duid",) and len(statement.words) == 2:
            duid = _octets(statement.words[1])
    return duid


def current_leases(records: Sequence[DhcpdLease]) -> list[DhcpdLease]:
    """The last entry of each address and prefix, in the order they last changed."""
    latest: dict[tuple[str, IPv6Network], DhcpdLease] = {}
    for record in records:
        key = (record.kind, record.prefix)
        latest.pop(key, None)
        latest[key] = record
    return list(latest.values())


# -- the server ----------------------------------------------------------------------------


DEFAULT_POOLS: Final = (PrefixPool("2001:db8:100::", "2001:db8:100:f00::", 56),)


class Dhcpd(Lifecycle):
    """ISC dhcpd (``-6``) delegating prefixes on the router end of `link`.

    The router end gets `router_address` (inside `subnet`) so dhcpd serves it; it is
    removed again on stop. Use as a context manager, or call start() and stop(); stop() is
    also registered with atexit. start() returns once dhcpd logged that it is serving and
    listens on port 547 in the router namespace. stop() deletes the lease file too: read
    `leases()` before stopping.
    """

    def __init__(
        self,
        link: Link,
        *,
        pools: Sequence[PrefixPool] = DEFAULT_POOLS,
        subnet: IPv6Network | str = "2001:db8:ffff::/64",
        router_address: IPv6Interface | str | None = "2001:db8:ffff::1/64",
        renew: int | None = 1000,
        rebind: int | None = 2000,
        preferred: int = 3000,
        valid: int = 4000,
        startup_timeout: float = 10.0,
    ) -> None:
        self.link = link
        self._config = DhcpdConfig(
            subnet=IPv6Network(subnet),
            pools=tuple(pools),
            renew=renew,
            rebind=rebind,
            preferred=preferred,
            valid=valid,
        )
        self._router_address = None if router_address is None else IPv6Interface(router_address)
        if self._router_address is not None and self._router_address.ip not in self._config.subnet:
            raise ValueError(
                f"router address {self._router_address} is not in {self._config.subnet}"
            )
        self._timeout = startup_timeout
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._address_added = False
        self.startup_seconds: float | None = None
        """From launching dhcpd to listening, for benchmarks and reports."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Check the config (`dhcpd -t`), launch dhcpd, return once it listens."""
        if self._workdir is not None:
            raise DhcpdError("this dhcpd is already started")
        if shutil.which("dhcpd") is None:
            raise DhcpdError(
                "dhcpd is not installed (package isc-dhcp-server; see "
                "scripts/install-system-deps.sh)"
            )
        return super().start()

    def _start(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="dynamic-prefix-dhcpd-"))
        self.lease_file.touch()  # dhcpd refuses to start without one
        self._add_router_address()
        self._write_config()
        began = time.monotonic()
        with self.log_path.open("wb") as log_file:  # the child keeps its own descriptor
            self._process = self.link.popen_in_router(
                *self._argv("-f", "-d"),
                self.link.router_ifname,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self._wait(lambda: _STARTED_MARK in self.log_text() or None, "starting service")
        self._wait(self._listening, f"a socket on port {DHCPV6_SERVER_PORT}")
        self.startup_seconds = time.monotonic() - began
        log.info("dhcpd (pid %s) listening %.3f s after launch", self.pid, self.startup_seconds)

    def _stop(self) -> None:
        """SIGTERM dhcpd (SIGKILL if it hangs), remove the router address and dhcpd's
        files (the lease file too)."""
        if self._process is not None:
            terminate(self._process, name="dhcpd")
            self._process = None
        if self._address_added and self._router_address is not None:
            address, ifname = str(self._router_address), self.link.router_ifname
            self.link.run_in_router("ip", "addr", "del", address, "dev", ifname, check=False)
            self._address_added = False
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- access ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._running().pid

    @property
    def config(self) -> DhcpdConfig:
        return self._config

    @property
    def router_address(self) -> IPv6Interface | None:
        return self._router_address

    @property
    def config_path(self) -> Path:
        return self._dir() / "dhcpd6.conf"

    @property
    def log_path(self) -> Path:
        return self._dir() / "dhcpd6.log"

    @property
    def lease_file(self) -> Path:
        """dhcpd's lease file (``-lf``); it keeps a backup of the previous one next to it."""
        return self._dir() / "dhcpd6.leases"

    @property
    def pid_file(self) -> Path:
        return self._dir() / "dhcpd6.pid"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lease_records(self) -> list[DhcpdLease]:
        """Every address and prefix entry in the lease file so far, oldest first."""
        return parse_lease_file(self._lease_text())

    def leases(self) -> list[DhcpdLease]:
        """The entry in effect for each prefix (and address), released ones included:
        their `DhcpdLease.state` says so."""
        return current_leases(self.lease_records())

    def lease(self, prefix: IPv6Network | str) -> DhcpdLease | None:
        """The entry in effect for `prefix`, if the lease file mentions it."""
        wanted = IPv6Network(prefix)
        return next((lease for lease in self.leases() if lease.prefix == wanted), None)

    def wait_for_lease(
        self,
        prefix: IPv6Network | str,
        *,
        state: BindingState | None = None,
        timeout: float = 5.0,
    ) -> DhcpdLease:
        """Poll the lease file until `prefix` is in it (in `state`, if given); return it."""

        def probe() -> DhcpdLease | None:
            found = self.lease(prefix)
            if found is None or (state is not None and found.state != state):
                return None
            return found

        what = f"{prefix} in {state or 'any'} state in dhcpd's lease file"
        return poll_until(probe, timeout=timeout, what=what, alive=self._alive)

    def server_duid(self) -> bytes | None:
        """The DUID dhcpd answers with, as its lease file records it."""
        return parse_server_duid(self._lease_text())

    def releases_logged(self) -> list[tuple[str, IPv6Network]]:
        """(client DUID as dhcpd logs it, prefix) for each Release dhcpd has logged."""
        return [
            (match["duid"], IPv6Network(match["prefix"]))
            for match in _RELEASE_MARK.finditer(self.log_text())
        ]

    # -- internals -------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self._workdir is None:
            raise DhcpdError("dhcpd is not running")
        return self._workdir

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise DhcpdError("dhcpd is not running")
        return self._process

    def _lease_text(self) -> str:
        path = self.lease_file
        return path.read_bytes().decode("latin-1") if path.exists() else ""

    def _argv(self, *flags: str, config: Path | None = None) -> list[str]:
        return [
            *("dhcpd", "-6", *flags),
            *("-cf", str(config or self.config_path)),
            *("-lf", str(self.lease_file)),
            *("-pf", str(self.pid_file)),
        ]

    def _add_router_address(self) -> None:
        if self._router_address is None:
            return
        present = self.link.addresses(self.link.router, scope=None)
        if any(info.interface == self._router_address for info in present):
            return
        self.link.run_in_router(
            "ip", "addr", "add", str(self._router_address), "dev", self.link.router_ifname, "nodad"
        )
        self._address_added = True

    def _write_config(self) -> None:
        """Write the config where dhcpd reads it, once `dhcpd -t` accepts it."""
        text = self._config.render()
        candidate = self._dir() / "candidate.conf"
        candidate.write_text(text)
        try:
            self.link.run_in_router(*self._argv("-t", "-q", config=candidate))
        except CommandError as err:
            output = f"{err.stdout or ''}{err.stderr or ''}".strip()
            errors = [line for line in output.splitlines() if str(candidate) in line]
            reason = "\n".join(errors) or tail(output, 5)
            raise DhcpdError(
                f"dhcpd -t refused this configuration: {reason}\nconfiguration:\n{text}"
            ) from err
        candidate.replace(self.config_path)

    def _listening(self) -> bool | None:
        result = self.link.run_in_router(
            "ss", "-H", "-u", "-l", "-n", f"sport = :{DHCPV6_SERVER_PORT}", check=False
        )
        return True if result.returncode == 0 and result.stdout.strip() else None

    def _alive(self) -> None:
        process = self._running()
        if process.poll() is not None:
            raise DhcpdError(
                f"dhcpd exited with status {process.returncode}; last lines of its log:\n"
                f"{tail(self.log_text())}"
            )

    def _wait(self, probe: Callable[[], bool | None], what: str) -> None:
        try:
            poll_until(probe, timeout=self._timeout, what=f"dhcpd: {what}", alive=self._alive)
        except TestbedError as err:
            if isinstance(err, DhcpdError):
                raise
            raise DhcpdError(f"{err}; last lines of dhcpd's log:\n{tail(self.log_text())}") from err
