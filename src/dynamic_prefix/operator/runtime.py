"""The operator's run loop: start everything, follow the cluster, stop cleanly on SIGTERM.

Started in this order: the API clients (one for the work, one for the Lease, so that a
standby's only write is its Lease), the controller, the health and metrics endpoint,
leader election, the pool and BGP kinds (`KindWatchers`) and the DynamicPrefix informer. Stopped in
reverse on SIGTERM or SIGINT: the endpoint, the watches, the controller (sources stop
without releasing anything), then the Lease is given up for a standby.

Each DynamicPrefix's events are handled in order, different DynamicPrefixes
concurrently (`PerObject`), so that one being finalized (its pools released, its DHCPv6
delegation given back) never holds up another.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from dynamic_prefix.backends.bgp import BGP_KINDS, BgpKind
from dynamic_prefix.backends.registry import BACKENDS
from dynamic_prefix.kube.client import KubeClient, Resource
from dynamic_prefix.kube.config import ClusterConfig
from dynamic_prefix.kube.informer import Informer
from dynamic_prefix.kube.leader import LeaderElector, LeaseSettings
from dynamic_prefix.operator.bgp_watch import BgpWatcher
from dynamic_prefix.operator.controller import DYNAMIC_PREFIXES, Controller, utc_now
from dynamic_prefix.operator.kinds import KindWatchers, WatchedKind
from dynamic_prefix.operator.metrics_auth import MetricsAuthorizer
from dynamic_prefix.operator.observability import Endpoint, ObservabilityServer
from dynamic_prefix.operator.pool_watch import PoolWatcher
from dynamic_prefix.operator.service_watch import ServiceWatcher
from dynamic_prefix.operator.tasks import cancel_all
from dynamic_prefix.operator.tls import server_context

logger = logging.getLogger(__name__)


class StartupError(Exception):
    """The operator cannot start (e.g. its port is taken); the message says what to do."""


class PerObject:
    """Hands DynamicPrefix events to the controller: in order per object, objects apart."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )

    def __call__(self, event_type: str | None, body: dict[str, Any]) -> None:
        name = str(body["metadata"]["name"])
        lock = self._locks[name]  # asyncio.Lock wakes its waiters in order: events stay so

        async def handle() -> None:
            async with lock:
                await self.controller.on_dynamic_prefix(event_type, body)
            if event_type == "DELETED" and not lock.locked():
                self._locks.pop(name, None)

        self.controller.spawn(handle(), f"dynamic-prefix-event:{name}", concerning=name)


DEFAULT_HEALTH_PORT: Final = 9655
"""Probes; uncommon, so that it rarely meets another host-network pod's port."""
DEFAULT_METRICS_PORT: Final = 9656


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the operator listens: probes in plain HTTP, metrics over HTTPS (with token
    authorization) unless ``metrics_insecure``; ``metrics_cert_dir`` holds ``tls.crt`` and
    ``tls.key`` (None: a self-signed certificate made at start)."""

    health: Endpoint = field(default_factory=lambda: Endpoint("127.0.0.1", DEFAULT_HEALTH_PORT))
    metrics: Endpoint = field(default_factory=lambda: Endpoint("127.0.0.1", DEFAULT_METRICS_PORT))
    metrics_insecure: bool = False
    metrics_cert_dir: Path | None = None


async def run_operator(
    config: ClusterConfig,
    *,
    endpoints: Endpoints | None = None,
    lease: LeaseSettings | None = None,
    identity: str = "dynamic-prefix",
) -> None:
    """Run until SIGTERM or SIGINT; ``lease`` None runs without leader election."""
    endpoints = endpoints or Endpoints()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    electors: list[LeaderElector] = []

    def may_write() -> bool:  # asked twice per write: map, cheaper than a generator
        return all(map(LeaderElector.may_write, electors))

    user_agent = f"dynamic-prefix/{identity}"
    async with (
        KubeClient(config, user_agent=user_agent, may_write=may_write) as client,
        KubeClient(config, user_agent=user_agent) as lease_client,
    ):
        controller = Controller(client, leading=may_write)
        # reviews of scrapers' tokens are asked by standbys too: the client without the
        # leader's write fence
        server = _observability(controller, endpoints, lease_client)
        await _serve(server, controller)
        if lease is not None:
            electors.append(
                LeaderElector(lease_client, lease, identity, on_started=controller.start_leading,
                              on_stopped=controller.stop_leading)
            )  # fmt: skip
        watches = [
            asyncio.create_task(_kinds(client, controller).run(), name="kinds"),
            asyncio.create_task(ServiceWatcher(client, controller).run(), name="services"),
            asyncio.create_task(
                Informer(client, DYNAMIC_PREFIXES, PerObject(controller)).run(),
                name="dynamic-prefixes",
            ),
        ]
        election = [asyncio.create_task(e.run(), name="leader-election") for e in electors]
        logger.info("operator started as %s", identity)
        await _until_stopped(stop, [*watches, *election])
        logger.info("stopping")
        await server.stop()
        await cancel_all(watches, "watches")
        await controller.close()
        await cancel_all(election, "leader election")  # it gives the Lease up for a standby


def _kinds(client: KubeClient, controller: Controller) -> KindWatchers:
    """The pool kinds and the BGP kinds, each followed whenever the cluster serves it."""

    def start(kind: Any, resource: Resource, listed: asyncio.Event) -> Coroutine[Any, Any, None]:
        if isinstance(kind, BgpKind):
            return BgpWatcher(client, controller, kind, resource, listed=listed).run()
        return PoolWatcher(client, controller, kind, resource, listed=listed).run()

    def changed(kind: WatchedKind, resource: Resource | None) -> None:
        if isinstance(kind, BgpKind) and resource is None:
            controller.bgp_kind_served(kind, None)

    return KindWatchers(client, (*BACKENDS, *BGP_KINDS), start,
                        on_listed=controller.mark_pools_listed, on_change=changed)  # fmt: skip


def _observability(
    controller: Controller, endpoints: Endpoints, reviewer: KubeClient
) -> ObservabilityServer:
    if endpoints.metrics_insecure or not endpoints.metrics.port:
        return ObservabilityServer(controller, health=endpoints.health, metrics=endpoints.metrics)
    names = [endpoints.metrics.host or "localhost", "localhost", "127.0.0.1", "::1"]
    try:
        tls = server_context(endpoints.metrics_cert_dir, names, now=utc_now())
    except (OSError, ValueError) as error:
        raise StartupError(
            f"cannot load the metrics certificate from {endpoints.metrics_cert_dir}: {error}"
        ) from error
    return ObservabilityServer(
        controller,
        health=endpoints.health,
        metrics=endpoints.metrics,
        tls=tls,
        authorizer=MetricsAuthorizer(reviewer),
    )


async def _serve(server: ObservabilityServer, controller: Controller) -> None:
    """Listen for /healthz, /readyz and /metrics (where the ports are not 0)."""
    try:
        await server.start()
    except OSError as error:
        await server.stop()
        await controller.close()
        raise StartupError(
            f"cannot listen on {server.health} (probes) or {server.metrics} (metrics): "
            f"{error}; choose others with --health-port / --metrics-port"
        ) from error


async def _until_stopped(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Return on SIGTERM/SIGINT, or when a task that should run for ever ended (logged)."""
    stopping = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stopping and not task.cancelled() and task.exception() is not None:
            logger.error("%s failed; stopping", task.get_name(), exc_info=task.exception())
    stopping.cancel()
