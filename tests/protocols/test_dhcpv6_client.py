"""The sans-IO prefix delegation client on a manual clock with a deterministic rng.

The "server" here is a few builder calls made by each test: the exchanges are small enough
that a scripted peer shows exactly which answer drives which transition.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable, Iterable
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamic_prefix.protocols.dhcpv6 import (
    INFINITY,
    ClientIdOption,
    ElapsedTimeOption,
    IaPdOption,
    IaPrefixOption,
    Message,
    MessageType,
    Option,
    OptionCode,
    OptionRequestOption,
    PreferenceOption,
    RapidCommitOption,
    ReconfigureAcceptOption,
    ServerIdOption,
    SolMaxRtOption,
    StatusCode,
    StatusCodeOption,
    UnknownOption,
    build_message,
    parse_message,
)
from dynamic_prefix.protocols.dhcpv6_client import (
    REB_MAX_RT,
    REN_MAX_RT,
    REQ_MAX_RC,
    REQ_MAX_RT,
    SOL_MAX_RT,
    BindingRejected,
    ClientState,
    ClientStopped,
    DelegationChanged,
    Dhcpv6DropReason,
    ExchangeTimedOut,
    LeaseAcquired,
    LeaseLossReason,
    LeaseLost,
    LeaseReleased,
    LeaseRenewed,
    MessageDropped,
    NoPrefixAvailable,
    PdClient,
    PdClientConfig,
    PdClientUsageError,
    RebindStarted,
    RenewStarted,
)

CLIENT_DUID = bytes.fromhex("0003 0001 020000000001")
SERVER_A = bytes.fromhex("0001 0001 2b7c9e80 0200000000fe")
SERVER_B = bytes.fromhex("0003 0001 0200000000fd")
SERVER_C = bytes.fromhex("0003 0001 0200000000fc")
PREFIX_A = IPv6Network("2001:db8:1200::/56")
PREFIX_B = IPv6Network("2001:db8:3400::/56")
IAID = 1

# Lifetimes of a usual answer: T1 1800 s, T2 2880 s, preferred 3600 s, valid 7200 s.
T1, T2, PREFERRED, VALID = 1800, 2880, 3600, 7200


def constant(value: float) -> Callable[[], float]:
    """An rng returning ``value``; 0.5 makes RAND exactly 0 (and the first Solicit 0.05)."""
    return lambda: value


MIDDLE = constant(0.5)


def make_client(
    rng: Callable[[], float] = MIDDLE,
    *,
    max_delay: float = 0.0,
    hint: IPv6Network | None = None,
    length: int | None = 56,
) -> PdClient:
    return PdClient(
        PdClientConfig(
            duid=CLIENT_DUID,
            iaid=IAID,
            rng=rng,
            requested_prefix_length=length,
            hint=hint,
            solicit_max_delay=max_delay,
        )
    )


def sent(client: PdClient) -> list[Message]:
    return [parse_message(data) for data in client.datagrams_to_send()]


def only_sent(client: PdClient, msg_type: MessageType) -> Message:
    messages = sent(client)
    assert [message.msg_type for message in messages] == [msg_type]
    return messages[0]


E = TypeVar("E")


def events_of(client: PdClient, kind: type[E]) -> list[E]:
    return [event for event in client.next_events() if isinstance(event, kind)]


def ia_pd(
    prefixes: Iterable[tuple[IPv6Network, int, int]] = ((PREFIX_A, PREFERRED, VALID),),
    *,
    t1: int = T1,
    t2: int = T2,
    status: StatusCodeOption | None = None,
    iaid: int = IAID,
) -> IaPdOption:
    nested: list[Option] = [
        IaPrefixOption(preferred, valid, prefix.prefixlen, prefix.network_address)
        for prefix, preferred, valid in prefixes
    ]
    if status is not None:
        nested.append(status)
    return IaPdOption(iaid, t1, t2, tuple(nested))


def answer(
    to: Message,
    *options: Option,
    server: bytes = SERVER_A,
    msg_type: MessageType | None = None,
    transaction_id: int | None = None,
) -> bytes:
    """The bytes of a server's answer to ``to``: Server ID, the client's Client ID, options."""
    if msg_type is None:
        msg_type = (
            MessageType.ADVERTISE if to.msg_type is MessageType.SOLICIT else MessageType.REPLY
        )
    client_id = to.find(ClientIdOption)
    assert client_id is not None
    return build_message(
        Message(
            msg_type,
            to.transaction_id if transaction_id is None else transaction_id,
            (ServerIdOption(server), client_id, *options),
        )
    )


def run_until(client: PdClient, end: float) -> list[tuple[float, Message]]:
    """Advance the clock deadline by deadline up to ``end``; what was sent, and when."""
    assert client.datagrams_to_send() == [], "drain earlier datagrams before run_until"
    timeline: list[tuple[float, Message]] = []
    while (deadline := client.next_deadline()) is not None and deadline <= end:
        client.advance(deadline)
        timeline.extend((deadline, message) for message in sent(client))
    client.advance(end)
    timeline.extend((end, message) for message in sent(client))
    return timeline


def started(client: PdClient, now: float = 0.0) -> Message:
    """Start ``client`` at ``now`` (no initial delay) and return its first Solicit."""
    client.start(now)
    return only_sent(client, MessageType.SOLICIT)


def bound_client(rng: Callable[[], float] = MIDDLE, *, now: float = 0.0) -> PdClient:
    """A client holding PREFIX_A from SERVER_A, bound at ``now``, events drained."""
    client = make_client(rng)
    client.start(now)
    solicit = only_sent(client, MessageType.SOLICIT)
    client.receive(answer(solicit, PreferenceOption(255), ia_pd()), now)
    request = only_sent(client, MessageType.REQUEST)
    client.receive(answer(request, ia_pd()), now)
    assert client.state is ClientState.BOUND
    client.next_events()
    return client


def requesting_client(rng: Callable[[], float] = MIDDLE) -> tuple[PdClient, Message]:
    """A client that took a preference-255 Advertise at 0 and sent its Request."""
    client = make_client(rng)
    client.receive(answer(started(client), PreferenceOption(255), ia_pd()), 0.0)
    return client, only_sent(client, MessageType.REQUEST)


def renewing_client() -> tuple[PdClient, Message]:
    """A client bound at 0 that has just sent its first Renew at T1 (events drained)."""
    client = bound_client()
    client.advance(T1)
    renew = only_sent(client, MessageType.RENEW)
    assert [type(event) for event in client.next_events()] == [RenewStarted]
    return client, renew


def rebinding_client() -> tuple[PdClient, Message]:
    """A client bound at 0 whose Renews went unanswered; it sent its first Rebind at T2."""
    client = bound_client()
    run_until(client, T2 - 0.001)
    client.advance(T2)
    rebind = only_sent(client, MessageType.REBIND)
    return client, rebind


def rts(timeline: list[tuple[float, Message]]) -> list[float]:
    """The gaps between consecutive transmissions."""
    times = [time for time, _ in timeline]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# --- Solicit ---------------------------------------------------------------------------


class TestSolicit:
    def test_solicit_is_the_golden_one_ia_pd_with_the_length_hint_and_no_ia_na(self) -> None:
        golden = Path(__file__).parent / "packets" / "dhcpv6-solicit-ia-pd-hint.hex"
        text = "".join(line.split("#", 1)[0] for line in golden.read_text().splitlines())
        client = make_client(constant(0x5A1C3E / (1 << 24)))

        client.start(0.0)

        assert client.datagrams_to_send() == [bytes.fromhex(text)]

    def test_solicit_asks_for_sol_max_rt_and_offers_neither_rapid_commit_nor_reconfigure(
        self,
    ) -> None:
        client = make_client()
        client.start(0.0)

        solicit = only_sent(client, MessageType.SOLICIT)

        assert solicit.find(OptionRequestOption) == OptionRequestOption((OptionCode.SOL_MAX_RT,))
        assert solicit.find(ServerIdOption) is None
        assert solicit.find(RapidCommitOption) is None
        assert solicit.find(ReconfigureAcceptOption) is None
        assert all(
            not (isinstance(option, UnknownOption) and option.code == OptionCode.IA_NA)
            for option in solicit.options
        )

    def test_without_a_length_hint_the_ia_pd_is_empty(self) -> None:
        client = PdClient(PdClientConfig(duid=CLIENT_DUID, iaid=7, rng=constant(0.5)))
        client.start(0.0)
        client.advance(1.0)

        solicit = only_sent(client, MessageType.SOLICIT)

        assert solicit.find(IaPdOption) == IaPdOption(7, 0, 0, ())

    def test_first_solicit_waits_a_random_part_of_sol_max_delay(self) -> None:
        client = make_client(constant(0.25), max_delay=1.0)
        client.start(10.0)

        assert client.datagrams_to_send() == []
        assert client.next_deadline() == pytest.approx(10.25)
        client.advance(10.25)
        assert only_sent(client, MessageType.SOLICIT).find(ElapsedTimeOption) == (
            ElapsedTimeOption(0)
        )

    def test_start_twice_is_a_usage_error(self) -> None:
        client = make_client()
        client.start(0.0)

        with pytest.raises(PdClientUsageError):
            client.start(1.0)

    @pytest.mark.parametrize(
        "make",
        [
            lambda: PdClientConfig(duid=b"\x00\x03", iaid=1, rng=constant(0.5)),
            lambda: PdClientConfig(duid=CLIENT_DUID, iaid=1 << 32, rng=constant(0.5)),
            lambda: PdClientConfig(
                duid=CLIENT_DUID, iaid=1, rng=constant(0.5), requested_prefix_length=129
            ),
            lambda: PdClientConfig(
                duid=CLIENT_DUID, iaid=1, rng=constant(0.5), solicit_max_delay=-1.0
            ),
            lambda: PdClientConfig(
                duid=CLIENT_DUID, iaid=1, rng=constant(0.5), hint=IPv6Network("::/0")
            ),
        ],
        ids=["short-duid", "iaid-over-32-bits", "prefix-length-129", "negative-delay", "hint-/0"],
    )
    def test_config_refuses_values_that_cannot_be_used(
        self, make: Callable[[], PdClientConfig]
    ) -> None:
        with pytest.raises(ValueError, match=r"DUID|IAID|prefix length|negative"):
            make()


# --- Hints -----------------------------------------------------------------------------


def hints_in(message: Message) -> tuple[Option, ...]:
    ia = message.find(IaPdOption)
    assert ia is not None
    assert (ia.iaid, ia.t1, ia.t2) == (IAID, 0, 0)
    return ia.options


class TestHints:
    def test_the_length_hint_is_the_unspecified_prefix_of_that_length(self) -> None:
        assert hints_in(started(make_client())) == (IaPrefixOption(0, 0, 56, IPv6Address(0)),)

    def test_a_prefix_hint_is_the_solicits_one_ia_prefix_with_lifetimes_0(self) -> None:
        datagram = bytes.fromhex(
            "01 000000"  # Solicit, transaction id 0 (the rng gives 0)
            "0001 000a 00030001020000000001"  # Client ID
            "0008 0002 0000"  # Elapsed Time
            "0019 0029 00000001 00000000 00000000"  # IA_PD: IAID 1, T1 and T2 0
            "001a 0019 00000000 00000000 38 20010db8340000000000000000000000"  # the hint
            "0006 0002 0052"  # Option Request: SOL_MAX_RT
        )
        client = make_client(constant(0.0), hint=PREFIX_B)

        client.start(0.0)

        assert client.datagrams_to_send() == [datagram]
        assert hints_in(parse_message(datagram)) == (
            IaPrefixOption(0, 0, 56, PREFIX_B.network_address),
        )

    def test_every_solicit_carries_the_hint_retransmissions_too(self) -> None:
        client = make_client(hint=PREFIX_B)
        first = started(client)

        timeline = [(0.0, first), *run_until(client, 100.0)]

        assert len(timeline) > 1
        assert {hints_in(message) for _, message in timeline} == {
            (IaPrefixOption(0, 0, 56, PREFIX_B.network_address),)
        }

    def test_the_request_asks_for_the_hinted_prefix_the_server_offered(self) -> None:
        client = make_client(hint=PREFIX_B)
        solicit = started(client)

        client.receive(
            answer(solicit, PreferenceOption(255), ia_pd(((PREFIX_B, PREFERRED, VALID),))), 0.1
        )

        request = only_sent(client, MessageType.REQUEST)
        assert hints_in(request) == (IaPrefixOption(0, 0, 56, PREFIX_B.network_address),)

    def test_a_server_offering_another_prefix_is_asked_for_that_one(self) -> None:
        client = make_client(hint=PREFIX_B)
        solicit = started(client)

        client.receive(answer(solicit, PreferenceOption(255), ia_pd()), 0.1)

        request = only_sent(client, MessageType.REQUEST)
        assert hints_in(request) == (IaPrefixOption(0, 0, 56, PREFIX_A.network_address),)

    def test_a_hint_of_another_length_than_requested_gives_way_to_the_length(self) -> None:
        client = make_client(hint=IPv6Network("2001:db8:3400::/48"))

        assert hints_in(started(client)) == (IaPrefixOption(0, 0, 56, IPv6Address(0)),)

    def test_a_hint_without_a_requested_length_is_sent_as_it_is(self) -> None:
        client = make_client(hint=IPv6Network("2001:db8:3400::/60"), length=None)

        assert hints_in(started(client)) == (
            IaPrefixOption(0, 0, 60, IPv6Address("2001:db8:3400::")),
        )


# --- Choosing an Advertise -------------------------------------------------------------


class TestAdvertise:
    def test_full_exchange_reaches_bound_and_reports_the_lease(self) -> None:
        client = make_client()
        client.start(0.0)
        solicit = only_sent(client, MessageType.SOLICIT)

        client.receive(answer(solicit, ia_pd()), 0.5)
        assert client.datagrams_to_send() == []  # still collecting during the first RT
        client.advance(1.05)
        request = only_sent(client, MessageType.REQUEST)
        client.receive(answer(request, ia_pd()), 1.2)

        assert request.find(ServerIdOption) == ServerIdOption(SERVER_A)
        assert request.find(IaPdOption) == IaPdOption(
            IAID, 0, 0, (IaPrefixOption(0, 0, 56, PREFIX_A.network_address),)
        )
        assert client.state is ClientState.BOUND
        assert client.next_events() == [
            LeaseAcquired(PREFIX_A, 1.2 + PREFERRED, 1.2 + VALID, SERVER_A)
        ]
        lease = client.lease
        assert lease is not None
        assert (lease.renew_at, lease.rebind_at) == (1.2 + T1, 1.2 + T2)
        assert client.next_deadline() == 1.2 + T1

    def test_highest_preference_among_collected_advertises_wins(self) -> None:
        client = make_client()
        client.start(0.0)
        solicit = only_sent(client, MessageType.SOLICIT)

        for server, preference in ((SERVER_A, 10), (SERVER_B, 200), (SERVER_C, 50)):
            client.receive(
                answer(solicit, PreferenceOption(preference), ia_pd(), server=server), 0.3
            )
        client.advance(1.05)

        request = only_sent(client, MessageType.REQUEST)
        assert request.find(ServerIdOption) == ServerIdOption(SERVER_B)

    def test_equal_preferences_keep_the_first_advertise(self) -> None:
        client = make_client()
        client.start(0.0)
        solicit = only_sent(client, MessageType.SOLICIT)

        client.receive(answer(solicit, ia_pd(), server=SERVER_C), 0.2)
        client.receive(answer(solicit, ia_pd(), server=SERVER_B), 0.3)
        client.advance(1.05)

        assert only_sent(client, MessageType.REQUEST).find(ServerIdOption) == ServerIdOption(
            SERVER_C
        )

    def test_preference_255_is_taken_at_once(self) -> None:
        client = make_client()
        client.start(0.0)
        solicit = only_sent(client, MessageType.SOLICIT)

        client.receive(answer(solicit, PreferenceOption(10), ia_pd(), server=SERVER_B), 0.1)
        client.receive(answer(solicit, PreferenceOption(255), ia_pd()), 0.2)

        request = only_sent(client, MessageType.REQUEST)
        assert request.find(ServerIdOption) == ServerIdOption(SERVER_A)
        assert client.state is ClientState.REQUESTING

    def test_after_the_first_rt_the_first_usable_advertise_is_taken(self) -> None:
        client = make_client()
        solicit = started(client)
        assert [m.msg_type for _, m in run_until(client, 1.5)] == [MessageType.SOLICIT]

        client.receive(answer(solicit, ia_pd()), 1.5)

        assert client.state is ClientState.REQUESTING
        only_sent(client, MessageType.REQUEST)

    @pytest.mark.parametrize(
        "ia",
        [
            ia_pd((), status=StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, "none")),
            ia_pd(()),
            ia_pd(t1=3000, t2=2000),  # T1 > T2: the IA_PD is ignored
            ia_pd(((PREFIX_A, 9000, 7200),)),  # preferred > valid: the prefix is ignored
            ia_pd(iaid=IAID + 1),  # not our IA
        ],
        ids=["no-prefix-avail", "no-prefix", "t1-above-t2", "preferred-above-valid", "other-iaid"],
    )
    def test_advertise_without_a_usable_prefix_is_ignored(self, ia: IaPdOption) -> None:
        client = make_client()
        client.start(0.0)
        solicit = only_sent(client, MessageType.SOLICIT)

        client.receive(answer(solicit, PreferenceOption(255), ia), 0.1)
        client.advance(1.05)

        assert client.state is ClientState.SOLICITING
        only_sent(client, MessageType.SOLICIT)  # a retransmission, not a Request
        assert sum(client.drop_counts.values()) == 1

    def test_sol_max_rt_from_an_ignored_advertise_caps_the_solicit_timeout(self) -> None:
        client = make_client()
        solicit = started(client)
        refusal = ia_pd((), status=StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, ""))
        client.receive(answer(solicit, SolMaxRtOption(100), refusal), 0.1)

        timeline = run_until(client, 2000.0)

        assert max(rts(timeline)) == pytest.approx(100.0)

    @pytest.mark.parametrize(
        ("offered", "cap"),
        [(59, 3600.0), (60, 60.0), (86400, 86400.0), (86401, 3600.0)],
        ids=["below", "lowest", "highest", "above"],
    )
    def test_sol_max_rt_is_taken_from_60_to_86400_and_ignored_outside(
        self, offered: int, cap: float
    ) -> None:
        """RFC 8415 section 21.24: values outside 60..86400 are ignored (the default
        SOL_MAX_RT of 3600 s stays); the bounds themselves are taken."""
        client = make_client()
        solicit = started(client)
        refusal = ia_pd((), status=StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, ""))
        client.receive(answer(solicit, SolMaxRtOption(offered), refusal), 0.1)

        timeline = run_until(client, 8 * cap + 10_000.0)

        assert max(rts(timeline)) == pytest.approx(cap, rel=0.1 + 1e-9)


# --- Retransmission (RFC 8415 section 15) ----------------------------------------------


def seeded(seed: int) -> Callable[[], float]:
    return random.Random(seed).random


class TestRetransmission:
    def test_every_solicit_timeout_follows_rfc_8415_section_15_over_seeded_runs(self) -> None:
        """An oracle written from the RFC, not from the code: RT1 = IRT + RAND*IRT (RAND > 0
        for the first Solicit), RTk = 2*RTk-1 + RAND*RTk-1, and past MRT: MRT + RAND*MRT,
        with RAND uniform in [-0.1, 0.1]. Checked pair by pair over 40 seeded runs, and
        the randomisation itself (a cap without RAND would give MRT every time)."""
        irt, mrt = 1.0, 3600.0
        doubling: list[float] = []
        capped: list[float] = []
        for seed in range(40):
            client = make_client(seeded(seed))
            timeline = [(0.0, started(client)), *run_until(client, 30_000.0)]
            gaps = rts(timeline)
            assert irt < gaps[0] <= 1.1 * irt
            for before, after in itertools.pairwise(gaps):
                if 0.9 * mrt - 1e-9 <= after <= 1.1 * mrt + 1e-9 and 1.9 * before > 0.9 * mrt:
                    capped.append(after / mrt)  # 2*RT + RAND*RT passed MRT: drawn around MRT
                else:
                    assert 1.9 * before - 1e-9 <= after <= 2.1 * before + 1e-9, (seed, before)
                    assert after <= 1.1 * mrt
                    doubling.append(after / before)
        assert len(capped) > 100
        assert min(capped) < 0.92  # spread over the whole band
        assert max(capped) > 1.08
        assert abs(statistics.fmean(capped) - 1.0) < 0.02
        assert min(doubling) < 1.92
        assert max(doubling) > 2.08

    @pytest.mark.parametrize("rng", [constant(0.0), constant(0.999999), seeded(1), seeded(2)])
    def test_first_solicit_rt_is_strictly_greater_than_irt_and_at_most_1_1_irt(
        self, rng: Callable[[], float]
    ) -> None:
        client = make_client(rng)
        first = started(client)

        timeline = [(0.0, first), *run_until(client, 1.2)]

        assert len(timeline) == 2
        assert 1.0 < rts(timeline)[0] <= 1.1

    @pytest.mark.parametrize("seed", range(5))
    def test_unanswered_solicit_doubles_within_rand_caps_at_sol_max_rt_and_never_gives_up(
        self, seed: int
    ) -> None:
        client = make_client(seeded(seed))
        first = started(client)

        timeline = [(0.0, first), *run_until(client, 10 * 86400.0)]

        gaps = rts(timeline)
        assert 1.0 < gaps[0] <= 1.1
        for previous, rt in itertools.pairwise(gaps):
            doubled = 2 * previous
            assert 0.95 * doubled <= rt <= 1.05 * doubled or (
                0.9 * SOL_MAX_RT <= rt <= 1.1 * SOL_MAX_RT
            )
            assert rt <= 1.1 * SOL_MAX_RT
        assert max(gaps) >= 0.9 * SOL_MAX_RT
        assert all(message.msg_type is MessageType.SOLICIT for _, message in timeline)
        assert len({message.transaction_id for _, message in timeline}) == 1
        assert client.state is ClientState.SOLICITING
        assert client.next_deadline() is not None

    def test_elapsed_time_counts_hundredths_since_the_first_send_and_caps_at_0xffff(
        self,
    ) -> None:
        client = make_client()
        first = started(client)

        timeline = [(0.0, first), *run_until(client, 2000.0)]

        for time, message in timeline:
            expected = min(0xFFFF, round(time * 100))
            assert message.find(ElapsedTimeOption) == ElapsedTimeOption(expected)
        assert timeline[-1][1].find(ElapsedTimeOption) == ElapsedTimeOption(0xFFFF)

    def test_unanswered_request_gives_up_after_req_max_rc_sends_then_solicits(self) -> None:
        client = make_client()
        client.receive(answer(started(client), PreferenceOption(255), ia_pd()), 0.0)
        first = only_sent(client, MessageType.REQUEST)

        timeline = [(0.0, first), *run_until(client, 200.0)]

        requests = [(t, m) for t, m in timeline if m.msg_type is MessageType.REQUEST]
        assert [m.msg_type for _, m in timeline[: len(requests) + 1]] == [
            MessageType.REQUEST
        ] * REQ_MAX_RC + [MessageType.SOLICIT]
        # RAND is 0 with this rng: RT doubles from REQ_TIMEOUT and stops at REQ_MAX_RT.
        assert rts(timeline[: REQ_MAX_RC + 1]) == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
        assert max(rts(requests)) == REQ_MAX_RT
        assert ExchangeTimedOut(MessageType.REQUEST, REQ_MAX_RC) in client.next_events()
        assert client.state is ClientState.SOLICITING

    @pytest.mark.parametrize("seed", range(3))
    def test_request_rts_stay_within_rand_of_the_doubled_previous_rt(self, seed: int) -> None:
        client = make_client(seeded(seed))
        client.receive(answer(started(client), PreferenceOption(255), ia_pd()), 0.0)
        first = only_sent(client, MessageType.REQUEST)

        timeline = [(0.0, first), *run_until(client, 200.0)]

        requests = [(t, m) for t, m in timeline if m.msg_type is MessageType.REQUEST]
        gaps = rts(requests)
        assert 0.9 <= gaps[0] <= 1.1
        for previous, rt in itertools.pairwise(gaps):
            assert 1.9 * previous <= rt <= 2.1 * previous or 27 <= rt <= 33


# --- Renew, Rebind and the end of a lease ----------------------------------------------


class TestRenewRebind:
    def test_nothing_is_sent_before_t1(self) -> None:
        client = bound_client()

        assert run_until(client, T1 - 0.001) == []
        assert client.next_events() == []

    def test_t1_starts_the_renew_with_the_prefix_and_its_deadlines(self) -> None:
        client = bound_client(now=5.0)

        client.advance(5.0 + T1)

        assert client.next_events() == [
            RenewStarted(PREFIX_A, 5.0 + PREFERRED, 5.0 + VALID, SERVER_A, 5.0 + T2)
        ]
        only_sent(client, MessageType.RENEW)

    def test_renew_retransmissions_start_nothing_new(self) -> None:
        client, _ = renewing_client()

        timeline = run_until(client, T2 - 0.001)

        assert {message.msg_type for _, message in timeline} == {MessageType.RENEW}
        assert client.next_events() == []

    def test_each_t1_starts_a_renew_with_the_renewed_deadlines(self) -> None:
        client, renew = renewing_client()
        client.receive(answer(renew, ia_pd()), T1 + 1)
        client.next_events()

        client.advance(T1 + 1 + T1)

        assert client.next_events() == [
            RenewStarted(PREFIX_A, T1 + 1 + PREFERRED, T1 + 1 + VALID, SERVER_A, T1 + 1 + T2)
        ]

    def test_t2_after_unanswered_renews_starts_the_rebind(self) -> None:
        client, _ = renewing_client()

        run_until(client, T2)

        assert client.next_events() == [
            ExchangeTimedOut(MessageType.RENEW, 7),
            RebindStarted(PREFIX_A, PREFERRED, VALID, SERVER_A),
        ]
        assert client.state is ClientState.REBINDING

    def test_t1_at_t2_starts_the_rebind_without_a_renew(self) -> None:
        client, request = requesting_client()
        client.receive(answer(request, ia_pd(t1=1000, t2=1000)), 0.0)
        client.next_events()

        client.advance(1000.0)

        assert client.next_events() == [RebindStarted(PREFIX_A, PREFERRED, VALID, SERVER_A)]
        only_sent(client, MessageType.REBIND)

    def test_no_renew_starts_while_there_is_no_lease(self) -> None:
        soliciting = make_client()
        started(soliciting)
        requesting, _ = requesting_client()
        lost, _ = rebinding_client()
        run_until(lost, VALID)
        assert events_of(lost, LeaseLost) != []

        for client in (soliciting, requesting, lost):
            run_until(client, 10 * 86400.0)
            assert events_of(client, RenewStarted) == []
            assert client.lease is None

    def test_no_renew_starts_after_a_stop_that_kept_the_lease(self) -> None:
        client = bound_client()
        client.stop(100.0)
        client.next_events()

        client.advance(10 * 86400.0)

        assert client.next_events() == []
        assert client.datagrams_to_send() == []

    def test_renew_at_t1_goes_to_the_leasing_server_and_same_prefix_is_renewed(self) -> None:
        client, renew = renewing_client()

        assert renew.find(ServerIdOption) == ServerIdOption(SERVER_A)
        assert renew.find(IaPdOption) == IaPdOption(
            IAID, 0, 0, (IaPrefixOption(0, 0, 56, PREFIX_A.network_address),)
        )
        client.receive(answer(renew, ia_pd()), T1 + 1)

        assert client.next_events() == [
            LeaseRenewed(PREFIX_A, T1 + 1 + PREFERRED, T1 + 1 + VALID, SERVER_A)
        ]
        assert client.state is ClientState.BOUND
        lease = client.lease
        assert lease is not None
        assert lease.renew_at == T1 + 1 + T1

    def test_renew_reply_from_another_server_is_dropped(self) -> None:
        client, renew = renewing_client()

        client.receive(answer(renew, ia_pd(), server=SERVER_B), T1 + 1)

        assert client.drop_counts == {Dhcpv6DropReason.WRONG_SERVER_ID: 1}
        assert client.state is ClientState.RENEWING

    def test_unanswered_renew_retransmits_until_t2_then_rebinds_without_server_id(self) -> None:
        client = bound_client()

        timeline = run_until(client, T2)

        renews = [(t, m) for t, m in timeline if m.msg_type is MessageType.RENEW]
        assert [t for t, _ in renews] == [T1, T1 + 10, T1 + 30, T1 + 70, T1 + 150, T1 + 310, 2430]
        assert max(rts(renews)) <= REN_MAX_RT
        rebind_time, rebind = timeline[-1]
        assert (rebind_time, rebind.msg_type) == (T2, MessageType.REBIND)
        assert rebind.find(ServerIdOption) is None
        assert rebind.find(IaPdOption) == renews[0][1].find(IaPdOption)
        assert rebind.transaction_id != renews[0][1].transaction_id
        assert ExchangeTimedOut(MessageType.RENEW, 7) in client.next_events()
        assert client.state is ClientState.REBINDING

    def test_unanswered_rebind_loses_the_lease_exactly_at_the_valid_lifetime_end(self) -> None:
        client, _ = rebinding_client()

        timeline = run_until(client, VALID - 0.001)

        assert len(timeline) >= 5  # many Rebinds failed; the lease was kept through them all
        assert max(rts(timeline)) <= 1.1 * REB_MAX_RT
        assert all(m.msg_type is MessageType.REBIND for _, m in timeline)
        assert client.state is ClientState.REBINDING
        assert client.lease is not None
        assert not events_of(client, LeaseLost)
        assert client.next_deadline() == VALID

        client.advance(VALID)

        assert events_of(client, LeaseLost) == [
            LeaseLost(PREFIX_A, LeaseLossReason.VALID_LIFETIME_EXPIRED)
        ]
        assert client.lease is None
        assert client.state is ClientState.SOLICITING
        only_sent(client, MessageType.SOLICIT)

    def test_rebind_answered_by_another_server_moves_the_lease_to_it(self) -> None:
        client, rebind = rebinding_client()

        client.receive(answer(rebind, ia_pd(), server=SERVER_B), T2 + 1)

        assert events_of(client, LeaseRenewed) == [
            LeaseRenewed(PREFIX_A, T2 + 1 + PREFERRED, T2 + 1 + VALID, SERVER_B)
        ]
        client.advance(T2 + 1 + T1)
        renew = only_sent(client, MessageType.RENEW)
        assert renew.find(ServerIdOption) == ServerIdOption(SERVER_B)

    def test_no_binding_on_renew_requests_again_keeping_the_prefix_then_reports_the_change(
        self,
    ) -> None:
        client, renew = renewing_client()
        no_binding = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_BINDING, "gone"))

        client.receive(answer(renew, no_binding), T1 + 1)

        assert client.next_events() == [BindingRejected(PREFIX_A, SERVER_A, "gone")]
        request = only_sent(client, MessageType.REQUEST)
        assert request.find(ServerIdOption) == ServerIdOption(SERVER_A)
        assert request.find(IaPdOption) == renew.find(IaPdOption)
        lease = client.lease
        assert lease is not None
        assert lease.primary.prefix == PREFIX_A  # still usable until replaced or expired

        client.receive(answer(request, ia_pd(((PREFIX_B, PREFERRED, VALID),))), T1 + 2)

        assert client.next_events() == [
            DelegationChanged(PREFIX_A, PREFIX_B, T1 + 2 + PREFERRED, T1 + 2 + VALID, SERVER_A)
        ]
        lease = client.lease
        assert lease is not None
        assert [held.prefix for held in lease.prefixes] == [PREFIX_B]

    def test_no_binding_on_rebind_requests_from_the_server_that_answered(self) -> None:
        client, rebind = rebinding_client()
        no_binding = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_BINDING, ""))

        client.receive(answer(rebind, no_binding, server=SERVER_B), T2 + 1)

        request = only_sent(client, MessageType.REQUEST)
        assert request.find(ServerIdOption) == ServerIdOption(SERVER_B)
        assert client.state is ClientState.REQUESTING

    def test_no_binding_then_unanswered_requests_solicit_and_the_new_prefix_is_a_change(
        self,
    ) -> None:
        client, renew = renewing_client()
        no_binding = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_BINDING, ""))
        client.receive(answer(renew, no_binding), T1 + 1)
        only_sent(client, MessageType.REQUEST)

        timeline = run_until(client, T1 + 200)

        assert timeline[-1][1].msg_type is MessageType.SOLICIT
        assert client.lease is not None
        solicit = timeline[-1][1]
        client.receive(
            answer(solicit, PreferenceOption(255), ia_pd(((PREFIX_B, 100, 200),))), T1 + 200
        )
        request = only_sent(client, MessageType.REQUEST)
        client.receive(answer(request, ia_pd(((PREFIX_B, 100, 200),))), T1 + 200)

        changed = events_of(client, DelegationChanged)
        assert [(event.old, event.new) for event in changed] == [(PREFIX_A, PREFIX_B)]

    def test_renew_reply_replacing_the_prefix_reports_the_change(self) -> None:
        client, renew = renewing_client()
        renumbered = ia_pd(((PREFIX_A, 0, 0), (PREFIX_B, PREFERRED, VALID)))

        client.receive(answer(renew, renumbered), T1 + 1)

        assert client.next_events() == [
            DelegationChanged(PREFIX_A, PREFIX_B, T1 + 1 + PREFERRED, T1 + 1 + VALID, SERVER_A)
        ]
        lease = client.lease
        assert lease is not None
        assert [held.prefix for held in lease.prefixes] == [PREFIX_B]

    def test_renew_reply_deprecating_the_old_prefix_switches_to_the_preferred_one(self) -> None:
        client, renew = renewing_client()
        renumbered = ia_pd(((PREFIX_A, 0, 600), (PREFIX_B, PREFERRED, VALID)))

        client.receive(answer(renew, renumbered), T1 + 1)

        assert [(e.old, e.new) for e in events_of(client, DelegationChanged)] == [
            (PREFIX_A, PREFIX_B)
        ]
        lease = client.lease
        assert lease is not None
        assert {held.prefix for held in lease.prefixes} == {PREFIX_A, PREFIX_B}

    def test_renew_reply_withdrawing_every_prefix_loses_the_lease_and_solicits(self) -> None:
        client, renew = renewing_client()

        client.receive(answer(renew, ia_pd(((PREFIX_A, 0, 0),))), T1 + 1)

        assert client.next_events() == [LeaseLost(PREFIX_A, LeaseLossReason.WITHDRAWN_BY_SERVER)]
        assert client.lease is None
        only_sent(client, MessageType.SOLICIT)

    def test_renew_reply_with_another_failure_keeps_renewing(self) -> None:
        client, renew = renewing_client()
        refusal = ia_pd((), status=StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, ""))

        client.receive(answer(renew, refusal), T1 + 1)

        assert client.drop_counts == {Dhcpv6DropReason.SERVER_STATUS: 1}
        assert client.state is ClientState.RENEWING
        assert run_until(client, T1 + 10)[-1][1].msg_type is MessageType.RENEW

    def test_a_lease_with_infinite_lifetimes_never_expires(self) -> None:
        client, request = requesting_client()
        forever = ia_pd(((PREFIX_A, INFINITY, INFINITY),), t1=INFINITY, t2=INFINITY)

        client.receive(answer(request, forever), 0.0)

        assert events_of(client, LeaseAcquired) == [
            LeaseAcquired(PREFIX_A, math.inf, math.inf, SERVER_A)
        ]
        assert client.next_deadline() is None


# --- Timers chosen by the client and ignored IAs ---------------------------------------


class TestLifetimes:
    def reply_to_request(self, ia: IaPdOption) -> PdClient:
        """A client whose Request (sent at 0) is answered with ``ia`` at 5.0."""
        client, request = requesting_client()
        client.receive(answer(request, ia), 5.0)
        client.datagrams_to_send()  # the Request retransmissions at 1 and 3
        return client

    def test_t1_and_t2_of_zero_are_half_and_four_fifths_of_the_shortest_preferred(self) -> None:
        ia = ia_pd(((PREFIX_A, 3000, 7200), (PREFIX_B, 1000, 7200)), t1=0, t2=0)

        client = self.reply_to_request(ia)

        lease = client.lease
        assert lease is not None
        assert (lease.renew_at, lease.rebind_at) == (5.0 + 500, 5.0 + 800)
        timeline = run_until(client, 505.0)
        assert [(t, m.msg_type) for t, m in timeline] == [(505.0, MessageType.RENEW)]

    def test_chosen_timers_are_never_zero_even_for_deprecated_prefixes(self) -> None:
        client = self.reply_to_request(ia_pd(((PREFIX_A, 0, 1000),), t1=0, t2=0))

        lease = client.lease
        assert lease is not None
        assert (lease.renew_at, lease.rebind_at) == (5.0 + 500, 5.0 + 800)

    def test_only_t1_of_zero_is_chosen_and_stays_at_or_below_the_servers_t2(self) -> None:
        client = self.reply_to_request(ia_pd(((PREFIX_A, 3600, 7200),), t1=0, t2=1000))

        lease = client.lease
        assert lease is not None
        assert (lease.renew_at, lease.rebind_at) == (5.0 + 1000, 5.0 + 1000)
        timeline = run_until(client, 1005.0)
        assert [m.msg_type for _, m in timeline] == [MessageType.REBIND]

    def test_ia_pd_with_t1_above_t2_is_ignored(self) -> None:
        client = self.reply_to_request(ia_pd(t1=2000, t2=1000))

        assert client.state is ClientState.REQUESTING
        assert client.drop_counts == {Dhcpv6DropReason.NO_USABLE_PREFIX: 1}

    def test_prefix_with_preferred_above_valid_is_left_out(self) -> None:
        ia = ia_pd(((PREFIX_A, 9000, 7200), (PREFIX_B, PREFERRED, VALID)))

        client = self.reply_to_request(ia)

        lease = client.lease
        assert lease is not None
        assert [held.prefix for held in lease.prefixes] == [PREFIX_B]

    def test_prefix_with_host_bits_set_is_left_out(self) -> None:
        sloppy = IaPrefixOption(PREFERRED, VALID, 56, PREFIX_B.network_address + 1)
        ia = IaPdOption(IAID, T1, T2, (sloppy, *ia_pd().options))

        client = self.reply_to_request(ia)

        lease = client.lease
        assert lease is not None
        assert [held.prefix for held in lease.prefixes] == [PREFIX_A]

    def test_when_the_primary_prefix_expires_the_remaining_one_takes_over(self) -> None:
        client = self.reply_to_request(ia_pd(((PREFIX_A, 1000, 1000), (PREFIX_B, 900, 1500))))
        client.next_events()

        client.advance(1004.999)
        assert events_of(client, DelegationChanged) == []
        client.advance(1005.0)

        assert [(e.old, e.new) for e in events_of(client, DelegationChanged)] == [
            (PREFIX_A, PREFIX_B)
        ]
        lease = client.lease
        assert lease is not None
        assert [held.prefix for held in lease.prefixes] == [PREFIX_B]


# --- Status codes in replies to Request ------------------------------------------------


class TestRequestStatus:
    def test_no_prefix_avail_backs_off_then_solicits_again(self) -> None:
        client, request = requesting_client()
        refusal = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, "x"))

        client.receive(answer(request, refusal), 0.5)

        assert client.next_events() == [NoPrefixAvailable(SERVER_A, "x", 60.5)]
        assert client.state is ClientState.BACKING_OFF
        assert client.next_deadline() == 60.5
        assert run_until(client, 60.499) == []
        client.advance(60.5)
        only_sent(client, MessageType.SOLICIT)

    def test_repeated_no_prefix_avail_doubles_the_back_off(self) -> None:
        client, request = requesting_client()
        refusal = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, ""))
        client.receive(answer(request, refusal), 0.0)
        client.advance(60.0)
        solicit = only_sent(client, MessageType.SOLICIT)
        client.receive(answer(solicit, PreferenceOption(255), ia_pd()), 60.0)

        client.receive(answer(only_sent(client, MessageType.REQUEST), refusal), 60.0)

        assert [e.retry_at for e in events_of(client, NoPrefixAvailable)] == [60.0, 180.0]

    def test_message_level_no_prefix_avail_without_an_ia_also_backs_off(self) -> None:
        client, request = requesting_client()

        client.receive(answer(request, StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, "")), 0.0)

        assert client.state is ClientState.BACKING_OFF

    @pytest.mark.parametrize("status", [StatusCode.UNSPEC_FAIL, StatusCode.USE_MULTICAST])
    def test_unspec_fail_and_use_multicast_keep_the_request_retransmitting(
        self, status: StatusCode
    ) -> None:
        client, request = requesting_client()

        client.receive(answer(request, StatusCodeOption(status, "")), 0.5)

        assert client.drop_counts == {Dhcpv6DropReason.SERVER_STATUS: 1}
        assert client.state is ClientState.REQUESTING
        client.advance(1.0)
        assert only_sent(client, MessageType.REQUEST).transaction_id == request.transaction_id


# --- What is dropped -------------------------------------------------------------------


class TestDropped:
    @pytest.mark.parametrize(
        ("mangle", "reason"),
        [
            (lambda r: answer(r, ia_pd(), transaction_id=r.transaction_id ^ 1), "wrong xid"),
            (
                lambda r: build_message(
                    Message(MessageType.REPLY, r.transaction_id, (ServerIdOption(SERVER_A),))
                ),
                "no client id",
            ),
            (
                lambda r: build_message(
                    Message(
                        MessageType.REPLY,
                        r.transaction_id,
                        (ServerIdOption(SERVER_A), ClientIdOption(SERVER_B), ia_pd()),
                    )
                ),
                "other client id",
            ),
            (
                lambda r: build_message(
                    Message(MessageType.REPLY, r.transaction_id, (ClientIdOption(CLIENT_DUID),))
                ),
                "no server id",
            ),
            (lambda r: answer(r, ia_pd(), server=SERVER_B), "other server"),
            (lambda r: answer(r, ia_pd(), msg_type=MessageType.ADVERTISE), "advertise"),
            (lambda r: answer(r, ia_pd(), msg_type=MessageType.SOLICIT), "solicit"),
            (lambda r: answer(r, ia_pd())[:-3], "truncated"),
            (lambda r: b"", "empty"),
        ],
        ids=lambda value: value if isinstance(value, str) else "",
    )
    def test_reply_not_for_us_is_dropped_with_a_named_reason(
        self, mangle: Callable[[Message], bytes], reason: str
    ) -> None:
        expected = {
            "wrong xid": Dhcpv6DropReason.WRONG_TRANSACTION_ID,
            "no client id": Dhcpv6DropReason.MISSING_CLIENT_ID,
            "other client id": Dhcpv6DropReason.WRONG_CLIENT_ID,
            "no server id": Dhcpv6DropReason.MISSING_SERVER_ID,
            "other server": Dhcpv6DropReason.WRONG_SERVER_ID,
            "advertise": Dhcpv6DropReason.UNEXPECTED_MESSAGE_TYPE,
            "solicit": Dhcpv6DropReason.UNEXPECTED_MESSAGE_TYPE,
            "truncated": Dhcpv6DropReason.MALFORMED,
            "empty": Dhcpv6DropReason.MALFORMED,
        }[reason]
        client, request = requesting_client()

        client.receive(mangle(request), 0.5)

        assert client.drop_counts == {expected: 1}
        assert [type(event) for event in client.next_events()] == [MessageDropped]
        assert client.state is ClientState.REQUESTING
        assert client.lease is None
        assert client.datagrams_to_send() == []

    def test_reply_with_the_wrong_transaction_id_does_not_bind_but_the_right_one_does(
        self,
    ) -> None:
        client, request = requesting_client()

        client.receive(answer(request, ia_pd(), transaction_id=request.transaction_id + 1), 0.5)
        assert client.lease is None
        client.receive(answer(request, ia_pd()), 0.6)

        assert client.state is ClientState.BOUND

    def test_reconfigure_is_ignored_and_never_accepted(self) -> None:
        client = bound_client()
        reconfigure = build_message(
            Message(
                MessageType.RECONFIGURE,
                0,
                (
                    ServerIdOption(SERVER_A),
                    ClientIdOption(CLIENT_DUID),
                    UnknownOption(19, bytes((MessageType.RENEW,))),  # Reconfigure Message
                ),
            )
        )

        client.receive(reconfigure, 100.0)

        assert client.drop_counts == {Dhcpv6DropReason.RECONFIGURE_IGNORED: 1}
        assert client.state is ClientState.BOUND
        assert client.datagrams_to_send() == []
        assert client.next_deadline() == T1

    def test_answers_before_start_or_after_stop_are_dropped(self) -> None:
        client = make_client()
        client.receive(answer(Message(MessageType.SOLICIT, 1, (ClientIdOption(CLIENT_DUID),))), 0.0)
        client.stop(0.0)
        client.receive(answer(Message(MessageType.SOLICIT, 1, (ClientIdOption(CLIENT_DUID),))), 0.0)

        assert client.drop_counts == {Dhcpv6DropReason.NOTHING_OUTSTANDING: 2}

    @given(st.binary(max_size=200))
    @settings(max_examples=300, deadline=None)
    def test_receive_never_raises_on_arbitrary_bytes(self, data: bytes) -> None:
        client = make_client()
        client.start(0.0)

        client.receive(data, 0.1)

        assert client.state is ClientState.SOLICITING


# --- Stopping --------------------------------------------------------------------------


class TestStop:
    def test_stop_releases_the_lease_and_retransmits_release_at_most_four_times(self) -> None:
        client = bound_client()

        client.stop(100.0, release=True)

        assert client.next_events() == [LeaseReleased(PREFIX_A, SERVER_A)]
        assert client.lease is None
        state_while_releasing = client.state
        assert state_while_releasing is ClientState.RELEASING
        release = only_sent(client, MessageType.RELEASE)
        assert release.find(ServerIdOption) == ServerIdOption(SERVER_A)
        assert release.find(IaPdOption) == IaPdOption(
            IAID, 0, 0, (IaPrefixOption(0, 0, 56, PREFIX_A.network_address),)
        )
        assert release.find(OptionRequestOption) is None
        timeline = run_until(client, 1000.0)
        assert [t for t, _ in timeline] == [101.0, 103.0, 107.0]
        assert client.state is ClientState.STOPPED
        assert client.next_events() == [
            ExchangeTimedOut(MessageType.RELEASE, 4),
            ClientStopped(release_acknowledged=False),
        ]
        assert client.next_deadline() is None

    def test_reply_to_release_stops_at_once(self) -> None:
        client = bound_client()
        client.stop(100.0, release=True)
        release = only_sent(client, MessageType.RELEASE)

        client.receive(answer(release, StatusCodeOption(StatusCode.SUCCESS, "")), 100.5)

        assert client.state is ClientState.STOPPED
        assert events_of(client, ClientStopped) == [ClientStopped(release_acknowledged=True)]
        assert client.next_deadline() is None

    def test_stop_without_release_sends_nothing_and_keeps_the_lease_for_the_record(
        self,
    ) -> None:
        client = bound_client()

        client.stop(100.0)

        assert client.datagrams_to_send() == []
        assert client.next_events() == [ClientStopped(release_acknowledged=None)]
        assert client.state is ClientState.STOPPED
        assert client.lease is not None
        assert client.next_deadline() is None

    def test_stop_told_not_to_release_sends_nothing_even_mid_renew(self) -> None:
        client, _ = renewing_client()

        client.stop(T1 + 1, release=False)

        assert client.datagrams_to_send() == []
        assert client.next_events() == [ClientStopped(release_acknowledged=None)]
        assert run_until(client, T2 + 1) == []

    @pytest.mark.parametrize(
        ("release", "sent_types"), [(None, [MessageType.RELEASE]), (False, [])]
    )
    def test_release_on_stop_in_the_config_is_what_stop_does_unless_told(
        self, release: bool | None, sent_types: list[MessageType]
    ) -> None:
        client = PdClient(
            PdClientConfig(
                duid=CLIENT_DUID, iaid=IAID, rng=MIDDLE, release_on_stop=True, solicit_max_delay=0
            )
        )
        client.receive(answer(started(client), PreferenceOption(255), ia_pd()), 0.0)
        client.receive(answer(only_sent(client, MessageType.REQUEST), ia_pd()), 0.0)

        client.stop(100.0, release=release)

        assert [message.msg_type for message in sent(client)] == sent_types

    def test_stop_before_a_lease_sends_nothing(self) -> None:
        client = make_client()
        client.start(0.0)
        client.datagrams_to_send()

        client.stop(0.5)

        assert client.datagrams_to_send() == []
        assert client.state is ClientState.STOPPED
        assert client.next_deadline() is None

    def test_a_second_stop_changes_nothing(self) -> None:
        client = bound_client()
        client.stop(100.0, release=True)
        client.datagrams_to_send()
        client.next_events()

        client.stop(100.5, release=True)

        assert client.datagrams_to_send() == []
        assert client.next_events() == []
