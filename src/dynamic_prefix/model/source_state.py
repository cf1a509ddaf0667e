"""What a prefix source reports: the value that crosses from the receivers to the controller."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from ipaddress import IPv6Network


@dataclass(frozen=True, slots=True)
class SourceState:
    """What a source currently believes.

    ``prefix`` is None while it has none (starting, or the prefix expired or was
    withdrawn; ``reason`` says which). Deadlines are wall-clock UTC; None is infinite.
    """

    source: str
    prefix: IPv6Network | None
    preferred_until: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    origin: str = ""  # who told us: a router's link-local address, a DHCPv6 server, "spec"
    reason: str = ""  # CamelCase, for conditions: Acquired, Expired, Withdrawn, Starting...
    message: str = ""  # for people: what happened, in a sentence
    # prefixes this source saw withdrawn or expire: their valid lifetime has ended, so
    # they leave the history (and the pools) at once
    gone: frozenset[IPv6Network] = frozenset()
    # prefixes given back (a DHCPv6 Release): no longer ours, so they leave the current
    # prefix, the history and the pools at once
    released: frozenset[IPv6Network] = frozenset()
    # what the source knows of other prefixes it still sees (previous ones, deprecated):
    # their valid deadline, exact, so history entries leave the pools when they really end
    valid_until_of: tuple[tuple[IPv6Network, dt.datetime | None], ...] = ()
