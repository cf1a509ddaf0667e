"""Log lines as text or JSON, each tagged with the DynamicPrefix it concerns.

Which DynamicPrefix a line concerns is carried in a context variable rather than in
every message: the controller sets it where work for one DynamicPrefix starts (its
watch events, its sources, its status and pool writes), and asyncio copies it into every
task and callback started from there. So a line logged deep inside a receiver or the API
client is tagged too, and `kubectl logs ... | jq 'select(.dynamicPrefix == "home")'`
finds everything about one object.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any, Final, TextIO

CONCERNING: Final = contextvars.ContextVar[str | None]("dynamic_prefix", default=None)
"""The name of the DynamicPrefix the running code works for, if one."""

_ATTRIBUTE: Final = "dynamic_prefix"
"""Where `TagFilter` puts the name on a log record (also settable with ``extra=``)."""


@contextlib.contextmanager
def concerning(name: str | None) -> Iterator[None]:
    """Tag every line logged in this block, and in tasks started from it, with ``name``."""
    token = CONCERNING.set(name)
    try:
        yield
    finally:
        CONCERNING.reset(token)


def context_for(name: str | None) -> contextvars.Context:
    """A copy of the current context concerning ``name``: for ``create_task(context=)``."""
    context = contextvars.copy_context()
    context.run(CONCERNING.set, name)
    return context


def about(name: str) -> dict[str, str]:
    """``extra=`` for one line about ``name`` logged outside its context."""
    return {_ATTRIBUTE: name}


def concerned(record: logging.LogRecord) -> str | None:
    """The DynamicPrefix a record concerns, once `TagFilter` has seen it."""
    value = getattr(record, _ATTRIBUTE, None)
    return value if isinstance(value, str) else None


class TagFilter(logging.Filter):
    """Puts the concerned DynamicPrefix on each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if concerned(record) is None:
            setattr(record, _ATTRIBUTE, CONCERNING.get())
        return True


def _short_logger(name: str) -> str:
    return name.removeprefix("dynamic_prefix.")


def _timestamp(record: logging.LogRecord) -> str:
    moment = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``2026-11-26T14:30:00.123Z INFO    operator.controller [home] message``."""

    def format(self, record: logging.LogRecord) -> str:
        name = concerned(record)
        tag = f" [{name}]" if name else ""
        line = (
            f"{_timestamp(record)} {record.levelname:<7} {_short_logger(record.name)}{tag} "
            f"{record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, dynamicPrefix, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        name = concerned(record)
        if name:
            entry["dynamicPrefix"] = name
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(log_format: str, *, verbose: bool, stream: TextIO | None = None) -> None:
    """Send every log line to ``stream`` (stderr) as ``text`` or ``json``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(TagFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not verbose:
        logging.getLogger("asyncio").setLevel(logging.WARNING)  # debug chatter
