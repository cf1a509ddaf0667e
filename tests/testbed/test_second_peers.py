"""The second set of real peers: dnsmasq as an RA sender, ISC dhcpd as a delegating
server, and the small competing DHCPv6-PD client that talks to either server.

Each test runs the real daemon in a namespace the test creates and checks what the node
end of the link (or the daemon's own lease file) shows; the pure parts (config checks,
pool arithmetic, the lease-file reader) are checked without a network.
"""

from __future__ import annotations

import datetime as dt
from ipaddress import IPv6Address, IPv6Network

import pytest

from testbed.dhcpd import (
    BindingState,
    Dhcpd,
    DhcpdConfig,
    DhcpdError,
    PrefixPool,
    current_leases,
    parse_lease_file,
)
from testbed.dnsmasq import Dnsmasq, DnsmasqConfig
from testbed.netns import Link
from testbed.pd_client import PdClientProcess

DUID = bytes.fromhex("00030001020000000042")


def process_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


# -- dnsmasq ---------------------------------------------------------------------------------


class TestDnsmasqConfig:
    def test_values_dnsmasq_would_clamp_are_refused_up_front(self) -> None:
        with pytest.raises(ValueError, match="clamps the RA interval"):
            DnsmasqConfig(ifname="vr", interval=3)
        with pytest.raises(ValueError, match="clamps the RA interval"):
            DnsmasqConfig(ifname="vr", interval=1801)
        with pytest.raises(ValueError, match="raises a lease time"):
            DnsmasqConfig(ifname="vr", lease_time=119)
        with pytest.raises(ValueError, match="router lifetime"):
            DnsmasqConfig(ifname="vr", interval=10, router_lifetime=9)
        with pytest.raises(ValueError, match="one line"):
            DnsmasqConfig(ifname="vr", extra=("a\nb",))

    def test_the_bounds_themselves_are_accepted(self) -> None:
        DnsmasqConfig(ifname="vr", interval=4, lease_time=120, router_lifetime=0)
        DnsmasqConfig(ifname="vr", interval=1800, router_lifetime=9000)

    def test_only_a_slash_64_can_be_advertised(self, link: Link) -> None:
        with pytest.raises(ValueError, match="not a /64"):
            Dnsmasq(link, prefix="2001:db8:d::/56")


@pytest.mark.netns
class TestDnsmasq:
    def test_the_node_learns_a_slaac_address_from_dnsmasq(self, link: Link) -> None:
        with Dnsmasq(link, lease_time=600) as dnsmasq:
            address = link.wait_for_node_address("2001:db8:d::/64", timeout=10)

            assert dnsmasq.ras_logged() >= 1
            assert dnsmasq.router_address.ip == IPv6Address("2001:db8:d::1")
        assert not address.deprecated
        assert address.valid_lifetime <= 600

    def test_a_restarting_renumber_advertises_only_the_new_prefix(self, link: Link) -> None:
        with Dnsmasq(link) as dnsmasq:
            link.wait_for_node_address("2001:db8:d::/64", timeout=10)
            dnsmasq.renumber("2001:db8:e::/64")

            link.wait_for_node_address("2001:db8:e::/64", deprecated=False, timeout=10)
            # a router that rebooted into a new prefix no longer mentions the old one:
            # the node keeps its address there, still preferred, until it expires
            old = link.wait_for_node_address("2001:db8:d::/64")
            assert not old.deprecated
            assert dnsmasq.prefix == IPv6Network("2001:db8:e::/64")
            router = [info.interface for info in link.addresses(link.router)]
            assert dnsmasq.router_address in router
            assert all(a.ip not in IPv6Network("2001:db8:d::/64") for a in router)

    def test_a_live_renumber_deprecates_the_old_prefix(self, link: Link) -> None:
        with Dnsmasq(link) as dnsmasq:
            link.wait_for_node_address("2001:db8:d::/64", timeout=10)
            before = dnsmasq.ras_logged("2001:db8:d::/64")

            dnsmasq.renumber("2001:db8:e::/64", restart=False)

            link.wait_for_node_address("2001:db8:e::/64", deprecated=False, timeout=10)
            link.wait_for_node_address("2001:db8:d::/64", deprecated=True, timeout=30)
            assert dnsmasq.ras_logged("2001:db8:d::/64") == before  # "old prefix" only

    def test_stop_ends_dnsmasq_and_restores_the_router_end(self, link: Link) -> None:
        key = f"net.ipv6.conf.{link.router_ifname}.accept_ra"
        accept_ra = link.run_in_router("sysctl", "-n", key).stdout.strip()
        dnsmasq = Dnsmasq(link).start()
        pid = dnsmasq.pid
        assert link.run_in_router("sysctl", "-n", key).stdout.strip() == "0"

        dnsmasq.stop()

        assert not process_exists(pid)
        assert link.run_in_router("sysctl", "-n", key).stdout.strip() == accept_ra
        assert all(
            info.interface.ip != IPv6Address("2001:db8:d::1")
            for info in link.addresses(link.router)
        )


# -- ISC dhcpd -------------------------------------------------------------------------------


class TestPrefixPool:
    def test_of_spans_every_prefix_of_the_length(self) -> None:
        pool = PrefixPool.of("2001:db8:100::/48", 56)

        assert pool.size == 256
        assert pool.first_prefix == IPv6Network("2001:db8:100::/56")
        assert pool.last_prefix == IPv6Network("2001:db8:100:ff00::/56")
        assert IPv6Network("2001:db8:100:ff00::/56") in pool
        assert IPv6Network("2001:db8:101::/56") not in pool
        assert IPv6Network("2001:db8:100::/60") not in pool
        assert pool.config() == "  prefix6 2001:db8:100:: 2001:db8:100:ff00:: /56;\n"

    def test_impossible_pools_are_refused(self) -> None:
        with pytest.raises(ValueError, match="do not fit"):
            PrefixPool.of("2001:db8:100::/56", 48)
        with pytest.raises(ValueError, match="after its end"):
            PrefixPool("2001:db8:100:f00::", "2001:db8:100::", 56)
        with pytest.raises(ValueError, match="host bits"):
            PrefixPool("2001:db8:100:1::", "2001:db8:100:f00::", 56)  # host bits
        with pytest.raises(ValueError, match="1 to 128"):
            PrefixPool("2001:db8::", "2001:db8::", 0)

    def test_inconsistent_timers_and_lifetimes_are_refused(self) -> None:
        pools = (PrefixPool.of("2001:db8:100::/48", 56),)
        subnet = IPv6Network("2001:db8:ffff::/64")
        with pytest.raises(ValueError, match="exceeds valid"):
            DhcpdConfig(subnet=subnet, pools=pools, preferred=50, valid=40)
        with pytest.raises(ValueError, match="exceeds rebind"):
            DhcpdConfig(subnet=subnet, pools=pools, renew=30, rebind=20)
        with pytest.raises(ValueError, match="at least one"):
            DhcpdConfig(subnet=subnet, pools=())


LEASE_FILE = """\
# The format of this file is documented in the dhcpd.leases(5) manual page.
authoring-byte-order little-endian;
server-duid "\\000\\001\\000\\001-\\304\\3310\\012\\000'\\000\\000\\001";

ia-pd "\\007\\000\\000\\000\\000\\003\\000\\001\\002\\000\\000\\000\\000B" {
  cltt 4 2026/12/03 11:00:00;
  iaprefix 2001:db8:100:f00::/56 {
    binding state active;
    preferred-life 30;
    max-life 40;
    ends 4 2026/12/03 11:00:40;
  }
}

ia-pd "\\007\\000\\000\\000\\000\\003\\000\\001\\002\\000\\000\\000\\000B" {
  cltt 4 2026/12/03 11:00:10;
  iaprefix 2001:db8:100:f00::/56 {
    binding state released;
    preferred-life 30;
    max-life 40;
    ends 4 2026/12/03 11:00:10;
  }
}
"""


class TestLeaseFile:
    def test_the_last_entry_of_a_prefix_is_the_one_in_effect(self) -> None:
        records = parse_lease_file(LEASE_FILE)

        assert [r.state for r in records] == ["active", "released"]
        [lease] = current_leases(records)
        assert lease.state == BindingState.RELEASED
        assert lease.prefix == IPv6Network("2001:db8:100:f00::/56")
        assert (lease.kind, lease.iaid, lease.client_id) == ("ia-pd", 7, DUID)
        assert (lease.preferred_lifetime, lease.valid_lifetime) == (30, 40)
        assert lease.cltt == dt.datetime(2026, 12, 3, 11, 0, 10, tzinfo=dt.UTC)


@pytest.mark.netns
class TestDhcpd:
    def test_a_delegation_shows_in_the_lease_file(self, link: Link) -> None:
        with Dhcpd(link, renew=10, rebind=20, preferred=30, valid=40) as dhcpd:
            with PdClientProcess(link, duid=DUID, iaid=7) as client:
                got = client.wait_for_lease(timeout=20)

                lease = dhcpd.wait_for_lease(got.prefix, state=BindingState.ACTIVE)
            assert got.prefix in dhcpd.config.pools[0]
            assert (got.preferred, got.valid, got.t1, got.t2) == (30, 40, 10, 20)
            assert (lease.client_id, lease.iaid) == (DUID, 7)
            assert got.server_id == dhcpd.server_duid()
            # stopped without a Release: dhcpd still holds the prefix for us
            assert dhcpd.lease(got.prefix) == lease
            assert dhcpd.releases_logged() == []

    def test_a_release_frees_the_prefix(self, link: Link) -> None:
        with Dhcpd(link) as dhcpd:
            client = PdClientProcess(link, duid=DUID, release_on_stop=True).start()
            try:
                prefix = client.wait_for_lease(timeout=20).prefix
            finally:
                client.stop()

            assert client.release_acknowledged is True
            dhcpd.wait_for_lease(prefix, state=BindingState.RELEASED)
            assert [p for _, p in dhcpd.releases_logged()] == [prefix]

    def test_a_hint_for_a_held_prefix_gets_another(self, link: Link) -> None:
        with Dhcpd(link) as dhcpd:
            with PdClientProcess(link, duid=DUID) as first:
                held = first.wait_for_lease(timeout=20).prefix
                with PdClientProcess(link, hint=held, address="fe80::c2", iaid=2) as second:
                    other = second.wait_for_lease(timeout=20).prefix
            assert other != held
            assert {lease.prefix for lease in dhcpd.leases() if lease.active} == {held, other}

    def test_a_router_address_outside_the_subnet_is_refused(self, link: Link) -> None:
        with pytest.raises(ValueError, match="is not in"):
            Dhcpd(link, router_address="2001:db8:1::1/64")

    def test_a_dhcpd_that_exits_at_start_raises_with_its_log(self, link: Link) -> None:
        # no address of the subnet on the router end: dhcpd serves no interface, exits
        with pytest.raises(DhcpdError, match="No subnet6 declaration"):
            Dhcpd(link, router_address=None).start()

        listening = link.run_in_router("ss", "-H", "-u", "-l", "-n", "sport = :547")
        assert listening.stdout.strip() == ""

    def test_stop_ends_dhcpd_and_removes_its_address(self, link: Link) -> None:
        dhcpd = Dhcpd(link).start()
        pid = dhcpd.pid
        sockets = link.run_in_router("ss", "-H", "-u", "-l", "-n", "-p", "sport = :547")
        assert f"pid={pid}," in sockets.stdout

        dhcpd.stop()

        assert not process_exists(pid)
        assert all(
            info.interface.ip != IPv6Address("2001:db8:ffff::1")
            for info in link.addresses(link.router)
        )
