"""`dynamic-prefix doctor` on a link with a real router, without one, and with a conflict."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dynamic_prefix.cli.main import main
from testbed.netns import Link
from testbed.radvd import PrefixAd, Radvd
from tests.requirements import needs_namespaces

EXAMPLE = Path(__file__).parents[2] / "src/dynamic_prefix/examples/home-prefix.yaml"

pytestmark = pytest.mark.netns


@pytest.fixture
def link() -> Iterator[Link]:
    needs_namespaces()
    with Link(node_in_root_namespace=True) as created:
        yield created


def test_doctor_lists_the_routers_and_prefixes_it_hears(
    link: Link, capsys: pytest.CaptureFixture[str]
) -> None:
    with Radvd(link, prefixes=[PrefixAd("2001:db8:d0c::/64", valid=600, preferred=300)]):
        code = main(["doctor", "--interface", link.node_ifname, "--wait", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"interface {link.node_ifname} exists" in out
    assert "CAP_NET_RAW: raw ICMPv6 sockets can be opened" in out
    assert f"router {link.router.link_local} advertises 1 prefix(es)" in out
    assert "2001:db8:d0c::/64 valid 600 s, preferred 300 s" in out
    assert f"the operator would use 2001:db8:d0c::/64 (from {link.router.link_local})" in out
    assert "no problems found" in out


def test_doctor_without_a_router_says_what_to_check(
    link: Link, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor", "--interface", link.node_ifname, "--wait", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"no Router Advertisement on {link.node_ifname} within 1 s" in out
    assert "tcpdump" in out


def test_doctor_finds_a_neighbour_inside_a_reserved_range(
    link: Link, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["spec"]["acquisition"]["routerAdvertisement"]["interface"] = link.node_ifname
    (tmp_path / "dp.yaml").write_text(yaml.safe_dump(spec))
    # a device on the link already uses an address of the load-balancer range
    subprocess.run(
        ["ip", "-6", "neigh", "replace", "2001:db8:d0c:0:f000::7", "lladdr",
         "02:00:00:00:00:07", "dev", link.node_ifname, "nud", "permanent"],
        check=True,
    )  # fmt: skip
    with Radvd(link, prefixes=[PrefixAd("2001:db8:d0c::/64", valid=600, preferred=300)]):
        code = main(["doctor", "--interface", link.node_ifname, "--wait", "2",
                     "-f", str(tmp_path / "dp.yaml")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert (
        "2001:db8:d0c:0:f000::7 (02:00:00:00:00:07, neighbour table) is one of the first "
        "addresses of home-prefix/loadbalancers"
    ) in out


def _spec_file(link: Link, tmp_path: Path) -> str:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["spec"]["acquisition"]["routerAdvertisement"]["interface"] = link.node_ifname
    path = tmp_path / "dp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_doctor_probe_finds_a_device_on_one_of_the_first_addresses_of_a_range(
    link: Link, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the device (the router's namespace) answers for the 4th address of the LB range;
    # the kernel's neighbour table knows nothing of it: only the probe can find it
    link.run_in_router("ip", "-6", "addr", "add", "2001:db8:d0c:0:f000::3/64", "dev",
                       link.router_ifname, "nodad")  # fmt: skip
    with Radvd(link, prefixes=[PrefixAd("2001:db8:d0c::/64", valid=600, preferred=300)]):
        without = main(["doctor", "--interface", link.node_ifname, "--wait", "2",
                        "-f", _spec_file(link, tmp_path)])  # fmt: skip
        quiet = capsys.readouterr().out
        code = main(["doctor", "--interface", link.node_ifname, "--wait", "2", "--probe",
                     "-f", _spec_file(link, tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert without == 0, quiet
    assert code == 1, out
    assert "16 Neighbor Solicitation(s) for the first addresses" in out
    assert (
        f"2001:db8:d0c:0:f000::3 ({link.router.mac}, neighbor advertisement) is one of the "
        "first addresses of home-prefix/loadbalancers"
    ) in out


def test_doctor_probe_finds_a_device_deep_in_a_range_by_its_echo_reply(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    needs_namespaces()
    # this node takes a SLAAC address, so the echo goes out from a global address and the
    # device answers from its own: a random-looking one, far from the range's start
    with Link(node_in_root_namespace=True, slaac=True) as link:
        link.run_in_router("ip", "-6", "addr", "add", "2001:db8:d0c:0:fabc:1234:5678:9abc/64",
                           "dev", link.router_ifname, "nodad")  # fmt: skip
        with Radvd(link, prefixes=[PrefixAd("2001:db8:d0c::/64", valid=600, preferred=300)]):
            link.wait_for_node_address("2001:db8:d0c::/64")
            code = main(["doctor", "--interface", link.node_ifname, "--wait", "2", "--probe",
                         "-f", _spec_file(link, tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    # most likely a SLAAC address: said, but not a problem
    assert code == 0, out
    assert "an Echo Request to all nodes from 2001:db8:d0c:" in out
    assert (
        "[info] 2001:db8:d0c:0:fabc:1234:5678:9abc (link address not given, echo reply) is "
        "inside home-prefix/loadbalancers"
    ) in out
    assert "harmless unless a service gets exactly this address" in out


def test_doctor_probe_without_a_spec_says_what_it_needs(
    link: Link, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor", "--interface", link.node_ifname, "--wait", "0", "--probe"])
    out = capsys.readouterr().out
    assert code == 1
    assert "--probe needs -f" in out


def test_doctor_on_a_missing_interface_points_at_host_network(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["doctor", "--interface", "nosuchif0", "--wait", "0"]) == 1
    out = capsys.readouterr().out
    assert "interface nosuchif0 does not exist here" in out
    assert "hostNetwork: true" in out
