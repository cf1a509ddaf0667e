"""A link with a router on it: two network namespaces joined by a veth pair.

The router side lives in its own namespace ("R", named ``dp-r-<suffix>``); the node side
lives in a second one ("N", ``dp-n-<suffix>``) or, with ``node_in_root_namespace=True``,
in the root namespace, so that a process there can both hear the router and reach a
control plane on 127.0.0.1. Names carry a random suffix, so parallel runs never collide,
and everything created is deleted again (namespaces, the veth, processes started through
the link) on exit, on error and, as a safety net, at interpreter exit.

See ../shared/TESTBED.md section 2 for the recipe this follows.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from typing import IO, Any, Final, Self, TypeVar

from testbed.lifecycle import Lifecycle, terminate

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_File = int | IO[Any] | None
"""What subprocess accepts for stdin, stdout and stderr."""

IFNAMSIZ: Final = 16
"""Linux interface names hold at most IFNAMSIZ - 1 = 15 characters."""

POLL_INTERVAL: Final = 0.01
_COMMAND_TIMEOUT = 30.0
_STOP_GRACE = 3.0
_SETTLE_GRACE = 1.0  # for helpers such as radvd's privsep child to follow their parent
_LINK_LOCAL = IPv6Network("fe80::/10")


class TestbedError(RuntimeError):
    """A piece of the network test bed could not be created, started or asked something."""

    __test__ = False  # not a test class, despite its name


class NetnsError(TestbedError):
    """Namespaces or the veth pair could not be created, configured or reached."""


class TestbedTimeoutError(TestbedError):
    """Something polled for did not happen before its deadline."""


class CommandError(subprocess.CalledProcessError):
    """A command that failed; unlike its base class, its message shows the command's stderr."""

    def __str__(self) -> str:
        stderr = self.stderr if isinstance(self.stderr, str) else ""
        stderr = stderr.strip()
        return f"{super().__str__()}\n{stderr}" if stderr else super().__str__()


# -- helpers shared by the test-bed modules ------------------------------------------------


def poll_until(
    probe: Callable[[], _T | None],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], None] | None = None,
    interval: float = POLL_INTERVAL,
) -> _T:
    """Call `probe` until it returns something other than None, and return that.

    `alive` is called before each probe and should raise if what is awaited can no longer
    happen (a daemon died), so a failure is reported at once rather than at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TestbedTimeoutError(f"{what}: not seen within {timeout:g} s")
        time.sleep(interval)


def run_command(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = _COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its output as text; raise `CommandError` if asked."""
    result = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandError(result.returncode, list(argv), result.stdout, result.stderr)
    return result


def tail(text: str, lines: int = 30) -> str:
    """The last `lines` lines of `text`, for error messages."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def in_namespace(namespace: str | None, argv: Sequence[str]) -> list[str]:
    """`argv` prefixed so that it runs in `namespace` (None: the root namespace)."""
    if namespace is None:
        return list(argv)
    return ["ip", "netns", "exec", namespace, *argv]


@functools.cache
def namespaces_supported() -> tuple[bool, str]:
    """Whether this process can create network namespaces and veth pairs, and why (not).

    Tries it: creates a namespace with a veth pair in it and deletes it again. The answer
    is cached for the life of the process.
    """
    if os.geteuid() != 0:
        return False, f"network namespaces need root; running as uid {os.geteuid()}"
    if shutil.which("ip") is None:
        return False, "iproute2's `ip` is not installed (see scripts/install-system-deps.sh)"
    name = f"dp-probe-{secrets.token_hex(3)}"
    added = run_command(["ip", "netns", "add", name], check=False)
    if added.returncode != 0:
        return False, f"`ip netns add` failed: {added.stderr.strip()}"
    try:
        veth = run_command(
            [
                "ip",
                "-n",
                name,
                "link",
                "add",
                "name",
                "probe0",
                "type",
                "veth",
                "peer",
                "name",
                "probe1",
            ],
            check=False,
        )
        if veth.returncode != 0:
            return False, f"cannot create a veth pair: {veth.stderr.strip()}"
    finally:
        run_command(["ip", "netns", "del", name], check=False)
    return True, "running as root; `ip netns add` and veth pairs work"


def _pids_in(namespace: str) -> list[int]:
    result = run_command(["ip", "netns", "pids", namespace], check=False)
    return [int(word) for word in result.stdout.split() if word.isdigit()]


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of the veth pair, as it was once both ends were up."""

    namespace: str | None
    """The network namespace holding this end; None for the root namespace."""
    ifname: str
    ifindex: int
    mac: str
    link_local: IPv6Address

    def argv(self, *argv: str) -> list[str]:
        """`argv` prefixed so that it runs in this end's namespace."""
        return in_namespace(self.namespace, argv)


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """One IPv6 address on an interface, as `ip -j addr` reports it."""

    interface: IPv6Interface
    scope: str
    valid_lifetime: int
    """Seconds left; 0xffffffff means forever."""
    preferred_lifetime: int
    flags: frozenset[str]
    """The flags ip reports as true: dynamic, mngtmpaddr, deprecated, tentative, ..."""

    @property
    def address(self) -> IPv6Address:
        return self.interface.ip

    @property
    def deprecated(self) -> bool:
        return "deprecated" in self.flags or self.preferred_lifetime == 0


_ADDRESS_FIELDS = frozenset(
    {"family", "local", "prefixlen", "scope", "valid_life_time", "preferred_life_time", "label"}
)


def parse_addresses(ip_json: str) -> list[AddressInfo]:
    """The IPv6 addresses in the output of `ip -j addr show dev IF`."""
    found: list[AddressInfo] = []
    for link in json.loads(ip_json or "[]"):
        for entry in link.get("addr_info", []):
            if entry.get("family") != "inet6":
                continue
            flags = frozenset(
                key for key, value in entry.items() if value is True and key not in _ADDRESS_FIELDS
            )
            found.append(
                AddressInfo(
                    interface=IPv6Interface(f"{entry['local']}/{entry['prefixlen']}"),
                    scope=str(entry.get("scope", "")),
                    valid_lifetime=int(entry.get("valid_life_time", 0xFFFFFFFF)),
                    preferred_lifetime=int(entry.get("preferred_life_time", 0xFFFFFFFF)),
                    flags=flags,
                )
            )
    return found


# -- the link --------------------------------------------------------------------------------


class Link(Lifecycle):
    """Router namespace + node namespace (or the root namespace) joined by a veth pair.

    Use as a context manager, or call start() and stop(). Setup follows TESTBED.md: lo up,
    duplicate address detection off before link-up (it would delay addresses by ~1.7 s),
    forwarding on the router side, and on the node side ``accept_ra=2``, ``autoconf=1``
    when `slaac` (the default in a node namespace). A node end in the root namespace gets
    ``accept_ra_defrtr=0`` and no SLAAC unless asked for, so the machine never learns a
    default route or an address from the test router; RAs still reach raw sockets there.

    Processes started with the ``popen_*`` and ``python_in_*`` methods are terminated (by
    PID, their pipes closed) when the link stops, as is anything else still running inside
    its namespaces.
    """

    def __init__(
        self,
        *,
        node_in_root_namespace: bool = False,
        slaac: bool | None = None,
        router_ifname: str = "vr",
        node_ifname: str | None = None,
        router_forwarding: bool = True,
        setup_timeout: float = 10.0,
    ) -> None:
        self.suffix = secrets.token_hex(3)
        self.node_in_root_namespace = node_in_root_namespace
        self.slaac = (not node_in_root_namespace) if slaac is None else slaac
        self.router_namespace = f"dp-r-{self.suffix}"
        self.node_namespace: str | None = None if node_in_root_namespace else f"dp-n-{self.suffix}"
        if node_ifname is None:
            node_ifname = f"dpn{self.suffix}" if node_in_root_namespace else "vn"
        for ifname in (router_ifname, node_ifname):
            if not 0 < len(ifname) < IFNAMSIZ or "/" in ifname or ifname.strip() != ifname:
                raise ValueError(f"not a usable interface name: {ifname!r}")
        self.router_ifname = router_ifname
        self.node_ifname = node_ifname
        self._router_forwarding = router_forwarding
        self._setup_timeout = setup_timeout
        self._created_namespaces: list[str] = []
        self._root_veth_created = False
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._router: Endpoint | None = None
        self._node: Endpoint | None = None
        self._started = False
        self.setup_seconds: float | None = None
        """How long start() took, for benchmarks and reports."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Create both namespaces and the veth, bring it up; return once both ends have
        their link-local address. Raises `NetnsError` (after cleaning up) if it cannot."""
        if self._started:
            raise NetnsError("this link is already started")
        supported, reason = namespaces_supported()
        if not supported:
            raise NetnsError(f"cannot create network namespaces: {reason}")
        return super().start()

    def _start(self) -> None:
        self._started = True
        began = time.monotonic()
        self._create()
        self._router, self._node = poll_until(
            self._endpoints,
            timeout=self._setup_timeout,
            what=f"link-local addresses on {self.router_ifname} and {self.node_ifname}",
        )
        self.setup_seconds = time.monotonic() - began
        log.info(
            "link %s <-> %s up in %.3f s (router %s, node %s)",
            self.router_namespace,
            self.node_namespace or "root namespace",
            self.setup_seconds,
            self._router.link_local,
            self._node.link_local,
        )

    def _create(self) -> None:
        for namespace in (self.router_namespace, self.node_namespace):
            if namespace is None:
                continue
            self._check(["ip", "netns", "add", namespace])
            self._created_namespaces.append(namespace)
            # New interfaces inherit `default`; the kernel obeys the larger of `all` and
            # an interface's own value, so each interface is also set below.
            self._sysctl(namespace, {"all.accept_dad": 0, "default.accept_dad": 0})
            self._check(["ip", "-n", namespace, "link", "set", "lo", "up"])
        if self.node_namespace is None:
            # One netlink request: either both ends exist afterwards or neither. An existing
            # interface of that name makes it fail, and is then not ours to delete.
            self._check(
                [
                    *("ip", "link", "add", "name", self.node_ifname, "type", "veth"),
                    *("peer", "name", self.router_ifname, "netns", self.router_namespace),
                ]
            )
            self._root_veth_created = True
        else:
            self._check(
                [
                    *("ip", "link", "add", "name", self.router_ifname),
                    *("netns", self.router_namespace),
                    *("type", "veth", "peer", "name", self.node_ifname),
                    *("netns", self.node_namespace),
                ]
            )
        router_settings: dict[str, int] = {f"{self.router_ifname}.accept_dad": 0}
        if self._router_forwarding:
            router_settings["all.forwarding"] = 1
        self._sysctl(self.router_namespace, router_settings)
        node = self.node_ifname
        node_settings: dict[str, int] = {f"{node}.disable_ipv6": 0, f"{node}.accept_dad": 0}
        if self.slaac:
            node_settings |= {f"{node}.accept_ra": 2, f"{node}.autoconf": 1}
        else:
            # The kernel ignores RAs altogether; raw ICMPv6 sockets still receive them.
            node_settings |= {f"{node}.accept_ra": 0, f"{node}.autoconf": 0}
        if self.node_namespace is None:
            # Never a default route, more-specific route or MTU from the test router.
            node_settings |= {
                f"{node}.accept_ra_defrtr": 0,
                f"{node}.accept_ra_rtr_pref": 0,
                f"{node}.accept_ra_rt_info_max_plen": 0,
                f"{node}.accept_ra_mtu": 0,
            }
        self._sysctl(self.node_namespace, node_settings)
        self._check(["ip", "-n", self.router_namespace, "link", "set", self.router_ifname, "up"])
        self._check(in_namespace(self.node_namespace, ["ip", "link", "set", node, "up"]))

    def _endpoints(self) -> tuple[Endpoint, Endpoint] | None:
        router = self._read_endpoint(self.router_namespace, self.router_ifname)
        node = self._read_endpoint(self.node_namespace, self.node_ifname)
        if router is None or node is None:
            return None
        return router, node

    def _read_endpoint(self, namespace: str | None, ifname: str) -> Endpoint | None:
        result = self._check(in_namespace(namespace, ["ip", "-j", "addr", "show", "dev", ifname]))
        links = json.loads(result.stdout or "[]")
        if not links:
            return None
        usable = [
            info.address
            for info in parse_addresses(result.stdout)
            if info.address in _LINK_LOCAL and not {"tentative", "dadfailed"} & info.flags
        ]
        if not usable:
            return None
        return Endpoint(
            namespace=namespace,
            ifname=ifname,
            ifindex=int(links[0]["ifindex"]),
            mac=str(links[0]["address"]),
            link_local=usable[0],
        )

    def _stop(self) -> None:
        """Terminate processes started here, delete the veth and the namespaces.

        Also removes whatever else still runs inside the namespaces (e.g. radvd's privsep
        helper), by PID, so that deleting a namespace really frees it.
        """
        for name, process in reversed(self._processes):
            terminate(process, name=name)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        self._processes.clear()
        for namespace in self._created_namespaces:
            self._kill_leftovers(namespace)
        if self._root_veth_created:
            # Deleting one end deletes both; gone already if the router namespace went first.
            run_command(["ip", "link", "del", self.node_ifname], check=False)
            self._root_veth_created = False
        for namespace in reversed(self._created_namespaces):
            result = run_command(["ip", "netns", "del", namespace], check=False)
            if result.returncode != 0:
                log.warning("could not delete namespace %s: %s", namespace, result.stderr.strip())
        self._created_namespaces.clear()
        self._router = None
        self._node = None
        self._started = False

    def _kill_leftovers(self, namespace: str) -> None:
        """Give what still runs in `namespace` a moment to exit by itself, then SIGKILL it."""

        def empty() -> bool | None:
            return True if not _pids_in(namespace) else None

        try:
            poll_until(empty, timeout=_SETTLE_GRACE, what=f"processes in {namespace} to exit")
        except TestbedTimeoutError:
            for pid in _pids_in(namespace):
                log.warning("killing pid %s, still running in namespace %s", pid, namespace)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                poll_until(empty, timeout=_STOP_GRACE, what=f"processes in {namespace} to die")
            except TestbedTimeoutError as err:  # e.g. stuck in the kernel: delete anyway
                log.warning("%s", err)

    def _check(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        try:
            return run_command(argv)
        except CommandError as err:
            raise NetnsError(str(err)) from err

    def _sysctl(self, namespace: str | None, settings: Mapping[str, int]) -> None:
        assignments = [f"net.ipv6.conf.{key}={value}" for key, value in settings.items()]
        self._check(in_namespace(namespace, ["sysctl", "-qw", *assignments]))

    # -- access ----------------------------------------------------------------------------

    @property
    def router(self) -> Endpoint:
        """The router end of the veth (in the router namespace)."""
        if self._router is None:
            raise NetnsError("the link is not up")
        return self._router

    @property
    def node(self) -> Endpoint:
        """The node end of the veth (in the node namespace, or the root namespace)."""
        if self._node is None:
            raise NetnsError("the link is not up")
        return self._node

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The namespaces this link created (and will delete)."""
        return tuple(self._created_namespaces)

    def run_in_router(
        self,
        *argv: str,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = _COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion in the router namespace; text output captured."""
        return run_command(
            in_namespace(self.router_namespace, argv),
            check=check,
            input=input,
            env=env,
            timeout=timeout,
        )

    def run_in_node(
        self,
        *argv: str,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = _COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion on the node side; text output captured."""
        return run_command(
            in_namespace(self.node_namespace, argv),
            check=check,
            input=input,
            env=env,
            timeout=timeout,
        )

    def popen_in_router(
        self,
        *argv: str,
        stdin: _File = subprocess.DEVNULL,
        stdout: _File = subprocess.PIPE,
        stderr: _File = subprocess.PIPE,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a command in the router namespace; it is terminated when the link stops.

        `ip netns exec` execs the command, so the PID is the command's own.
        """
        return self._popen(
            self.router_namespace, argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env
        )

    def popen_in_node(
        self,
        *argv: str,
        stdin: _File = subprocess.DEVNULL,
        stdout: _File = subprocess.PIPE,
        stderr: _File = subprocess.PIPE,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a command on the node side; it is terminated when the link stops."""
        return self._popen(
            self.node_namespace, argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env
        )

    def python_in_node(
        self,
        code: str,
        *args: str,
        stdin: _File = subprocess.DEVNULL,
        stdout: _File = subprocess.PIPE,
        stderr: _File = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        """Run ``python -u -c code args...`` (this interpreter) on the node side."""
        return self._python(
            self.node_namespace, code, args, stdin=stdin, stdout=stdout, stderr=stderr
        )

    def python_in_router(
        self,
        code: str,
        *args: str,
        stdin: _File = subprocess.DEVNULL,
        stdout: _File = subprocess.PIPE,
        stderr: _File = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        """Run ``python -u -c code args...`` (this interpreter) in the router namespace."""
        return self._python(
            self.router_namespace, code, args, stdin=stdin, stdout=stdout, stderr=stderr
        )

    def _python(
        self,
        namespace: str | None,
        code: str,
        args: Sequence[str],
        *,
        stdin: _File,
        stdout: _File,
        stderr: _File,
    ) -> subprocess.Popen[bytes]:
        argv = (sys.executable, "-u", "-c", code, *args)
        return self._popen(namespace, argv, stdin=stdin, stdout=stdout, stderr=stderr, env=None)

    def _popen(
        self,
        namespace: str | None,
        argv: Sequence[str],
        *,
        stdin: _File,
        stdout: _File,
        stderr: _File,
        env: Mapping[str, str] | None,
    ) -> subprocess.Popen[bytes]:
        if not self._started or self._router is None:
            raise NetnsError("the link is not up")
        self._processes = [(n, p) for n, p in self._processes if p.poll() is None]
        process = subprocess.Popen(
            in_namespace(namespace, argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=None if env is None else dict(env),
        )
        self._processes.append((os.path.basename(argv[0]), process))
        return process

    def addresses(self, endpoint: Endpoint, *, scope: str | None = "global") -> list[AddressInfo]:
        """The IPv6 addresses on `endpoint` now (of `scope`, or all if None)."""
        result = self._check(
            endpoint.argv("ip", "-j", "-6", "addr", "show", "dev", endpoint.ifname)
        )
        return [a for a in parse_addresses(result.stdout) if scope is None or a.scope == scope]

    def node_addresses(self, *, scope: str | None = "global") -> list[AddressInfo]:
        """The IPv6 addresses on the node end now, global ones by default."""
        return self.addresses(self.node, scope=scope)

    def wait_for_node_address(
        self,
        network: IPv6Network | str,
        *,
        deprecated: bool | None = None,
        timeout: float = 5.0,
    ) -> AddressInfo:
        """Poll until the node end has an address in `network` and return it.

        With `deprecated` True (False), only a deprecated (preferred) address counts.
        """
        wanted = IPv6Network(network)

        def probe() -> AddressInfo | None:
            for info in self.node_addresses():
                if info.address in wanted and deprecated in (None, info.deprecated):
                    return info
            return None

        state = {None: "", True: "deprecated ", False: "preferred "}[deprecated]
        return poll_until(
            probe, timeout=timeout, what=f"a {state}address in {wanted} on {self.node_ifname}"
        )
