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
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv6Address, IPv6Network

from dynamic_prefix.protocols.dhcpv6 import (
    INFINITY,
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
    PreferenceOption,
    ServerIdOption,
    SolMaxRtOption,
    StatusCode,
    StatusCodeOption,
    build_message,
    parse_message,
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

# Transmission and retransmission parameters, RFC 8415 section 7.6 (seconds).
SOL_MAX_DELAY = 1.0
SOL_TIMEOUT = 1.0
SOL_MAX_RT = 3600.0
REQ_TIMEOUT = 1.0
REQ_MAX_RT = 30.0
REQ_MAX_RC = 10
REN_TIMEOUT = 10.0
REN_MAX_RT = 600.0
REB_TIMEOUT = 10.0
REB_MAX_RT = 600.0
REL_TIMEOUT = 1.0
REL_MAX_RC = 4

# Bounds a server may set SOL_MAX_RT to; other values are ignored (RFC 8415 section 21.24).
_SOL_MAX_RT_RANGE = (60, 86400)
# The server preference that means "take this Advertise without waiting" (section 18.2.9).
_TAKE_AT_ONCE_PREFERENCE = 255
# Local policy: the first wait after NoPrefixAvail; doubles on each refusal in a row,
# capped by SOL_MAX_RT.
NO_PREFIX_BACKOFF = 60.0
# Chosen T1/T2 as fractions of the shortest preferred lifetime (RFC 8415 section 14.2).
_T1_FRACTION = 0.5
_T2_FRACTION = 0.8
_MAX_ELAPSED_HUNDREDTHS = 0xFFFF
_TIMER_STEPS_PER_CALL = 64


class ClientState(enum.Enum):
    """Where the client is; one exchange at most is running in each state."""

    IDLE = "idle"
    SOLICITING = "soliciting"
    REQUESTING = "requesting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    BACKING_OFF = "backing-off"
    RELEASING = "releasing"
    STOPPED = "stopped"


class Dhcpv6DropReason(enum.StrEnum):
    """Why a received datagram changed nothing; stable names for counters and logs."""

    MALFORMED = "malformed"
    RECONFIGURE_IGNORED = "reconfigure-ignored"
    NOTHING_OUTSTANDING = "nothing-outstanding"
    UNEXPECTED_MESSAGE_TYPE = "unexpected-message-type"
    WRONG_TRANSACTION_ID = "wrong-transaction-id"
    MISSING_CLIENT_ID = "missing-client-id"
    WRONG_CLIENT_ID = "wrong-client-id"
    MISSING_SERVER_ID = "missing-server-id"
    WRONG_SERVER_ID = "wrong-server-id"
    NO_USABLE_PREFIX = "no-usable-prefix"
    SERVER_STATUS = "server-status"


class LeaseLossReason(enum.StrEnum):
    """Why a held lease ended without being released."""

    VALID_LIFETIME_EXPIRED = "valid-lifetime-expired"
    WITHDRAWN_BY_SERVER = "withdrawn-by-server"


class PdClientUsageError(RuntimeError):
    """A method called in a state where it makes no sense (a bug in the caller)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PdClientConfig:
    """What the client needs to know; ``duid`` and ``iaid`` must be stable across restarts.

    ``rng`` returns uniform floats in [0, 1). ``solicit_max_delay`` is SOL_MAX_DELAY, the
    random wait before the first Solicit; tests set it to 0. ``hint`` is the prefix to ask
    for (the one held before a restart); a hint of another length than
    ``requested_prefix_length`` is not sent, the length asked for wins.
    ``release_on_stop`` is whether `PdClient.stop` releases when not told.
    """

    duid: bytes
    iaid: int
    rng: Callable[[], float]
    requested_prefix_length: int | None = None
    hint: IPv6Network | None = None
    release_on_stop: bool = False
    solicit_max_delay: float = SOL_MAX_DELAY

    def __post_init__(self) -> None:
        if not 3 <= len(self.duid) <= 130:
            raise ValueError(f"a DUID is 3 to 130 bytes long, this one is {len(self.duid)}")
        if not 0 <= self.iaid <= 0xFFFFFFFF:
            raise ValueError(f"IAID {self.iaid} is not a 32-bit value")
        length = self.requested_prefix_length
        if length is not None and not 1 <= length <= 128:
            raise ValueError(f"requested prefix length {length} is not between 1 and 128")
        if self.hint is not None and self.hint.prefixlen == 0:
            raise ValueError("a hint of prefix length 0 asks for nothing (RFC 8415 21.22)")
        if not self.solicit_max_delay >= 0:
            raise ValueError(f"solicit_max_delay {self.solicit_max_delay} is negative")


@dataclass(frozen=True, slots=True)
class DelegatedPrefix:
    """One delegated prefix with absolute deadlines (``math.inf`` for an infinite lifetime)."""

    prefix: IPv6Network
    preferred_until: float
    valid_until: float


@dataclass(frozen=True, slots=True)
class Lease:
    """The binding for our IA_PD: who gave it, its prefixes, and when to renew and rebind."""

    server_id: bytes
    iaid: int
    prefixes: tuple[DelegatedPrefix, ...]
    renew_at: float
    rebind_at: float

    @property
    def primary(self) -> DelegatedPrefix:
        """The prefix to use: the one preferred longest, then valid longest, then first."""
        return max(self.prefixes, key=lambda held: (held.preferred_until, held.valid_until))

    @property
    def valid_until(self) -> float:
        """When the last prefix stops being valid; the lease is lost then."""
        return max(held.valid_until for held in self.prefixes)


# --- Events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseAcquired:
    """A prefix was delegated to us while we held none."""

    prefix: IPv6Network
    preferred_until: float
    valid_until: float
    server_id: bytes


@dataclass(frozen=True, slots=True)
class LeaseRenewed:
    """A Renew, Rebind or Request extended the prefix we already use."""

    prefix: IPv6Network
    preferred_until: float
    valid_until: float
    server_id: bytes


@dataclass(frozen=True, slots=True)
class RenewStarted:
    """T1 passed: a Renew for the lease went to ``server_id``, which granted it; any
    server is asked from ``rebind_at`` (T2) on."""

    prefix: IPv6Network
    preferred_until: float
    valid_until: float
    server_id: bytes
    rebind_at: float


@dataclass(frozen=True, slots=True)
class RebindStarted:
    """T2 passed with no Reply from ``server_id``: a Rebind for the lease went to any
    server, retransmitted until the valid lifetimes end."""

    prefix: IPv6Network
    preferred_until: float
    valid_until: float
    server_id: bytes


@dataclass(frozen=True, slots=True)
class DelegationChanged:
    """The prefix to use is now ``new``; ``old`` may stay valid until its lifetime ends."""

    old: IPv6Network
    new: IPv6Network
    preferred_until: float
    valid_until: float
    server_id: bytes


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """No delegated prefix is valid any more; the client is soliciting again."""

    prefix: IPv6Network
    reason: LeaseLossReason


@dataclass(frozen=True, slots=True)
class LeaseReleased:
    """We gave the lease back on stop and stopped using ``prefix``."""

    prefix: IPv6Network
    server_id: bytes


@dataclass(frozen=True, slots=True)
class BindingRejected:
    """The server answered a Renew or Rebind with NoBinding; a Request for a new binding
    has been sent to it. ``prefix`` stays usable until it is replaced or expires."""

    prefix: IPv6Network
    server_id: bytes
    message: str


@dataclass(frozen=True, slots=True)
class NoPrefixAvailable:
    """The chosen server refused our Request with NoPrefixAvail; Solicit resumes at
    ``retry_at``."""

    server_id: bytes
    message: str
    retry_at: float


@dataclass(frozen=True, slots=True)
class ExchangeTimedOut:
    """An exchange ended unanswered after ``transmissions`` sends (MRC or MRD reached)."""

    message_type: MessageType
    transmissions: int


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """A received datagram was ignored."""

    reason: Dhcpv6DropReason
    detail: str


@dataclass(frozen=True, slots=True)
class ClientStopped:
    """The client is stopped. ``release_acknowledged`` is None when nothing was released."""

    release_acknowledged: bool | None


ClientEvent = (
    LeaseAcquired
    | LeaseRenewed
    | RenewStarted
    | RebindStarted
    | DelegationChanged
    | LeaseLost
    | LeaseReleased
    | BindingRejected
    | NoPrefixAvailable
    | ExchangeTimedOut
    | MessageDropped
    | ClientStopped
)


# --- Internals -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Retransmission:
    """IRT, MRT and MRC of one message type (0 means "no limit" for MRT and MRC)."""

    irt: float
    mrt: float
    mrc: int


_RETRANSMISSION: dict[MessageType, _Retransmission] = {
    MessageType.SOLICIT: _Retransmission(SOL_TIMEOUT, SOL_MAX_RT, 0),
    MessageType.REQUEST: _Retransmission(REQ_TIMEOUT, REQ_MAX_RT, REQ_MAX_RC),
    MessageType.RENEW: _Retransmission(REN_TIMEOUT, REN_MAX_RT, 0),
    MessageType.REBIND: _Retransmission(REB_TIMEOUT, REB_MAX_RT, 0),
    MessageType.RELEASE: _Retransmission(REL_TIMEOUT, 0.0, REL_MAX_RC),
}


@dataclass(slots=True)
class _Exchange:
    """One client-initiated exchange and its retransmission state (RFC 8415 section 15)."""

    kind: MessageType
    transaction_id: int
    options: tuple[Option, ...]  # everything but Client ID and Elapsed Time
    server_id: bytes | None  # the server that must answer, None for any
    mrt: float
    mrc: int
    mrd_end: float
    next_at: float  # the next transmission, or the end of the current RT
    started_at: float = 0.0
    rt: float = 0.0
    transmissions: int = 0

    @property
    def deadline(self) -> float:
        return min(self.next_at, self.mrd_end)


@dataclass(frozen=True, slots=True)
class _Offer:
    """A usable Advertise seen while collecting; ``order`` breaks preference ties."""

    server_id: bytes
    preference: int
    prefixes: tuple[IaPrefixOption, ...]
    order: int


def _lifetime(seconds: int) -> float:
    return math.inf if seconds == INFINITY else float(seconds)


def _usable_prefixes(ia: IaPdOption) -> tuple[IaPrefixOption, ...]:
    """IA Prefixes with a nonzero valid lifetime that a client may use (section 21.22)."""
    return tuple(
        option
        for option in ia.find_all(IaPrefixOption)
        if _acceptable(option) and option.valid_lifetime > 0
    )


def _acceptable(option: IaPrefixOption) -> bool:
    """Preferred not beyond valid, and no host bits set."""
    return option.preferred_lifetime <= option.valid_lifetime and not option.has_host_bits


def _status_of(options_owner: Message | IaPdOption) -> StatusCodeOption | None:
    return options_owner.find(StatusCodeOption)


# --- The client ------------------------------------------------------------------------


class PdClient:
    """One IA_PD for one interface. See the module docstring for the behaviour."""

    def __init__(self, config: PdClientConfig) -> None:
        self._config = config
        self._state = ClientState.IDLE
        self._lease: Lease | None = None
        self._exchange: _Exchange | None = None
        self._offers: list[_Offer] = []
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

    def _on_exchange_timer(self, exchange: _Exchange, now: float) -> None:
        if exchange.transmissions == 0:
            self._transmit(exchange, now)
        elif now >= exchange.mrd_end or (exchange.mrc and exchange.transmissions >= exchange.mrc):
            self._exchange_failed(exchange, now)
        elif exchange.kind is MessageType.SOLICIT and self._offers:
            best = max(self._offers, key=lambda offer: (offer.preference, -offer.order))
            self._start_request(best.server_id, best.prefixes, now)
        else:
            self._transmit(exchange, now)

    def _exchange_failed(self, exchange: _Exchange, now: float) -> None:
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
            self._events.append(self._changed(lease, remaining))

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
        primary = lease.primary
        self._events.append(
            RenewStarted(
                primary.prefix,
                primary.preferred_until,
                primary.valid_until,
                lease.server_id,
                lease.rebind_at,
            )
        )
        self._begin(
            MessageType.RENEW,
            now,
            options=(ServerIdOption(lease.server_id), self._ia_for(lease.prefixes)),
            server_id=lease.server_id,
            mrd_end=lease.rebind_at,
        )

    def _start_rebind(self, lease: Lease, now: float) -> None:
        self._state = ClientState.REBINDING
        primary = lease.primary
        self._events.append(
            RebindStarted(
                primary.prefix, primary.preferred_until, primary.valid_until, lease.server_id
            )
        )
        self._begin(
            MessageType.REBIND,
            now,
            options=(self._ia_for(lease.prefixes),),
            server_id=None,
            mrd_end=lease.valid_until,
        )

    def _ia_for(self, prefixes: tuple[DelegatedPrefix, ...]) -> IaPdOption:
        # Lifetimes and T1/T2 are sent as 0: the server ignores them (section 18.2.4).
        hints = tuple(
            IaPrefixOption(0, 0, held.prefix.prefixlen, held.prefix.network_address)
            for held in prefixes
        )
        return IaPdOption(self._config.iaid, 0, 0, hints)

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
        parameters = _RETRANSMISSION[kind]
        mrt = self._sol_max_rt if kind is MessageType.SOLICIT else parameters.mrt
        exchange = _Exchange(
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

    def _transmit(self, exchange: _Exchange, now: float) -> None:
        """Send (or resend) and draw the next RT (RFC 8415 section 15)."""
        if exchange.transmissions == 0:
            exchange.started_at = now
            irt = _RETRANSMISSION[exchange.kind].irt
            if exchange.kind is MessageType.SOLICIT:
                # The first Solicit RT must be strictly greater than IRT (section 18.2.1).
                exchange.rt = irt + 0.1 * (1.0 - self._config.rng()) * irt
            else:
                exchange.rt = irt + self._rand() * irt
        else:
            exchange.rt = 2 * exchange.rt + self._rand() * exchange.rt
        if exchange.mrt and exchange.rt > exchange.mrt:
            exchange.rt = exchange.mrt + self._rand() * exchange.mrt
        elapsed = min(_MAX_ELAPSED_HUNDREDTHS, round((now - exchange.started_at) * 100))
        message = Message(
            exchange.kind,
            exchange.transaction_id,
            (
                ClientIdOption(self._config.duid),
                ElapsedTimeOption(elapsed),
                *exchange.options,
            ),
        )
        self._outgoing.append(build_message(message))
        exchange.transmissions += 1
        exchange.next_at = now + exchange.rt

    def _rand(self) -> float:
        """RAND, uniform in [-0.1, 0.1)."""
        return 0.2 * self._config.rng() - 0.1

    # Receiving.

    def _drop(self, reason: Dhcpv6DropReason, detail: str) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1
        self._events.append(MessageDropped(reason, detail))

    def _accept(self, message: Message) -> tuple[_Exchange, bytes] | None:
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
        expected = (
            MessageType.ADVERTISE if exchange.kind is MessageType.SOLICIT else MessageType.REPLY
        )
        if message.msg_type is not expected:
            self._drop(
                Dhcpv6DropReason.UNEXPECTED_MESSAGE_TYPE,
                f"{message.msg_type.name} while waiting for {expected.name}",
            )
            return None
        if message.transaction_id != exchange.transaction_id:
            self._drop(
                Dhcpv6DropReason.WRONG_TRANSACTION_ID,
                f"{message.transaction_id:#08x}, expected {exchange.transaction_id:#08x}",
            )
            return None
        client_id = message.find(ClientIdOption)
        if client_id is None:
            self._drop(Dhcpv6DropReason.MISSING_CLIENT_ID, message.msg_type.name)
            return None
        if client_id.duid != self._config.duid:
            self._drop(Dhcpv6DropReason.WRONG_CLIENT_ID, client_id.duid.hex())
            return None
        server_id = message.find(ServerIdOption)
        if server_id is None:
            self._drop(Dhcpv6DropReason.MISSING_SERVER_ID, message.msg_type.name)
            return None
        if exchange.server_id is not None and server_id.duid != exchange.server_id:
            self._drop(
                Dhcpv6DropReason.WRONG_SERVER_ID,
                f"{server_id.duid.hex()}, the {exchange.kind.name} went to "
                f"{exchange.server_id.hex()}",
            )
            return None
        return exchange, server_id.duid

    def _apply_sol_max_rt(self, message: Message) -> None:
        """A valid SOL_MAX_RT replaces ours, even in an ignored Advertise (section 18.2.9)."""
        option = message.find(SolMaxRtOption)
        if option is None or not _SOL_MAX_RT_RANGE[0] <= option.seconds <= _SOL_MAX_RT_RANGE[1]:
            return
        self._sol_max_rt = float(option.seconds)
        if self._exchange is not None and self._exchange.kind is MessageType.SOLICIT:
            self._exchange.mrt = self._sol_max_rt

    def _our_ia(self, message: Message) -> IaPdOption | None:
        for ia in message.find_all(IaPdOption):
            if ia.iaid == self._config.iaid:
                return ia
        return None

    def _refusal(self, message: Message, ia: IaPdOption | None) -> StatusCodeOption | None:
        """The failure status for our IA: its own, else the message's; None on success."""
        status = _status_of(ia) if ia is not None else None
        if status is None:
            status = _status_of(message)
        if status is None or status.status == StatusCode.SUCCESS:
            return None
        return status

    def _on_advertise(
        self, message: Message, server_id: bytes, exchange: _Exchange, now: float
    ) -> None:
        ia = self._our_ia(message)
        refusal = self._refusal(message, ia)
        if refusal is not None:
            self._drop(Dhcpv6DropReason.SERVER_STATUS, f"Advertise with status {refusal.status}")
            return
        prefixes = _usable_prefixes(ia) if ia is not None and self._timers_valid(ia) else ()
        if not prefixes:
            self._drop(Dhcpv6DropReason.NO_USABLE_PREFIX, "Advertise offers no usable prefix")
            return
        preference_option = message.find(PreferenceOption)
        preference = 0 if preference_option is None else preference_option.value
        collecting = exchange.transmissions == 1 and now < exchange.next_at
        if preference == _TAKE_AT_ONCE_PREFERENCE or not collecting:
            self._start_request(server_id, prefixes, now)
            return
        self._offers.append(_Offer(server_id, preference, prefixes, order=len(self._offers)))

    @staticmethod
    def _timers_valid(ia: IaPdOption) -> bool:
        """False for T1 > T2 with both nonzero: such an IA_PD is ignored (section 21.21)."""
        return not (ia.t1 > ia.t2 > 0)

    def _on_request_reply(self, message: Message, server_id: bytes, now: float) -> None:
        ia = self._our_ia(message)
        if not self._survives_message_status(message):
            return
        refusal = self._refusal(message, ia)
        if refusal is not None and refusal.status == StatusCode.NO_PREFIX_AVAIL:
            self._back_off(server_id, refusal.message, now)
            return
        if refusal is not None:
            self._drop(Dhcpv6DropReason.SERVER_STATUS, f"Reply with status {refusal.status}")
            return
        if ia is None or not self._timers_valid(ia) or not _usable_prefixes(ia):
            self._drop(Dhcpv6DropReason.NO_USABLE_PREFIX, "Reply to Request has no usable prefix")
            return
        prefixes = tuple(self._delegated(option, now) for option in _usable_prefixes(ia))
        self._install(self._lease_from(server_id, ia, prefixes, now))

    def _on_extend_reply(self, message: Message, server_id: bytes, now: float) -> None:
        """A Reply to Renew or Rebind (section 18.2.10.1)."""
        lease = self._lease
        if lease is None or not self._survives_message_status(message):
            return
        ia = self._our_ia(message)
        refusal = self._refusal(message, ia)
        if refusal is not None and refusal.status == StatusCode.NO_BINDING:
            self._events.append(BindingRejected(lease.primary.prefix, server_id, refusal.message))
            prefixes = tuple(
                IaPrefixOption(0, 0, held.prefix.prefixlen, held.prefix.network_address)
                for held in lease.prefixes
            )
            self._start_request(server_id, prefixes, now)
            return
        if refusal is not None:
            self._drop(Dhcpv6DropReason.SERVER_STATUS, f"Reply with status {refusal.status}")
            return
        if ia is None or not self._timers_valid(ia):
            self._drop(
                Dhcpv6DropReason.NO_USABLE_PREFIX, "Reply to Renew/Rebind has no usable IA_PD"
            )
            return
        fresh = _usable_prefixes(ia)
        withdrawn = {option.network for option in ia.find_all(IaPrefixOption)}
        withdrawn.difference_update(option.network for option in fresh)
        if not fresh and not withdrawn:
            self._drop(
                Dhcpv6DropReason.NO_USABLE_PREFIX, "Reply to Renew/Rebind has no usable prefix"
            )
            return
        # Prefixes the Reply leaves out keep their lifetimes and expire on their own.
        merged = {held.prefix: held for held in lease.prefixes if held.prefix not in withdrawn}
        for option in fresh:
            merged[option.network] = self._delegated(option, now)
        if not merged:
            self._lose_lease(lease, LeaseLossReason.WITHDRAWN_BY_SERVER, now)
            return
        self._install(self._lease_from(server_id, ia, tuple(merged.values()), now))

    def _survives_message_status(self, message: Message) -> bool:
        """UnspecFail and UseMulticast for the whole message: keep retransmitting."""
        status = _status_of(message)
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

    def _delegated(self, option: IaPrefixOption, now: float) -> DelegatedPrefix:
        return DelegatedPrefix(
            option.network,
            now + _lifetime(option.preferred_lifetime),
            now + _lifetime(option.valid_lifetime),
        )

    def _lease_from(
        self,
        server_id: bytes,
        ia: IaPdOption,
        prefixes: tuple[DelegatedPrefix, ...],
        now: float,
    ) -> Lease:
        """T1/T2 from the IA_PD, or chosen per section 14.2 when the server sent 0.

        Chosen timers come from the lifetimes the server just sent, falling back to the
        valid lifetime when every prefix is deprecated, so they are never 0: section 14.2
        forbids transmitting immediately.
        """
        basis = _usable_prefixes(ia)
        preferred = [option.preferred_lifetime for option in basis if option.preferred_lifetime]
        shortest = (
            _lifetime(min(preferred))
            if preferred
            else min(held.valid_until for held in prefixes) - now
        )
        t1 = _lifetime(ia.t1) if ia.t1 else _T1_FRACTION * shortest
        t2 = _lifetime(ia.t2) if ia.t2 else _T2_FRACTION * shortest
        if not ia.t1:
            t1 = min(t1, t2)
        if not ia.t2:
            t2 = max(t2, t1)
        return Lease(server_id, self._config.iaid, prefixes, now + t1, now + t2)

    def _install(self, lease: Lease) -> None:
        old = self._lease
        self._lease = lease
        self._exchange = None
        self._state = ClientState.BOUND
        self._backoff = 0.0
        primary = lease.primary
        if old is None:
            self._events.append(
                LeaseAcquired(
                    primary.prefix, primary.preferred_until, primary.valid_until, lease.server_id
                )
            )
        elif old.primary.prefix == primary.prefix:
            self._events.append(
                LeaseRenewed(
                    primary.prefix, primary.preferred_until, primary.valid_until, lease.server_id
                )
            )
        else:
            self._events.append(self._changed(old, lease))

    @staticmethod
    def _changed(old: Lease, new: Lease) -> DelegationChanged:
        primary = new.primary
        return DelegationChanged(
            old.primary.prefix,
            primary.prefix,
            primary.preferred_until,
            primary.valid_until,
            new.server_id,
        )

    def _back_off(self, server_id: bytes, text: str, now: float) -> None:
        self._backoff = (
            NO_PREFIX_BACKOFF if not self._backoff else min(2 * self._backoff, self._sol_max_rt)
        )
        self._backoff_until = now + self._backoff * (1.0 + self._rand())
        self._exchange = None
        self._state = ClientState.BACKING_OFF
        self._events.append(NoPrefixAvailable(server_id, text, self._backoff_until))

    def _finish_stop(self, *, release_acknowledged: bool | None) -> None:
        self._exchange = None
        self._state = ClientState.STOPPED
        self._events.append(ClientStopped(release_acknowledged))
