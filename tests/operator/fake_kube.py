"""An in-memory stand-in for the Kubernetes API, implementing `KubeApi`.

It exists so that the controller's decisions (what it writes, when, and what it says)
can be checked in milliseconds; the tests against a real kube-apiserver + etcd check the
wire, the schemas and the watch. What it models, as the API server does: objects by
resource, namespace and name; a resourceVersion from one counter; JSON merge patches
(RFC 7386) of the object or of its ``status`` subresource only; optimistic concurrency
(a patch naming a stale ``metadata.resourceVersion`` is a 409); ``generation`` bumped
by changes outside status and metadata; NotFound and Conflict; and failures a test
injects. It does not validate schemas.
"""

from __future__ import annotations

import collections
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dynamic_prefix.kube.client import Resource
from dynamic_prefix.kube.errors import ApiError, Conflict, NotFound
from dynamic_prefix.kube.events import EVENTS
from tests.merge_patch import merge_patch

Key = tuple[str, str, str]  # (resource path, namespace, name)


@dataclass(frozen=True, slots=True)
class Write:
    """One write the fake accepted, for tests to inspect."""

    verb: str
    resource: str
    name: str
    body: Any


class FakeKube:
    """Objects in a dict; every call counted by verb, every accepted write recorded."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.writes: list[Write] = []
        self._requests: collections.Counter[str] = collections.Counter()
        self._version = 100
        self._failures: dict[str, list[ApiError]] = collections.defaultdict(list)

    # --- for tests -------------------------------------------------------------------

    @property
    def requests(self) -> Mapping[str, int]:
        return self._requests

    def fail_next(self, verb: str, error: ApiError) -> None:
        """The next call of ``verb`` raises ``error`` (queued, one per call)."""
        self._failures[verb].append(error)

    def put(self, resource: Resource, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object as if someone else had created it; returns it as stored."""
        stored = self._stamp(copy.deepcopy(dict(body)), generation=1)
        self.objects[self._key(resource, body)] = stored
        return copy.deepcopy(stored)

    def object(
        self, resource: Resource, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        stored = self.objects.get((resource.path(), namespace or "", name))
        return None if stored is None else copy.deepcopy(stored)

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        """The Events posted so far (of one reason, if given), oldest first."""
        found = [body for verb, path, _, body in self._writes_of(EVENTS) if verb == "create"]
        return [e for e in found if reason is None or e.get("reason") == reason]

    def writes_to(self, resource: Resource) -> list[Write]:
        return [w for w in self.writes if w.resource == resource.path()]

    # --- KubeApi ---------------------------------------------------------------------

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Any:
        self._call("get")
        stored = self.objects.get((resource.path(), namespace or "", name))
        if stored is None:
            raise NotFound(404, f"{resource} {name} not found", reason="NotFound")
        return copy.deepcopy(stored)

    async def create(self, resource: Resource, body: Mapping[str, Any]) -> Any:
        self._call("create")
        new: dict[str, Any] = copy.deepcopy(dict(body))
        metadata = new.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = f"{metadata['generateName']}{self._version + 1:x}"
        key = self._key(resource, new)
        if key in self.objects:
            raise Conflict(409, f"{resource} {key[2]} already exists", reason="AlreadyExists")
        stored = self._stamp(copy.deepcopy(new), generation=1)
        self.objects[key] = stored
        self.writes.append(Write("create", key[0], key[2], new))
        return copy.deepcopy(stored)

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        subresource: str = "",
        drop_echo: bool = False,
    ) -> Any:
        self._call("patch")
        key = (resource.path(), namespace or "", name)
        stored = self.objects.get(key)
        if stored is None:
            raise NotFound(404, f"{resource} {name} not found", reason="NotFound")
        wanted = ((patch.get("metadata") or {}) if isinstance(patch, Mapping) else {}).get(
            "resourceVersion"
        )
        if wanted is not None and wanted != stored["metadata"]["resourceVersion"]:
            raise Conflict(409, "the object has been modified", reason="Conflict")
        if subresource == "status":
            changed = merge_patch(stored, {"status": patch.get("status")})
        else:
            changed = merge_patch(stored, {k: v for k, v in patch.items() if k != "status"})
        outside = [k for k in set(changed) | set(stored) if k not in ("metadata", "status")]
        generation = stored["metadata"].get("generation", 1)
        if any(changed.get(k) != stored.get(k) for k in outside):
            generation += 1
        self.objects[key] = self._stamp(changed, generation=generation)
        self.writes.append(Write(f"patch/{subresource}" if subresource else "patch", key[0],
                                 name, copy.deepcopy(patch)))  # fmt: skip
        return copy.deepcopy(self.objects[key])

    async def delete(self, resource: Resource, name: str, *, namespace: str | None = None) -> Any:
        self._call("delete")
        key = (resource.path(), namespace or "", name)
        if self.objects.pop(key, None) is None:
            raise NotFound(404, f"{resource} {name} not found", reason="NotFound")
        self.writes.append(Write("delete", key[0], name, None))
        return {"kind": "Status", "status": "Success"}

    # --- internals -------------------------------------------------------------------

    def _call(self, verb: str) -> None:
        self._requests[verb] += 1
        if self._failures[verb]:
            raise self._failures[verb].pop(0)

    def _stamp(self, body: dict[str, Any], *, generation: int) -> dict[str, Any]:
        self._version += 1
        metadata = body.setdefault("metadata", {})
        metadata["resourceVersion"] = str(self._version)
        metadata["generation"] = generation
        return body

    @staticmethod
    def _key(resource: Resource, body: Mapping[str, Any]) -> Key:
        metadata = body.get("metadata") or {}
        return (resource.path(), metadata.get("namespace") or "", str(metadata.get("name", "")))

    def _writes_of(self, resource: Resource) -> list[tuple[str, str, str, Any]]:
        return [(w.verb, w.resource, w.name, w.body) for w in self.writes
                if w.resource == resource.path()]  # fmt: skip
