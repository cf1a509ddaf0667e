"""Writing a DynamicPrefix's status: computed by the pure `next_status`, written as a
merge patch only when it differs, followed by the events the change calls for.

The status is the record of what the operator decided: the pools are rendered from it,
and a restarted operator or a new leader continues from it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from dynamic_prefix.kube.api import KubeApi
from dynamic_prefix.kube.errors import ApiError, NotFound
from dynamic_prefix.kube.events import EventRecorder
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import validate_dynamic_prefix
from dynamic_prefix.model.status import BgpSummary, PoolSummary, next_status
from dynamic_prefix.operator.counters import ControllerCounters, metric_label
from dynamic_prefix.operator.pool_reconciler import DYNAMIC_PREFIXES

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new`` at the top level (None removes)."""
    return {key: new.get(key) for key in set(old) | set(new) if old.get(key) != new.get(key)}


class StatusWriter:
    """Computes, writes and announces the status of one DynamicPrefix at a time."""

    def __init__(
        self,
        client: KubeApi,
        recorder: EventRecorder,
        counters: ControllerCounters,
        clock: Clock,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.counters = counters
        self.clock = clock

    async def update(
        self,
        name: str,
        body: Mapping[str, Any],
        source: SourceState | None,
        pools: PoolSummary | None,
        services: PoolSummary | None = None,
        *,
        bgp: BgpSummary | None = None,
    ) -> Mapping[str, Any] | None:
        """The object with the status it should have now (written if it differed), after
        posting the events of the change; None if the object is gone. An `ApiError` from
        the write is counted and raised: the caller computes the status again later."""
        previous = body.get("status") or {}
        update = next_status(
            spec=validate_dynamic_prefix(body),
            previous=previous,
            source=source,
            pools=pools,
            services=services,
            bgp=bgp,
            name=name,
            generation=body["metadata"].get("generation"),
            now=self.clock(),
        )
        if update.status != previous:
            try:
                body = await self.client.patch(
                    DYNAMIC_PREFIXES,
                    name,
                    {"status": merge_patch(previous, update.status)},
                    subresource="status",
                )
            except NotFound:
                return None
            except ApiError:
                self.counters.events[name, "status_error"] += 1
                self.counters.reconcile_errors[name, "status"] += 1
                raise
        for event in update.events:
            self.counters.events[name, metric_label(event.reason)] += 1
            if event.reason in ("PrefixReceived", "PrefixChanged"):
                source_name = (body.get("status") or {}).get("prefixSource", "")
                self.counters.prefix_changes[name, str(source_name)] += 1
            await self.recorder.record(body, type=event.type, reason=event.reason,
                                       message=event.message)  # fmt: skip
        return body
