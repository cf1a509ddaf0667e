"""Metrics, health and readiness: probes on one endpoint, `/metrics` (HTTPS) on another.

Metrics are read from the controller's own state when Prometheus scrapes, rather than
updated all over the code: what the operator believes (status), how the pools stand,
what the sources dropped and why, how many API requests it made. Names follow the
Prometheus conventions (``_total`` counters, ``_seconds``, base units).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dynamic_prefix import __version__
from dynamic_prefix.model.status import parse_time
from dynamic_prefix.operator.controller import Controller
from dynamic_prefix.operator.metrics_auth import MetricsAuthorizer, Verdict

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.Response]]


class ControllerCollector:
    """A Prometheus collector over a `Controller`'s state."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        """Every metric, computed now."""
        yield from self._process()
        yield from self._prefixes()
        yield self._pools()
        yield self._services()
        yield self._announcements()
        yield from self._counters()
        yield from self._go_operator_metrics()
        yield self._drops()

    def _process(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "dynamic_prefix_build_info", "The operator's version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        leader = GaugeMetricFamily(
            "dynamic_prefix_leader", "1 while this replica holds the leader Lease and may write."
        )
        leader.add_metric([], 1 if self.controller.leading() else 0)
        yield leader
        requests = CounterMetricFamily(
            "dynamic_prefix_api_requests_total",
            "Requests the operator sent to the Kubernetes API, by verb.",
            labels=["verb"],
        )
        for verb, count in sorted(self.controller.client.requests.items()):
            requests.add_metric([verb], count)
        yield requests

    def _prefixes(self) -> Iterator[Metric]:
        controller = self.controller
        current = GaugeMetricFamily(
            "dynamic_prefix_current_prefix_info",
            "The current prefix of each DynamicPrefix (value 1) and its source.",
            labels=["dynamic_prefix", "prefix", "source"],
        )
        deadlines = GaugeMetricFamily(
            "dynamic_prefix_prefix_lifetime_end_timestamp_seconds",
            "When the current prefix's preferred and valid lifetimes end (Unix time).",
            labels=["dynamic_prefix", "lifetime"],
        )
        live = GaugeMetricFamily(
            "dynamic_prefix_prefix_confirmed",
            "1 when a source in this process has reported the prefix (pools may be written).",
            labels=["dynamic_prefix"],
        )
        for name, body in sorted(controller.dynamic_prefixes.items()):
            status = body.get("status") or {}
            if status.get("currentPrefix"):
                current.add_metric(
                    [name, status["currentPrefix"], str(status.get("prefixSource", ""))], 1
                )
            for lifetime, field in (("preferred", "preferredUntil"), ("valid", "validUntil")):
                moment = parse_time(status.get(field))
                if moment is not None:
                    deadlines.add_metric([name, lifetime], moment.timestamp())
            live.add_metric([name], 1 if name in controller.live else 0)
        yield current
        yield deadlines
        yield live

    def _pools(self) -> Metric:
        pools = GaugeMetricFamily(
            "dynamic_prefix_pools",
            "Pools referencing each DynamicPrefix, by backend and sync state after their "
            "last reconcile.",
            labels=["dynamic_prefix", "backend", "state"],
        )
        for name, results in self.controller.outcomes.items():
            by_backend: dict[str, list[int]] = {}
            for key, outcome in results.items():
                counts = by_backend.setdefault(key.backend, [0, 0])
                counts[outcome is not None] += 1
            for backend, (in_sync, failing) in sorted(by_backend.items()):
                pools.add_metric([name, backend, "in_sync"], in_sync)
                pools.add_metric([name, backend, "failing"], failing)
        return pools

    def _services(self) -> Metric:
        services = GaugeMetricFamily(
            "dynamic_prefix_services",
            "LoadBalancer Services naming each DynamicPrefix, by sync state after their last "
            "reconcile (failing includes those waiting for their IPAM's first address).",
            labels=["dynamic_prefix", "state"],
        )
        for name, results in self.controller.service_outcomes.items():
            failing = sum(outcome is not None for outcome in results.values())
            services.add_metric([name, "in_sync"], len(results) - failing)
            services.add_metric([name, "failing"], failing)
        return services

    def _announcements(self) -> Metric:
        announcements = GaugeMetricFamily(
            "dynamic_prefix_bgp_announcements",
            "BGP announcements of each DynamicPrefix's subnets after their last reconcile: "
            "objects in place (configured), and problems that keep a subnet from being "
            "announced (pending).",
            labels=["dynamic_prefix", "state"],
        )
        for name, summary in self.controller.announcer.outcomes.items():
            if summary.wanted:
                announcements.add_metric([name, "configured"], len(summary.advertised))
                pending = len(summary.problems) + len(summary.waiting)
                announcements.add_metric([name, "pending"], pending)
        return announcements

    def _counters(self) -> Iterator[Metric]:
        counts = self.controller.counters
        for metric, what, label, counter in (
            ("dynamic_prefix_source_reports_total",
             "Reports from each prefix source (a prefix learnt, renewed, lost...).",
             "source", counts.source_reports),
            ("dynamic_prefix_prefix_changes_total",
             "Prefixes acquired or changed, by the source that brought them.",
             "source", counts.prefix_changes),
            ("dynamic_prefix_reconcile_errors_total",
             "Reconciles that left a pool out of sync (by backend) or a status unwritten "
             "(backend \"status\").",
             "backend", counts.reconcile_errors),
        ):  # fmt: skip
            family = CounterMetricFamily(metric, what, labels=["dynamic_prefix", label])
            for (name, value), count in sorted(counter.items()):
                family.add_metric([name, value], count)
            yield family

        counters = CounterMetricFamily(
            "dynamic_prefix_events_total",
            "Things that happened, by DynamicPrefix and kind (prefix_changed, source_report, "
            "pool_write, pool_error, ...).",
            labels=["dynamic_prefix", "kind"],
        )
        for (name, kind), count in sorted(counts.events.items()):
            counters.add_metric([name, kind], count)
        yield counters

    def _go_operator_metrics(self) -> Iterator[Metric]:
        """The Go operator's metrics, same names, types, labels and meaning, so that its
        users' dashboards and alerts keep working; ours above say more."""
        controller, counts = self.controller, self.controller.counters
        received = CounterMetricFamily(
            "dynamic_prefix_received",
            "Prefixes received (the first one and every change), by source.",
            labels=["name", "source"],
        )
        for (name, source), count in sorted(counts.prefix_changes.items()):
            received.add_metric([name, source], count)
        yield received
        changes = CounterMetricFamily(
            "dynamic_prefix_changes", "Changes of an existing prefix.", labels=["name"]
        )
        for (name, kind), count in sorted(counts.events.items()):
            if kind == "prefix_changed":
                changes.add_metric([name], count)
        yield changes
        expiry = GaugeMetricFamily(
            "dynamic_prefix_lease_expiry_seconds",
            "When the current prefix's lease (DHCPv6) or valid lifetime ends, Unix time; 0 "
            "when unknown or infinite.",
            labels=["name"],
        )
        healthy = GaugeMetricFamily(
            "dynamic_prefix_receiver_healthy",
            "1 while the source confirms the prefix (PrefixAcquired True), else 0.",
            labels=["name"],
        )
        for name, body in sorted(controller.dynamic_prefixes.items()):
            status = body.get("status") or {}
            if status.get("currentPrefix"):
                end = parse_time(status.get("leaseExpiresAt") or status.get("validUntil"))
                expiry.add_metric([name], 0 if end is None else end.timestamp())
            acquired = [c for c in status.get("conditions") or []
                        if c.get("type") == "PrefixAcquired"]  # fmt: skip
            healthy.add_metric([name], 1 if acquired and acquired[0].get("status") == "True"
                               else 0)  # fmt: skip
        yield expiry
        yield healthy
        synced = GaugeMetricFamily(
            "dynamic_prefix_pools_synced",
            "1 when a pool holds what it should after its last reconcile, else 0 (pool: "
            "its name, namespace/name for a namespaced kind).",
            labels=["backend", "dynamic_prefix", "pool"],
        )
        for name, results in controller.outcomes.items():
            for key, outcome in sorted(results.items(), key=lambda item: str(item[0])):
                pool = f"{key.namespace}/{key.name}" if key.namespace else key.name
                synced.add_metric([key.backend, name, pool], 1 if outcome is None else 0)
        yield synced

    def _drops(self) -> Metric:
        dropped = CounterMetricFamily(
            "dynamic_prefix_packets_dropped_total",
            "Router Advertisements and DHCPv6 messages dropped, by source and reason.",
            labels=["dynamic_prefix", "source", "reason"],
        )
        for name, sources in sorted(self.controller.sources.running().items()):
            for source in sources:
                for reason, count in _drop_counts(source).items():
                    dropped.add_metric([name, source.name, str(reason)], count)
        return dropped


def _drop_counts(source: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for owner in (getattr(source, "listener", None), source):
        for reason, count in dict(getattr(owner, "drop_counts", None) or {}).items():
            key = str(getattr(reason, "value", reason))
            counts[key] = counts.get(key, 0) + int(count)
    return counts


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one of the operator's HTTP endpoints listens (port 0: not at all)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host or "*"
        return f"{host}:{self.port}"


class ObservabilityServer:
    """``/healthz`` (the event loop answers) and ``/readyz`` on one endpoint, ``/metrics``
    on another: over HTTPS for holders of a token allowed to read it (`MetricsAuthorizer`),
    or in plain HTTP without authentication when no TLS context is given (local use).

    Ready means the watches are up (every pool kind listed once) and, on the leader, the
    sources of every valid DynamicPrefix started: true of a working leader and of a
    healthy standby alike, so that a rolling update can go on while one replica leads.
    """

    def __init__(
        self,
        controller: Controller,
        *,
        health: Endpoint,
        metrics: Endpoint,
        tls: ssl.SSLContext | None = None,
        authorizer: MetricsAuthorizer | None = None,
    ) -> None:
        if (tls is None) != (authorizer is None):
            raise ValueError("metrics over TLS go with token authorization, plain HTTP without")
        self.controller = controller
        self.health = health
        self.metrics = metrics
        self.tls = tls
        self.authorizer = authorizer
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ControllerCollector(controller))
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        """Listen; a port in use is an error the operator reports and exits on."""
        shared = self.tls is None and self.health == self.metrics
        if self.health.port:
            routes: list[tuple[str, Handler]] = [
                ("/healthz", self._healthz),
                ("/readyz", self._readyz),
            ]
            if shared:
                routes.append(("/metrics", self._metrics))
            await self._listen(self.health, routes, None)
        if self.metrics.port and not shared:
            await self._listen(self.metrics, [("/metrics", self._metrics)], self.tls)

    async def _listen(
        self, endpoint: Endpoint, routes: list[tuple[str, Handler]], tls: ssl.SSLContext | None
    ) -> None:
        app = web.Application()
        for path, handler in routes:
            app.router.add_get(path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, endpoint.host or None, endpoint.port, ssl_context=tls).start()
        scheme = "https" if tls is not None else "http"
        logger.info("%s on %s://%s", " ".join(path for path, _ in routes), scheme, endpoint)

    async def stop(self) -> None:
        """Stop listening."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.authorizer is not None:
            verdict = await self.authorizer.judge(request.headers.get("Authorization"))
            if verdict is Verdict.UNAUTHENTICATED:
                challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}
                text = "a bearer token is needed\n"
                return web.Response(status=401, text=text, headers=challenge)
            if verdict is Verdict.FORBIDDEN:
                return web.Response(status=403, text="this token may not get /metrics\n")
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if not self.controller.pools_listed:
            return web.Response(status=503, text="pool kinds not listed yet\n")
        pending = self.controller.sources_pending()
        if pending:
            return web.Response(status=503, text=f"sources not started for {', '.join(pending)}\n")
        return web.Response(text="ready\n")
