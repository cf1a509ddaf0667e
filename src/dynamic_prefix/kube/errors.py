"""HTTP answers of the API server mapped to exceptions, once (kopf's _cogs/clients/errors)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """The API server refused a request; ``status`` is its HTTP status code."""

    def __init__(self, status: int, message: str, *, reason: str = "", body: Any = None) -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body


class NotFound(ApiError):
    """404: the object (or its kind) does not exist; on a delete or patch, nothing to do."""


class Conflict(ApiError):
    """409: stale resourceVersion or the object exists already: re-read and retry."""


class Forbidden(ApiError):
    """403: RBAC does not allow it; permanent until someone changes the role."""


class Unauthorized(ApiError):
    """401: credentials missing or expired."""


class Invalid(ApiError):
    """422: the object breaks the schema or an admission rule; permanent for that object."""


class Gone(ApiError):
    """410: a watch's resourceVersion is too old; list again."""


class NotLeader(ApiError):
    """Not sent at all: this replica does not hold the leader lease, so it must not write."""


class TemporaryError(ApiError):
    """5xx, 429 or no answer at all: worth retrying after a pause."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TemporaryError,
}


def error_for(status: int, body: Any) -> ApiError:
    """The exception for an error response, with the server's own message."""
    message, reason = str(body), ""
    if isinstance(body, dict):
        message = str(body.get("message", body))
        reason = str(body.get("reason", ""))
    cls = _BY_STATUS.get(status, TemporaryError if status >= 500 else ApiError)
    return cls(status, message, reason=reason, body=body)
