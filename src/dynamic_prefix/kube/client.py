"""A small asyncio client for the Kubernetes API, on aiohttp (already kopf's HTTP stack).

Only what the operator needs: get, list, create, patch (merge, JSON and server-side
apply), delete, watch and discovery. Every request is counted by verb, so tests can
prove that a reconcile of unchanged state made no writes, and metrics can show load.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import aiohttp

from dynamic_prefix.kube.config import ClusterConfig
from dynamic_prefix.kube.errors import ApiError, NotLeader, TemporaryError, error_for

logger = logging.getLogger(__name__)

PatchType = Literal["merge", "json", "apply", "strategic"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
    "strategic": "application/strategic-merge-patch+json",
}
WRITE_VERBS = frozenset({"create", "patch", "update", "delete"})


@dataclass(frozen=True, slots=True)
class Resource:
    """A kind of object on the API server, by group, version and plural name."""

    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str = ""

    @property
    def api_version(self) -> str:
        """``group/version``, or just ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, name: str | None = None, *, namespace: str | None = None, subresource: str = ""
    ) -> str:
        """The URL path of the collection, or of one object (and its subresource)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}/{self.version}" if self.group else self.plural


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One event of a watch stream: ADDED, MODIFIED, DELETED or BOOKMARK."""

    type: str
    object: dict[str, Any]


class KubeClient:
    """One HTTP session to one API server; use as ``async with KubeClient(config)``."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        user_agent: str = "dynamic-prefix",
        may_write: Callable[[], bool] | None = None,
    ) -> None:
        self._config = config
        self._user_agent = user_agent
        self._may_write = may_write
        self._session: aiohttp.ClientSession | None = None
        self.requests: collections.Counter[str] = collections.Counter()

    async def __aenter__(self) -> KubeClient:
        # room for the pool batch (64 in flight) next to the long-lived watches
        connector = aiohttp.TCPConnector(ssl=self._config.ssl_context(), limit=96)
        self._session = aiohttp.ClientSession(
            base_url=self._config.server,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session; idempotent."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def writes(self) -> int:
        """How many writing requests were sent (create, patch, update, delete)."""
        return sum(count for verb, count in self.requests.items() if verb in WRITE_VERBS)

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        token = self._config.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        """Send one request and decode its JSON answer; errors become `ApiError`s."""
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        if verb in WRITE_VERBS and self._may_write is not None and not self._may_write():
            # checked at the moment of writing, so that a process that was paused while
            # it led cannot write once it may no longer hold the lease
            raise NotLeader(0, f"{method} {path}: not the leader; nothing is written")
        self.requests[verb] += 1
        url = path + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body)
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                text = await response.text()
                payload = _decode(text)
                if response.status >= 400:
                    raise error_for(response.status, payload)
                return payload
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise TemporaryError(0, f"{method} {path}: {error!r}") from error

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Any:
        """One object."""
        return await self.request("get", "GET", resource.path(name, namespace=namespace))

    async def list_objects(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> Any:
        """All objects of a kind (in one namespace, or all); the answer is a List object."""
        params = {"labelSelector": label_selector} if label_selector else None
        return await self.request("list", "GET", resource.path(namespace=namespace), params=params)

    async def create(self, resource: Resource, body: Mapping[str, Any]) -> Any:
        """Create an object; `Conflict` if it exists."""
        namespace = body.get("metadata", {}).get("namespace")
        return await self.request(
            "create", "POST", resource.path(namespace=namespace), body=dict(body)
        )

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        subresource: str = "",
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
        force: bool = False,
    ) -> Any:
        """Patch an object (or its status); `NotFound` if it is gone."""
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force:
            params["force"] = "true"
        return await self.request(
            "patch",
            "PATCH",
            resource.path(name, namespace=namespace, subresource=subresource),
            params=params or None,
            body=patch,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
        )

    async def replace(
        self, resource: Resource, name: str, body: Mapping[str, Any], *, subresource: str = ""
    ) -> Any:
        """PUT a whole object; its resourceVersion makes it fail with `Conflict` if stale."""
        namespace = body.get("metadata", {}).get("namespace")
        return await self.request(
            "update",
            "PUT",
            resource.path(name, namespace=namespace, subresource=subresource),
            body=dict(body),
        )

    async def delete(self, resource: Resource, name: str, *, namespace: str | None = None) -> Any:
        """Delete an object; `NotFound` if it is gone already."""
        return await self.request("delete", "DELETE", resource.path(name, namespace=namespace))

    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """The events of one watch request, until the server ends it; `Gone` if too old."""
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds),
                  "allowWatchBookmarks": "true"}  # fmt: skip
        if resource_version:
            params["resourceVersion"] = resource_version
        self.requests["watch"] += 1
        url = resource.path(namespace=namespace) + "?" + urlencode(params)
        try:
            async with self._session.get(
                url,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
            ) as response:
                if response.status >= 400:
                    raise error_for(response.status, _decode(await response.text()))
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object", {})
                        raise error_for(int(status.get("code", 500)), status)
                    yield WatchEvent(event["type"], event["object"])
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise TemporaryError(0, f"watch {resource}: {error!r}") from error

    async def discover_group(self, group: str) -> list[dict[str, Any]]:
        """The versions a group serves (``[]`` if none), preferred version first."""
        try:
            answer = await self.request("discovery", "GET", f"/apis/{group}")
        except ApiError as error:
            if error.status == 404:
                return []
            raise
        versions: list[dict[str, Any]] = answer.get("versions", [])
        preferred = answer.get("preferredVersion", {}).get("version")
        return sorted(versions, key=lambda v: v.get("version") != preferred)

    async def discover_resources(self, group: str, version: str) -> list[dict[str, Any]]:
        """The resources one group version serves (``[]`` if it is not served)."""
        try:
            answer = await self.request("discovery", "GET", f"/apis/{group}/{version}")
        except ApiError as error:
            if error.status == 404:
                return []
            raise
        resources: list[dict[str, Any]] = answer.get("resources", [])
        return resources


def _decode(text: str) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"message": text[:500]}
