"""The router configurations the README documents (docs/router/), on real FRR and BIRD 2.

Each config runs verbatim on the router side of a link; a BIRD on the node side stands in
for the cluster's BGP speaker (AS 65001) and announces what a cluster might: the
operator's subnets and LoadBalancer addresses with the community 65001:42, and routes
the router must turn away. A rejected route is shown to have been received and filtered
(FRR: soft-reconfiguration inbound; BIRD: import keep filtered), not merely missing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Network
from pathlib import Path

import pytest

from testbed.bgp import (
    Announcement,
    BgpError,
    BgpRouter,
    BirdRouter,
    BirdSpeaker,
    FrrRouter,
    announce,
)
from testbed.netns import Link
from tests.requirements import needs_namespaces

DOCS = Path(__file__).parents[2] / "docs" / "router"
CONFIG_FILES = {"frr": "frr.conf", "bird": "bird.conf"}
KINDS = tuple(CONFIG_FILES)

COMMUNITY = "65001:42"

ACCEPTED_CASES = {
    "a subnet of the delegation": announce("2001:db8:100:ff::/64", COMMUNITY),
    "a LoadBalancer address": announce("2001:db8:100:ff::ffff:0:2/128", COMMUNITY),
}
REJECTED_CASES = {
    "outside the delegation": announce("2001:db8:200::1/128", COMMUNITY),
    "without the community": announce("2001:db8:100:ff::ffff:0:3/128"),
    "with another community": announce("2001:db8:100:ff::ffff:0:4/128", "65001:99"),
    "the delegation itself": announce("2001:db8:100::/56", COMMUNITY),
    "a default route": announce("::/0", COMMUNITY),
}
ANNOUNCEMENTS = (*ACCEPTED_CASES.values(), *REJECTED_CASES.values())
ACCEPTED = {a.network for a in ACCEPTED_CASES.values()}
REJECTED = {a.network for a in REJECTED_CASES.values()}

pytestmark = pytest.mark.netns


def documented_config(kind: str) -> str:
    return (DOCS / CONFIG_FILES[kind]).read_text()


def make_router(kind: str, link: Link, config: str | None = None) -> BgpRouter:
    config = documented_config(kind) if config is None else config
    return FrrRouter(link, config) if kind == "frr" else BirdRouter(link, config)


def process_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def ip_netns_list() -> set[str]:
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


# -- pure parts ----------------------------------------------------------------------------------


class TestAnnouncement:
    def test_communities_become_bird_attributes(self) -> None:
        assert announce("2001:db8:100:ff::/64", "65001:42", "65001:1:2").bird_route() == (
            "\troute 2001:db8:100:ff::/64 unreachable { bgp_community.add((65001, 42)); "
            "bgp_large_community.add((65001, 1, 2)); };\n"
        )
        assert announce("::/0").bird_route() == "\troute ::/0 unreachable;\n"

    def test_a_bare_address_is_a_host_route(self) -> None:
        assert announce("2001:db8:100:ff::ffff:0:2").network == IPv6Network(
            "2001:db8:100:ff::ffff:0:2/128"
        )

    @pytest.mark.parametrize("community", ["65001", "65536:1", "a:b", "1:2:3:4", "-1:2", ""])
    def test_malformed_communities_are_refused(self, community: str) -> None:
        with pytest.raises(ValueError, match="community"):
            Announcement("2001:db8::/64", (community,))


# -- the documented configs, one session per router kind ------------------------------------


@dataclass(frozen=True)
class Peers:
    kind: str
    link: Link
    router: BgpRouter
    speaker: BirdSpeaker


@pytest.fixture(scope="module", params=KINDS)
def peers(request: pytest.FixtureRequest) -> Iterator[Peers]:
    """The documented config of one router kind, peering with a speaker that announces
    every case; the session is Established when the tests start."""
    needs_namespaces()
    kind: str = request.param
    with (
        Link() as link,
        make_router(kind, link) as router,
        BirdSpeaker(link, ANNOUNCEMENTS) as speaker,
    ):
        router.wait_established()
        speaker.wait_established()
        yield Peers(kind, link, router, speaker)


def test_the_session_comes_up_within_seconds(peers: Peers) -> None:
    assert peers.router.established()
    assert peers.speaker.established()
    seconds = peers.router.established_seconds  # about 1 s: BIRD delays its first connect
    assert seconds is not None
    assert seconds < 10


@pytest.mark.parametrize("case", ACCEPTED_CASES)
def test_the_router_accepts_and_installs(peers: Peers, case: str) -> None:
    network = ACCEPTED_CASES[case].network

    assert network in peers.router.wait_for_accepted({network})
    assert network in peers.router.wait_for_kernel_routes({network})


@pytest.mark.parametrize("case", REJECTED_CASES)
def test_the_router_receives_and_rejects(peers: Peers, case: str) -> None:
    network = REJECTED_CASES[case].network
    peers.router.wait_for_accepted(ACCEPTED)  # what is accepted has arrived

    filtered = peers.router.wait_for_filtered({network})  # received, and turned away

    assert network in filtered
    assert network not in peers.router.accepted_routes()
    assert network not in peers.router.kernel_routes()


def test_exactly_the_intended_routes_are_accepted(peers: Peers) -> None:
    peers.router.wait_for_accepted(ACCEPTED)
    peers.router.wait_for_filtered(REJECTED)

    assert peers.speaker.exported_routes() == ACCEPTED | REJECTED
    assert peers.router.accepted_routes() == ACCEPTED
    assert peers.router.filtered_routes() == REJECTED
    assert peers.router.wait_for_kernel_routes(ACCEPTED) == ACCEPTED


def test_the_router_announces_nothing_back(peers: Peers) -> None:
    peers.router.wait_for_accepted(ACCEPTED)  # the router has routes it could send back

    assert peers.router.advertised_routes() == set()
    assert peers.speaker.received_routes() == set()


# -- one session per test --------------------------------------------------------------------

OWN_ROUTE = IPv6Network("2001:db8:100:1::/64")
"""A route of the router's own (its LAN /64), added to the documented config below."""
OWN_ROUTE_CONFIG = {
    "frr": (
        "router bgp 65000\n"
        " no bgp network import-check\n"
        " address-family ipv6 unicast\n"
        f"  network {OWN_ROUTE}\n"
        " exit-address-family\n"
        "exit\n"
    ),
    "bird": f"protocol static lan {{\n\tipv6;\n\troute {OWN_ROUTE} unreachable;\n}}\n",
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_route_of_the_routers_own_is_not_announced_either(link: Link, kind: str) -> None:
    config = documented_config(kind) + OWN_ROUTE_CONFIG[kind]
    with make_router(kind, link, config) as router, BirdSpeaker(link, ANNOUNCEMENTS) as speaker:
        router.wait_established()
        speaker.wait_established()
        router.wait_for_accepted(ACCEPTED)
        router.wait_for(
            lambda: True if OWN_ROUTE in router.table_routes() else None,
            what="the router's own route in its table",
        )

        assert router.advertised_routes() == set()
        assert speaker.received_routes() == set()


@pytest.mark.parametrize("kind", KINDS)
def test_changed_announcements_reach_the_router(link: Link, kind: str) -> None:
    old = announce("2001:db8:100:ff::ffff:0:2/128", COMMUNITY)
    new = announce("2001:db8:100:ff::ffff:0:5/128", COMMUNITY)
    with make_router(kind, link) as router, BirdSpeaker(link, [old]) as speaker:
        router.wait_for_accepted({old.network})
        router.wait_for_kernel_routes({old.network})

        speaker.announce([new])

        assert router.wait_for_withdrawn({old.network}) == {new.network}
        assert router.wait_for_kernel_routes({new.network}) == {new.network}
        assert speaker.established()


@pytest.mark.parametrize("kind", KINDS)
def test_a_config_the_daemon_refuses_is_reported(link: Link, kind: str) -> None:
    broken = documented_config(kind) + "this is not a router config line\n"
    router = make_router(kind, link, broken)

    with pytest.raises(BgpError, match="refused this configuration"):
        router.start()
    assert router.workdir is None
    assert router.pids == {}


@pytest.mark.parametrize("kind", KINDS)
def test_stop_leaves_no_process_namespace_or_file(network_namespaces: None, kind: str) -> None:
    with Link() as link:
        namespaces = set(link.namespaces)
        router = make_router(kind, link).start()
        speaker = BirdSpeaker(link, ANNOUNCEMENTS).start()
        router.wait_established()
        pids = [*router.pids.values(), *speaker.pids.values()]
        workdirs = [router.workdir, speaker.workdir]
        crash_logs = [Path(f"/var/tmp/frr/{name}.{pid}") for name, pid in router.pids.items()]
        assert all(map(process_exists, pids))

        speaker.stop()
        router.stop()

        assert not any(map(process_exists, pids))
        assert not any(path is not None and path.exists() for path in workdirs)
        assert not any(path.exists() for path in crash_logs)  # FRR's, removed on exit
        router_addresses = {info.interface for info in link.addresses(link.router)}
        assert router.address not in router_addresses
    assert not namespaces & ip_netns_list()


@pytest.mark.parametrize("kind", KINDS)
def test_the_speaker_can_run_in_the_root_namespace(root_link: Link, kind: str) -> None:
    """Where the operator runs beside it (a node end in the root namespace)."""
    with (
        make_router(kind, root_link) as router,
        BirdSpeaker(root_link, ACCEPTED_CASES.values()) as speaker,
    ):
        assert speaker.namespace is None

        assert router.wait_for_accepted(ACCEPTED) == ACCEPTED
    assert speaker.address not in {info.interface for info in root_link.node_addresses()}


@pytest.mark.parametrize("kind", KINDS)
def test_the_readme_shows_the_tested_config_verbatim(kind: str) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert f"```\n{documented_config(kind)}```\n" in readme, (
        f"README.md must embed docs/router/{CONFIG_FILES[kind]} unchanged"
    )
