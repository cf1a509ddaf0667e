"""`dynamic-prefix doctor`: the troubleshooting guide as a command, run on the node.

It checks what the operator needs on this node, in order, and says what to do about
each problem: the interface, the capability to listen to Router Advertisements, the
sysctls that matter, what routers actually advertise (and with which lifetimes), and
whether a device on the link already uses an address inside a reserved range.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

from dynamic_prefix.cli.manifests import ManifestError, load_documents
from dynamic_prefix.link import addresses
from dynamic_prefix.model import api
from dynamic_prefix.model.compute import ComputedRange, compute
from dynamic_prefix.model.spec import InvalidSpec, validate_dynamic_prefix
from dynamic_prefix.protocols.ndp import INFINITE_LIFETIME
from dynamic_prefix.protocols.tracker import PrefixTracker, TrackerPolicy
from dynamic_prefix.sources.base import SourceError
from dynamic_prefix.sources.neighbour_probe import probe_link
from dynamic_prefix.sources.ra_listener import (
    RaListener,
    ReceivedAdvertisement,
    SolicitationPacing,
)
from dynamic_prefix.sources.router_advertisement import default_route_interface

OK, INFO, WARN, FAIL = "ok", "info", "WARN", "FAIL"  # ok and info are not problems
PROBE_WAIT = 1.0  # seconds to collect answers; neighbours answer within milliseconds


def add_parser(subparsers: Any) -> None:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="check this node: interface, capabilities, sysctls, RAs, address conflicts",
        description="Check what the operator needs on this node and say what to fix: the "
        "interface, CAP_NET_RAW, the sysctls that matter, the Router Advertisements heard "
        "(from whom, which prefixes, which lifetimes), and neighbours already using an "
        "address inside the reserved ranges of a DynamicPrefix (-f), from the kernel's "
        "neighbour table and, with --probe, by asking the link. Exit code 1 on problems.",
    )
    parser.add_argument(
        "--interface", help="interface to check (default: that of the IPv6 default route)"
    )
    parser.add_argument(
        "--wait", type=float, default=10.0, help="seconds to listen for RAs (default 10)"
    )
    parser.add_argument("-f", "--filename", help="a DynamicPrefix whose reserved ranges to check")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also ask the link (with -f): Neighbor Solicitations for the first addresses "
        "of each range, and an Echo Request to all nodes from this node's global addresses",
    )
    parser.add_argument(
        "--probe-count",
        type=int,
        default=16,
        metavar="N",
        help="addresses solicited at the start of each range (default 16)",
    )
    parser.set_defaults(handler=run)


@dataclass
class Report:
    """Findings, printed as they come."""

    problems: int = 0
    lines: list[str] = field(default_factory=list)

    def say(self, level: str, text: str, advice: str = "") -> None:
        if level not in (OK, INFO):
            self.problems += 1
        line = f"[{level:>4}] {text}" + (f"\n       -> {advice}" if advice else "")
        self.lines.append(line)
        print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run every check; 0 when nothing needs fixing."""
    report = Report()
    try:
        interface = args.interface or default_route_interface()
    except SourceError as error:
        report.say(FAIL, f"no --interface given: {error}",
                   "name the interface of the VLAN whose prefix to follow")  # fmt: skip
        return 1
    if not _check_interface(report, interface):
        return 1
    _check_sysctls(report, interface)
    if not _check_raw_socket(report):
        return 1
    heard = asyncio.run(_listen(interface, args.wait))
    prefixes = _report_advertisements(report, interface, heard, args.wait)
    if args.probe and not args.filename:
        report.say(FAIL, "--probe needs -f: the DynamicPrefix whose reserved ranges to probe")
    if args.filename:
        _check_reserved_ranges(report, interface, args.filename, prefixes,
                               early=args.probe_count, probe=args.probe)  # fmt: skip
    print(f"\n{report.problems} problem(s) found" if report.problems else "\nno problems found")
    return 1 if report.problems else 0


def _check_interface(report: Report, interface: str) -> bool:
    try:
        socket.if_nametoindex(interface)
    except OSError:
        names = ", ".join(name for _, name in socket.if_nameindex())
        report.say(FAIL, f"interface {interface} does not exist here",
                   f"interfaces: {names}. In a pod the operator needs hostNetwork: true "
                   "to see the node's interfaces")  # fmt: skip
        return False
    state = _read(Path(f"/sys/class/net/{interface}/operstate")) or "unknown"
    if state in ("up", "unknown"):
        report.say(OK, f"interface {interface} exists and is {state}")
    else:
        report.say(FAIL, f"interface {interface} is {state}", f"ip link set {interface} up")
        return False
    return True


def _check_sysctls(report: Report, interface: str) -> None:
    base = Path(f"/proc/sys/net/ipv6/conf/{interface}")
    if _read(base / "disable_ipv6") == "1":
        report.say(FAIL, f"IPv6 is disabled on {interface}",
                   f"sysctl -w net.ipv6.conf.{interface}.disable_ipv6=0")  # fmt: skip
    accept_ra, forwarding = _read(base / "accept_ra"), _read(base / "forwarding")
    if forwarding == "1" and accept_ra not in ("2", None):
        report.say(WARN, f"{interface} forwards IPv6 and accept_ra={accept_ra}: the kernel "
                   "ignores RAs, so the netlink source sees no prefix (the RA source does)",
                   f"sysctl -w net.ipv6.conf.{interface}.accept_ra=2, or use "
                   "acquisition.routerAdvertisement")  # fmt: skip
    else:
        report.say(OK, f"sysctls: accept_ra={accept_ra}, forwarding={forwarding}")


def _check_raw_socket(report: Report) -> bool:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    except OSError as error:
        if error.errno in (errno.EPERM, errno.EACCES):
            report.say(FAIL, "cannot open a raw ICMPv6 socket (CAP_NET_RAW missing)",
                       "run as root, or give the container NET_RAW (deploy/ does); the "
                       "netlink source needs no capability")  # fmt: skip
            return False
        raise
    probe.close()
    report.say(OK, "CAP_NET_RAW: raw ICMPv6 sockets can be opened")
    return True


async def _listen(interface: str, seconds: float) -> list[ReceivedAdvertisement]:
    heard: list[ReceivedAdvertisement] = []
    try:
        async with RaListener.shared(interface, pacing=SolicitationPacing(max_delay=0)) as ear:
            unsubscribe = ear.subscribe(heard.append)
            try:
                await asyncio.sleep(seconds)
            finally:
                unsubscribe()
    except SourceError as error:
        print(f"[FAIL] listening on {interface}: {error}")
    return heard


def _report_advertisements(
    report: Report, interface: str, heard: list[ReceivedAdvertisement], seconds: float
) -> list[IPv6Network]:
    if not heard:
        report.say(FAIL, f"no Router Advertisement on {interface} within {seconds:g} s "
                   "(a Router Solicitation was sent)",
                   "check the router advertises on this VLAN (rdisc6, tcpdump -i "
                   f"{interface} 'icmp6 and ip6[40] == 134'), and that the interface "
                   "is the right one")  # fmt: skip
        return []
    prefixes: list[IPv6Network] = []
    for router in dict.fromkeys(r.router for r in heard):
        latest = [r for r in heard if r.router == router][-1].ra
        infos = latest.prefix_information
        report.say(OK, f"router {router} advertises {len(infos)} prefix(es)")
        for info in infos:
            usable = info.autonomous and info.prefix.prefixlen == 64
            lifetimes = (f"valid {_lifetime(info.valid_lifetime)}, "
                         f"preferred {_lifetime(info.preferred_lifetime)}")  # fmt: skip
            level = OK if usable and info.valid_lifetime else WARN
            why = "" if usable else " (not usable: needs the A flag and a /64)"
            report.say(level, f"  {info.prefix} {lifetimes}{why}")
            if usable and info.valid_lifetime:
                prefixes.append(info.prefix)
    _report_choice(report, heard)
    return prefixes


def _report_choice(report: Report, heard: list[ReceivedAdvertisement]) -> None:
    """Which prefix the operator would make current from what was heard, by its own rule."""
    tracker = PrefixTracker(TrackerPolicy())
    for received in heard:
        tracker.observe_advertisement(received.ra, router=received.router, now=received.at)
    current = tracker.current
    if current is None:
        return
    others = len(tracker.prefixes) - 1
    rule = (
        f"; of {others + 1} usable prefixes the first heard stays current unless another is "
        "preferred while it is deprecated, global while it is a ULA, still announced while "
        "it is not, or preferred for more than 30 minutes longer"
        if others
        else ""
    )
    report.say(OK, f"the operator would use {current.prefix} (from {current.source}){rule}")


def _lifetime(seconds: int) -> str:
    return "infinite" if seconds == INFINITE_LIFETIME else f"{seconds} s"


@dataclass(frozen=True)
class _Neighbour:
    address: IPv6Address
    link_address: str
    how: str


def _check_reserved_ranges(
    report: Report,
    interface: str,
    filename: str,
    prefixes: list[IPv6Network],
    *,
    early: int,
    probe: bool,
) -> None:
    """Neighbours inside the ranges. One on the first ``early`` addresses (handed out first
    by load-balancer IPAMs) is a problem; one elsewhere is most likely a SLAAC address,
    said as information (about 1 in 16 SLAAC addresses falls in a /68)."""
    try:
        documents = [d for d in load_documents(filename) if d.get("kind") == api.KIND]
    except ManifestError as error:
        report.say(FAIL, str(error))
        return
    placed_ranges: list[tuple[str, ComputedRange]] = []
    for document in documents:
        name = document.get("metadata", {}).get("name", "?")
        spec = validate_dynamic_prefix(document)
        if isinstance(spec, InvalidSpec):
            report.say(FAIL, f"DynamicPrefix {name} is invalid: {spec}")
            continue
        for prefix in prefixes:
            placed_ranges += [(name, placed) for placed in compute(spec, prefix).address_ranges]
    neighbours = _neighbours(interface)
    if probe and placed_ranges:
        neighbours += _probe(report, interface, [p for _, p in placed_ranges], prefixes, early)
    for name, placed in placed_ranges:
        first = set(placed.range.first(early))
        inside = {n.address: n for n in neighbours if n.address in placed.range}
        for address, neighbour in sorted(inside.items()):
            where = f"{name}/{placed.name} ({placed.start} - {placed.end})"
            seen = f"{address} ({neighbour.link_address}, {neighbour.how})"
            if address in first:
                report.say(WARN, f"{seen} is one of the first addresses of {where}",
                           "something holds an address the load-balancer IPAM hands out "
                           "early: if it is not a Service of this cluster (MetalLB and "
                           "Cilium L2 announcements answer for the addresses they gave "
                           "out; see kubectl get svc -A), move the device or start the "
                           "range past it")  # fmt: skip
            else:
                report.say(INFO, f"{seen} is inside {where}",
                           "a SLAAC address (random-looking interface ID) there is harmless "
                           "unless a service gets exactly this address; a DHCPv6 lease or "
                           "a static address there means the router's DHCPv6 pool or the "
                           "device overlaps the range: `dynamic-prefix calc` prints the "
                           "router settings")  # fmt: skip
        if not inside:
            report.say(OK, f"no neighbour on {interface} inside {name}/{placed.name} "
                       f"({placed.start} - {placed.end})")  # fmt: skip


def _probe(
    report: Report,
    interface: str,
    ranges: list[ComputedRange],
    prefixes: list[IPv6Network],
    count: int,
) -> list[_Neighbour]:
    solicit = [address for r in ranges for address in r.range.first(count)]
    ours = [a for a in _global_addresses(interface) if any(a in p for p in prefixes)]
    try:
        answers = asyncio.run(
            probe_link(interface, solicit=solicit, echo_from=ours, wait=PROBE_WAIT)
        )
    except SourceError as error:
        report.say(FAIL, f"probing {interface}: {error}")
        return []
    echo = (f"an Echo Request to all nodes from {', '.join(map(str, ours))}" if ours else
            "no Echo Request (this node has no address in the advertised prefixes, so "
            "replies would come from link-local addresses)")  # fmt: skip
    report.say(OK, f"probed {interface}: {len(solicit)} Neighbor Solicitation(s) for the first "
               f"addresses of the ranges and {echo}; {len(answers)} answer(s) in "
               f"{PROBE_WAIT:g} s")  # fmt: skip
    return [_Neighbour(a.address, a.link_address or "link address not given", a.how)
            for a in answers]  # fmt: skip


def _global_addresses(interface: str) -> list[IPv6Address]:
    """This node's usable global IPv6 addresses on the interface."""
    return addresses.global_addresses(interface)


def _neighbours(interface: str) -> list[_Neighbour]:
    """The kernel's IPv6 neighbour table on the interface."""
    return [
        _Neighbour(n.address, n.link_address or "no link address", "neighbour table")
        for n in addresses.neighbours(interface)
    ]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
