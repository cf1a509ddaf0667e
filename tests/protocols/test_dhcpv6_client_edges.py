"""The DHCPv6 prefix delegation client at its edges: written from the survivors of a
mutation run (docs/mutation.md), each naming behaviour the other client tests left open:
what a dropped datagram reports, Replies to Renew that say nothing usable, the exact
section 15 arithmetic for a fixed RAND, transaction ids, and timers that fall due together.
"""

from __future__ import annotations

import math

import pytest

from dynamic_prefix.protocols.dhcpv6 import (
    Dhcpv6ParseError,
    IaPdOption,
    Message,
    MessageType,
    PreferenceOption,
    SolMaxRtOption,
    StatusCode,
    StatusCodeOption,
    build_message,
    parse_message,
)
from dynamic_prefix.protocols.dhcpv6_client import (
    ClientState,
    Dhcpv6DropReason,
    LeaseLost,
    MessageDropped,
    NoPrefixAvailable,
    PdClient,
    PdClientUsageError,
)
from tests.protocols.test_dhcpv6_client import (
    IAID,
    PREFERRED,
    PREFIX_A,
    PREFIX_B,
    SERVER_A,
    SERVER_B,
    T1,
    VALID,
    answer,
    bound_client,
    constant,
    events_of,
    ia_pd,
    make_client,
    only_sent,
    renewing_client,
    requesting_client,
    rts,
    run_until,
    sent,
    started,
)

QUARTER_ABOVE = constant(0.75)
"""RAND is 0.05 for every draw; the first Solicit's factor is 0.1 * (1 - 0.75) = 0.025."""


def drops(client: PdClient) -> list[MessageDropped]:
    return events_of(client, MessageDropped)


# --- what a dropped datagram reports ---------------------------------------------------


def test_starting_twice_is_refused_naming_the_state() -> None:
    client = make_client()
    client.start(0.0)

    with pytest.raises(PdClientUsageError, match=r"^start\(\) in state soliciting; start once$"):
        client.start(1.0)


def test_malformed_datagram_is_dropped_with_the_parse_error() -> None:
    client = make_client()
    started(client)
    garbage = b"\x07\x00"
    with pytest.raises(Dhcpv6ParseError) as parse_error:
        parse_message(garbage)

    client.receive(garbage, 0.1)

    assert drops(client) == [MessageDropped(Dhcpv6DropReason.MALFORMED, str(parse_error.value))]


def test_reconfigure_is_dropped_saying_it_is_not_accepted() -> None:
    client = bound_client()
    reconfigure = build_message(Message(MessageType.RECONFIGURE, 0, ()))

    client.receive(reconfigure, 10.0)

    assert drops(client) == [
        MessageDropped(Dhcpv6DropReason.RECONFIGURE_IGNORED, "Reconfigure is not accepted")
    ]


def test_reply_with_nothing_outstanding_is_dropped_naming_type_and_state() -> None:
    client = bound_client()
    stray = build_message(Message(MessageType.REPLY, 0x123456, ()))

    client.receive(stray, 10.0)

    assert drops(client) == [
        MessageDropped(Dhcpv6DropReason.NOTHING_OUTSTANDING, "REPLY while bound with nothing sent")
    ]


def test_reply_to_release_from_another_server_is_dropped_and_release_goes_on() -> None:
    client = bound_client()
    client.stop(100.0, release=True)
    release = only_sent(client, MessageType.RELEASE)
    client.next_events()

    client.receive(answer(release, server=SERVER_B), 100.5)

    assert drops(client) == [
        MessageDropped(
            Dhcpv6DropReason.WRONG_SERVER_ID,
            f"{SERVER_B.hex()}, the RELEASE went to {SERVER_A.hex()}",
        )
    ]
    assert client.state is ClientState.RELEASING


def test_advertise_refusing_our_ia_is_dropped_with_its_status() -> None:
    client = make_client()
    solicit = started(client)
    refused = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, ""))

    client.receive(answer(solicit, refused), 0.01)

    assert drops(client) == [
        MessageDropped(
            Dhcpv6DropReason.SERVER_STATUS, f"Advertise with status {StatusCode.NO_PREFIX_AVAIL}"
        )
    ]


def test_advertise_without_a_usable_prefix_is_dropped_saying_so() -> None:
    client = make_client()
    solicit = started(client)

    client.receive(answer(solicit, ia_pd(((PREFIX_A, 8000, 7200),))), 0.01)

    assert drops(client) == [
        MessageDropped(Dhcpv6DropReason.NO_USABLE_PREFIX, "Advertise offers no usable prefix")
    ]


def test_reply_to_request_with_another_failure_is_dropped_with_its_status() -> None:
    client, request = requesting_client()
    failed = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_BINDING, ""))

    client.receive(answer(request, failed), 0.5)

    assert drops(client) == [
        MessageDropped(Dhcpv6DropReason.SERVER_STATUS, f"Reply with status {StatusCode.NO_BINDING}")
    ]
    assert client.state is ClientState.REQUESTING


def test_reply_to_request_without_a_usable_prefix_is_dropped_saying_so() -> None:
    client, request = requesting_client()

    client.receive(answer(request, ia_pd(((PREFIX_A, 8000, 7200),))), 0.5)

    assert drops(client) == [
        MessageDropped(Dhcpv6DropReason.NO_USABLE_PREFIX, "Reply to Request has no usable prefix")
    ]


@pytest.mark.parametrize("status", [StatusCode.UNSPEC_FAIL, StatusCode.USE_MULTICAST])
def test_reply_failing_as_a_whole_says_the_client_keeps_retransmitting(status: StatusCode) -> None:
    expected = MessageDropped(
        Dhcpv6DropReason.SERVER_STATUS,
        f"Reply with status {status}: retransmitting (already multicast)",
    )
    client, request = requesting_client()
    client.receive(answer(request, StatusCodeOption(status, "busy")), 0.5)
    renewer, renew = renewing_client()
    renewer.receive(answer(renew, StatusCodeOption(status, "busy"), ia_pd()), T1 + 1)

    assert drops(client) == [expected]
    assert drops(renewer) == [expected]
    assert renewer.state is ClientState.RENEWING


# --- Replies to Renew that say nothing usable ------------------------------------------


def test_reply_to_renew_with_another_failure_is_dropped_with_its_status() -> None:
    client, renew = renewing_client()
    failed = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, ""))

    client.receive(answer(renew, failed), T1 + 1)

    assert drops(client) == [
        MessageDropped(
            Dhcpv6DropReason.SERVER_STATUS, f"Reply with status {StatusCode.NO_PREFIX_AVAIL}"
        )
    ]


@pytest.mark.parametrize(
    "options",
    [pytest.param((), id="no IA_PD"), pytest.param((ia_pd(t1=3000, t2=2000),), id="T1 > T2")],
)
def test_reply_to_renew_without_a_usable_ia_pd_is_dropped_and_the_lease_kept(
    options: tuple[IaPdOption, ...],
) -> None:
    client, renew = renewing_client()
    lease = client.lease

    client.receive(answer(renew, *options), T1 + 1)

    assert drops(client) == [
        MessageDropped(
            Dhcpv6DropReason.NO_USABLE_PREFIX, "Reply to Renew/Rebind has no usable IA_PD"
        )
    ]
    assert client.lease == lease
    assert client.state is ClientState.RENEWING


def test_reply_to_renew_with_an_empty_ia_pd_is_dropped_and_the_lease_kept() -> None:
    client, renew = renewing_client()
    lease = client.lease

    client.receive(answer(renew, ia_pd(())), T1 + 1)

    assert drops(client) == [
        MessageDropped(
            Dhcpv6DropReason.NO_USABLE_PREFIX, "Reply to Renew/Rebind has no usable prefix"
        )
    ]
    assert client.lease == lease


def test_reply_to_renew_whose_only_prefix_is_invalid_keeps_the_lease() -> None:
    client, renew = renewing_client()

    client.receive(answer(renew, ia_pd(((PREFIX_A, 8000, 7200),))), T1 + 1)

    assert events_of(client, LeaseLost) == []
    assert client.lease is not None


def test_lease_records_the_iaid_after_request_and_after_renew() -> None:
    client, renew = renewing_client()
    lease = client.lease
    assert lease is not None
    assert lease.iaid == IAID

    client.receive(answer(renew, ia_pd()), T1 + 1)

    renewed = client.lease
    assert renewed is not None
    assert renewed.iaid == IAID


# --- the section 15 arithmetic for a fixed RAND -----------------------------------------


def test_solicit_timeouts_follow_the_formula_exactly_for_a_fixed_rand() -> None:
    client = make_client(QUARTER_ABOVE)
    first_solicit = started(client)

    timeline = [(0.0, first_solicit), *run_until(client, 20.0)]

    first = 1.0 + 0.1 * 0.25
    assert rts(timeline)[:3] == pytest.approx([first, first * 2.05, first * 2.05 * 2.05])


def test_no_prefix_available_backs_off_sixty_seconds_times_one_plus_rand_after_a_lease() -> None:
    # A lease was held (NoBinding on Renew, then the Request refused): the first wait is
    # the full NO_PREFIX_BACKOFF again, scaled by 1 + RAND.
    client = bound_client(QUARTER_ABOVE)
    client.advance(T1)
    renew = only_sent(client, MessageType.RENEW)
    no_binding = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_BINDING, ""))
    client.receive(answer(renew, no_binding), T1 + 1)
    request = only_sent(client, MessageType.REQUEST)
    refused = ia_pd((), t1=0, t2=0, status=StatusCodeOption(StatusCode.NO_PREFIX_AVAIL, "none"))

    client.receive(answer(request, refused), T1 + 2)

    (backing_off,) = events_of(client, NoPrefixAvailable)
    assert backing_off.retry_at == pytest.approx(T1 + 2 + 60.0 * 1.05)


def test_sol_max_rt_from_a_server_caps_later_solicit_exchanges_too() -> None:
    client = make_client()
    solicit = started(client)
    client.receive(answer(solicit, PreferenceOption(255), SolMaxRtOption(100), ia_pd()), 0.01)
    only_sent(client, MessageType.REQUEST)

    # The Request goes unanswered (REQ_MAX_RC transmissions), then Solicit starts over.
    timeline = run_until(client, 3000.0)

    solicits = [(t, m) for t, m in timeline if m.msg_type is MessageType.SOLICIT]
    assert len(solicits) > 10
    assert max(rts(solicits)) <= 100 * 1.1


# --- transaction ids -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draw", "transaction_id"),
    [(0.0, 0), (1 / 0x1000000, 1), (0.5, 0x800000), (math.nextafter(1.0, 0.0), 0xFFFFFF)],
)
def test_transaction_id_spans_24_bits_from_the_draw(draw: float, transaction_id: int) -> None:
    assert started(make_client(constant(draw))).transaction_id == transaction_id


@pytest.mark.parametrize(("draw", "second_id"), [(0.5, 0x800001), (math.nextafter(1.0, 0.0), 0)])
def test_same_draw_twice_gives_the_next_transaction_id_wrapping_at_24_bits(
    draw: float, second_id: int
) -> None:
    client = make_client(constant(draw))
    solicit = started(client)

    client.receive(answer(solicit, PreferenceOption(255), ia_pd()), 0.01)

    assert only_sent(client, MessageType.REQUEST).transaction_id == second_id


# --- timers that fall due together -----------------------------------------------------


def test_advance_acts_on_every_deadline_passed_not_only_the_first() -> None:
    # PREFIX_B runs out before T1; one advance past both drops it and starts the Renew.
    client, request = requesting_client()
    short = (PREFIX_B, 100, 200)
    client.receive(answer(request, ia_pd(((PREFIX_A, PREFERRED, VALID), short))), 0.0)
    sent(client)
    client.next_events()

    client.advance(T1 + 5)

    assert [m.msg_type for m in sent(client)] == [MessageType.RENEW]
    lease = client.lease
    assert lease is not None
    assert [held.prefix for held in lease.prefixes] == [PREFIX_A]
