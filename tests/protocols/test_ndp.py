"""Router Advertisement / Solicitation codec: golden packets, round trips, strictness, fuzz."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamic_prefix.protocols.ndp import (
    INFINITE_LIFETIME,
    Mtu,
    NdpBuildError,
    NdpDropReason,
    NdpOption,
    NdpParseError,
    OptionType,
    PrefixInformation,
    RecursiveDnsServers,
    RouteInformation,
    RouterAdvertisement,
    RouterPreference,
    RouterSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    UnknownOption,
    build_router_advertisement,
    build_router_solicitation,
    parse_router_advertisement,
    parse_router_solicitation,
)

PACKETS = Path(__file__).parent / "packets"


def packet(name: str) -> bytes:
    """A packet from ``packets/``: hex octets, whitespace and ``#`` comments ignored."""
    text = (PACKETS / name).read_text()
    return bytes.fromhex("".join(line.partition("#")[0] for line in text.splitlines()))


def without_checksum(message: bytes) -> bytes:
    return message[:2] + b"\0\0" + message[4:]


# --- golden packets -----------------------------------------------------------------


def test_radvd_advertisement_decodes_to_its_fields() -> None:
    ra = parse_router_advertisement(packet("ra-radvd.hex"))

    assert ra == RouterAdvertisement(
        cur_hop_limit=64,
        router_lifetime=1800,
        options=(
            PrefixInformation(
                prefix=IPv6Network("2001:db8:1::/64"),
                on_link=True,
                autonomous=True,
                valid_lifetime=3600,
                preferred_lifetime=1800,
            ),
            Mtu(1500),
            SourceLinkLayerAddress(bytes.fromhex("020000000001")),
        ),
        checksum=0xA081,
    )
    assert ra.prefix_information == (ra.options[0],)
    assert ra.mtu == 1500
    assert ra.source_link_layer_address == bytes.fromhex("020000000001")


def test_advertisement_with_rdnss_and_route_information_decodes_to_its_fields() -> None:
    ra = parse_router_advertisement(packet("ra-rdnss-route.hex"))

    assert ra == RouterAdvertisement(
        cur_hop_limit=64,
        other_config=True,
        preference=RouterPreference.HIGH,
        router_lifetime=1800,
        reachable_time=30000,
        retrans_timer=1000,
        options=(
            PrefixInformation(
                prefix=IPv6Network("2001:db8:2::/64"),
                on_link=True,
                autonomous=True,
                valid_lifetime=86400,
                preferred_lifetime=14400,
            ),
            RouteInformation(
                prefix=IPv6Network("2001:db8:ff00::/40"),
                preference=RouterPreference.HIGH,
                route_lifetime=1800,
            ),
            RouteInformation(
                prefix=IPv6Network("::/0"), preference=RouterPreference.LOW, route_lifetime=600
            ),
            RouteInformation(
                prefix=IPv6Network("2001:db8:ffff:1:2::/80"),
                preference=RouterPreference.MEDIUM,
                route_lifetime=INFINITE_LIFETIME,
            ),
            RecursiveDnsServers(
                lifetime=1200,
                servers=(IPv6Address("2001:db8:2::53"), IPv6Address("2001:db8:2::5353")),
            ),
            SourceLinkLayerAddress(bytes.fromhex("020000000002")),
        ),
        checksum=0xCC32,
    )


def test_unknown_options_are_kept_with_their_type_and_octets() -> None:
    ra = parse_router_advertisement(packet("ra-unknown-options.hex"))

    assert ra.managed
    assert ra.cur_hop_limit == 255
    assert ra.router_lifetime == 0
    assert ra.prefix_information == (
        PrefixInformation(
            prefix=IPv6Network("2001:db8:3::/64"),
            on_link=True,
            autonomous=False,
            valid_lifetime=INFINITE_LIFETIME,
            preferred_lifetime=INFINITE_LIFETIME,
        ),
    )
    assert ra.options[1:] == (
        UnknownOption(31, bytes.fromhex("0000000004b0076578616d706c6503636f6d00000000")),
        UnknownOption(253, bytes.fromhex("cafe00000001")),
    )


def test_linux_solicitation_decodes_to_its_fields() -> None:
    rs = parse_router_solicitation(packet("rs-linux.hex"))

    assert rs == RouterSolicitation(
        options=(SourceLinkLayerAddress(bytes.fromhex("02000000000a")),), checksum=0x7A1A
    )


@pytest.mark.parametrize("name", ["ra-radvd.hex", "ra-rdnss-route.hex", "ra-unknown-options.hex"])
def test_golden_advertisement_rebuilds_to_the_same_octets_with_a_zero_checksum(
    name: str,
) -> None:
    message = packet(name)

    assert build_router_advertisement(parse_router_advertisement(message)) == (
        without_checksum(message)
    )


def test_golden_solicitation_rebuilds_to_the_same_octets_with_a_zero_checksum() -> None:
    message = packet("rs-linux.hex")

    assert build_router_solicitation(parse_router_solicitation(message)) == (
        without_checksum(message)
    )


def test_golden_checksums_are_real_so_the_packets_can_be_replayed() -> None:
    """The goldens carry the checksum a kernel would compute (the codec ignores it)."""
    for name, source, destination in [
        ("ra-radvd.hex", "fe80::1", "ff02::1"),
        ("ra-rdnss-route.hex", "fe80::2", "ff02::1"),
        ("ra-unknown-options.hex", "fe80::3", "ff02::1"),
        ("rs-linux.hex", "fe80::a", "ff02::2"),
    ]:
        message = packet(name)
        pseudo_header = (
            IPv6Address(source).packed
            + IPv6Address(destination).packed
            + len(message).to_bytes(4, "big")
            + bytes((0, 0, 0, 58))
        )
        words = pseudo_header + message + b"\0" * (len(message) % 2)
        total = sum(int.from_bytes(words[i : i + 2], "big") for i in range(0, len(words), 2))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        assert total == 0xFFFF, name


# --- what the parser refuses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bad-short-header.hex", NdpDropReason.TRUNCATED),
        ("bad-rs-as-ra.hex", NdpDropReason.BAD_TYPE),
        ("bad-code-1.hex", NdpDropReason.BAD_CODE),
        ("bad-zero-length-option.hex", NdpDropReason.ZERO_LENGTH_OPTION),
        ("bad-truncated-option.hex", NdpDropReason.OPTION_OVERFLOW),
        ("bad-prefix-length-129.hex", NdpDropReason.BAD_PREFIX_LENGTH),
        ("bad-trailing-garbage.hex", NdpDropReason.TRAILING_GARBAGE),
        ("bad-prefix-information-length-3.hex", NdpDropReason.BAD_OPTION_LENGTH),
        ("bad-mtu-length-2.hex", NdpDropReason.BAD_OPTION_LENGTH),
        ("bad-rdnss-even-length.hex", NdpDropReason.BAD_OPTION_LENGTH),
        ("bad-route-information-too-short.hex", NdpDropReason.BAD_OPTION_LENGTH),
        ("bad-route-information-prefix-length-129.hex", NdpDropReason.BAD_PREFIX_LENGTH),
    ],
)
def test_malformed_advertisement_is_refused_with_its_reason(
    name: str, reason: NdpDropReason
) -> None:
    with pytest.raises(NdpParseError) as caught:
        parse_router_advertisement(packet(name))

    assert caught.value.reason is reason
    assert f"Expected drop reason: {reason.value}" in (PACKETS / name).read_text()


RADVD = packet("ra-radvd.hex")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        pytest.param(b"", NdpDropReason.TRUNCATED, id="empty"),
        pytest.param(RADVD[:15], NdpDropReason.TRUNCATED, id="15-octets"),
        pytest.param(RADVD[:16], None, id="bare-16-octet-header-is-fine"),
        pytest.param(RADVD[:1] + b"\xff" + RADVD[2:], NdpDropReason.BAD_CODE, id="code-255"),
        pytest.param(RADVD + b"\0", NdpDropReason.TRAILING_GARBAGE, id="one-trailing-octet"),
        pytest.param(RADVD + b"\x01\x01", NdpDropReason.TRAILING_GARBAGE, id="bare-option-header"),
        pytest.param(RADVD + bytes(7), NdpDropReason.TRAILING_GARBAGE, id="seven-zero-octets"),
        pytest.param(RADVD + bytes(8), NdpDropReason.ZERO_LENGTH_OPTION, id="eight-zero-octets"),
        pytest.param(
            RADVD[:-8] + b"\x01\x02" + RADVD[-6:], NdpDropReason.OPTION_OVERFLOW, id="lla-overflow"
        ),
        pytest.param(
            RADVD[:-8] + b"\x01\xff" + RADVD[-6:], NdpDropReason.OPTION_OVERFLOW, id="length-255"
        ),
    ],
)
def test_advertisement_boundaries(message: bytes, reason: NdpDropReason | None) -> None:
    if reason is None:
        assert parse_router_advertisement(message).options == ()
        return
    with pytest.raises(NdpParseError) as caught:
        parse_router_advertisement(message)
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        pytest.param(bytes.fromhex("850000000000"), NdpDropReason.TRUNCATED, id="6-octets"),
        pytest.param(bytes.fromhex("8501000000000000"), NdpDropReason.BAD_CODE, id="code-1"),
        pytest.param(RADVD, NdpDropReason.BAD_TYPE, id="an-advertisement"),
        pytest.param(
            bytes.fromhex("85000000000000000100"), NdpDropReason.TRAILING_GARBAGE, id="2-extra"
        ),
        pytest.param(
            bytes.fromhex("85000000000000000100000000000000"),
            NdpDropReason.ZERO_LENGTH_OPTION,
            id="zero-length-option",
        ),
    ],
)
def test_malformed_solicitation_is_refused_with_its_reason(
    message: bytes, reason: NdpDropReason
) -> None:
    with pytest.raises(NdpParseError) as caught:
        parse_router_solicitation(message)
    assert caught.value.reason is reason


def test_bare_eight_octet_solicitation_is_accepted() -> None:
    assert parse_router_solicitation(bytes.fromhex("8500000000000000")) == RouterSolicitation()


def test_parse_error_carries_reason_and_detail_in_its_message() -> None:
    with pytest.raises(NdpParseError) as caught:
        parse_router_advertisement(packet("bad-prefix-length-129.hex"))

    assert caught.value.detail == "Prefix Information option at offset 16 has prefix length 129"
    assert str(caught.value) == f"bad-prefix-length: {caught.value.detail}"
    assert isinstance(caught.value, ValueError)


def test_drop_reasons_are_stable_metric_labels() -> None:
    assert {reason.value for reason in NdpDropReason} == {
        "truncated",
        "bad-type",
        "bad-code",
        "zero-length-option",
        "option-overflow",
        "bad-option-length",
        "bad-prefix-length",
        "trailing-garbage",
    }
    assert str(NdpDropReason.BAD_PREFIX_LENGTH) == "bad-prefix-length"


# --- what the parser tolerates -------------------------------------------------------


def test_prefix_host_bits_and_reserved_fields_are_ignored() -> None:
    """RFC 4861 section 4.6.2: bits after the prefix length and reserved fields are ignored."""
    message = bytearray(packet("ra-radvd.hex"))
    message[5] |= 0x03  # the two reserved RA flag bits
    message[16 + 3] |= 0x1F  # the Prefix Information reserved flag bits
    message[16 + 12 : 16 + 16] = b"\xff\xff\xff\xff"  # Prefix Information reserved2
    message[16 + 16 + 15] = 0x01  # a host bit of 2001:db8:1::/64

    assert parse_router_advertisement(bytes(message)) == parse_router_advertisement(
        packet("ra-radvd.hex")
    )


def test_route_information_longer_than_needed_is_accepted() -> None:
    option = bytes.fromhex("1803 3000 00000708 20010db8ffff0000 0000000000000000")
    ra = parse_router_advertisement(RADVD[:16] + option)

    assert ra.options == (
        RouteInformation(
            prefix=IPv6Network("2001:db8:ffff::/48"),
            preference=RouterPreference.MEDIUM,
            route_lifetime=1800,
        ),
    )


def test_link_layer_address_keeps_its_padding() -> None:
    option = bytes.fromhex("0102 0011223344556677 000000000000")  # EUI-64 padded to 16
    ra = parse_router_advertisement(RADVD[:16] + option)

    assert ra.options == (SourceLinkLayerAddress(bytes.fromhex("0011223344556677000000000000")),)


# --- building ------------------------------------------------------------------------


def test_builder_writes_a_zero_checksum_whatever_the_value_carries() -> None:
    assert build_router_advertisement(RouterAdvertisement(checksum=0x1234))[2:4] == b"\0\0"
    assert build_router_solicitation(RouterSolicitation(checksum=0x1234))[2:4] == b"\0\0"


@pytest.mark.parametrize(
    "ra",
    [
        RouterAdvertisement(cur_hop_limit=256),
        RouterAdvertisement(router_lifetime=65536),
        RouterAdvertisement(reachable_time=-1),
        RouterAdvertisement(options=(SourceLinkLayerAddress(b"\0" * 5),)),
        RouterAdvertisement(options=(UnknownOption(256, bytes(6)),)),
        RouterAdvertisement(options=(UnknownOption(200, bytes(8 * 256 - 2)),)),
        RouterAdvertisement(options=(Mtu(1 << 32),)),
        RouterAdvertisement(options=(RecursiveDnsServers(lifetime=0, servers=()),)),
        RouterAdvertisement(
            options=(
                PrefixInformation(
                    prefix=IPv6Network("2001:db8::/64"),
                    on_link=True,
                    autonomous=True,
                    valid_lifetime=1 << 32,
                    preferred_lifetime=0,
                ),
            )
        ),
    ],
)
def test_builder_refuses_what_cannot_be_encoded(ra: RouterAdvertisement) -> None:
    with pytest.raises(NdpBuildError):
        build_router_advertisement(ra)


def test_unknown_option_of_a_known_type_crafts_a_malformed_option() -> None:
    crafted = RouterAdvertisement(options=(UnknownOption(OptionType.MTU, bytes(14)),))

    with pytest.raises(NdpParseError) as caught:
        parse_router_advertisement(build_router_advertisement(crafted))
    assert caught.value.reason is NdpDropReason.BAD_OPTION_LENGTH


# --- properties ----------------------------------------------------------------------

u32 = st.integers(0, 0xFFFF_FFFF)
lifetimes = st.one_of(st.sampled_from([0, INFINITE_LIFETIME]), u32)
addresses = st.integers(0, (1 << 128) - 1).map(IPv6Address)


@st.composite
def networks(draw: st.DrawFn) -> IPv6Network:
    length = draw(st.integers(0, 128))
    bits = draw(st.integers(0, (1 << 128) - 1))
    return IPv6Network((bits >> (128 - length) << (128 - length), length))


def link_layer_addresses() -> st.SearchStrategy[bytes]:
    return st.integers(0, 2).flatmap(
        lambda units: st.binary(min_size=6 + 8 * units, max_size=6 + 8 * units)
    )


KNOWN_TYPES = {int(option_type) for option_type in OptionType}

options: st.SearchStrategy[NdpOption] = st.one_of(
    st.builds(SourceLinkLayerAddress, link_layer_addresses()),
    st.builds(TargetLinkLayerAddress, link_layer_addresses()),
    st.builds(
        PrefixInformation,
        prefix=networks(),
        on_link=st.booleans(),
        autonomous=st.booleans(),
        valid_lifetime=lifetimes,
        preferred_lifetime=lifetimes,
        router_address=st.booleans(),
    ),
    st.builds(Mtu, u32),
    st.builds(
        RouteInformation,
        prefix=networks(),
        preference=st.sampled_from(RouterPreference),
        route_lifetime=lifetimes,
    ),
    st.builds(
        RecursiveDnsServers,
        lifetime=lifetimes,
        servers=st.lists(addresses, min_size=1, max_size=4).map(tuple),
    ),
    st.builds(
        UnknownOption,
        st.integers(0, 255).filter(lambda option_type: option_type not in KNOWN_TYPES),
        st.integers(0, 3).flatmap(
            lambda units: st.binary(min_size=6 + 8 * units, max_size=6 + 8 * units)
        ),
    ),
)

advertisements = st.builds(
    RouterAdvertisement,
    cur_hop_limit=st.integers(0, 255),
    managed=st.booleans(),
    other_config=st.booleans(),
    home_agent=st.booleans(),
    preference=st.sampled_from(RouterPreference),
    proxy=st.booleans(),
    router_lifetime=st.integers(0, 0xFFFF),
    reachable_time=u32,
    retrans_timer=u32,
    options=st.lists(options, max_size=6).map(tuple),
    checksum=st.integers(0, 0xFFFF),
)

solicitations = st.builds(
    RouterSolicitation,
    options=st.lists(options, max_size=4).map(tuple),
    checksum=st.integers(0, 0xFFFF),
)


@given(advertisements)
def test_advertisement_round_trips_through_build_and_parse(ra: RouterAdvertisement) -> None:
    assert parse_router_advertisement(build_router_advertisement(ra)) == dataclasses.replace(
        ra, checksum=0
    )


@given(solicitations)
def test_solicitation_round_trips_through_build_and_parse(rs: RouterSolicitation) -> None:
    assert parse_router_solicitation(build_router_solicitation(rs)) == dataclasses.replace(
        rs, checksum=0
    )


FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = [packet(name) for name in ("ra-radvd.hex", "ra-rdnss-route.hex", "ra-unknown-options.hex")]


interesting_octets = st.one_of(
    st.integers(0, 255), st.sampled_from([0, 1, 2, 3, 4, 5, 24, 25, 64, 128, 129, 255])
)


@st.composite
def mutated_advertisements(draw: st.DrawFn) -> bytes:
    """A valid advertisement with a few octets overwritten, cut, or added."""
    seed = draw(st.one_of(st.sampled_from(SEEDS), advertisements.map(build_router_advertisement)))
    message = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["overwrite", "truncate", "append", "insert"]))
        position = draw(st.integers(0, max(len(message) - 1, 0)))
        if action == "overwrite" and message:
            message[position] = draw(interesting_octets)
        elif action == "truncate":
            del message[position:]
        elif action == "append":
            message += draw(st.binary(min_size=1, max_size=16))
        else:
            message[position:position] = draw(st.binary(min_size=1, max_size=8))
    return bytes(message)


def assert_parses_or_refuses(message: bytes) -> None:
    """Only `NdpParseError` may escape; what parses rebuilds and parses to the same."""
    try:
        ra = parse_router_advertisement(message)
    except NdpParseError:
        pass
    else:
        rebuilt = build_router_advertisement(ra)
        assert parse_router_advertisement(rebuilt) == dataclasses.replace(ra, checksum=0)
    try:
        rs = parse_router_solicitation(message)
    except NdpParseError:
        pass
    else:
        rebuilt = build_router_solicitation(rs)
        assert parse_router_solicitation(rebuilt) == dataclasses.replace(rs, checksum=0)


@FUZZ
@given(st.binary(max_size=300))
def test_random_octets_only_ever_raise_the_parse_error(message: bytes) -> None:
    assert_parses_or_refuses(message)


@FUZZ
@given(st.binary(max_size=200).map(lambda tail: bytes.fromhex("86000000") + tail))
def test_random_options_after_an_advertisement_header_only_ever_raise_the_parse_error(
    message: bytes,
) -> None:
    assert_parses_or_refuses(message)


@FUZZ
@given(mutated_advertisements())
def test_mutated_advertisements_only_ever_raise_the_parse_error(message: bytes) -> None:
    assert_parses_or_refuses(message)
