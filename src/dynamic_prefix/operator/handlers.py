"""kopf wiring: login, lifecycle, and the DynamicPrefix watch feeding the controller.

Only an ``on.event`` handler is used, so kopf never writes its own annotations or
finalizers onto users' objects; the controller decides every write. Pools are watched
by `pool_watch` (a thousand pools' events are too many for kopf's per-event cost).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from dynamic_prefix.backends.registry import BACKENDS
from dynamic_prefix.kube.client import KubeClient
from dynamic_prefix.kube.config import ClusterConfig
from dynamic_prefix.kube.leader import LeaderElector, LeaseSettings
from dynamic_prefix.model import api
from dynamic_prefix.operator.controller import Controller
from dynamic_prefix.operator.observability import ObservabilityServer
from dynamic_prefix.operator.pool_watch import PoolKinds

logger = logging.getLogger(__name__)


class _NoDiffBase(kopf.DiffBaseStorage):
    """No diff-bases: with only ``on.event`` handlers nobody reads them.

    kopf would otherwise deep-copy every object on every watch event to compute one; with
    a thousand pools that was a sixth of the operator's CPU during a prefix change.
    """

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


def build_registry(
    config: ClusterConfig,
    *,
    metrics_host: str = "",
    metrics_port: int = 8080,
    lease: LeaseSettings | None = None,
    identity: str = "dynamic-prefix",
) -> kopf.OperatorRegistry:
    """A kopf registry with every handler; ``lease`` None runs without leader election."""
    """A kopf registry with every handler of the operator."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        token = config.bearer_token()
        return kopf.ConnectionInfo(
            server=config.server,
            scheme="Bearer" if token else None,
            token=token,
            ca_path=str(config.ca_file) if config.ca_file else None,
            insecure=config.insecure_skip_tls_verify,
            certificate_path=str(config.client_cert_file) if config.client_cert_file else None,
            private_key_path=str(config.client_key_file) if config.client_key_file else None,
            default_namespace="default",
        )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.enabled = False  # our own events, with our own wording
        settings.persistence.diffbase_storage = _NoDiffBase()
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        electors: list[LeaderElector] = []  # the one elector, once made (if electing)

        def may_write() -> bool:
            return all(elector.may_write() for elector in electors)

        client = KubeClient(config, user_agent=f"dynamic-prefix/{identity}", may_write=may_write)
        await client.__aenter__()
        controller = Controller(client, leading=may_write)
        memo["client"] = client
        memo["controller"] = controller
        memo["elector"] = None
        # the Lease has a client of its own: renewing it is the one write a standby makes
        lease_client = KubeClient(config, user_agent=f"dynamic-prefix/{identity}")
        await lease_client.__aenter__()
        memo["lease_client"] = lease_client
        if lease is not None:
            electors.append(
                LeaderElector(
                    lease_client,
                    lease,
                    identity,
                    on_started=controller.start_leading,
                    on_stopped=controller.stop_leading,
                )
            )
            memo["elector"] = asyncio.create_task(electors[0].run(), name="leader-election")
        memo["pool_kinds"] = asyncio.create_task(
            PoolKinds(client, controller, BACKENDS).run(), name="pool-kinds"
        )
        server = ObservabilityServer(controller, host=metrics_host, port=metrics_port)
        memo["server"] = server
        if metrics_port:
            try:
                await server.start()
            except OSError as error:
                raise kopf.PermanentError(
                    f"cannot serve metrics and health on port {metrics_port}: {error}; "
                    "choose another with --metrics-port"
                ) from error

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        controller: Controller = memo["controller"]
        await memo["server"].stop()
        memo["pool_kinds"].cancel()
        await asyncio.gather(memo["pool_kinds"], return_exceptions=True)
        await controller.close()
        if memo["elector"] is not None:  # gives the lease up for a standby
            memo["elector"].cancel()
            await asyncio.gather(memo["elector"], return_exceptions=True)
        await memo["client"].close()
        await memo["lease_client"].close()

    @kopf.on.event(api.GROUP, api.PLURAL, registry=registry)
    async def dynamic_prefix_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
        controller: Controller = memo["controller"]
        await controller.on_dynamic_prefix(event["type"], event["object"])

    return registry
