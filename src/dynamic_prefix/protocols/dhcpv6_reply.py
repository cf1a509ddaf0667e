"""Reading a server's Advertise or Reply for the DHCPv6 prefix delegation client.

Pure functions of a received message: whether it answers the exchange in flight (RFC 8415
section 16), which IA_PD is ours and whether it or the message refuses (18.2.10), which IA
Prefixes may be used (21.21, 21.22), and the `Lease` a Reply grants, with T1 and T2 chosen
per section 14.2 when the server sent 0. What the client does with the answer is decided
in `dynamic_prefix.protocols.dhcpv6_client`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dynamic_prefix.protocols.dhcpv6 import (
    INFINITY,
    ClientIdOption,
    IaPdOption,
    IaPrefixOption,
    Message,
    MessageType,
    PreferenceOption,
    ServerIdOption,
    StatusCode,
    StatusCodeOption,
)
from dynamic_prefix.protocols.dhcpv6_events import DelegatedPrefix, Dhcpv6DropReason, Lease
from dynamic_prefix.protocols.dhcpv6_timing import Exchange

__all__ = [
    "Drop",
    "Offer",
    "best_offer",
    "check_answer",
    "delegated_prefix",
    "extended_prefixes",
    "hints_for",
    "lease_from",
    "our_ia",
    "refusal_of",
    "server_preference",
    "status_of",
    "timers_valid",
    "usable_prefixes",
]

# Chosen T1/T2 as fractions of the shortest preferred lifetime (RFC 8415 section 14.2).
_T1_FRACTION = 0.5
_T2_FRACTION = 0.8


@dataclass(frozen=True, slots=True)
class Drop:
    """Why a received message changes nothing, and a detail for the log."""

    reason: Dhcpv6DropReason
    detail: str


@dataclass(frozen=True, slots=True)
class Offer:
    """A usable Advertise seen while collecting; ``order`` breaks preference ties."""

    server_id: bytes
    preference: int
    prefixes: tuple[IaPrefixOption, ...]
    order: int


def best_offer(offers: list[Offer]) -> Offer:
    """The Advertise to take: highest preference, then first received (section 18.2.9)."""
    return max(offers, key=lambda offer: (offer.preference, -offer.order))


def check_answer(message: Message, exchange: Exchange, client_duid: bytes) -> bytes | Drop:
    """The answering server's DUID when ``message`` answers ``exchange`` (sent at least
    once, by the client with ``client_duid``), else why it does not (section 16)."""
    expected = MessageType.ADVERTISE if exchange.kind is MessageType.SOLICIT else MessageType.REPLY
    if message.msg_type is not expected:
        return Drop(
            Dhcpv6DropReason.UNEXPECTED_MESSAGE_TYPE,
            f"{message.msg_type.name} while waiting for {expected.name}",
        )
    if message.transaction_id != exchange.transaction_id:
        return Drop(
            Dhcpv6DropReason.WRONG_TRANSACTION_ID,
            f"{message.transaction_id:#08x}, expected {exchange.transaction_id:#08x}",
        )
    client_id = message.find(ClientIdOption)
    if client_id is None:
        return Drop(Dhcpv6DropReason.MISSING_CLIENT_ID, message.msg_type.name)
    if client_id.duid != client_duid:
        return Drop(Dhcpv6DropReason.WRONG_CLIENT_ID, client_id.duid.hex())
    server_id = message.find(ServerIdOption)
    if server_id is None:
        return Drop(Dhcpv6DropReason.MISSING_SERVER_ID, message.msg_type.name)
    if exchange.server_id is not None and server_id.duid != exchange.server_id:
        return Drop(
            Dhcpv6DropReason.WRONG_SERVER_ID,
            f"{server_id.duid.hex()}, the {exchange.kind.name} went to {exchange.server_id.hex()}",
        )
    return server_id.duid


def our_ia(message: Message, iaid: int) -> IaPdOption | None:
    """The message's IA_PD for ``iaid``, if any."""
    for ia in message.find_all(IaPdOption):
        if ia.iaid == iaid:
            return ia
    return None


def status_of(options_owner: Message | IaPdOption) -> StatusCodeOption | None:
    """The Status Code option of a message or of an IA_PD, if any."""
    return options_owner.find(StatusCodeOption)


def refusal_of(message: Message, ia: IaPdOption | None) -> StatusCodeOption | None:
    """The failure status for our IA: its own, else the message's; None on success."""
    status = status_of(ia) if ia is not None else None
    if status is None:
        status = status_of(message)
    if status is None or status.status == StatusCode.SUCCESS:
        return None
    return status


def timers_valid(ia: IaPdOption) -> bool:
    """False for T1 > T2 with both nonzero: such an IA_PD is ignored (section 21.21)."""
    return not (ia.t1 > ia.t2 > 0)


def usable_prefixes(ia: IaPdOption) -> tuple[IaPrefixOption, ...]:
    """IA Prefixes with a nonzero valid lifetime that a client may use (section 21.22)."""
    return tuple(
        option
        for option in ia.find_all(IaPrefixOption)
        if _acceptable(option) and option.valid_lifetime > 0
    )


def _acceptable(option: IaPrefixOption) -> bool:
    """Preferred not beyond valid, and no host bits set."""
    return option.preferred_lifetime <= option.valid_lifetime and not option.has_host_bits


def server_preference(message: Message) -> int:
    """The Advertise's server preference; 0 without a Preference option (section 18.2.9)."""
    option = message.find(PreferenceOption)
    return 0 if option is None else option.value


def _lifetime(seconds: int) -> float:
    return math.inf if seconds == INFINITY else float(seconds)


def delegated_prefix(option: IaPrefixOption, now: float) -> DelegatedPrefix:
    """The prefix of ``option`` with its lifetimes as deadlines from ``now``."""
    return DelegatedPrefix(
        option.network,
        now + _lifetime(option.preferred_lifetime),
        now + _lifetime(option.valid_lifetime),
    )


def lease_from(
    server_id: bytes,
    iaid: int,
    ia: IaPdOption,
    prefixes: tuple[DelegatedPrefix, ...],
    now: float,
) -> Lease:
    """T1/T2 from the IA_PD, or chosen per section 14.2 when the server sent 0.

    Chosen timers come from the lifetimes the server just sent, falling back to the
    valid lifetime when every prefix is deprecated, so they are never 0: section 14.2
    forbids transmitting immediately.
    """
    basis = usable_prefixes(ia)
    preferred = [option.preferred_lifetime for option in basis if option.preferred_lifetime]
    shortest = (
        _lifetime(min(preferred)) if preferred else min(held.valid_until for held in prefixes) - now
    )
    t1 = _lifetime(ia.t1) if ia.t1 else _T1_FRACTION * shortest
    t2 = _lifetime(ia.t2) if ia.t2 else _T2_FRACTION * shortest
    if not ia.t1:
        t1 = min(t1, t2)
    if not ia.t2:
        t2 = max(t2, t1)
    return Lease(server_id, iaid, prefixes, now + t1, now + t2)


def extended_prefixes(
    held: tuple[DelegatedPrefix, ...], ia: IaPdOption, now: float
) -> tuple[DelegatedPrefix, ...] | None:
    """What a Reply to Renew or Rebind leaves of ``held`` (section 18.2.10.1), or None
    when ``ia`` says nothing usable about any prefix.

    Usable IA Prefixes are taken with fresh deadlines, those with valid lifetime 0 are
    withdrawn, and prefixes the Reply leaves out keep their lifetimes and expire on their
    own; an empty result means the server withdrew every prefix. An IA Prefix the client
    must ignore (preferred beyond valid, host bits set: section 21.22) withdraws nothing.
    """
    fresh = usable_prefixes(ia)
    withdrawn = {
        option.network
        for option in ia.find_all(IaPrefixOption)
        if option.valid_lifetime == 0 and _acceptable(option)
    }
    withdrawn.difference_update(option.network for option in fresh)
    if not fresh and not withdrawn:
        return None
    merged = {prefix.prefix: prefix for prefix in held if prefix.prefix not in withdrawn}
    for option in fresh:
        merged[option.network] = delegated_prefix(option, now)
    return tuple(merged.values())


def hints_for(held: tuple[DelegatedPrefix, ...]) -> tuple[IaPrefixOption, ...]:
    """IA Prefixes naming the ``held`` prefixes, with lifetimes 0: a server ignores the
    lifetimes a client sends (section 18.2.4)."""
    return tuple(
        IaPrefixOption(0, 0, prefix.prefix.prefixlen, prefix.prefix.network_address)
        for prefix in held
    )
