"""`KubeApi`: the few calls the controller makes, as a protocol.

`KubeClient` is the real one; a test can give the controller an in-memory stand-in
(``tests/operator/fake_kube.py``) and check its decisions in milliseconds, while the
tests against a real API server check the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from dynamic_prefix.kube.client import Resource


class KubeApi(Protocol):
    """Read, create, patch and delete objects; count requests by verb."""

    @property
    def requests(self) -> Mapping[str, int]:
        """Requests made so far, by verb (``get``, ``patch``, ...), for metrics."""
        ...

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Any:
        """One object; `NotFound` if there is none."""
        ...

    async def create(self, resource: Resource, body: Mapping[str, Any]) -> Any:
        """Create an object; `Conflict` if it exists."""
        ...

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
        """A JSON merge patch of an object or its status; `NotFound` if it is gone,
        `Conflict` if it names a resourceVersion that is no longer current."""
        ...

    async def delete(self, resource: Resource, name: str, *, namespace: str | None = None) -> Any:
        """Delete an object; `NotFound` if it is gone already."""
        ...
