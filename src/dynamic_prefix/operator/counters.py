"""What the controller counts for `/metrics`: plain counters, read when scraped."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

Counts = collections.Counter[tuple[str, str]]


def _counts() -> Counts:
    return collections.Counter()


@dataclass
class ControllerCounters:
    """Counters keyed by (DynamicPrefix, what): the series of a deleted object end with it."""

    events: Counts = field(default_factory=_counts)
    """(DynamicPrefix, kind): source reports, status and pool writes and errors, events."""
    source_reports: Counts = field(default_factory=_counts)
    """(DynamicPrefix, source)."""
    prefix_changes: Counts = field(default_factory=_counts)
    """(DynamicPrefix, source): the prefix acquired or changed."""
    reconcile_errors: Counts = field(default_factory=_counts)
    """(DynamicPrefix, backend or "status")."""

    def forget(self, name: str) -> None:
        """Drop every series of a deleted DynamicPrefix."""
        for counter in (self.events, self.source_reports, self.prefix_changes,
                        self.reconcile_errors):  # fmt: skip
            for key in [key for key in counter if key[0] == name]:
                del counter[key]


def metric_label(reason: str) -> str:
    """``PrefixChanged`` -> ``prefix_changed``, for metric labels."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in reason).lstrip("_")
