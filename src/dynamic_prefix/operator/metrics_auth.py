"""Who may read `/metrics`: the Kubernetes API decides, as for the kubelet's own metrics.

A scrape must carry a bearer token. The token is checked with a TokenReview (who is it?)
and the answer with a SubjectAccessReview (may they ``get`` the non-resource URL
``/metrics``?), so access is granted with ordinary RBAC: bind the ClusterRole
``dynamic-prefix-metrics-reader`` (deploy/metrics) to Prometheus' ServiceAccount.
Answers are kept for a few seconds per token, so a scrape every 15 s costs two API
requests at most, and a flood of scrapes with one token costs nothing more.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from dynamic_prefix.kube.api import KubeApi
from dynamic_prefix.kube.client import Resource
from dynamic_prefix.kube.errors import ApiError

logger = logging.getLogger(__name__)

TOKEN_REVIEWS: Final = Resource("authentication.k8s.io", "v1", "tokenreviews", namespaced=False)
ACCESS_REVIEWS: Final = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False
)
METRICS_PATH: Final = "/metrics"
REMEMBER_SECONDS: Final = 10.0
REMEMBERED_TOKENS: Final = 256


class Verdict(enum.Enum):
    """How a scrape is answered: 200, 401 (who are you?) or 403 (not you)."""

    ALLOWED = 200
    UNAUTHENTICATED = 401
    FORBIDDEN = 403


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if that is what it holds."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class MetricsAuthorizer:
    """Judges scrapes by TokenReview and SubjectAccessReview; see the module docstring."""

    def __init__(self, client: KubeApi, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clock = clock
        self._remembered: OrderedDict[str, tuple[float, Verdict]] = OrderedDict()

    async def judge(self, authorization: str | None) -> Verdict:
        """The verdict for a request with this Authorization header."""
        token = bearer_token(authorization)
        if token is None:
            return Verdict.UNAUTHENTICATED
        key = hashlib.sha256(token.encode()).hexdigest()  # tokens are not kept in memory
        now = self.clock()
        remembered = self._remembered.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        try:
            verdict = await self._review(token)
        except ApiError as error:
            logger.warning("cannot review a metrics scrape's token: %s", error)
            return Verdict.UNAUTHENTICATED  # not remembered: the next scrape asks again
        self._remembered[key] = (now + REMEMBER_SECONDS, verdict)
        self._remembered.move_to_end(key)
        while len(self._remembered) > REMEMBERED_TOKENS:
            self._remembered.popitem(last=False)
        return verdict

    async def _review(self, token: str) -> Verdict:
        review = await self.client.create(
            TOKEN_REVIEWS,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
             "spec": {"token": token}},
        )  # fmt: skip
        status: dict[str, Any] = review.get("status") or {}
        if not status.get("authenticated"):
            return Verdict.UNAUTHENTICATED
        user = status.get("user") or {}
        access = await self.client.create(
            ACCESS_REVIEWS,
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.get("username", ""),
                    "uid": user.get("uid", ""),
                    "groups": user.get("groups") or [],
                    "extra": user.get("extra") or {},
                    "nonResourceAttributes": {"path": METRICS_PATH, "verb": "get"},
                },
            },
        )
        allowed = bool((access.get("status") or {}).get("allowed"))
        return Verdict.ALLOWED if allowed else Verdict.FORBIDDEN
