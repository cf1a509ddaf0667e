"""Leader election on a coordination.k8s.io/v1 Lease, as Kubernetes controllers do it.

One replica holds the Lease and renews it every ``retry_period``; the others take it
over when they have seen no renewal for ``lease_duration``. The holder considers itself
leader only until ``renew_deadline`` after its last successful renewal, measured on the
monotonic clock at the moment of every write (`may_write`). Because ``renew_deadline``
is shorter than ``lease_duration``, a leader that lost the API server, or was paused,
stops writing before anyone else may take the Lease: never two writers.

"Seen no renewal" is judged on the standby's own monotonic clock, from when it first saw
the Lease's current record (as client-go does), not by comparing the holder's
``renewTime`` with the local wall clock: nodes whose clocks disagree must still never
write at the same time. Only the record's apparent age when first seen is credited, up
to `LeaseSettings.max_age_credit` (the retry period, and at most half the margin between
renew deadline and lease duration), so that a standby takes over about a lease duration
after the last renewal rather than after it happened to look; whatever the clocks say,
the holder has stopped writing by then. A standby that starts next to an abandoned Lease
thus waits almost a lease duration; a Lease given up on a clean stop (no holder) is
taken at once.

The holder renews with one PUT of the Lease as its last write left it, not a GET and a
PUT: the resourceVersion refuses the PUT once anyone else wrote the Lease, and only
then is the Lease read and judged again. An idle leader's only requests are these.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.errors import ApiError, Conflict, NotFound

logger = logging.getLogger(__name__)

LEASES = Resource("coordination.k8s.io", "v1", "leases", namespaced=True, kind="Lease")


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    """Where the Lease is and how it is held (client-go's defaults)."""

    namespace: str
    name: str = "dynamic-prefix-operator"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need retry period < renew deadline < lease duration")

    @property
    def lease_seconds(self) -> int:
        """The duration written in the Lease: whole seconds, rounded up (never shorter)."""
        return math.ceil(self.lease_duration)

    def max_age_credit(self, lease_seconds: float) -> float:
        """How much of a Lease record's apparent age a standby believes when it first sees
        it: about the delay between a renewal and the standby's next look, and at most
        half the margin between the record's duration and the renew deadline (which the
        replicas of one Deployment share), so that a holder's wall clock running behind
        cannot make two writers."""
        return max(0.0, min(self.retry_period, (lease_seconds - self.renew_deadline) / 2))


def _micro_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_micro_time(text: object) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaderElector:
    """Takes and renews the Lease; tells when leadership starts and ends."""

    def __init__(
        self,
        client: KubeClient,
        settings: LeaseSettings,
        identity: str,
        *,
        on_started: Callable[[], Awaitable[None]],
        on_stopped: Callable[[], Awaitable[None]],
    ) -> None:
        self.client = client
        self.settings = settings
        self.identity = identity
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._renewed_at: float | None = None  # monotonic time of the last renewal
        self._written: dict[str, Any] | None = None  # the Lease as our last write left it
        self._leading = False
        self._observed: tuple[Any, ...] | None = None  # the Lease record last seen...
        self._observed_at = 0.0  # ...and since when (monotonic)
        self._expires_in: float | None = None  # until someone else's Lease may be taken

    def may_write(self) -> bool:
        """True while this replica holds the Lease, judged now on the monotonic clock."""
        return (
            self._leading
            and self._renewed_at is not None
            and time.monotonic() - self._renewed_at < self.settings.renew_deadline
        )

    @property
    def leading(self) -> bool:
        """Whether this replica is the leader (and may write)."""
        return self.may_write()

    async def run(self) -> None:
        """Until cancelled; a cancelled leader gives the Lease up so a standby takes over."""
        try:
            while True:
                started = time.monotonic()
                try:
                    held = await self._try_acquire_or_renew()
                except ApiError as error:
                    logger.warning("leader lease %s: %s", self.settings.name, error)
                    held = False
                    self._expires_in = None  # a failed attempt waits a whole retry period
                if held:
                    self._renewed_at = started
                    if not self._leading:
                        self._leading = True
                        logger.info("leading (lease %s/%s held as %s)", self.settings.namespace,
                                    self.settings.name, self.identity)  # fmt: skip
                        await self._on_started()
                elif self._leading and not self.may_write():
                    await self._step_down("the lease could not be renewed in time")
                await asyncio.sleep(self._pause(held))
        finally:
            if self._leading:
                await self._step_down("stopping")
                await self._release()

    def _pause(self, held: bool) -> float:
        """Until the next attempt: the retry period, or less when another holder's Lease
        expires sooner (so a standby takes over right then, not up to a period later)."""
        if held or self._expires_in is None:
            return self.settings.retry_period
        return min(self.settings.retry_period, max(self._expires_in, 0.0) + 0.01)

    async def _step_down(self, why: str) -> None:
        self._leading = False
        logger.warning("no longer leading: %s", why)
        await self._on_stopped()

    async def _try_acquire_or_renew(self) -> bool:
        now = dt.datetime.now(dt.UTC)
        settings = self.settings
        if self._written is not None:
            # a holder renews from the Lease it last wrote, in one request: the
            # resourceVersion makes the PUT fail if anyone wrote the Lease since, and
            # then the whole look below decides (half the requests of an idle leader)
            written, self._written = self._written, None
            spec = written.get("spec") or {}
            if spec.get("holderIdentity") == self.identity:
                written["spec"] = self._spec(
                    now,
                    acquired=_parse_micro_time(spec.get("acquireTime")),
                    transitions=int(spec.get("leaseTransitions") or 0),
                )
                with contextlib.suppress(Conflict, NotFound):
                    self._written = await self.client.replace(LEASES, settings.name, written)
                    return True
        try:
            lease: dict[str, Any] = await self.client.get(
                LEASES, settings.name, namespace=settings.namespace
            )
        except NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": settings.name, "namespace": settings.namespace},
                "spec": self._spec(now, acquired=now, transitions=0),
            }
            try:
                self._written = await self.client.create(LEASES, body)
            except Conflict:
                return False  # someone else created it first
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        duration = float(spec.get("leaseDurationSeconds") or settings.lease_duration)
        record = (holder, spec.get("renewTime"), spec.get("acquireTime"), duration)
        seen_now = time.monotonic()
        if record != self._observed:
            renewed = _parse_micro_time(spec.get("renewTime"))
            age = (now - renewed).total_seconds() if renewed is not None else 0.0
            credit = min(max(age, 0.0), settings.max_age_credit(duration))
            self._observed, self._observed_at = record, seen_now - credit
        self._expires_in = self._observed_at + duration - seen_now
        if holder and holder != self.identity and self._expires_in > 0:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        ours = holder == self.identity
        lease["spec"] = self._spec(
            now,
            acquired=_parse_micro_time(spec.get("acquireTime")) if ours else now,
            transitions=transitions if ours else transitions + 1,
        )
        try:  # its resourceVersion: no race
            self._written = await self.client.replace(LEASES, settings.name, lease)
        except Conflict:
            return False
        return True

    def _spec(
        self, now: dt.datetime, *, acquired: dt.datetime | None, transitions: int
    ) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.settings.lease_seconds,
            "acquireTime": _micro_time(acquired or now),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }

    async def _release(self) -> None:
        """Give the Lease up on a clean stop (a standby need not wait for it to expire)."""
        try:
            lease = await self.client.get(
                LEASES, self.settings.name, namespace=self.settings.namespace
            )
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = None
            lease["spec"]["leaseDurationSeconds"] = 1
            await self.client.replace(LEASES, self.settings.name, lease)
            logger.info("lease %s released", self.settings.name)
        except ApiError as error:
            logger.warning("could not release the lease: %s", error)
