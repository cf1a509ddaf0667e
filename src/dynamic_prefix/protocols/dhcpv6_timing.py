"""When the DHCPv6 prefix delegation client sends: RFC 8415 retransmission, as arithmetic.

The parameters of section 7.6 (IRT, MRT, MRC for each message type) and the section 15
algorithm that turns them into retransmission timeouts (RT) with a random factor (RAND)
drawn from the caller's ``rng``, so that every schedule replays in tests. `Exchange` is one
client-initiated exchange and its retransmission state. When exchanges start and end is
decided in `dynamic_prefix.protocols.dhcpv6_client`, which re-exports the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from dynamic_prefix.protocols.dhcpv6 import MessageType, Option

__all__ = [
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
    "RETRANSMISSION",
    "SOL_MAX_DELAY",
    "SOL_MAX_RT",
    "SOL_MAX_RT_RANGE",
    "SOL_TIMEOUT",
    "Exchange",
    "Retransmission",
    "next_backoff",
    "rand",
]

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

SOL_MAX_RT_RANGE: Final = (60, 86400)
"""Bounds a server may set SOL_MAX_RT to; other values are ignored (RFC 8415 section 21.24)."""

NO_PREFIX_BACKOFF = 60.0
"""Local policy: the first wait after NoPrefixAvail; doubles on each refusal in a row,
capped by SOL_MAX_RT."""

_MAX_ELAPSED_HUNDREDTHS = 0xFFFF


@dataclass(frozen=True, slots=True)
class Retransmission:
    """IRT, MRT and MRC of one message type (0 means "no limit" for MRT and MRC)."""

    irt: float
    mrt: float
    mrc: int


RETRANSMISSION: Final[dict[MessageType, Retransmission]] = {
    MessageType.SOLICIT: Retransmission(SOL_TIMEOUT, SOL_MAX_RT, 0),
    MessageType.REQUEST: Retransmission(REQ_TIMEOUT, REQ_MAX_RT, REQ_MAX_RC),
    MessageType.RENEW: Retransmission(REN_TIMEOUT, REN_MAX_RT, 0),
    MessageType.REBIND: Retransmission(REB_TIMEOUT, REB_MAX_RT, 0),
    MessageType.RELEASE: Retransmission(REL_TIMEOUT, 0.0, REL_MAX_RC),
}


def rand(rng: Callable[[], float]) -> float:
    """RAND, uniform in [-0.1, 0.1), from ``rng``'s uniform [0, 1)."""
    return 0.2 * rng() - 0.1


def next_backoff(previous: float, sol_max_rt: float) -> float:
    """The wait after a NoPrefixAvail, given the one before it (0 for none)."""
    return NO_PREFIX_BACKOFF if not previous else min(2 * previous, sol_max_rt)


@dataclass(slots=True)
class Exchange:
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

    def exhausted(self, now: float) -> bool:
        """Whether MRD has passed or MRC transmissions were made: the exchange failed."""
        return now >= self.mrd_end or bool(self.mrc and self.transmissions >= self.mrc)

    def draw_timeout(self, now: float, rng: Callable[[], float]) -> None:
        """Set RT for the transmission about to be made at ``now``."""
        if self.transmissions == 0:
            self.started_at = now
            irt = RETRANSMISSION[self.kind].irt
            if self.kind is MessageType.SOLICIT:
                # The first Solicit RT must be strictly greater than IRT (section 18.2.1);
                # RAND in (0, 0.1], and never so small that the sum rounds back to IRT.
                self.rt = max(irt + 0.1 * (1.0 - rng()) * irt, math.nextafter(irt, math.inf))
            else:
                self.rt = irt + rand(rng) * irt
        else:
            self.rt = 2 * self.rt + rand(rng) * self.rt
        if self.mrt and self.rt > self.mrt:
            self.rt = self.mrt + rand(rng) * self.mrt

    def elapsed_hundredths(self, now: float) -> int:
        """The Elapsed Time option's value for a transmission at ``now`` (section 21.9)."""
        return min(_MAX_ELAPSED_HUNDREDTHS, round((now - self.started_at) * 100))

    def sent(self, now: float) -> None:
        """Count the transmission made at ``now``; the next is due when its RT ends."""
        self.transmissions += 1
        self.next_at = now + self.rt
