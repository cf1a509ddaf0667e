"""The network test bed itself: a link with real radvd and Kea on it, crafted RAs, cleanup.

Everything here is real: namespaces, a veth pair, the kernel's SLAAC, radvd, kea-dhcp6.
Without root (or without `ip netns`), every test is skipped with the reason why.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from testbed.kea import Kea, KeaError, LeaseState, LeaseType, PdPool
from testbed.netns import Link
from testbed.radvd import (
    PrefixAd,
    Radvd,
    RadvdError,
    RdnssAd,
    RouteAd,
    send_crafted_ra,
    send_crafted_ras,
)

pytestmark = [pytest.mark.netns, pytest.mark.usefixtures("network_namespaces")]

PROCESS_TIMEOUT = 20.0
FLOOD_SIZE = 10_000

ROUTER_ADVERTISEMENT = 134
OPTION_PREFIX_INFORMATION = 3
OPTION_ROUTE_INFORMATION = 24
OPTION_RDNSS = 25


# -- helpers ---------------------------------------------------------------------------------


def router_advertisement(*options: bytes, router_lifetime: int = 0) -> bytes:
    """An RA (RFC 4861 section 4.2) with hop limit 64, no flags, the given options."""
    header = struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, 64, 0, router_lifetime, 0, 0)
    return header + b"".join(options)


def prefix_information(prefix: str, *, valid: int = 3600, preferred: int = 1800) -> bytes:
    """A Prefix Information option (RFC 4861 section 4.6.2), on-link and autonomous."""
    network = IPv6Network(prefix)
    return struct.pack(
        "!BBBBIII16s",
        OPTION_PREFIX_INFORMATION,
        4,
        network.prefixlen,
        0xC0,
        valid,
        preferred,
        0,
        network.network_address.packed,
    )


def option_types(message: bytes) -> list[int]:
    """The option types of an RA, walking the TLVs after the 16-octet header."""
    types, offset = [], 16
    while offset + 2 <= len(message) and message[offset + 1]:
        types.append(message[offset])
        offset += message[offset + 1] * 8
    return types


def eui64_interface_id(mac: str) -> int:
    """The modified EUI-64 interface identifier of a MAC address (RFC 4291 appendix A)."""
    octets = bytearray.fromhex(mac.replace(":", ""))
    octets[0] ^= 0x02
    return int.from_bytes(octets[:3] + b"\xff\xfe" + octets[3:], "big")


# A raw ICMPv6 receiver for the node side that passes only RAs and reports each one's
# hop limit. Prints "ready" once listening, then "<hop limit> <hex>" per RA, or only the
# number received when asked to count; stops after `count` RAs or `idle` quiet seconds.
CAPTURE = r"""
import socket, struct, sys
ifname, count, idle, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: room for a flood
blocked = [0xFFFFFFFF] * 8  # ICMP6_FILTER: on Linux a set bit blocks that type
blocked[134 >> 5] &= ~(1 << (134 & 31))
sock.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("8I", *blocked))
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
sock.settimeout(idle)
print("ready")
received = 0
while received < count:
    try:
        data, ancillary, _, _ = sock.recvmsg(65535, socket.CMSG_SPACE(4))
    except TimeoutError:
        break
    received += 1
    if mode == "dump":
        hop_limit = next(
            struct.unpack("i", value)[0]
            for level, kind, value in ancillary
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT
        )
        print(hop_limit, data.hex())
if mode == "count":
    print(received)
"""


def start_capture(
    link: Link, *, count: int, idle: float = 5.0, mode: str = "dump"
) -> subprocess.Popen[bytes]:
    process = link.python_in_node(CAPTURE, link.node.ifname, str(count), str(idle), mode)
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first == b"ready\n", process.communicate(timeout=PROCESS_TIMEOUT)
    return process


def captured(process: subprocess.Popen[bytes]) -> list[tuple[int, bytes]]:
    """The (hop limit, message) pairs a dump-mode capture printed, once it has finished."""
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT)
    assert process.returncode == 0, stderr.decode()
    pairs = [line.split() for line in stdout.decode().splitlines()]
    return [(int(hop_limit), bytes.fromhex(message)) for hop_limit, message in pairs]


# A minimal DHCPv6 client for the node side asking for one IA_PD (RFC 8415 sections 18.2.1,
# 18.2.2 and 18.2.7): SOLICIT, REQUEST with the advertised IA_PD, optionally RELEASE.
# Prints the delegated prefix as JSON.
DHCPV6_CLIENT = r"""
import json, os, socket, struct, sys
ifname, duid, iaid, release = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def option(code, body):
    return struct.pack("!HH", code, len(body)) + body
def options(data):
    found, offset = {}, 0
    while offset + 4 <= len(data):
        code, length = struct.unpack_from("!HH", data, offset)
        found[code] = data[offset + 4 : offset + 4 + length]
        offset += 4 + length
    return found
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
sock.bind(("::", 546))
sock.settimeout(1.0)
index = socket.if_nametoindex(ifname)
def exchange(message_type, body):
    transaction = os.urandom(3)
    message = bytes([message_type]) + transaction + option(1, duid) + option(8, b"\0\0") + body
    for _ in range(5):  # the first packet after link-up may be lost: retransmit
        sock.sendto(message, ("ff02::1:2", 547, 0, index))
        try:
            while True:
                reply, _ = sock.recvfrom(4096)
                if reply[1:4] == transaction:
                    return options(reply[4:])
        except TimeoutError:
            continue
    raise SystemExit("no answer from the DHCPv6 server")
advertise = exchange(1, option(25, struct.pack("!III", iaid, 0, 0)))
reply = exchange(3, option(2, advertise[2]) + option(25, advertise[25]))
ia_prefix = options(reply[25][12:])[26]
preferred, valid, length = struct.unpack_from("!IIB", ia_prefix)
prefix = socket.inet_ntop(socket.AF_INET6, ia_prefix[9:25])
if release == "release":
    exchange(8, option(2, reply[2]) + option(25, reply[25]))
print(json.dumps({"prefix": f"{prefix}/{length}", "valid": valid, "preferred": preferred}))
"""

CLIENT_DUID = bytes.fromhex("00030001020000000001")  # DUID-LL (RFC 8415 section 11.4)
CLIENT_IAID = 7


def request_prefix(link: Link, *, release: bool = False) -> dict[str, object]:
    process = link.python_in_node(
        DHCPV6_CLIENT,
        link.node.ifname,
        CLIENT_DUID.hex(),
        str(CLIENT_IAID),
        "release" if release else "keep",
    )
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT)
    assert process.returncode == 0, stderr.decode()
    answer: dict[str, object] = json.loads(stdout)
    return answer


def ip_netns_list() -> set[str]:
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def interface_exists(ifname: str) -> bool:
    return Path("/sys/class/net", ifname).exists()


def process_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


# A program that starts a link, radvd and Kea, then exits without stopping any of them.
NEVER_STOPS = r"""
import json
from testbed.kea import Kea
from testbed.netns import Link
from testbed.radvd import Radvd
link = Link(node_in_root_namespace=True).start()
radvd = Radvd(link).start()
kea = Kea(link).start()
print(json.dumps({
    "namespaces": link.namespaces,
    "ifname": link.node.ifname,
    "pids": [radvd.pid, kea.pid],
    "dirs": [str(radvd.config_path.parent), str(kea.config_path.parent)],
}))
"""


# -- the link --------------------------------------------------------------------------------


class TestLink:
    def test_both_ends_come_up_with_link_local_addresses(self, link: Link) -> None:
        assert link.namespaces == (link.router_namespace, link.node_namespace)
        assert set(link.namespaces) <= ip_netns_list()
        for end in (link.router, link.node):
            assert end.link_local in IPv6Network("fe80::/64")
            assert end.ifindex > 0
            assert end.link_local.packed[8:] == eui64_interface_id(end.mac).to_bytes(8, "big")
        assert (link.router.ifname, link.node.ifname) == ("vr", "vn")

    def test_node_side_accepts_ras_and_router_side_forwards(self, link: Link) -> None:
        node = link.run_in_node(
            "sysctl", "-n", "net.ipv6.conf.vn.accept_ra", "net.ipv6.conf.vn.autoconf"
        )
        router = link.run_in_router("sysctl", "-n", "net.ipv6.conf.all.forwarding")

        assert node.stdout.split() == ["2", "1"]
        assert router.stdout.split() == ["1"]

    def test_python_in_node_runs_inside_the_node_namespace(self, link: Link) -> None:
        process = link.python_in_node("import socket; print(socket.if_nametoindex('vn'))")

        stdout, _ = process.communicate(timeout=PROCESS_TIMEOUT)

        assert int(stdout) == link.node.ifindex

    def test_node_in_root_namespace_learns_an_address_but_no_default_route(self) -> None:
        with Link(node_in_root_namespace=True, slaac=True) as link, Radvd(link):
            ifname = link.node.ifname
            address = link.wait_for_node_address("2001:db8:1::/64")
            routes = subprocess.run(
                ["ip", "-6", "route", "show", "default", "dev", ifname],
                capture_output=True,
                text=True,
                check=True,
            )
            defrtr = Path(f"/proc/sys/net/ipv6/conf/{ifname}/accept_ra_defrtr").read_text()

            assert link.node.namespace is None
            assert link.namespaces == (link.router_namespace,)
            assert ifname.startswith("dpn")
            assert len(ifname) < 16
            assert address.address in IPv6Network("2001:db8:1::/64")
            assert routes.stdout.strip() == ""
            assert defrtr.strip() == "0"
        assert not interface_exists(ifname)

    def test_two_links_side_by_side_do_not_collide(self) -> None:
        with Link() as first, Link() as second:
            assert set(first.namespaces).isdisjoint(second.namespaces)


class TestTeardown:
    def test_everything_is_gone_even_when_the_body_raises(self) -> None:
        namespaces: list[str] = []
        pids: list[int] = []
        workdirs: list[Path] = []

        def failing_test_body() -> None:
            with Link() as link, Radvd(link) as radvd, Kea(link) as kea:
                namespaces.extend(link.namespaces)
                sleeper = link.popen_in_node("sleep", "600")
                pids.extend([radvd.pid, kea.pid, sleeper.pid])
                workdirs.extend([radvd.config_path.parent, kea.config_path.parent])
                raise RuntimeError("test body failed")

        with pytest.raises(RuntimeError, match="test body failed"):
            failing_test_body()

        assert len(namespaces) == 2
        assert not set(namespaces) & ip_netns_list()
        assert [pid for pid in pids if process_exists(pid)] == []
        assert [path for path in workdirs if path.exists()] == []

    def test_root_namespace_end_is_deleted_when_the_body_raises(self) -> None:
        created: list[tuple[str, str]] = []

        def failing_test_body() -> None:
            with Link(node_in_root_namespace=True) as link:
                created.append((link.node.ifname, link.router_namespace))
                assert interface_exists(link.node.ifname)
                raise RuntimeError("test body failed")

        with pytest.raises(RuntimeError, match="test body failed"):
            failing_test_body()

        [(ifname, router_namespace)] = created
        assert not interface_exists(ifname)
        assert router_namespace not in ip_netns_list()

    def test_atexit_cleans_up_after_a_program_that_never_stopped_anything(self) -> None:
        result = subprocess.run(
            [sys.executable, "-c", NEVER_STOPS],
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
            check=False,
        )

        assert result.returncode == 0, result.stderr
        left = json.loads(result.stdout)
        assert left["namespaces"]
        assert not set(left["namespaces"]) & ip_netns_list()
        assert not interface_exists(left["ifname"])
        assert [pid for pid in left["pids"] if process_exists(pid)] == []
        assert [path for path in left["dirs"] if Path(path).exists()] == []

    def test_stop_is_idempotent(self) -> None:
        link = Link().start()
        radvd = Radvd(link).start()

        radvd.stop()
        radvd.stop()
        link.stop()
        link.stop()

        assert link.router_namespace not in ip_netns_list()


# -- radvd -----------------------------------------------------------------------------------


class TestRadvd:
    def test_node_learns_a_slaac_address_from_radvd(self, link: Link) -> None:
        with Radvd(link) as radvd:
            address = link.wait_for_node_address("2001:db8:1::/64")

            assert radvd.ras_sent() >= 1
        interface_id = int(address.address) & (2**64 - 1)
        assert interface_id == eui64_interface_id(link.node.mac)
        assert (address.valid_lifetime, address.preferred_lifetime) <= (3600, 1800)
        assert not address.deprecated

    def test_set_prefixes_moves_the_node_to_the_new_prefix(self, link: Link) -> None:
        with Radvd(link) as radvd:
            link.wait_for_node_address("2001:db8:1::/64", deprecated=False)

            radvd.set_prefixes([PrefixAd("2001:db8:2::/64")], withdraw=["2001:db8:1::/64"])

            link.wait_for_node_address("2001:db8:2::/64", deprecated=False)
            link.wait_for_node_address("2001:db8:1::/64", deprecated=True)
            assert [ad.network for ad in radvd.config.prefixes] == [
                IPv6Network("2001:db8:2::/64"),
                IPv6Network("2001:db8:1::/64"),
            ]

    def test_route_information_and_rdnss_are_advertised(self, link: Link) -> None:
        with Radvd(link) as radvd:
            capture = start_capture(link, count=1)

            radvd.reconfigure(
                routes=[RouteAd("2001:db8:5::/48", lifetime=600, preference="high")],
                rdnss=[RdnssAd(("2001:db8::53",))],
            )

            [(hop_limit, message)] = captured(capture)
        assert hop_limit == 255
        assert set(option_types(message)) >= {
            OPTION_PREFIX_INFORMATION,
            OPTION_ROUTE_INFORMATION,
            OPTION_RDNSS,
        }

    def test_a_configuration_radvd_refuses_raises_with_its_message(self, link: Link) -> None:
        bad = PrefixAd("2001:db8:1::/64", valid=100, preferred=200)

        with pytest.raises(RadvdError, match="AdvValidLifeTime must be greater"):
            Radvd(link, prefixes=[bad]).start()

    def test_intervals_radvd_would_refuse_at_run_time_are_rejected_up_front(
        self, link: Link
    ) -> None:
        with pytest.raises(ValueError, match="MinRtrAdvInterval"):
            Radvd(link, min_interval=1, max_interval=4)

    def test_stop_ends_the_radvd_process(self, link: Link) -> None:
        radvd = Radvd(link).start()
        pid = radvd.pid

        radvd.stop()

        assert not process_exists(pid)


# -- crafted RAs -----------------------------------------------------------------------------


class TestCraftedRa:
    def test_a_crafted_prefix_gives_the_node_a_slaac_address(self, link: Link) -> None:
        payload = router_advertisement(prefix_information("2001:db8:77::/64"))

        send_crafted_ra(link, payload)

        address = link.wait_for_node_address("2001:db8:77::/64")
        assert int(address.address) & (2**64 - 1) == eui64_interface_id(link.node.mac)

    def test_a_crafted_ra_arrives_verbatim_with_the_hop_limit_it_was_sent_with(
        self, link: Link
    ) -> None:
        trailing_garbage = b"\x01\x02\x03"
        payload = router_advertisement(prefix_information("2001:db8:78::/64")) + trailing_garbage
        capture = start_capture(link, count=1)

        send_crafted_ra(link, payload, hop_limit=64)

        [(hop_limit, message)] = captured(capture)
        assert hop_limit == 64
        assert message[:2] + message[4:] == payload[:2] + payload[4:]  # all but the checksum

    def test_a_flood_is_sent_by_one_process_and_arrives_whole(self, link: Link) -> None:
        payloads = [
            router_advertisement() + index.to_bytes(8, "big") for index in range(FLOOD_SIZE)
        ]
        capture = start_capture(link, count=FLOOD_SIZE, idle=2.0, mode="count")

        sent = send_crafted_ras(link, payloads)

        stdout, stderr = capture.communicate(timeout=PROCESS_TIMEOUT)
        assert capture.returncode == 0, stderr.decode()
        assert (sent, int(stdout)) == (FLOOD_SIZE, FLOOD_SIZE)


# -- Kea -------------------------------------------------------------------------------------


class TestKea:
    def test_kea_listens_on_port_547_in_the_router_namespace(self, link: Link) -> None:
        with Kea(link) as kea:
            sockets = link.run_in_router("ss", "-H", "-u", "-l", "-n", "-p", "sport = :547")

            assert f"pid={kea.pid}," in sockets.stdout
            assert kea.leases() == []
            assert any(
                info.interface.ip == IPv6Address("2001:db8:1::1")
                for info in link.addresses(link.router)
            )
        assert not any(
            info.interface.ip == IPv6Address("2001:db8:1::1")
            for info in link.addresses(link.router)
        )

    def test_a_delegated_prefix_shows_in_the_leases(self, link: Link) -> None:
        with Kea(link, renew=10, rebind=20, preferred=30, valid=40) as kea:
            answer = request_prefix(link)

            [lease] = kea.leases()
        assert answer == {"prefix": "2001:db8:100::/56", "valid": 40, "preferred": 30}
        assert lease.prefix == IPv6Network("2001:db8:100::/56")
        assert lease.lease_type == LeaseType.PD
        assert (lease.duid, lease.iaid) == (CLIENT_DUID, CLIENT_IAID)
        assert (lease.valid_lifetime, lease.preferred_lifetime) == (40, 30)
        assert lease.state == LeaseState.DEFAULT

    def test_a_released_prefix_leaves_the_leases(self, link: Link) -> None:
        with Kea(link) as kea:
            request_prefix(link, release=True)

            assert kea.leases() == []
            assert [record.valid_lifetime for record in kea.lease_records()][-1] == 0

    def test_reconfigure_hands_out_prefixes_from_the_new_pool(self, link: Link) -> None:
        with Kea(link) as kea:
            request_prefix(link)

            kea.reconfigure(pools=[PdPool("2001:db8:200::", 40, 56)])
            answer = request_prefix(link)

            assert answer["prefix"] == "2001:db8:200::/56"
            assert {lease.prefix for lease in kea.leases()} >= {IPv6Network("2001:db8:200::/56")}

    def test_a_configuration_kea_refuses_raises_with_its_message(self, link: Link) -> None:
        with pytest.raises(KeaError, match="Delegated length"):
            Kea(link, pools=[PdPool("2001:db8:100::", 40, 36)]).start()
