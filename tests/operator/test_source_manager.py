"""The source manager's rules for releasing delegations, with stand-in sources.

The stand-ins replace the receivers only to see which were asked to release and when;
the real DHCPv6 client against Kea is in test_dhcpv6_handover.py.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv6Network

from dynamic_prefix.model import api
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import (
    Acquisition,
    Dhcpv6PdSpec,
    PrefixSourceSpec,
    StaticSpec,
    source_name,
)
from dynamic_prefix.operator.sources import SourceManager
from dynamic_prefix.sources.base import ReportCallback

P = IPv6Network("2001:db8:100::/56")
STATIC = IPv6Network("2001:db8:5::/64")


class StandIn:
    """Reports one prefix and waits; remembers whether it was asked to release."""

    def __init__(self, spec: PrefixSourceSpec, prefix: IPv6Network, releasable: bool) -> None:
        self.spec = spec
        self._state = SourceState(source_name(spec), prefix, reason="Acquired")
        if releasable:
            self.release_on_stop = False
        self.released_on_stop: bool | None = None

    @property
    def name(self) -> str:
        return source_name(self.spec)

    @property
    def state(self) -> SourceState:
        return self._state

    async def run(self, report: ReportCallback) -> None:
        report(self._state)
        try:
            await asyncio.Event().wait()
        finally:
            self.released_on_stop = getattr(self, "release_on_stop", None)


class World:
    def __init__(self) -> None:
        self.made: list[StandIn] = []
        self.reports: list[SourceState] = []
        self.manager = SourceManager(lambda name, state: self.reports.append(state), self.make)

    def make(self, name: str, spec: PrefixSourceSpec, acquisition: Acquisition) -> StandIn:
        dhcp = isinstance(spec, Dhcpv6PdSpec)
        made = StandIn(spec, P if dhcp else STATIC, releasable=dhcp)
        self.made.append(made)
        return made


def pd(interface: str = "eth0", length: int = 56) -> Dhcpv6PdSpec:
    return Dhcpv6PdSpec(interface=interface, requested_prefix_length=length)


def acquisition(*sources: PrefixSourceSpec) -> Acquisition:
    return Acquisition(sources=sources, allow_unique_local=False)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_stopping_everything_releases_nothing() -> None:
    world = World()
    world.manager.ensure("dp", acquisition(pd()))
    await settle()

    await world.manager.stop_all()

    assert [m.released_on_stop for m in world.made] == [False]


async def test_a_changed_interface_retires_the_old_client_until_told_to_release() -> None:
    world = World()
    world.manager.ensure("dp", acquisition(pd("eth0")))
    await settle()

    retiring = world.manager.ensure("dp", acquisition(pd("eth1")))
    await settle()

    assert retiring is not None
    assert retiring.released == {P}
    old = world.made[0]
    assert old.released_on_stop is None  # still running, still holding the lease
    state = world.manager.state("dp")
    assert state is not None
    assert state.released == frozenset()  # the new client holds P again (the stand-in)

    await world.manager.retire(retiring)

    assert old.released_on_stop is True
    await world.manager.stop_all()
    assert world.made[1].released_on_stop is False


async def test_a_removed_client_releases_and_its_prefix_counts_as_released() -> None:
    world = World()
    world.manager.ensure("dp", acquisition(pd(), StaticSpec(prefix=STATIC)))
    await settle()

    retiring = world.manager.ensure("dp", acquisition(StaticSpec(prefix=STATIC)))
    await settle()

    state = world.manager.state("dp")
    assert state is not None
    assert (state.prefix, state.released) == (STATIC, frozenset({P}))
    assert retiring is not None
    await world.manager.retire(retiring)
    assert world.made[0].released_on_stop is True


async def test_an_unchanged_client_beside_a_changed_source_keeps_running() -> None:
    world = World()
    world.manager.ensure("dp", acquisition(pd(), StaticSpec(prefix=STATIC)))
    await settle()

    retiring = world.manager.ensure("dp", acquisition(pd()))

    assert retiring is None  # restarted without a Release: the same delegation is wanted
    await settle()
    await world.manager.stop_all()
    assert [m.released_on_stop for m in world.made if m.name == api.SOURCE_DHCPV6_PD] == [
        False,
        False,
    ]


async def test_deleting_releases_every_delegation() -> None:
    world = World()
    world.manager.ensure("dp", acquisition(pd()))
    await settle()

    await world.manager.release("dp")

    assert world.made[0].released_on_stop is True
    assert world.manager.state("dp") is None
