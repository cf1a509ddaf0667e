"""The DHCPv6 codec: golden messages, strict length checks, round trips and fuzzing."""

from __future__ import annotations

from ipaddress import IPv6Address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamic_prefix.protocols.dhcpv6 import (
    ClientIdOption,
    Dhcpv6BuildError,
    Dhcpv6ParseError,
    DuidLl,
    DuidLlt,
    ElapsedTimeOption,
    IaPdOption,
    IaPrefixOption,
    Message,
    MessageType,
    Option,
    OptionCode,
    OptionRequestOption,
    ParseErrorReason,
    PreferenceOption,
    RapidCommitOption,
    ReconfigureAcceptOption,
    ServerIdOption,
    SolMaxRtOption,
    StatusCode,
    StatusCodeOption,
    UnknownDuid,
    UnknownOption,
    build_duid,
    build_message,
    parse_duid,
    parse_message,
)

PACKETS = Path(__file__).parent / "packets"
CLIENT_DUID = bytes.fromhex("0003 0001 020000000001")
SERVER_DUID = bytes.fromhex("0001 0001 2b7c9e80 0200000000fe")


def load_hex(name: str) -> bytes:
    """The bytes of an annotated hex file: ``#`` starts a comment, whitespace is ignored."""
    text = (PACKETS / name).read_text()
    return bytes.fromhex("".join(line.split("#", 1)[0] for line in text.splitlines()))


def expected_reason(name: str) -> ParseErrorReason:
    for line in (PACKETS / name).read_text().splitlines():
        if line.startswith("# Expected parse error:"):
            return ParseErrorReason(line.split(":", 1)[1].strip())
    raise AssertionError(f"{name} names no expected parse error")


GOOD_FILES = sorted(
    path.name for path in PACKETS.glob("dhcpv6-*.hex") if not path.name.startswith("dhcpv6-bad-")
)
BAD_FILES = sorted(path.name for path in PACKETS.glob("dhcpv6-bad-*.hex"))


def option(code: int, body: bytes) -> bytes:
    return code.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def reply_with(*options: bytes) -> bytes:
    return bytes((MessageType.REPLY,)) + b"\x11\x22\x33" + b"".join(options)


def parse_error(data: bytes) -> Dhcpv6ParseError:
    with pytest.raises(Dhcpv6ParseError) as caught:
        parse_message(data)
    return caught.value


# --- Golden messages -------------------------------------------------------------------


class TestGoldenMessages:
    def test_solicit_carries_only_an_ia_pd_with_the_length_hint(self) -> None:
        message = parse_message(load_hex("dhcpv6-solicit-ia-pd-hint.hex"))

        assert message == Message(
            MessageType.SOLICIT,
            0x5A1C3E,
            (
                ClientIdOption(CLIENT_DUID),
                ElapsedTimeOption(0),
                IaPdOption(1, 0, 0, (IaPrefixOption(0, 0, 56, IPv6Address("::")),)),
                OptionRequestOption((OptionCode.SOL_MAX_RT,)),
            ),
        )

    def test_advertise_carries_preference_and_the_offered_prefix(self) -> None:
        message = parse_message(load_hex("dhcpv6-advertise-preference-ia-pd.hex"))

        assert message.msg_type is MessageType.ADVERTISE
        assert message.find(ServerIdOption) == ServerIdOption(SERVER_DUID)
        assert message.find(PreferenceOption) == PreferenceOption(200)
        ia = message.find(IaPdOption)
        assert ia is not None
        assert (ia.iaid, ia.t1, ia.t2) == (1, 1800, 2880)
        prefix = ia.find(IaPrefixOption)
        assert prefix is not None
        assert (prefix.preferred_lifetime, prefix.valid_lifetime) == (3600, 7200)
        assert str(prefix.network) == "2001:db8:1200::/56"

    def test_reply_refusal_puts_no_prefix_avail_inside_the_ia_pd(self) -> None:
        message = parse_message(load_hex("dhcpv6-reply-no-prefix-avail.hex"))

        ia = message.find(IaPdOption)
        assert ia is not None
        assert ia.options == (StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, "no prefixes left"),)
        assert message.find(StatusCodeOption) is None

    def test_reply_keeps_an_option_it_does_not_interpret_verbatim(self) -> None:
        message = parse_message(load_hex("dhcpv6-reply-bound.hex"))

        assert message.find(StatusCodeOption) == StatusCodeOption(StatusCode.SUCCESS, "all good")
        assert message.find(UnknownOption) == UnknownOption(
            OptionCode.DNS_SERVERS, IPv6Address("2001:db8::53").packed
        )

    @pytest.mark.parametrize("name", GOOD_FILES)
    def test_golden_message_builds_back_to_the_same_bytes(self, name: str) -> None:
        data = load_hex(name)

        assert build_message(parse_message(data)) == data

    def test_every_golden_file_is_exercised(self) -> None:
        assert len(GOOD_FILES) >= 4
        assert len(BAD_FILES) >= 8

    @pytest.mark.parametrize("name", BAD_FILES)
    def test_malformed_golden_message_raises_its_named_reason(self, name: str) -> None:
        assert parse_error(load_hex(name)).reason is expected_reason(name)


# --- Strictness ------------------------------------------------------------------------


class TestStrictLengths:
    @pytest.mark.parametrize(
        ("code", "size"),
        [
            (OptionCode.PREFERENCE, 1),
            (OptionCode.ELAPSED_TIME, 2),
            (OptionCode.RAPID_COMMIT, 0),
            (OptionCode.RECONF_ACCEPT, 0),
            (OptionCode.SOL_MAX_RT, 4),
        ],
    )
    def test_fixed_size_option_must_have_exactly_its_size(self, code: int, size: int) -> None:
        parse_message(reply_with(option(code, bytes(size))))
        for wrong in (size + 1, size - 1):
            if wrong < 0:
                continue
            error = parse_error(reply_with(option(code, bytes(wrong))))
            assert error.reason is ParseErrorReason.BAD_OPTION_LENGTH

    @pytest.mark.parametrize("length", [0, 1, 2, 131])
    def test_duid_outside_3_to_130_bytes_is_refused(self, length: int) -> None:
        for code in (OptionCode.CLIENTID, OptionCode.SERVERID):
            error = parse_error(reply_with(option(code, bytes(length))))
            assert error.reason is ParseErrorReason.BAD_OPTION_LENGTH

    @pytest.mark.parametrize("length", [3, 130])
    def test_duid_of_3_or_130_bytes_is_accepted(self, length: int) -> None:
        message = parse_message(reply_with(option(OptionCode.SERVERID, bytes(length))))

        assert message.find(ServerIdOption) == ServerIdOption(bytes(length))

    def test_ia_pd_shorter_than_its_fixed_fields_is_refused(self) -> None:
        error = parse_error(reply_with(option(OptionCode.IA_PD, bytes(11))))

        assert error.reason is ParseErrorReason.BAD_OPTION_LENGTH

    def test_ia_prefix_shorter_than_its_fixed_fields_is_refused(self) -> None:
        ia = option(OptionCode.IA_PD, bytes(12) + option(OptionCode.IAPREFIX, bytes(24)))

        assert parse_error(reply_with(ia)).reason is ParseErrorReason.BAD_OPTION_LENGTH

    def test_status_code_without_its_code_is_refused(self) -> None:
        error = parse_error(reply_with(option(OptionCode.STATUS_CODE, b"\x00")))

        assert error.reason is ParseErrorReason.BAD_OPTION_LENGTH

    def test_option_request_of_odd_length_is_refused(self) -> None:
        error = parse_error(reply_with(option(OptionCode.ORO, b"\x00\x17\x00")))

        assert error.reason is ParseErrorReason.BAD_OPTION_LENGTH

    def test_ia_pd_inside_an_ia_pd_is_misplaced(self) -> None:
        inner = option(OptionCode.IA_PD, bytes(12))
        error = parse_error(reply_with(option(OptionCode.IA_PD, bytes(12) + inner)))

        assert error.reason is ParseErrorReason.MISPLACED_OPTION

    def test_ia_prefix_inside_an_ia_prefix_is_misplaced(self) -> None:
        inner = option(OptionCode.IAPREFIX, bytes(25))
        outer = option(OptionCode.IAPREFIX, bytes(25) + inner)

        error = parse_error(reply_with(option(OptionCode.IA_PD, bytes(12) + outer)))

        assert error.reason is ParseErrorReason.MISPLACED_OPTION

    def test_prefix_length_128_is_the_longest_accepted(self) -> None:
        ia_prefix = option(OptionCode.IAPREFIX, bytes(8) + bytes((128,)) + bytes(16))
        message = parse_message(reply_with(option(OptionCode.IA_PD, bytes(12) + ia_prefix)))

        ia = message.find(IaPdOption)
        assert ia is not None
        assert ia.options == (IaPrefixOption(0, 0, 128, IPv6Address("::")),)

    def test_status_code_nested_in_an_ia_prefix_is_kept(self) -> None:
        status = option(OptionCode.STATUS_CODE, b"\x00\x00ok")
        ia_prefix = option(OptionCode.IAPREFIX, bytes(8) + b"\x38" + bytes(16) + status)
        message = parse_message(reply_with(option(OptionCode.IA_PD, bytes(12) + ia_prefix)))

        ia = message.find(IaPdOption)
        assert ia is not None
        prefix = ia.find(IaPrefixOption)
        assert prefix is not None
        assert prefix.find(StatusCodeOption) == StatusCodeOption(StatusCode.SUCCESS, "ok")

    def test_zero_length_unknown_option_is_kept(self) -> None:
        message = parse_message(reply_with(option(0xFFFF, b"")))

        assert message.options == (UnknownOption(0xFFFF, b""),)

    def test_parse_error_carries_reason_and_detail(self) -> None:
        error = parse_error(b"\x07")

        assert error.reason is ParseErrorReason.TRUNCATED_HEADER
        assert "1 bytes" in error.detail
        assert str(error).startswith("truncated-header: ")


class TestIaPrefix:
    @pytest.mark.parametrize(
        ("address", "length", "host_bits", "network"),
        [
            ("2001:db8:1200::", 56, False, "2001:db8:1200::/56"),
            ("2001:db8:1200::1", 56, True, "2001:db8:1200::/56"),
            ("2001:db8:1200:ff::", 56, True, "2001:db8:1200::/56"),
            ("2001:db8::1", 128, False, "2001:db8::1/128"),
            ("::", 0, False, "::/0"),
            ("::1", 0, True, "::/0"),
        ],
    )
    def test_network_masks_host_bits_that_has_host_bits_reports(
        self, address: str, length: int, host_bits: bool, network: str
    ) -> None:
        option = IaPrefixOption(0, 0, length, IPv6Address(address))

        assert option.has_host_bits is host_bits
        assert str(option.network) == network


# --- Building --------------------------------------------------------------------------


class TestBuilding:
    def test_builder_writes_what_the_parser_refuses_so_tests_can_make_any_packet(self) -> None:
        ia = IaPdOption(1, 0, 0, (IaPrefixOption(0, 0, 200, IPv6Address("::")),))
        data = build_message(Message(MessageType.REPLY, 1, (ia,)))

        assert parse_error(data).reason is ParseErrorReason.BAD_PREFIX_LENGTH

    @pytest.mark.parametrize(
        "message",
        [
            Message(MessageType.REPLY, 1 << 24),
            Message(MessageType.REPLY, 1, (ElapsedTimeOption(0x10000),)),
            Message(MessageType.REPLY, 1, (PreferenceOption(256),)),
            Message(MessageType.REPLY, 1, (IaPdOption(-1, 0, 0),)),
            Message(MessageType.REPLY, 1, (UnknownOption(99, bytes(0x10000)),)),
            Message(MessageType.REPLY, 1, (StatusCodeOption(0, "\udc80"),)),
        ],
    )
    def test_unencodable_value_raises_build_error(self, message: Message) -> None:
        with pytest.raises(Dhcpv6BuildError):
            build_message(message)


# --- DUIDs -----------------------------------------------------------------------------


class TestDuid:
    def test_duid_ll_of_an_ethernet_mac(self) -> None:
        duid = DuidLl(1, bytes.fromhex("020000000001"))

        assert build_duid(duid) == CLIENT_DUID
        assert parse_duid(CLIENT_DUID) == duid

    def test_duid_llt_of_an_ethernet_mac(self) -> None:
        duid = DuidLlt(1, 0x2B7C9E80, bytes.fromhex("0200000000fe"))

        assert build_duid(duid) == SERVER_DUID
        assert parse_duid(SERVER_DUID) == duid

    def test_other_duid_types_are_kept(self) -> None:
        duid_en = bytes.fromhex("0002 00000009 0c0c0c0c")

        assert parse_duid(duid_en) == UnknownDuid(2, bytes.fromhex("00000009 0c0c0c0c"))
        assert build_duid(parse_duid(duid_en)) == duid_en

    @pytest.mark.parametrize(
        "data",
        [
            b"\x00\x03",  # too short for any DUID
            bytes.fromhex("0003 0001 0200000001"),  # Ethernet address of 5 bytes
            bytes.fromhex("0003 0001"),  # DUID-LL without an address
            bytes.fromhex("0001 0001 2b7c9e80"),  # DUID-LLT without an address
            bytes(131),  # longer than 130 bytes
        ],
    )
    def test_malformed_duid_is_refused(self, data: bytes) -> None:
        with pytest.raises(Dhcpv6ParseError) as caught:
            parse_duid(data)

        assert caught.value.reason is ParseErrorReason.BAD_DUID

    @given(
        st.one_of(
            st.builds(DuidLl, st.integers(2, 0xFFFF), st.binary(min_size=1, max_size=126)),
            st.builds(
                DuidLlt,
                st.integers(2, 0xFFFF),
                st.integers(0, 0xFFFFFFFF),
                st.binary(min_size=1, max_size=122),
            ),
            st.builds(
                DuidLl, st.just(1), st.binary(min_size=6, max_size=6)
            ),  # Ethernet: exactly a MAC
            st.builds(UnknownDuid, st.sampled_from([2, 4, 5]), st.binary(min_size=1, max_size=128)),
        )
    )
    def test_duid_round_trips(self, duid: DuidLl | DuidLlt | UnknownDuid) -> None:
        assert parse_duid(build_duid(duid)) == duid


# --- Property-based round trips and fuzzing --------------------------------------------

INTERPRETED_CODES = {
    OptionCode.CLIENTID,
    OptionCode.SERVERID,
    OptionCode.ORO,
    OptionCode.PREFERENCE,
    OptionCode.ELAPSED_TIME,
    OptionCode.STATUS_CODE,
    OptionCode.RAPID_COMMIT,
    OptionCode.RECONF_ACCEPT,
    OptionCode.IA_PD,
    OptionCode.IAPREFIX,
    OptionCode.SOL_MAX_RT,
}
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
duids = st.binary(min_size=3, max_size=130)
unknown_options = st.builds(
    UnknownOption, u16.filter(lambda code: code not in INTERPRETED_CODES), st.binary(max_size=20)
)
status_options = st.builds(StatusCodeOption, u16, st.text(max_size=20))
ia_prefix_options = st.builds(
    IaPrefixOption,
    u32,
    u32,
    st.integers(0, 128),
    st.builds(IPv6Address, st.integers(0, (1 << 128) - 1)),
    st.lists(st.one_of(status_options, unknown_options), max_size=2).map(tuple),
)
ia_pd_options = st.builds(
    IaPdOption,
    u32,
    u32,
    u32,
    st.lists(st.one_of(ia_prefix_options, status_options, unknown_options), max_size=3).map(tuple),
)
top_level_options: st.SearchStrategy[Option] = st.one_of(
    st.builds(ClientIdOption, duids),
    st.builds(ServerIdOption, duids),
    st.builds(OptionRequestOption, st.lists(u16, max_size=4).map(tuple)),
    st.builds(PreferenceOption, st.integers(0, 255)),
    st.builds(ElapsedTimeOption, u16),
    status_options,
    st.just(RapidCommitOption()),
    st.just(ReconfigureAcceptOption()),
    st.builds(SolMaxRtOption, u32),
    ia_pd_options,
    unknown_options,
)
messages = st.builds(
    Message,
    st.sampled_from(MessageType),
    st.integers(0, 0xFFFFFF),
    st.lists(top_level_options, max_size=6).map(tuple),
)


def parses_or_refuses(data: bytes) -> None:
    """Bad input raises only Dhcpv6ParseError; accepted input builds back to itself."""
    try:
        message = parse_message(data)
    except Dhcpv6ParseError:
        return
    assert build_message(message) == data


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """A valid message (golden or generated) with a few bytes flipped, cut or inserted."""
    golden = [load_hex(name) for name in GOOD_FILES]
    original = draw(st.one_of(st.sampled_from(golden), messages.map(build_message)))
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "length"]))
        if action == "flip" and position < len(data):
            data[position] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del data[position:]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and position < len(data):
            del data[position]
        elif action == "length" and position + 2 <= len(data):
            data[position : position + 2] = draw(u16).to_bytes(2, "big")
    return bytes(data)


class TestProperties:
    @given(messages)
    @settings(max_examples=500, deadline=None)
    def test_any_valid_message_round_trips(self, message: Message) -> None:
        data = build_message(message)

        assert parse_message(data) == message
        assert build_message(parse_message(data)) == data

    @given(st.binary(max_size=300))
    @settings(max_examples=2000, deadline=None)
    def test_random_bytes_only_ever_raise_the_parse_error(self, data: bytes) -> None:
        parses_or_refuses(data)

    @given(mutated_messages())
    @settings(
        max_examples=2000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def test_mutated_messages_only_ever_raise_the_parse_error(self, data: bytes) -> None:
        parses_or_refuses(data)

    def test_deep_structures_are_bounded_by_placement_rules(self) -> None:
        # IA_PD nested 3000 deep would overflow a recursive parser's stack; the placement
        # rule stops it at the second level with the one error type.
        data = b""
        for _ in range(3000):
            data = option(OptionCode.IA_PD, bytes(12) + data)

        assert parse_error(reply_with(data)).reason is ParseErrorReason.MISPLACED_OPTION
