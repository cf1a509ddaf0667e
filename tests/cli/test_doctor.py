"""`dynamic-prefix doctor` on a link with a real router, without one, and with a conflict."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dynamic_prefix.cli.main import main
from dynamic_prefix.testbed.netns import Link, namespaces_supported
from dynamic_prefix.testbed.radvd import PrefixAd, Radvd

EXAMPLE = Path(__file__).parents[2] / "src/dynamic_prefix/examples/home-prefix.yaml"

pytestmark = pytest.mark.netns


@pytest.fixture
def link() -> Iterator[Link]:
    supported, reason = namespaces_supported()
    if not supported:
        pytest.skip(f"network namespaces unavailable: {reason}")
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
    assert "2001:db8:d0c:0:f000::7 (02:00:00:00:00:07) is inside home-prefix/loadbalancers" in out


def test_doctor_on_a_missing_interface_points_at_host_network(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["doctor", "--interface", "nosuchif0", "--wait", "0"]) == 1
    out = capsys.readouterr().out
    assert "interface nosuchif0 does not exist here" in out
    assert "hostNetwork: true" in out
