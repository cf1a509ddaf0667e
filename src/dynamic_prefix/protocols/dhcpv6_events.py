"""What the DHCPv6 prefix delegation client is given and what it reports, as values.

`PdClientConfig` is what `dynamic_prefix.protocols.dhcpv6_client.PdClient` is made with,
`ClientState` where it is, `Lease` the binding it holds, and the events (`ClientEvent`) the
facts it reports, with the reasons a lease ends or a datagram is dropped. Re-exported by
`dynamic_prefix.protocols.dhcpv6_client`, whose docstring says when each event is emitted.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Network

from dynamic_prefix.protocols.dhcpv6 import MessageType
from dynamic_prefix.protocols.dhcpv6_timing import SOL_MAX_DELAY

__all__ = [
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
    "PdClientConfig",
    "PdClientUsageError",
    "RebindStarted",
    "RenewStarted",
    "delegation_changed",
    "lease_installed",
    "rebind_started",
    "renew_started",
]


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


class PdClientUsageError(RuntimeError):
    """A method called in a state where it makes no sense (a bug in the caller)."""


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


# --- Events about a lease --------------------------------------------------------------


def lease_installed(
    old: Lease | None, new: Lease
) -> LeaseAcquired | LeaseRenewed | DelegationChanged:
    """What holding ``new`` instead of ``old`` reports, judged by the primary prefix."""
    primary = new.primary
    if old is None:
        return LeaseAcquired(
            primary.prefix, primary.preferred_until, primary.valid_until, new.server_id
        )
    if old.primary.prefix == primary.prefix:
        return LeaseRenewed(
            primary.prefix, primary.preferred_until, primary.valid_until, new.server_id
        )
    return delegation_changed(old, new)


def delegation_changed(old: Lease, new: Lease) -> DelegationChanged:
    """The event for a primary prefix that differs between ``old`` and ``new``."""
    primary = new.primary
    return DelegationChanged(
        old.primary.prefix,
        primary.prefix,
        primary.preferred_until,
        primary.valid_until,
        new.server_id,
    )


def renew_started(lease: Lease) -> RenewStarted:
    """The event for T1 passing on ``lease``: the Renew went to its server."""
    primary = lease.primary
    return RenewStarted(
        primary.prefix,
        primary.preferred_until,
        primary.valid_until,
        lease.server_id,
        lease.rebind_at,
    )


def rebind_started(lease: Lease) -> RebindStarted:
    """The event for T2 passing on ``lease``: the Rebind went to any server."""
    primary = lease.primary
    return RebindStarted(
        primary.prefix, primary.preferred_until, primary.valid_until, lease.server_id
    )
