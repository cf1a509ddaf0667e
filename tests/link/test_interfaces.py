"""The interface readers' parsers, on text as the kernel writes it; and the readers on
files made to look like the kernel's."""

from __future__ import annotations

from ipaddress import IPv6Address
from pathlib import Path

from dynamic_prefix.link.interfaces import (
    hardware_address,
    parse_default_route_interface,
    parse_if_inet6,
    read_if_inet6,
    read_ipv6_settings,
    usable_link_local,
)

ROUTES = """\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
20010db8000100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450003     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000200 00000001 00000000 00450003     eth0
"""  # noqa: E501


def test_default_route_interface_is_the_lowest_metric_default_route() -> None:
    assert parse_default_route_interface(ROUTES) == "eth0"


def test_default_route_interface_skips_unreachable_and_loopback_routes() -> None:
    only_unreachable = ROUTES.splitlines()[0]
    assert parse_default_route_interface(only_unreachable) is None
    assert parse_default_route_interface("") is None


IF_INET6 = """\
fe800000000000000000000000000001 03 40 20 c0       vn
fe800000000000000000000000000002 04 40 20 44       vx
fe800000000000000000000000000003 04 40 20 08       vx
20010db8000000000000000000000001 04 40 00 00       vx
fe800000000000000000000000000004 04 40 20 80       vx
not a line
"""


def test_the_link_local_address_is_one_that_finished_or_skipped_duplicate_detection() -> None:
    addresses = parse_if_inet6(IF_INET6)

    assert len(addresses) == 5
    # ifindex 3: tentative; ifindex 4: optimistic (usable), then DAD failed, global, usable.
    assert usable_link_local(addresses, 3) is None
    assert usable_link_local(addresses, 4) == IPv6Address("fe80::2")
    assert usable_link_local(addresses[2:], 4) == IPv6Address("fe80::4")
    assert usable_link_local(addresses, 5) is None


def test_a_node_without_ipv6_has_no_addresses(tmp_path: Path) -> None:
    assert read_if_inet6(tmp_path / "if_inet6") == []


def test_the_hardware_address_is_read_as_sysfs_shows_it(tmp_path: Path) -> None:
    for name, kind, text in [("eth0", "1", "02:00:00:00:00:01"), ("wg0", "65534", "")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(f"{kind}\n")
        (tmp_path / name / "address").write_text(f"{text}\n")

    ethernet = hardware_address("eth0", tmp_path)
    assert (ethernet.hardware_type, ethernet.ethernet) == (1, bytes.fromhex("020000000001"))
    tunnel = hardware_address("wg0", tmp_path)
    assert (tunnel.hardware_type, tunnel.address, tunnel.ethernet) == (65534, b"", None)


def test_ipv6_settings_are_none_unless_all_can_be_read(tmp_path: Path) -> None:
    (tmp_path / "eth0").mkdir()
    (tmp_path / "eth0" / "accept_ra").write_text("2\n")

    assert read_ipv6_settings("eth0", ("accept_ra",), tmp_path) == {"accept_ra": 2}
    assert read_ipv6_settings("eth0", ("accept_ra", "autoconf"), tmp_path) is None
    assert read_ipv6_settings("eth1", ("accept_ra",), tmp_path) is None
