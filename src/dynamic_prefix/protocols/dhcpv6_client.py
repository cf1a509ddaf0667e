"""A sans-IO DHCPv6 prefix delegation client (RFC 8415), driven by bytes and the time.

`PdClient` never reads a clock, opens a socket or draws its own random numbers: the caller
passes ``now`` (seconds, any monotonic origin) to every call, feeds received datagrams to
`PdClient.receive`, calls `PdClient.advance` when `PdClient.next_deadline` is reached, sends
every datagram from `PdClient.datagrams_to_send` to ``ff02::1:2`` port 547 and acts on the
facts from `PdClient.next_events`. Randomness (transaction ids, the retransmission RAND)
comes from the injected ``rng``, so every path runs deterministically in tests.

Behaviour, with the RFC 8415 sections it follows:

- Solicit carries one IA_PD (no IA_NA), Elapsed Time and an Option Request for SOL_MAX_RT
  (18.2.1, 21.24). The IA_PD holds one hint when configured (18.2.1, 21.22): the prefix of
  ``hint`` (a restarted client asks for the delegation it held), else ``::/len`` for
  ``requested_prefix_length``; hints carry lifetimes 0, which servers ignore. The first
  Solicit on the interface is delayed by up to SOL_MAX_DELAY (18.2.1).
- Advertises are collected until the first retransmission timeout ends; the highest
  preference wins, 255 is taken at once, and after the first timeout the first usable
  Advertise is taken. Advertises without a usable prefix are ignored (18.2.9). The Request
  asks for the prefixes of the chosen Advertise, lifetimes 0: the hinted one when the
  server honoured the hint.
- Retransmission follows section 15 with the IRT/MRT/MRC/MRD of section 7.6 for each
  message type: Renew runs until T2, Rebind until the valid lifetimes end (18.2.4, 18.2.5).
  `RenewStarted` says T1 passed and the Renew went out, `RebindStarted` that T2 passed.
- The lease is lost only when the valid lifetime of every prefix has ended.
- T1/T2 of 0 are chosen as 0.5 and 0.8 of the shortest preferred lifetime (14.2, 21.21);
  an IA_PD with T1 > T2 is ignored (21.21); an IA Prefix whose preferred lifetime exceeds
  its valid lifetime (21.22), or with host bits set, is ignored; a valid lifetime of 0
  removes the prefix. Prefixes a Renew/Rebind Reply leaves out expire on their own.
- With several prefixes, the one preferred longest is the lease's `Lease.primary`;
  events name it, and `DelegationChanged` is emitted whenever it changes.
- NoPrefixAvail in reply to a Request backs off, then solicits again. NoBinding in reply
  to a Renew or Rebind sends a Request to the server that answered (18.2.10.1), keeping
  the old prefix until it is replaced or expires. UnspecFail and UseMulticast leave the
  exchange retransmitting (18.2.10; every message is already multicast).
- Reconfigure is never accepted: no Reconfigure Accept is sent and Reconfigure messages
  are dropped.
- `PdClient.stop` releases the lease (18.2.7) only when asked to (``release=True``, or
  ``release_on_stop`` in the config, False by default): a client stopped to be restarted
  keeps its binding on the server, so the next client with the same DUID and IAID is
  given the same prefix back.

Received packets that are malformed or not for this client are dropped with a `Dhcpv6DropReason`
(counted in `PdClient.drop_counts` and reported as `MessageDropped`); `receive` never raises.

The parts: `dynamic_prefix.protocols.dhcpv6_events` (config, states, lease and events),
`dynamic_prefix.protocols.dhcpv6_timing` (section 7.6 and 15 retransmission),
`dynamic_prefix.protocols.dhcpv6_reply` (reading what a server sent) and this module, the
state machine, which re-exports the names callers use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from ipaddress import IPv6Address

from dynamic_prefix.protocols import dhcpv6_reply as reply
from dynamic_prefix.protocols.dhcpv6 import (
    ClientIdOption,
    Dhcpv6ParseError,
    ElapsedTimeOption,
    IaPdOption,
    IaPrefixOption,
    Message,
    MessageType,
    Option,
    OptionCode,
    OptionRequestOption,
    ServerIdOption,
    SolMaxRtOption,
    StatusCode,
    build_message,
    parse_message,
)
from dynamic_prefix.protocols.dhcpv6_events import (
    BindingRejected,
    ClientEvent,
    ClientState,
    ClientStopped,
    DelegatedPrefix,
    DelegationChanged,
    Dhcpv6DropReason,
    ExchangeTimedOut,
    Lease,
    LeaseAcquired,
    LeaseLossReason,
    LeaseLost,
    LeaseReleased,
    LeaseRenewed,
    MessageDropped,
    NoPrefixAvailable,
    PdClientConfig,
    PdClientUsageError,
    RebindStarted,
    RenewStarted,
    delegation_changed,
    lease_installed,
    rebind_started,
    renew_started,
)
from dynamic_prefix.protocols.dhcpv6_timing import (
    NO_PREFIX_BACKOFF,
    REB_MAX_RT,
    REB_TIMEOUT,
    REL_MAX_RC,
    REL_TIMEOUT,
    REN_MAX_RT,
    REN_TIMEOUT,
    REQ_MAX_RC,
    REQ_MAX_RT,
    REQ_TIMEOUT,
    RETRANSMISSION,
    SOL_MAX_DELAY,
    SOL_MAX_RT,
    SOL_MAX_RT_RANGE,
    SOL_TIMEOUT,
    Exchange,
    next_backoff,
    rand,
)

__all__ = [
    "ALL_DHCP_RELAY_AGENTS_AND_SERVERS",
    "CLIENT_PORT",
    "NO_PREFIX_BACKOFF",
    "REB_MAX_RT",
    "REB_TIMEOUT",
    "REL_MAX_RC",
    "REL_TIMEOUT",
    "REN_MAX_RT",
    "REN_TIMEOUT",
    "REQ_MAX_RC",
    "REQ_MAX_RT",
    "REQ_TIMEOUT",
    "SERVER_PORT",
    "SOL_MAX_DELAY",
    "SOL_MAX_RT",
    "SOL_TIMEOUT",
    "BindingRejected",
    "ClientEvent",
    "ClientState",
    "ClientStopped",
    "DelegatedPrefix",
    "DelegationChanged",
    "Dhcpv6DropReason",
    "ExchangeTimedOut",
    "Lease",
    "LeaseAcquired",
    "LeaseLossReason",
    "LeaseLost",
    "LeaseReleased",
    "LeaseRenewed",
    "MessageDropped",
    "NoPrefixAvailable",
    "PdClient",
    "PdClientConfig",
    "PdClientUsageError",
    "RebindStarted",
    "RenewStarted",
]

ALL_DHCP_RELAY_AGENTS_AND_SERVERS = IPv6Address("ff02::1:2")
"""Where every datagram from `PdClient.datagrams_to_send` goes (RFC 8415 section 7.1)."""
SERVER_PORT = 547
CLIENT_PORT = 546

# The server preference that means "take this Advertise without waiting" (section 18.2.9).
_TAKE_AT_ONCE_PREFERENCE = 255
_TIMER_STEPS_PER_CALL = 64


# --- The client ------------------------------------------------------------------------


class PdClient:
    """One IA_PD for one interface. See the module docstring for the behaviour."""

    def __init__(self, config: PdClientConfig) -> None:
        self._config = config
        self._state = ClientState.IDLE
        self._lease: Lease | None = None
        self._exchange: Exchange | None = None
        self._offers: list[reply.Offer] = []
        self._sol_max_rt = SOL_MAX_RT
        self._backoff = 0.0
        self._backoff_until = math.inf
        self._outgoing: list[bytes] = []
        self._events: list[ClientEvent] = []
        self._drops: dict[Dhcpv6DropReason, int] = {}
        self._last_transaction_id = -1

    # Read-only views.

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def lease(self) -> Lease | None:
        return self._lease

    @property
    def drop_counts(self) -> Mapping[Dhcpv6DropReason, int]:
        """How many received datagrams were dropped, per reason."""
        return dict(self._drops)

    # The API.

    def start(self, now: float) -> None:
        """Begin soliciting; the first Solicit waits up to ``solicit_max_delay`` seconds."""
        if self._state is not ClientState.IDLE:
            raise PdClientUsageError(f"start() in state {self._state.value}; start once")
        delay = self._config.solicit_max_delay * self._config.rng()
        self._start_solicit(now, first_at=now + delay)

    def receive(self, data: bytes, now: float) -> None:
        """Handle one datagram received on port 546. Never raises for bad input."""
        self._run_timers(now)
        try:
            message = parse_message(data)
        except Dhcpv6ParseError as exc:
            self._drop(Dhcpv6DropReason.MALFORMED, str(exc))
            return
        accepted = self._accept(message)
        if accepted is None:
            return
        exchange, server_id = accepted
        self._apply_sol_max_rt(message)
        if exchange.kind is MessageType.SOLICIT:
            self._on_advertise(message, server_id, exchange, now)
        elif exchange.kind is MessageType.REQUEST:
            self._on_request_reply(message, server_id, now)
        elif exchange.kind is MessageType.RELEASE:
            self._finish_stop(release_acknowledged=True)
        else:
            self._on_extend_reply(message, server_id, now)

    def advance(self, now: float) -> None:
        """Act on every deadline at or before ``now``."""
        self._run_timers(now)

    def stop(self, now: float, *, release: bool | None = None) -> None:
        """Stop; with a lease and ``release`` (None: ``release_on_stop``), release it first
        (section 18.2.7). Without, nothing is sent: the server keeps the binding and
        `lease` stays readable."""
        self._run_timers(now)
        if self._state in (ClientState.RELEASING, ClientState.STOPPED):
            return
        lease = self._lease
        self._exchange = None
        self._offers.clear()
        if release is None:
            release = self._config.release_on_stop
        if lease is None or not release:
            self._finish_stop(release_acknowledged=None)
            return
        self._lease = None
        self._events.append(LeaseReleased(lease.primary.prefix, lease.server_id))
        self._state = ClientState.RELEASING
        self._begin(
            MessageType.RELEASE,
            now,
            options=(ServerIdOption(lease.server_id), self._ia_for(lease.prefixes)),
            server_id=lease.server_id,
        )

    def datagrams_to_send(self) -> list[bytes]:
        """Drain the datagrams to send to ff02::1:2 port 547, oldest first."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def next_events(self) -> list[ClientEvent]:
        """Drain the facts that happened since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        """When `advance` must next be called, or None if nothing is scheduled."""
        candidates: list[float] = []
        if self._exchange is not None:
            candidates.append(self._exchange.deadline)
        if self._lease is not None and self._holds_lease_timers():
            candidates.append(min(held.valid_until for held in self._lease.prefixes))
            if self._state is ClientState.BOUND:
                candidates.append(self._lease.renew_at)
        if self._state is ClientState.BACKING_OFF:
            candidates.append(self._backoff_until)
        finite = [candidate for candidate in candidates if candidate != math.inf]
        return min(finite) if finite else None

    # Timers.

    def _holds_lease_timers(self) -> bool:
        return self._state not in (ClientState.RELEASING, ClientState.STOPPED)

    def _run_timers(self, now: float) -> None:
        for _ in range(_TIMER_STEPS_PER_CALL):
            if not self._fire_one(now):
                return

    def _fire_one(self, now: float) -> bool:
        lease = self._lease
        if (
            lease is not None
            and self._holds_lease_timers()
            and min(held.valid_until for held in lease.prefixes) <= now
        ):
            self._expire_prefixes(lease, now)
            return True
        exchange = self._exchange
        if exchange is not None and exchange.deadline <= now:
            self._on_exchange_timer(exchange, now)
            return True
        if lease is not None and self._state is ClientState.BOUND and lease.renew_at <= now:
            self._start_renew(lease, now)
            return True
        if self._state is ClientState.BACKING_OFF and self._backoff_until <= now:
            self._start_solicit(now, first_at=now)
            return True
        return False

    def _on_exchange_timer(self, exchange: Exchange, now: float) -> None:
        if exchange.transmissions == 0:
            self._transmit(exchange, now)
        elif exchange.exhausted(now):
            self._exchange_failed(exchange, now)
        elif exchange.kind is MessageType.SOLICIT and self._offers:
            best = reply.best_offer(self._offers)
            self._start_request(best.server_id, best.prefixes, now)
        else:
            self._transmit(exchange, now)

    def _exchange_failed(self, exchange: Exchange, now: float) -> None:
        self._exchange = None
        self._events.append(ExchangeTimedOut(exchange.kind, exchange.transmissions))
        lease = self._lease
        if exchange.kind is MessageType.RELEASE:
            self._finish_stop(release_acknowledged=False)
        elif exchange.kind is MessageType.RENEW and lease is not None:
            self._start_rebind(lease, now)
        elif exchange.kind is MessageType.REBIND and lease is not None:
            self._lose_lease(lease, LeaseLossReason.VALID_LIFETIME_EXPIRED, now)
        else:
            self._start_solicit(now, first_at=now)

    def _expire_prefixes(self, lease: Lease, now: float) -> None:
        alive = tuple(held for held in lease.prefixes if held.valid_until > now)
        if not alive:
            self._lose_lease(lease, LeaseLossReason.VALID_LIFETIME_EXPIRED, now)
            return
        remaining = replace(lease, prefixes=alive)
        self._lease = remaining
        if remaining.primary.prefix != lease.primary.prefix:
            self._events.append(delegation_changed(lease, remaining))

    def _lose_lease(self, lease: Lease, reason: LeaseLossReason, now: float) -> None:
        self._lease = None
        self._events.append(LeaseLost(lease.primary.prefix, reason))
        if self._state in (ClientState.BOUND, ClientState.RENEWING, ClientState.REBINDING):
            self._start_solicit(now, first_at=now)

    # Starting exchanges.

    def _start_solicit(self, now: float, *, first_at: float) -> None:
        self._state = ClientState.SOLICITING
        self._offers.clear()
        ia = IaPdOption(self._config.iaid, 0, 0, self._solicit_hints())
        self._begin(MessageType.SOLICIT, now, options=(ia,), server_id=None, first_at=first_at)

    def _solicit_hints(self) -> tuple[IaPrefixOption, ...]:
        """The prefix hint, else the length hint, with lifetimes 0 (sections 18.2.1, 21.22)."""
        hint, length = self._config.hint, self._config.requested_prefix_length
        if hint is not None and length in (None, hint.prefixlen):
            return (IaPrefixOption(0, 0, hint.prefixlen, hint.network_address),)
        if length is not None:
            return (IaPrefixOption(0, 0, length, IPv6Address(0)),)
        return ()

    def _start_request(
        self, server_id: bytes, prefixes: tuple[IaPrefixOption, ...], now: float
    ) -> None:
        self._state = ClientState.REQUESTING
        self._offers.clear()
        hints = tuple(IaPrefixOption(0, 0, held.prefix_length, held.address) for held in prefixes)
        ia = IaPdOption(self._config.iaid, 0, 0, hints)
        self._begin(
            MessageType.REQUEST, now, options=(ServerIdOption(server_id), ia), server_id=server_id
        )

    def _start_renew(self, lease: Lease, now: float) -> None:
        if lease.rebind_at <= now:
            self._start_rebind(lease, now)
            return
        self._state = ClientState.RENEWING
        self._events.append(renew_started(lease))
        self._begin(
            MessageType.RENEW,
            now,
            options=(ServerIdOption(lease.server_id), self._ia_for(lease.prefixes)),
            server_id=lease.server_id,
            mrd_end=lease.rebind_at,
        )

    def _start_rebind(self, lease: Lease, now: float) -> None:
        self._state = ClientState.REBINDING
        self._events.append(rebind_started(lease))
        self._begin(
            MessageType.REBIND,
            now,
            options=(self._ia_for(lease.prefixes),),
            server_id=None,
            mrd_end=lease.valid_until,
        )

    def _ia_for(self, prefixes: tuple[DelegatedPrefix, ...]) -> IaPdOption:
        # Lifetimes and T1/T2 are sent as 0: the server ignores them (section 18.2.4).
        return IaPdOption(self._config.iaid, 0, 0, reply.hints_for(prefixes))

    def _begin(
        self,
        kind: MessageType,
        now: float,
        *,
        options: tuple[Option, ...],
        server_id: bytes | None,
        mrd_end: float = math.inf,
        first_at: float | None = None,
    ) -> None:
        if kind is not MessageType.RELEASE:
            options = (*options, OptionRequestOption((OptionCode.SOL_MAX_RT,)))
        parameters = RETRANSMISSION[kind]
        mrt = self._sol_max_rt if kind is MessageType.SOLICIT else parameters.mrt
        exchange = Exchange(
            kind=kind,
            transaction_id=self._new_transaction_id(),
            options=options,
            server_id=server_id,
            mrt=mrt,
            mrc=parameters.mrc,
            mrd_end=mrd_end,
            next_at=now if first_at is None else first_at,
        )
        self._exchange = exchange
        if exchange.next_at <= now:
            self._transmit(exchange, now)

    def _new_transaction_id(self) -> int:
        """A random id, never the previous exchange's: a late answer to it must not match."""
        transaction_id = int(self._config.rng() * 0x1000000) & 0xFFFFFF
        if transaction_id == self._last_transaction_id:
            transaction_id = (transaction_id + 1) & 0xFFFFFF
        self._last_transaction_id = transaction_id
        return transaction_id

    def _transmit(self, exchange: Exchange, now: float) -> None:
        """Send (or resend) and draw the next RT (RFC 8415 section 15)."""
        exchange.draw_timeout(now, self._config.rng)
        message = Message(
            exchange.kind,
            exchange.transaction_id,
            (
                ClientIdOption(self._config.duid),
                ElapsedTimeOption(exchange.elapsed_hundredths(now)),
                *exchange.options,
            ),
        )
        self._outgoing.append(build_message(message))
        exchange.sent(now)

    # Receiving.

    def _drop(self, reason: Dhcpv6DropReason, detail: str) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1
        self._events.append(MessageDropped(reason, detail))

    def _accept(self, message: Message) -> tuple[Exchange, bytes] | None:
        """The exchange ``message`` answers and the answering server's DUID, or None after
        recording why the message was dropped (RFC 8415 section 16)."""
        if message.msg_type is MessageType.RECONFIGURE:
            self._drop(Dhcpv6DropReason.RECONFIGURE_IGNORED, "Reconfigure is not accepted")
            return None
        exchange = self._exchange
        if exchange is None or exchange.transmissions == 0:
            self._drop(
                Dhcpv6DropReason.NOTHING_OUTSTANDING,
                f"{message.msg_type.name} while {self._state.value} with nothing sent",
            )
            return None
        answer = reply.check_answer(message, exchange, self._config.duid)
        if isinstance(answer, reply.Drop):
            self._drop(answer.reason, answer.detail)
            return None
        return exchange, answer

    def _apply_sol_max_rt(self, message: Message) -> None:
        """A valid SOL_MAX_RT replaces ours, even in an ignored Advertise (section 18.2.9)."""
        option = message.find(SolMaxRtOption)
        if option is None or not SOL_MAX_RT_RANGE[0] <= option.seconds <= SOL_MAX_RT_RANGE[1]:
            return
        self._sol_max_rt = float(option.seconds)
        if self._exchange is not None and self._exchange.kind is MessageType.SOLICIT:
            self._exchange.mrt = self._sol_max_rt

    def _on_advertise(
        self, message: Message, server_id: bytes, exchange: Exchange, now: float
    ) -> None:
        ia = reply.our_ia(message, self._config.iaid)
        refusal = reply.refusal_of(message, ia)
        if refusal is not None:
            self._drop(Dhcpv6DropReason.SERVER_STATUS, f"Advertise with status {refusal.status}")
            return
        prefixes = reply.usable_prefixes(ia) if ia is not None and reply.timers_valid(ia) else ()
        if not prefixes:
            self._drop(Dhcpv6DropReason.NO_USABLE_PREFIX, "Advertise offers no usable prefix")
            return
        preference = reply.server_preference(message)
        collecting = exchange.transmissions == 1 and now < exchange.next_at
        if preference == _TAKE_AT_ONCE_PREFERENCE or not collecting:
            self._start_request(server_id, prefixes, now)
            return
        self._offers.append(reply.Offer(server_id, preference, prefixes, order=len(self._offers)))

    def _on_request_reply(self, message: Message, server_id: bytes, now: float) -> None:
        ia = reply.our_ia(message, self._config.iaid)
        if not self._survives_message_status(message):
            return
        refusal = reply.refusal_of(message, ia)
        if refusal is not None and refusal.status == StatusCode.NO_PREFIX_AVAIL:
            self._back_off(server_id, refusal.message, now)
            return
        if refusal is not None:
            self._drop(Dhcpv6DropReason.SERVER_STATUS, f"Reply with status {refusal.status}")
            return
        if ia is None or not reply.timers_valid(ia) or not reply.usable_prefixes(ia):
            self._drop(Dhcpv6DropReason.NO_USABLE_PREFIX, "Reply to Request has no usable prefix")
            return
        prefixes = tuple(
            reply.delegated_prefix(option, now) for option in reply.usable_prefixes(ia)
        )
        self._install(reply.lease_from(server_id, self._config.iaid, ia, prefixes, now))

    def _on_extend_reply(self, message: Message, server_id: bytes, now: float) -> None:
        """A Reply to Renew or Rebind (section 18.2.10.1)."""
        lease = self._lease
        if lease is None or not self._survives_message_status(message):
            return
        ia = reply.our_ia(message, self._config.iaid)
        refusal = reply.refusal_of(message, ia)
        if refusal is not None and refusal.status == StatusCode.NO_BINDING:
            self._events.append(BindingRejected(lease.primary.prefix, server_id, refusal.message))
            self._start_request(server_id, reply.hints_for(lease.prefixes), now)
            return
        if refusal is not None:
            self._drop(Dhcpv6DropReason.SERVER_STATUS, f"Reply with status {refusal.status}")
            return
        if ia is None or not reply.timers_valid(ia):
            self._drop(
                Dhcpv6DropReason.NO_USABLE_PREFIX, "Reply to Renew/Rebind has no usable IA_PD"
            )
            return
        prefixes = reply.extended_prefixes(lease.prefixes, ia, now)
        if prefixes is None:
            self._drop(
                Dhcpv6DropReason.NO_USABLE_PREFIX, "Reply to Renew/Rebind has no usable prefix"
            )
            return
        if not prefixes:
            self._lose_lease(lease, LeaseLossReason.WITHDRAWN_BY_SERVER, now)
            return
        self._install(reply.lease_from(server_id, self._config.iaid, ia, prefixes, now))

    def _survives_message_status(self, message: Message) -> bool:
        """UnspecFail and UseMulticast for the whole message: keep retransmitting."""
        status = reply.status_of(message)
        if status is not None and status.status in (
            StatusCode.UNSPEC_FAIL,
            StatusCode.USE_MULTICAST,
        ):
            self._drop(
                Dhcpv6DropReason.SERVER_STATUS,
                f"Reply with status {status.status}: retransmitting (already multicast)",
            )
            return False
        return True

    def _install(self, lease: Lease) -> None:
        old = self._lease
        self._lease = lease
        self._exchange = None
        self._state = ClientState.BOUND
        self._backoff = 0.0
        self._events.append(lease_installed(old, lease))

    def _back_off(self, server_id: bytes, text: str, now: float) -> None:
        self._backoff = next_backoff(self._backoff, self._sol_max_rt)
        self._backoff_until = now + self._backoff * (1.0 + rand(self._config.rng))
        self._exchange = None
        self._state = ClientState.BACKING_OFF
        self._events.append(NoPrefixAvailable(server_id, text, self._backoff_until))

    def _finish_stop(self, *, release_acknowledged: bool | None) -> None:
        self._exchange = None
        self._state = ClientState.STOPPED
        self._events.append(ClientStopped(release_acknowledged))
