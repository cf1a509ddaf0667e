"""Writing a DynamicPrefix's status: computed by the pure `next_status`, written as a
merge patch only when it differs, followed by the events the change calls for.

The status is the record of what the operator decided: the pools are rendered from it,
and a restarted operator or a new leader continues from it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dynamic_prefix.kube.api import KubeApi
from dynamic_prefix.kube.errors import ApiError, NotFound
from dynamic_prefix.kube.events import EventRecorder
from dynamic_prefix.model.source_state import SourceState
from dynamic_prefix.model.spec import validate_dynamic_prefix
from dynamic_prefix.model.status import (
    BgpSummary,
    PoolSummary,
    StatusEvent,
    StatusUpdate,
    next_status,
)
from dynamic_prefix.operator.counters import ControllerCounters, metric_label
from dynamic_prefix.operator.pool_reconciler import DYNAMIC_PREFIXES

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new`` at the top level (None removes)."""
    return {key: new.get(key) for key in set(old) | set(new) if old.get(key) != new.get(key)}


class StatusWriter:
    """Decides, writes and announces the status of a DynamicPrefix: three steps, so that
    the pools of a change can be written while its status is (see `Controller.refresh_status`)."""

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

    def decide(
        self,
        name: str,
        body: Mapping[str, Any],
        source: SourceState | None,
        pools: PoolSummary | None,
        services: PoolSummary | None = None,
        *,
        bgp: BgpSummary | None = None,
    ) -> StatusUpdate:
        """The status ``body`` should have now, and the events of the change (pure)."""
        return next_status(
            spec=validate_dynamic_prefix(body),
            previous=body.get("status") or {},
            source=source,
            pools=pools,
            services=services,
            bgp=bgp,
            name=name,
            generation=body["metadata"].get("generation"),
            now=self.clock(),
        )

    async def write(
        self, name: str, previous: Mapping[str, Any], status: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """Write ``status`` over ``previous`` (the status the server holds) as a merge
        patch; the object as written, or None if it is gone. An `ApiError` is counted and
        raised: the caller decides again later."""
        try:
            written: Mapping[str, Any] = await self.client.patch(
                DYNAMIC_PREFIXES,
                name,
                {"status": merge_patch(previous, status)},
                subresource="status",
            )
        except NotFound:
            return None
        except ApiError:
            self.counters.events[name, "status_error"] += 1
            self.counters.reconcile_errors[name, "status"] += 1
            raise
        return written

    async def announce(
        self, name: str, body: Mapping[str, Any], events: Sequence[StatusEvent]
    ) -> None:
        """Post the events of a written change, in order, and count them."""
        for event in events:
            self.counters.events[name, metric_label(event.reason)] += 1
            if event.reason in ("PrefixReceived", "PrefixChanged"):
                source_name = (body.get("status") or {}).get("prefixSource", "")
                self.counters.prefix_changes[name, str(source_name)] += 1
            await self.recorder.record(body, type=event.type, reason=event.reason,
                                       message=event.message)  # fmt: skip
