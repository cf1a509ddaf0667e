"""How the last reconcile of each pool ended, per DynamicPrefix: the one record behind
the ``PoolsSynced`` condition and the pool metrics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dynamic_prefix.model.status import PoolSummary
from dynamic_prefix.operator.pool_index import PoolKey

FAILING_SHOWN = 5
"""How many failing pools the condition's message names."""


class PoolOutcomes:
    """Per DynamicPrefix, per pool: None when in sync, else what is wrong, in words."""

    def __init__(self) -> None:
        self._by_prefix: dict[str, dict[PoolKey, str | None]] = {}

    def record(self, name: str, key: PoolKey, outcome: str | None) -> bool:
        """Remember how a pool's reconcile ended; True if that changes what to report."""
        results = self._by_prefix.setdefault(name, {})
        changed = key not in results or results[key] != outcome
        results[key] = outcome
        return changed

    def forget(self, name: str, key: PoolKey) -> None:
        """The pool no longer references ``name``."""
        self._by_prefix.get(name, {}).pop(key, None)

    def forget_pool(self, key: PoolKey) -> None:
        """The pool was released: it counts for no DynamicPrefix."""
        for results in self._by_prefix.values():
            results.pop(key, None)

    def forget_prefix(self, name: str) -> None:
        """The DynamicPrefix is gone."""
        self._by_prefix.pop(name, None)

    def summary(self, name: str, total: int) -> PoolSummary | None:
        """In sync and failing among the ``total`` pools of ``name``; None until every one
        of them has been judged (just started: keep what the status says)."""
        results = self._by_prefix.get(name, {})
        if len(results) < total:
            return None
        failing = sorted((key for key, outcome in results.items() if outcome is not None), key=str)
        shown = tuple(f"{key}: {results[key]}" for key in failing[:FAILING_SHOWN])
        return PoolSummary(total=total, in_sync=len(results) - len(failing), failing=shown)

    def items(self) -> Iterator[tuple[str, Mapping[PoolKey, str | None]]]:
        """(DynamicPrefix, its pools' outcomes), sorted by name: for metrics."""
        yield from sorted(self._by_prefix.items())
