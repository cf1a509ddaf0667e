"""Kubernetes Events (core/v1) about our objects: what happened, in words, next to the object."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Hashable, Mapping
from typing import Any

from dynamic_prefix.kube.api import KubeApi
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.kube.errors import ApiError

logger = logging.getLogger(__name__)

EVENTS = Resource("", "v1", "events", namespaced=True, kind="Event")
COMPONENT = "dynamic-prefix-operator"
MAX_MESSAGE = 1024


class EventRecorder:
    """Posts Events; a failure to post is logged, never raised: events are best effort."""

    def __init__(self, client: KubeApi, *, default_namespace: str = "default") -> None:
        self._client = client
        self._default_namespace = default_namespace
        self.posted = 0

    async def record(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        """One Event on ``obj`` (cluster-scoped objects get theirs in the default namespace)."""
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or self._default_namespace
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata.get('name', 'object')}.",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": type,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        log = logger.warning if type == "Warning" else logger.info
        where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""  # cluster-scoped
        log("%s %s%s: %s: %s", obj.get("kind"), where, metadata.get("name"), reason, message)
        try:
            await self._client.create(EVENTS, body)
        except ApiError as error:
            logger.warning("could not post event %s on %s: %s", reason, metadata.get("name"), error)
            return
        self.posted += 1


class OncePerMessage:
    """Events about objects, each posted once per distinct message of its reason: a
    reconcile that finds the same problem again says nothing new (no event storms)."""

    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder
        self._said: dict[tuple[Hashable, str], str] = {}

    async def post(
        self, key: Hashable, obj: Mapping[str, Any], *, type: str, reason: str, message: str
    ) -> None:
        """Post unless this message of this reason was the last said about ``key``."""
        if self._said.get((key, reason)) == message:
            return
        self._said[key, reason] = message
        await self._recorder.record(obj, type=type, reason=reason, message=message)

    def forget(self, key: Hashable) -> None:
        """The object is gone: one of the same name later is told afresh."""
        for said in [s for s in self._said if s[0] == key]:
            del self._said[said]
