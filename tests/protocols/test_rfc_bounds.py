"""Every RFC bound the protocol code enforces, tested at both ends and just inside them.

One table per bound: the last value refused below it, the first accepted, the last
accepted and the first refused above it (where a side exists). A bound tested on one side
only lets a bug on the other side pass; these tables are the other side. SOL_MAX_RT's
60 to 86400 (RFC 8415 21.24) is in test_dhcpv6_client.py. The IP-level hop limit 255
(RFC 4861 6.1.2) is checked by the receiver, from ancillary data, in
`dynamic_prefix.sources.ra_listener` and tested with it (tests/sources).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator
from ipaddress import IPv6Address, IPv6Network

import pytest

from dynamic_prefix.protocols.dhcpv6 import (
    Dhcpv6BuildError,
    Dhcpv6ParseError,
    IaPdOption,
    IaPrefixOption,
    Message,
    MessageType,
    ParseErrorReason,
    PreferenceOption,
    UnknownDuid,
    build_duid,
    build_message,
    parse_duid,
    parse_message,
)
from dynamic_prefix.protocols.dhcpv6_client import ClientState, PdClient, PdClientConfig
from dynamic_prefix.protocols.dhcpv6_timing import Exchange, rand
from dynamic_prefix.protocols.ndp import (
    INFINITE_LIFETIME,
    NdpBuildError,
    NdpDropReason,
    NdpParseError,
    PrefixInformation,
    RecursiveDnsServers,
    RouteInformation,
    RouterAdvertisement,
    build_router_advertisement,
    parse_neighbor_advertisement,
    parse_router_advertisement,
    parse_router_solicitation,
)
from dynamic_prefix.protocols.tracker import (
    TWO_HOURS,
    IgnoreReason,
    PrefixChanged,
    PrefixIgnored,
    PrefixTracker,
    PrefixWithdrawn,
    TrackerEvent,
    TrackerPolicy,
)
from tests.protocols.test_dhcpv6_client import CLIENT_DUID, answer, ia_pd, only_sent

BELOW_ONE = math.nextafter(1.0, 0.0)
"""The largest value an rng returning [0, 1) can give."""


# --- RFC 4861 / 4191 / 8106: what the NDP parser accepts ------------------------------

RA_HEADER = bytes((134, 0, 0, 0, 64, 0, 0x07, 0x08)) + bytes(8)  # 16 octets, no options
PREFIX = IPv6Address("2001:db8:1::")


def ra(*options: bytes) -> bytes:
    return RA_HEADER + b"".join(options)


def pio(prefix_length: int = 64, *, units: int = 4) -> bytes:
    body = struct.pack("!BBIII16s", prefix_length, 0xC0, 3600, 1800, 0, PREFIX.packed)
    return (bytes((3, units)) + body).ljust(units * 8, b"\0")[: units * 8]


def rio(prefix_length: int, units: int) -> bytes:
    header = struct.pack("!BBBBI", 24, units, prefix_length, 0, 1800)
    return (header + PREFIX.packed).ljust(units * 8, b"\0")[: units * 8]


def rdnss(units: int) -> bytes:
    return (struct.pack("!BBHI", 25, units, 0, 1800) + bytes(16 * 4)).ljust(units * 8, b"\0")[
        : units * 8
    ]


def mtu(units: int) -> bytes:
    return struct.pack("!BBHI", 5, units, 0, 1500).ljust(units * 8, b"\0")


def unknown_option(units: int) -> bytes:
    return bytes((200, units)) + bytes(units * 8 - 2) if units else bytes((200, 0)) + bytes(6)


def refused(parse: Callable[[bytes], object], message: bytes) -> NdpDropReason:
    with pytest.raises(NdpParseError) as caught:
        parse(message)
    return caught.value.reason


@pytest.mark.parametrize(
    ("prefix_length", "accepted"),
    [(0, True), (1, True), (127, True), (128, True), (129, False), (255, False)],
)
def test_prefix_information_prefix_length_is_0_to_128(prefix_length: int, accepted: bool) -> None:
    message = ra(pio(prefix_length))
    if accepted:
        (option,) = parse_router_advertisement(message).prefix_information
        assert option.prefix.prefixlen == prefix_length
    else:
        assert refused(parse_router_advertisement, message) is NdpDropReason.BAD_PREFIX_LENGTH


@pytest.mark.parametrize(("units", "accepted"), [(3, False), (4, True), (5, False)])
def test_prefix_information_option_is_exactly_4_units(units: int, accepted: bool) -> None:
    message = ra(pio(units=units))
    if accepted:
        assert len(parse_router_advertisement(message).prefix_information) == 1
    else:
        assert refused(parse_router_advertisement, message) is NdpDropReason.BAD_OPTION_LENGTH


@pytest.mark.parametrize(("units", "accepted"), [(1, True), (2, False)])
def test_mtu_option_is_exactly_1_unit(units: int, accepted: bool) -> None:
    message = ra(mtu(units))
    if accepted:
        assert parse_router_advertisement(message).mtu == 1500
    else:
        assert refused(parse_router_advertisement, message) is NdpDropReason.BAD_OPTION_LENGTH


@pytest.mark.parametrize(
    ("prefix_length", "units", "reason"),
    [
        # RFC 4191 2.3: length 1 holds /0, 2 holds up to /64, 3 holds up to /128.
        (0, 1, None),
        (1, 1, NdpDropReason.BAD_OPTION_LENGTH),
        (1, 2, None),
        (64, 2, None),
        (65, 2, NdpDropReason.BAD_OPTION_LENGTH),
        (65, 3, None),
        (128, 3, None),
        (128, 4, NdpDropReason.BAD_OPTION_LENGTH),
        (129, 3, NdpDropReason.BAD_PREFIX_LENGTH),
    ],
)
def test_route_information_length_fits_its_prefix_length(
    prefix_length: int, units: int, reason: NdpDropReason | None
) -> None:
    message = ra(rio(prefix_length, units))
    if reason is None:
        (option,) = parse_router_advertisement(message).options
        assert isinstance(option, RouteInformation)
        assert option.prefix.prefixlen == prefix_length
    else:
        assert refused(parse_router_advertisement, message) is reason


@pytest.mark.parametrize(
    ("units", "servers"), [(1, None), (2, None), (3, 1), (4, None), (5, 2), (7, 3)]
)
def test_rdnss_option_is_an_odd_number_of_at_least_3_units(units: int, servers: int | None) -> None:
    message = ra(rdnss(units))
    if servers is None:
        assert refused(parse_router_advertisement, message) is NdpDropReason.BAD_OPTION_LENGTH
    else:
        (option,) = parse_router_advertisement(message).options
        assert isinstance(option, RecursiveDnsServers)
        assert len(option.servers) == servers


@pytest.mark.parametrize(("units", "accepted"), [(0, False), (1, True), (2, True), (255, True)])
def test_option_length_is_at_least_one_unit(units: int, accepted: bool) -> None:
    message = ra(unknown_option(units))
    if accepted:
        assert len(parse_router_advertisement(message).options) == 1
    else:
        assert refused(parse_router_advertisement, message) is NdpDropReason.ZERO_LENGTH_OPTION


@pytest.mark.parametrize(("missing", "accepted"), [(0, True), (1, False), (8, False)])
def test_option_must_end_inside_the_message(missing: int, accepted: bool) -> None:
    message = ra(unknown_option(2))[: len(RA_HEADER) + 16 - missing]
    if accepted:
        assert len(parse_router_advertisement(message).options) == 1
    else:  # the option header claims 16 octets, fewer are left
        assert refused(parse_router_advertisement, message) is NdpDropReason.OPTION_OVERFLOW


@pytest.mark.parametrize(
    ("parse", "message_type", "minimum"),
    [
        pytest.param(parse_router_advertisement, 134, 16, id="RA-16"),
        pytest.param(parse_router_solicitation, 133, 8, id="RS-8"),
        pytest.param(parse_neighbor_advertisement, 136, 24, id="NA-24"),
    ],
)
def test_message_has_its_minimum_length(
    parse: Callable[[bytes], object], message_type: int, minimum: int
) -> None:
    header = bytes((message_type,)) + bytes(minimum - 1)
    parse(header)
    assert refused(parse, header[:-1]) is NdpDropReason.TRUNCATED
    assert refused(parse, header + bytes(7)) is NdpDropReason.TRAILING_GARBAGE


@pytest.mark.parametrize(("code", "accepted"), [(0, True), (1, False), (255, False)])
def test_icmp_code_must_be_0(code: int, accepted: bool) -> None:
    message = RA_HEADER[:1] + bytes((code,)) + RA_HEADER[2:]
    if accepted:
        parse_router_advertisement(message)
    else:
        assert refused(parse_router_advertisement, message) is NdpDropReason.BAD_CODE


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("cur_hop_limit", -1, False),
        ("cur_hop_limit", 0, True),
        ("cur_hop_limit", 255, True),
        ("cur_hop_limit", 256, False),
        ("router_lifetime", 0xFFFF, True),
        ("router_lifetime", 0x10000, False),
        ("reachable_time", 0xFFFF_FFFF, True),
        ("reachable_time", 0x1_0000_0000, False),
        ("retrans_timer", 0xFFFF_FFFF, True),
        ("retrans_timer", 0x1_0000_0000, False),
    ],
)
def test_advertisement_header_fields_fit_their_octets(
    field: str, value: int, accepted: bool
) -> None:
    advertisement = RouterAdvertisement(**{"cur_hop_limit": 64, field: value})  # type: ignore[arg-type]
    if accepted:
        parsed = parse_router_advertisement(build_router_advertisement(advertisement))
        assert getattr(parsed, field) == value
    else:
        with pytest.raises(NdpBuildError):
            build_router_advertisement(advertisement)


# --- RFC 4862 5.5.3: what the tracker takes from a Prefix Information option ----------

ROUTER = IPv6Address("fe80::a")
ROUTER_2 = IPv6Address("fe80::b")
GUA = IPv6Network("2001:db8:1::/64")
GUA_2 = IPv6Network("2001:db8:2::/64")
NOW = 1000.0


def announce(
    tracker: PrefixTracker,
    prefix: IPv6Network = GUA,
    *,
    valid: int,
    preferred: int,
    now: float = NOW,
    autonomous: bool = True,
    router: IPv6Address = ROUTER,
) -> list[TrackerEvent]:
    option = PrefixInformation(
        prefix=prefix,
        on_link=True,
        autonomous=autonomous,
        valid_lifetime=valid,
        preferred_lifetime=preferred,
    )
    advertisement = RouterAdvertisement(cur_hop_limit=64, router_lifetime=1800, options=(option,))
    return tracker.observe_advertisement(advertisement, router=router, now=now)


def ignored(events: list[TrackerEvent]) -> list[IgnoreReason]:
    return [event.reason for event in events if isinstance(event, PrefixIgnored)]


@pytest.mark.parametrize(
    ("valid", "preferred", "accepted"),
    [
        (3600, 0, True),
        (3600, 3599, True),
        (3600, 3600, True),  # equal is fine
        (3600, 3601, False),  # 5.5.3 c: preferred over valid
        (INFINITE_LIFETIME - 1, INFINITE_LIFETIME, False),
        (INFINITE_LIFETIME, INFINITE_LIFETIME, True),
    ],
)
def test_preferred_lifetime_may_not_exceed_valid(
    valid: int, preferred: int, accepted: bool
) -> None:
    tracker = PrefixTracker(TrackerPolicy())
    events = announce(tracker, valid=valid, preferred=preferred)
    assert (tracker.current is not None) is accepted
    assert ignored(events) == ([] if accepted else [IgnoreReason.PREFERRED_EXCEEDS_VALID])


@pytest.mark.parametrize(
    ("lifetime", "remaining"),
    [
        (1, 1.0),
        (INFINITE_LIFETIME - 1, float(INFINITE_LIFETIME - 1)),
        (INFINITE_LIFETIME, math.inf),  # all ones: infinite (RFC 4861 4.6.2)
    ],
)
def test_only_all_ones_is_an_infinite_lifetime(lifetime: int, remaining: float) -> None:
    tracker = PrefixTracker(TrackerPolicy())
    announce(tracker, valid=lifetime, preferred=lifetime)
    current = tracker.current
    assert current is not None
    assert current.valid_until - NOW == remaining
    assert current.preferred_until - NOW == remaining


@pytest.mark.parametrize(
    ("known", "received", "kept"),
    [
        # e.1: more than two hours, or more than remains: taken as received.
        (10_000, 7201, 7201),
        (100, 101, 101),
        (INFINITE_LIFETIME, 7201, 7201),
        (7200, 7201, 7201),
        # e.3: more than two hours remain: two hours are left.
        (10_000, 7200, 7200),
        (10_000, 7199, 7200),
        (10_000, 0, 7200),
        (7201, 0, 7200),
        (INFINITE_LIFETIME, 7200, 7200),
        (INFINITE_LIFETIME, 0, 7200),
        # e.2: at most two hours remain: what remains is kept.
        (7200, 0, 7200),
        (7199, 0, 7199),
        (7200, 7199, 7200),
        (100, 100, 100),
        (100, 99, 100),
        (100, 0, 100),
    ],
)
def test_two_hour_rule_at_both_ends(known: int, received: int, kept: int) -> None:
    assert TWO_HOURS == 7200
    tracker = PrefixTracker(TrackerPolicy())  # no trusted list: RAs are unauthenticated
    announce(tracker, valid=known, preferred=0)
    announce(tracker, valid=received, preferred=0)
    current = tracker.current
    assert current is not None
    assert current.valid_until - NOW == kept


@pytest.mark.parametrize(("received", "kept"), [(0, None), (1, 1.0), (7199, 7199.0)])
def test_an_authenticated_router_is_believed_below_two_hours(
    received: int, kept: float | None
) -> None:
    tracker = PrefixTracker(TrackerPolicy(trusted_routers=frozenset({ROUTER})))
    announce(tracker, valid=10_000, preferred=0)
    events = announce(tracker, valid=received, preferred=0)
    current = tracker.current
    if kept is None:
        assert current is None
        assert PrefixWithdrawn(GUA, ROUTER) in events
    else:
        assert current is not None
        assert current.valid_until - NOW == kept


@pytest.mark.parametrize(("length", "accepted"), [(63, False), (64, True), (65, False)])
def test_only_the_required_prefix_length_counts(length: int, accepted: bool) -> None:
    tracker = PrefixTracker(TrackerPolicy())
    events = announce(tracker, IPv6Network((PREFIX, length)), valid=3600, preferred=1800)
    assert (tracker.current is not None) is accepted
    assert ignored(events) == ([] if accepted else [IgnoreReason.WRONG_PREFIX_LENGTH])


@pytest.mark.parametrize(("later_by", "switches"), [(1799, False), (1800, False), (1801, True)])
def test_switch_margin_is_strictly_more_than_1800_seconds(later_by: int, switches: bool) -> None:
    # 1800 s is the largest MaxRtrAdvInterval (RFC 4861 6.2.1).
    tracker = PrefixTracker(TrackerPolicy())
    announce(tracker, GUA, valid=10_000, preferred=3600)
    # From another router, so that GUA stays announced (not stale).
    events = announce(tracker, GUA_2, valid=10_000, preferred=3600 + later_by, router=ROUTER_2)
    assert any(isinstance(event, PrefixChanged) for event in events) is switches
    current = tracker.current
    assert current is not None
    assert current.prefix == (GUA_2 if switches else GUA)


@pytest.mark.parametrize("max_prefixes", [1, 2, 5])
def test_tracked_pairs_stop_at_exactly_max_prefixes(max_prefixes: int) -> None:
    tracker = PrefixTracker(TrackerPolicy(max_prefixes=max_prefixes))
    prefixes = [IPv6Network((int(GUA.network_address) + (i << 64), 64)) for i in range(6)]
    reasons = [ignored(announce(tracker, p, valid=3600, preferred=1800)) for p in prefixes]
    assert reasons[:max_prefixes] == [[]] * max_prefixes
    assert reasons[max_prefixes] == [IgnoreReason.TOO_MANY_PREFIXES]
    assert len(tracker.prefixes) == max_prefixes


@pytest.mark.parametrize(
    ("settings", "accepted"),
    [
        ({"prefix_length": -1}, False),
        ({"prefix_length": 0}, True),
        ({"prefix_length": 128}, True),
        ({"prefix_length": 129}, False),
        ({"lifetime_tolerance": -0.001}, False),
        ({"lifetime_tolerance": 0.0}, True),
        ({"lifetime_tolerance": 1.0}, True),
        ({"lifetime_tolerance": 1.001}, False),
        ({"max_prefixes": 0}, False),
        ({"max_prefixes": 1}, True),
        ({"switch_margin": -0.001}, False),
        ({"switch_margin": 0.0}, True),
        ({"lifetime_resolution": -0.001}, False),
        ({"lifetime_resolution": 0.0}, True),
        ({"valid_floor": -0.001}, False),
        ({"valid_floor": 0.0}, True),
    ],
)
def test_policy_bounds(settings: dict[str, float], accepted: bool) -> None:
    if accepted:
        TrackerPolicy(**settings)  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError):  # noqa: PT011 - each bound has its own message
            TrackerPolicy(**settings)  # type: ignore[arg-type]


# --- RFC 8415: DHCPv6 fields and retransmission ---------------------------------------


@pytest.mark.parametrize(("length", "accepted"), [(0, True), (1, True), (128, True), (129, False)])
def test_ia_prefix_length_is_at_most_128(length: int, accepted: bool) -> None:
    prefix = IaPrefixOption(0, 0, length, IPv6Address("::"))
    data = build_message(Message(MessageType.REPLY, 1, (IaPdOption(1, 0, 0, (prefix,)),)))
    if accepted:
        (ia,) = parse_message(data).options
        assert ia == IaPdOption(1, 0, 0, (prefix,))
    else:
        with pytest.raises(Dhcpv6ParseError) as caught:
            parse_message(data)
        assert caught.value.reason is ParseErrorReason.BAD_PREFIX_LENGTH


@pytest.mark.parametrize(
    ("length", "accepted"),
    [(2, False), (3, True), (4, True), (129, True), (130, True), (131, False)],
)
def test_duid_is_3_to_130_octets_both_ways(length: int, accepted: bool) -> None:
    # RFC 8415 11.1: a 2-octet type and 1 to 128 octets of identifier.
    duid = UnknownDuid(0xFFFF, bytes(length - 2))
    encoded = bytes((0xFF, 0xFF)) + bytes(length - 2)
    if accepted:
        assert build_duid(duid) == encoded
        assert parse_duid(encoded) == duid
    else:
        with pytest.raises(Dhcpv6BuildError):
            build_duid(duid)
        with pytest.raises(Dhcpv6ParseError):
            parse_duid(encoded)


@pytest.mark.parametrize(
    ("length", "accepted"), [(0, False), (1, True), (64, True), (128, True), (129, False)]
)
def test_requested_prefix_length_is_1_to_128(length: int, accepted: bool) -> None:
    def config() -> PdClientConfig:
        return PdClientConfig(
            duid=CLIENT_DUID, iaid=1, rng=lambda: 0.5, requested_prefix_length=length
        )

    if accepted:
        assert config().requested_prefix_length == length
    else:
        with pytest.raises(ValueError, match="between 1 and 128"):
            config()


@pytest.mark.parametrize(
    ("iaid", "accepted"), [(-1, False), (0, True), (2**32 - 1, True), (2**32, False)]
)
def test_iaid_is_32_bits(iaid: int, accepted: bool) -> None:
    def config() -> PdClientConfig:
        return PdClientConfig(duid=CLIENT_DUID, iaid=iaid, rng=lambda: 0.5)

    if accepted:
        assert config().iaid == iaid
    else:
        with pytest.raises(ValueError, match="32-bit"):
            config()


def exchange(kind: MessageType = MessageType.SOLICIT, *, mrt: float = 3600.0) -> Exchange:
    return Exchange(
        kind=kind,
        transaction_id=1,
        options=(),
        server_id=None,
        mrt=mrt,
        mrc=0,
        mrd_end=math.inf,
        next_at=0.0,
    )


@pytest.mark.parametrize(
    ("elapsed", "hundredths"),
    [(0.0, 0), (655.34, 65534), (655.35, 0xFFFF), (655.36, 0xFFFF), (1e9, 0xFFFF)],
)
def test_elapsed_time_stops_at_0xffff_hundredths(elapsed: float, hundredths: int) -> None:
    # RFC 8415 21.9: 0xffff means 655.35 s or more.
    assert exchange().elapsed_hundredths(elapsed) == hundredths


@pytest.mark.parametrize(
    ("draw", "low", "high"),
    [(0.0, -0.1, -0.1), (0.5, 0.0, 0.0), (BELOW_ONE, 0.0999999, 0.1)],
)
def test_rand_is_between_minus_and_plus_0_1(draw: float, low: float, high: float) -> None:
    value = rand(lambda: draw)
    assert low <= value <= high
    assert value < 0.1  # RFC 8415 15: RAND in [-0.1, +0.1]; half-open here


@pytest.mark.parametrize(
    ("kind", "draw", "low", "high"),
    [
        # 18.2.1: the first Solicit RT is strictly greater than IRT, at most 1.1 IRT.
        (MessageType.SOLICIT, 0.0, 1.1, 1.1),
        (MessageType.SOLICIT, 1.0 - 1e-9, 1.0 + 1e-12, 1.0 + 1e-9),
        # 15: RT = IRT + RAND*IRT for the others, 0.9 to 1.1 IRT.
        (MessageType.REQUEST, 0.0, 0.9, 0.9),
        (MessageType.REQUEST, BELOW_ONE, 1.0999, 1.1),
        (MessageType.RENEW, 0.0, 9.0, 9.0),
        (MessageType.RENEW, BELOW_ONE, 10.999, 11.0),
    ],
)
def test_first_timeout_at_both_ends_of_rand(
    kind: MessageType, draw: float, low: float, high: float
) -> None:
    pending = exchange(kind)
    pending.draw_timeout(0.0, lambda: draw)
    assert low <= pending.rt <= high
    if kind is MessageType.SOLICIT:
        assert pending.rt > 1.0


def test_first_solicit_timeout_exceeds_irt_even_at_the_top_of_the_rng() -> None:
    pending = exchange(MessageType.SOLICIT)
    pending.draw_timeout(0.0, lambda: BELOW_ONE)
    assert pending.rt > 1.0


def draws(*values: float) -> Callable[[], float]:
    it: Iterator[float] = iter(values)
    return lambda: next(it)


@pytest.mark.parametrize(
    ("previous", "cap_draw", "expected"),
    [
        # RAND 0 on doubling: 2 x previous. At MRT exactly: not over it, kept, no 2nd draw.
        (99.5, None, 199.0),
        (100.0, None, 200.0),
        # Over MRT: RT = MRT + RAND*MRT (section 15), at both ends of RAND.
        (100.5, 0.0, 180.0),
        (100.5, 0.5, 200.0),
        (100.5, BELOW_ONE, 220.0),
    ],
)
def test_retransmission_timeout_is_capped_at_mrt_with_rand(
    previous: float, cap_draw: float | None, expected: float
) -> None:
    pending = exchange(mrt=200.0)
    pending.transmissions = 1
    pending.rt = previous
    rng = draws(0.5) if cap_draw is None else draws(0.5, cap_draw)
    pending.draw_timeout(0.0, rng)
    assert pending.rt == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("mrc", "transmissions", "exhausted"),
    [(10, 9, False), (10, 10, True), (4, 3, False), (4, 4, True), (0, 10_000, False)],
)
def test_exchange_ends_after_exactly_mrc_transmissions(
    mrc: int, transmissions: int, exhausted: bool
) -> None:
    pending = exchange()
    pending.mrc = mrc
    pending.transmissions = transmissions
    assert pending.exhausted(0.0) is exhausted


@pytest.mark.parametrize(
    ("now", "exhausted"), [(math.nextafter(100.0, 0.0), False), (100.0, True), (100.5, True)]
)
def test_exchange_ends_at_mrd(now: float, exhausted: bool) -> None:
    pending = exchange()
    pending.mrd_end = 100.0
    assert pending.exhausted(now) is exhausted


@pytest.mark.parametrize(("preference", "at_once"), [(0, False), (254, False), (255, True)])
def test_only_preference_255_is_taken_without_waiting(preference: int, at_once: bool) -> None:
    # RFC 8415 18.2.9: 255 ends the collection at once; others wait for the first RT.
    client = PdClient(
        PdClientConfig(duid=CLIENT_DUID, iaid=1, rng=lambda: 0.5, solicit_max_delay=0)
    )
    client.start(0.0)
    solicit = only_sent(client, MessageType.SOLICIT)
    client.receive(answer(solicit, PreferenceOption(preference), ia_pd()), 0.1)
    if at_once:
        only_sent(client, MessageType.REQUEST)
        assert client.state is ClientState.REQUESTING
    else:
        assert client.datagrams_to_send() == []
        assert client.state is ClientState.SOLICITING
