"""A lean HTTP/1.1 client for the API server's short requests (get, create, patch, delete).

A prefix change writes every pool and Service at once; with aiohttp's general-purpose
client, building and tracing each request cost about as much CPU as everything else the
operator does per pool (measured in docs/benchmarks.md, issue 16). The API server needs
none of that generality: one host, keep-alive connections, a request that fits in one
write, an answer with a Content-Length or chunked body. Watches stay on aiohttp: they are
long-lived streams, few, and not on the per-object path.

Two rules make it safe for writes:
- ``may_send`` is asked in the same step of the event loop as the bytes are handed to
  the connection: a process paused after deciding a write cannot send it after the pause
  (no await lies between the check and the send).
- Only a GET is sent a second time, when a kept-alive connection turned out to be closed
  before any byte of the answer came (the server closes idle connections): a write may
  have been applied, so it fails and its caller decides (the reconcilers retry with the
  object read again; a repeated event or lease renewal would not be harmless).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
_HEX_DIGITS = b"0123456789abcdefABCDEF"
MAX_BODY_BYTES = 512 * 1024 * 1024  # a guard against a runaway answer, not a limit on lists


class HttpError(Exception):
    """The connection failed or the answer was not HTTP/1.1 we can read."""


class Refused(HttpError):
    """``may_send`` said no: nothing was sent."""


@dataclass(frozen=True, slots=True)
class Answer:
    """Status and body of one answer (headers are read, not kept: none is needed)."""

    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One kept-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._answer: asyncio.Future[Answer] | None = None
        self._received_any = False
        self._keep_alive = True
        # parsing state of the current answer
        self._status = 0
        self._length: int | None = None
        self._chunked = False
        self._head_done = False
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None and not self._answer.done():
            if self._head_done and not self._chunked and self._length is None and exc is None:
                # no length given: the answer ends with the connection (closed cleanly)
                self._answer.set_result(Answer(self._status, bytes(self._body)))
            else:
                error = _Lost(f"connection closed: {exc!r}", before_answer=not self._received_any)
                self._answer.set_exception(error)

    def send(self, data: bytes, answer: asyncio.Future[Answer]) -> None:
        assert self.transport is not None
        self._answer = answer
        self._received_any = False
        self._reset_answer()
        self.transport.write(data)

    def _reset_answer(self) -> None:
        self._status, self._length, self._chunked = 0, None, False
        self._head_done, self._keep_alive = False, True
        self._body = bytearray()

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        self._buffer += data
        try:
            self._parse()
        except HttpError as error:
            self._fail(error)

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _parse(self) -> None:
        if self._answer is None or self._answer.done():
            if self._buffer:
                raise HttpError("bytes from the server while no request was open")
            return
        if not self._head_done:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    raise HttpError("answer headers too long")
                return
            self._read_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
            if 100 <= self._status < 200:  # an interim answer: the real one follows
                self._reset_answer()
                self._parse()
                return
        if self._chunked:
            done = self._read_chunks()
        elif self._length is not None:
            take = min(self._length - len(self._body), len(self._buffer))
            self._body += self._buffer[:take]
            del self._buffer[:take]
            done = len(self._body) == self._length
        else:
            self._body += self._buffer
            self._buffer.clear()
            self._keep_alive = False
            done = False  # until the connection closes
        if len(self._body) > MAX_BODY_BYTES:
            raise HttpError("answer body too large")
        if done:
            answer, self._answer = self._answer, None
            answer.set_result(Answer(self._status, bytes(self._body)))
            if not self._keep_alive or self._buffer:
                self.abort()  # closing, or bytes beyond the answer: not to be reused

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        self._status = int(parts[1])
        self._head_done = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                if not value.isdigit():
                    raise HttpError(f"bad Content-Length {value[:40]!r}")
                self._length = int(value)
            elif name == b"transfer-encoding":
                self._chunked = value.lower().endswith(b"chunked")
            elif name == b"connection" and value.lower() == b"close":
                self._keep_alive = False
        if self._chunked:
            self._length = None
        if self._status in (204, 304):
            self._length, self._chunked = 0, False  # never a body (RFC 9112, 6.3)

    def _read_chunks(self) -> bool:
        """Move whole chunks from the buffer to the body; whether the last one came."""
        while True:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return False
            size_text = bytes(self._buffer[:end]).split(b";", 1)[0].strip()
            if not size_text or len(size_text) > 16 or size_text.strip(_HEX_DIGITS):
                raise HttpError(f"bad chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:
                # the last chunk: optional trailer lines, then an empty line
                last = self._buffer.find(b"\r\n\r\n", end)
                if last < 0:
                    return False
                del self._buffer[: last + 4]
                return True
            if len(self._buffer) < end + 2 + size + 2:
                return False
            start = end + 2
            if self._buffer[start + size : start + size + 2] != b"\r\n":
                raise HttpError("a chunk is not followed by CRLF")
            self._body += self._buffer[start : start + size]
            del self._buffer[: start + size + 2]


class _Lost(HttpError):
    def __init__(self, message: str, *, before_answer: bool) -> None:
        super().__init__(message)
        self.before_answer = before_answer


class Http1Client:
    """Kept-alive connections to one server, at most ``limit`` at once."""

    def __init__(
        self,
        server: str,
        ssl_context: ssl.SSLContext | None,
        *,
        limit: int = 64,
        connect_timeout: float = 10.0,
    ) -> None:
        url = urlsplit(server)
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = ssl_context if url.scheme == "https" else None
        authority = url.netloc.rsplit("@", 1)[-1]
        self._host_header = f"Host: {authority}\r\n".encode()
        self._idle: collections.deque[_Connection] = collections.deque()
        self._slots = asyncio.Semaphore(limit)
        self._connect_timeout = connect_timeout
        self._open: set[_Connection] = set()
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        headers: bytes,
        body: bytes | None,
        *,
        timeout: float,
        may_send: Callable[[], bool] | None = None,
    ) -> Answer:
        """Send one request and wait for its whole answer.

        ``headers``: the request's header lines, each ending in CRLF (Host and
        Content-Length are added). `Refused` if ``may_send`` says no; `HttpError` or
        `TimeoutError` for a connection that failed or an answer too slow.
        """
        head = f"{method} {target} HTTP/1.1\r\n".encode() + self._host_header + headers
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        data = head + b"\r\n" + (body or b"")
        async with self._slots:
            for attempt in (1, 2):
                connection, reused = await self._connection()
                answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
                if may_send is not None and not may_send():
                    self._put_back(connection)
                    raise Refused("not allowed to send")
                connection.send(data, answer)
                try:
                    async with asyncio.timeout(timeout):
                        result = await answer
                except _Lost as error:
                    self._open.discard(connection)
                    if (reused and error.before_answer and attempt == 1
                            and method == "GET" and not self._closed):  # fmt: skip
                        continue  # a kept-alive connection the server had closed
                    raise
                except BaseException:
                    connection.abort()
                    self._open.discard(connection)
                    raise
                self._put_back(connection)
                return result
        raise HttpError("unreachable")  # pragma: no cover

    async def _connection(self) -> tuple[_Connection, bool]:
        if self._closed:
            raise HttpError("the client is closed")
        while self._idle:
            connection = self._idle.pop()  # the most recently used: least likely closed
            if not connection.closed:
                return connection, True
            self._open.discard(connection)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, protocol = await loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )  # fmt: skip
        except OSError as error:
            raise HttpError(f"cannot connect to {self._host}:{self._port}: {error}") from error
        self._open.add(protocol)
        return protocol, False

    def _put_back(self, connection: _Connection) -> None:
        if connection.closed:
            self._open.discard(connection)
        else:
            self._idle.append(connection)

    def close(self) -> None:
        """Close every connection; requests after this fail."""
        self._closed = True
        for connection in list(self._open):
            connection.abort()
        self._open.clear()
        self._idle.clear()
