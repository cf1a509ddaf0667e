"""A small asyncio client for the Kubernetes API.

Only what the operator needs: get, list, create, patch (merge, JSON and server-side
apply), delete, watch and discovery. Every request is counted by verb, so tests can
prove that a reconcile of unchanged state made no writes, and metrics can show load.
Watches are streams read through aiohttp; every other request goes through
`Http1Client`, which costs a prefix change's writes 40% less CPU (docs/benchmarks.md).
"""

from __future__ import annotations

import collections
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import aiohttp

from dynamic_prefix.kube.config import ClusterConfig
from dynamic_prefix.kube.errors import ApiError, NotLeader, TemporaryError, error_for
from dynamic_prefix.kube.http1 import Http1Client, HttpError, Refused

logger = logging.getLogger(__name__)

PatchType = Literal["merge", "json", "apply", "strategic"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
    "strategic": "application/strategic-merge-patch+json",
}
WRITE_VERBS = frozenset({"create", "patch", "update", "delete"})
REQUESTS_IN_FLIGHT = 64  # connections for requests: the reconcilers run 64 at a time each
OWN_WRITES_REMEMBERED = 65536  # resourceVersions of our writes awaiting their watch echo
WATCH_SILENCE_SECONDS = 90.0
"""A watch that brings nothing for this long, not even a bookmark, is ended, and the
informer watches again from the last version it saw. Asked for bookmarks, the API server
sends one about every minute on a kind that has had any event, so a healthy watch is
never this quiet for long; but an API server has been seen to stop delivering to a
watch it kept open (kube-apiserver 1.20 under heavy Service churn: silent until the
watch's own 300 s were up, then the held-back events all came with the next watch;
docs/benchmarks.md). A kind with no event at all is watched again this often, which
costs one request."""
_MODIFIED = b'"type":"MODIFIED"'
_RESOURCE_VERSION_KEY = b'"resourceVersion":"'
_RESOURCE_VERSION = re.compile(rb'"resourceVersion":"(\d+)"')


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
    """One event of a watch stream: ADDED, MODIFIED, DELETED or BOOKMARK, or OWN_WRITE: a
    modification this client made itself, carrying only its resourceVersion."""

    type: str
    object: dict[str, Any]


def _forget_up_to(versions: dict[str, None], seen: int) -> None:
    """Drop remembered versions a watch has passed: their echo will never come (it came
    before the write's answer, or the write changed nothing, or the watch restarted past
    it). Versions are remembered about in order, so looking at the oldest ones is enough."""
    while versions:
        oldest = next(iter(versions))
        if int(oldest) > seen:
            return
        del versions[oldest]


class KubeClient:
    """One HTTP session to one API server; use as ``async with KubeClient(config)``."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        user_agent: str = "dynamic-prefix",
        may_write: Callable[[], bool] | None = None,
        watch_silence: float = WATCH_SILENCE_SECONDS,
    ) -> None:
        self._config = config
        self.watch_silence = watch_silence
        self._user_agent = user_agent
        self._may_write = may_write
        self._session: aiohttp.ClientSession | None = None
        self._http: Http1Client | None = None
        self.requests: collections.Counter[str] = collections.Counter()
        # resourceVersions our writes to kinds watched with ``own_writes`` produced (an
        # ordered set per kind, oldest first): each is dropped when its echo comes
        self._own_writes: dict[Resource, dict[str, None]] = {}

    async def __aenter__(self) -> KubeClient:
        context = self._config.ssl_context()
        # watches: long-lived streams, a few per kind
        self._session = aiohttp.ClientSession(
            base_url=self._config.server,
            connector=aiohttp.TCPConnector(ssl=context, limit=32),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        # every other request: the pool batch (64 in flight) and the rest
        self._http = Http1Client(self._config.server, context, limit=REQUESTS_IN_FLIGHT)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session; idempotent."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def writes(self) -> int:
        """How many writing requests were sent (create, patch, update, delete)."""
        return sum(count for verb, count in self.requests.items() if verb in WRITE_VERBS)

    def _header_lines(self, content_type: str | None) -> bytes:
        """`_headers` as the lines `Http1Client` sends."""
        headers = self._headers(content_type)
        return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()

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
        if self._http is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        guard = self._may_write if verb in WRITE_VERBS else None
        if guard is not None and not guard():
            # checked at the moment of writing, so that a process that was paused while
            # it led cannot write once it may no longer hold the lease; and again in the
            # step that hands the bytes to the connection (`Http1Client.request`)
            raise NotLeader(0, f"{method} {path}: not the leader; nothing is written")
        self.requests[verb] += 1
        target = path + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body).encode()
        headers = self._header_lines(content_type if data is not None else None)
        try:
            answer = await self._http.request(
                method, target, headers, data, timeout=timeout, may_send=guard
            )
        except Refused as error:
            raise NotLeader(0, f"{method} {path}: the lease was lost while the write "
                               "waited; nothing is written") from error  # fmt: skip
        except (TimeoutError, HttpError, OSError) as error:
            if guard is not None and not guard():
                raise NotLeader(0, f"{method} {path}: the lease was lost meanwhile") from error
            raise TemporaryError(0, f"{method} {path}: {error!r}") from error
        payload = _decode(answer.body)
        _drop_managed_fields(payload)
        for item in payload.get("items") or () if isinstance(payload, dict) else ():
            _drop_managed_fields(item)
        if answer.status >= 400:
            raise error_for(answer.status, payload)
        return payload

    def drop_echoes_of(self, resource: Resource) -> dict[str, None]:
        """From now on, remember the versions our ``drop_echo`` writes to ``resource``
        produce, so that its watches with ``own_writes`` recognise their echoes."""
        return self._own_writes.setdefault(resource, {})

    def _remember_own_write(self, resource: Resource, payload: Any) -> Any:
        """Note the version a write produced, if its kind's watch drops our echoes."""
        versions = self._own_writes.get(resource)
        if versions is not None and isinstance(payload, dict):
            version = (payload.get("metadata") or {}).get("resourceVersion")
            if isinstance(version, str) and version:
                versions[version] = None
                if len(versions) > OWN_WRITES_REMEMBERED:  # echoes lost to a restart
                    del versions[next(iter(versions))]
        return payload

    def _own_write(self, versions: dict[str, None], line: bytes) -> str | None:
        """The resourceVersion of a watch line that is the echo of our own modification,
        found without decoding the line; None for anything else (decoded as usual).

        Only MODIFIED events are taken, and only when ``"resourceVersion":"`` occurs once,
        so a user's annotation that happens to be named resourceVersion cannot pass."""
        if _MODIFIED not in line[:40] or line.count(_RESOURCE_VERSION_KEY) != 1:
            return None
        match = _RESOURCE_VERSION.search(line)
        if match is None:
            return None
        version = match.group(1).decode()
        if version not in versions:
            return None
        del versions[version]  # each write echoes once
        _forget_up_to(versions, int(version))
        return version

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
        drop_echo: bool = False,
    ) -> Any:
        """Patch an object (or its status); `NotFound` if it is gone.

        ``drop_echo``: the caller keeps the answer, so a watch of this kind opened with
        ``own_writes`` may drop the event this write causes (see `watch`).
        """
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force:
            params["force"] = "true"
        patched = await self.request(
            "patch",
            "PATCH",
            resource.path(name, namespace=namespace, subresource=subresource),
            params=params or None,
            body=patch,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
        )
        return self._remember_own_write(resource, patched) if drop_echo else patched

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
        own_writes: bool = False,
        keep_line: Callable[[bytes], bool] | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """The events of one watch request, until the server ends it or it brings nothing
        for `watch_silence` seconds; `Gone` if too old.

        With ``own_writes``, the echo of a modification this client made is not decoded:
        it comes as an OWN_WRITE event holding only its resourceVersion. A prefix change
        writes every pool, so this saves decoding each of them a second time. An echo
        that arrives before the answer to the write is decoded as usual.

        ``keep_line``: lines it refuses are not decoded and not yielded (a watch of every
        Service that cares for a few); BOOKMARKs and errors are always kept.
        """
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds),
                  "allowWatchBookmarks": "true"}  # fmt: skip
        if resource_version:
            params["resourceVersion"] = resource_version
        self.requests["watch"] += 1
        versions = self.drop_echoes_of(resource) if own_writes else None
        if versions and resource_version and resource_version.isdigit():
            _forget_up_to(versions, int(resource_version))  # this watch starts past them
        url = resource.path(namespace=namespace) + "?" + urlencode(params)
        try:
            async with self._session.get(
                url,
                headers=self._headers(),
                # (a request's timeout replaces the session's: the connect bound is repeated)
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=10, sock_read=self.watch_silence
                ),
            ) as response:
                if response.status >= 400:
                    raise error_for(response.status, _decode(await response.text()))
                async for event in self._events(response, resource, versions, keep_line):
                    yield event
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise TemporaryError(0, f"watch {resource}: {error!r}") from error

    async def _events(
        self,
        response: aiohttp.ClientResponse,
        resource: Resource,
        versions: dict[str, None] | None,
        keep_line: Callable[[bytes], bool] | None,
    ) -> AsyncIterator[WatchEvent]:
        """The events of one watch's answer, until it ends or falls silent for
        `watch_silence` seconds (`WATCH_SILENCE_SECONDS`: then it just ends)."""
        try:
            async for line in response.content:
                if not line.strip():
                    continue
                if versions is not None and (version := self._own_write(versions, line)):
                    yield WatchEvent("OWN_WRITE", {"metadata": {"resourceVersion": version}})
                    continue
                if keep_line is not None and not _always_kept(line) and not keep_line(line):
                    continue
                event = json.loads(line)
                _drop_managed_fields(event.get("object"))
                if event.get("type") == "ERROR":
                    status = event.get("object", {})
                    raise error_for(int(status.get("code", 500)), status)
                if versions:
                    seen = (event.get("object", {}).get("metadata") or {}).get("resourceVersion")
                    if isinstance(seen, str) and seen.isdigit():
                        _forget_up_to(versions, int(seen))
                yield WatchEvent(event["type"], event["object"])
        except aiohttp.SocketTimeoutError:
            logger.debug("watch %s: nothing for %.0f s; watching again", resource,
                         self.watch_silence)  # fmt: skip

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


def _always_kept(line: bytes) -> bool:
    """Watch lines that are never filtered out: bookmarks and errors."""
    head = line[:40]
    return b'"type":"BOOKMARK"' in head or b'"type":"ERROR"' in head


def _drop_managed_fields(obj: Any) -> None:
    """Forget ``metadata.managedFields``: the operator never reads it, and it is the
    largest part of most objects it holds (a pool or Service held without it takes about
    a third less memory)."""
    if isinstance(obj, dict):
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("managedFields", None)


def _decode(raw: str | bytes) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        return {"message": text[:500]}
